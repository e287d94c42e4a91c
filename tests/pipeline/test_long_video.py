"""Long-video mode: segment planning (10 s, 10 min, 2 h), exact prompts, the OOM retry, end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests import media_factory as factory
from videollama_demo import MediaError, Pipeline, Reading
from videollama_demo.media.isolation import DecoderPool
from videollama_demo.media.video import FrameSampling
from videollama_demo.pipeline.long_video import plan_segments
from videollama_demo.prompt.media_prompts import segments_prompt
from videollama_demo.prompt.parts import PromptState
from videollama_demo.prompt.templates import Llama2Style, VicunaStyle

GREEDY = dict(temperature=0, max_new_tokens=8)
OFFICIAL = dict(context_length=2000, max_new_tokens=300, video_queries=32)


@pytest.mark.parametrize("seconds, audio, frames, expected", [
    (10.0, 8, 250, 1),  # one official clip
    (600.0, 0, 15000, 20),  # one segment per 30 s
    (600.0, 8, 15000, 18),  # ... but with audio the context holds 18 (see below)
    # 2 h: the context decides. Free: 2000 - 300 new - 200 question - 40 head = 1460 positions;
    # a segment costs 32 video + 8 audio + 30 + 10 text = 80 -> 18; without audio 62 -> 23.
    (7200.0, 8, 180000, 18),
    (7200.0, 0, 180000, 23),
])
def test_segment_planning(seconds: float, audio: int, frames: int, expected: int) -> None:
    budget = plan_segments(seconds, **OFFICIAL, audio_queries=audio, total_frames=frames)
    assert budget.segments == expected and budget.frames == 8 * expected
    assert budget.video_tokens == 32 * expected and budget.audio_tokens == audio * expected
    assert budget.fits


def test_planning_with_subtitles_a_request_and_few_frames() -> None:
    with_words = plan_segments(7200.0, **OFFICIAL, audio_queries=8, subtitles=True)
    assert with_words.segments == int(1460 * 0.65) // 80 == 11 and with_words.subtitle_words > 0 and with_words.fits
    asked = plan_segments(7200.0, **OFFICIAL, audio_queries=8, requested=50)
    assert asked.segments == 18 and "50 segments were asked for; 18 fit the context" in asked.reason
    short = plan_segments(600.0, **OFFICIAL, total_frames=20)  # 20 frames hold two 8-frame clips
    assert short.segments == 2
    with pytest.raises(ValueError):
        plan_segments(600.0, **OFFICIAL, requested=0)


def test_segments_are_official_clips_of_equal_runs() -> None:
    sampling = FrameSampling(frames_per_segment=8, segments=3)
    # 75 frames -> runs [0, 25), [25, 50), [50, 75); floor(i * 25 / 8) inside each.
    run = [0, 3, 6, 9, 12, 15, 18, 21]
    assert sampling.indices(75, 25.0) == run + [25 + i for i in run] + [50 + i for i in run]
    assert sampling.spans(75, 25.0) == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]
    assert FrameSampling(8, 5).frame_ranges(20, 25.0) == [(0, 10), (10, 20)]  # never a clip under 8 frames
    assert FrameSampling(8, 100, segment_seconds=30.0).frame_ranges(15000, 25.0)[:2] == [(0, 750), (750, 1500)]


def test_segment_prompt_exact_vicuna_and_llama2() -> None:
    prompt = segments_prompt(600.0, [(0.0, 300.0), (300.0, 600.0)], 8, uses_audio=True,
                             subtitles=["Hello.", ""])
    body = ("The video is 10:00 long. It is shown in 2 parts, in order, each as 8 frames sampled evenly with its "
            "sound.\nPart 1 (0:00 to 5:00): you hear <ImageHere>, and see <Video><ImageHere></Video> Subtitles: "
            "Hello.\nPart 2 (5:00 to 10:00): you hear <ImageHere>, and see <Video><ImageHere></Video>\n What?")
    state = PromptState(prompt.system, prompt.message, (("What?", None),))
    assert VicunaStyle().prompt_text(VicunaStyle().render(state)) == "###Human: " + body + "###Assistant:"
    expected = "[INST] <<SYS>>\n\n<</SYS>>\n\n" + body + " [/INST]"
    assert Llama2Style().prompt_text(Llama2Style().render(state)) == expected
    silent = segments_prompt(30.0, [(0.0, 15.0), (15.0, 30.0)], 8, uses_audio=False)
    assert VicunaStyle().prompt_text(list(silent.message)) == (
        "The video is 0:30 long. It is shown in 2 parts, in order, each as 8 frames sampled evenly.\n"
        "Part 1 (0:00 to 0:15): <Video><ImageHere></Video>\nPart 2 (0:15 to 0:30): <Video><ImageHere></Video>\n")


@pytest.fixture(scope="module")
def twenty_seconds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return factory.make_video(tmp_path_factory.mktemp("long") / "twenty.mp4", seconds=20, audio="sine")


def test_preview_end_to_end_in_segments(preview_pipeline: Pipeline, twenty_seconds: Path) -> None:
    # 20 s: one official clip
    assert preview_pipeline.encode(twenty_seconds, Reading(long_video=True)).segment_spans == ()
    encoding = preview_pipeline.encode(twenty_seconds, Reading(long_video=True, segments=3))
    assert encoding.segment_spans == ((0.0, 6.64), (6.64, 13.32), (13.32, 20.0))
    assert encoding.video.shape == (1, 3 * 32, 576) and encoding.audio.shape == (1, 3 * 8, 576)
    assert [b.shape[1] for b in encoding.blocks()] == [8, 32] * 3
    for number, (start, end) in enumerate(encoding.segment_spans):
        assert all(start <= a and b <= end + 1e-6 for a, b in encoding.clip_spans[8 * number:8 * number + 8])
        assert all(start - 0.05 <= t < end for t in encoding.frame_times[8 * number:8 * number + 8])  # 0.1 s rounding
    # Each segment is encoded exactly as that part of the video on its own would be.
    alone = preview_pipeline.encoder.encode_video(_segment_pixels(preview_pipeline, twenty_seconds, encoding, 1))
    assert torch.allclose(encoding.blocks()[3], alone, atol=1e-5)

    session = preview_pipeline.new_session()
    session.add_media(encoding)
    prompt = session.prompt_text("What?")
    assert "Part 2 (0:06.6 to 0:13.3): you hear <ImageHere>, and see <Video><ImageHere></Video>\n" in prompt
    assert session.prompt_embeddings("What?").shape[0] > 3 * 40
    assert "".join(session.ask("What happens in part 2?", **GREEDY)).strip()


def _segment_pixels(pipe: Pipeline, path: Path, encoding, number: int) -> torch.Tensor:
    from videollama_demo.media.video import load_sampled_frames

    frames = load_sampled_frames(path, FrameSampling(8, 3), pipe.config.vision.image_size)
    assert frames.indices == encoding.frame_indices
    return frames.pixels[:, 8 * number:8 * number + 8][None]  # (1, 3, 8, S, S)


def test_segments_decode_in_the_worker_process(twenty_seconds: Path, preview_pipeline: Pipeline) -> None:
    pool = DecoderPool()
    try:
        decoded = pool.decode(twenty_seconds, 8, 56, preview_pipeline.config.audio, sampling=FrameSampling(8, 2))
    finally:
        pool.close()
    assert decoded.segment_spans == ((0.0, 10.0), (10.0, 20.0))
    assert decoded.frames.pixels.shape == (3, 16, 56, 56) and decoded.audio.fbank.shape[0] == 16


class MemoryLimitedEncoder:
    """The real encoder behind a memory limit: more than `max_segments` clips in one batch raises the
    same torch.OutOfMemoryError a GPU raises (our CPU has no such limit, so the limit is imposed
    here; everything else, including the encoding itself, is the real encoder)."""

    def __init__(self, encoder, max_segments: int) -> None:
        self._encoder, self.max_segments, self.batches = encoder, max_segments, []

    def encode_video(self, pixels: torch.Tensor) -> torch.Tensor:
        self.batches.append(pixels.shape[0])
        if pixels.shape[0] > self.max_segments:
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to encode {pixels.shape[0]} clips")
        return self._encoder.encode_video(pixels)

    def __getattr__(self, name: str):
        return getattr(self._encoder, name)


def test_out_of_memory_retries_with_fewer_segments(preview_pipeline: Pipeline, twenty_seconds: Path) -> None:
    limited = MemoryLimitedEncoder(preview_pipeline.encoder, max_segments=2)
    pipe = Pipeline(preview_pipeline.config, limited, preview_pipeline.llm, preview_pipeline.runtime)
    encoding = pipe.encode(twenty_seconds, Reading(use_audio=False, long_video=True, segments=8))
    assert limited.batches == [8, 4, 2]
    assert len(encoding.segment_spans) == 2 and encoding.video.shape[1] == 64
    assert encoding.notes == ("Out of memory with 8 segments: encoded 4 segments instead.",
                              "Out of memory with 4 segments: encoded 2 segments instead.")
    limited.max_segments = 0
    with pytest.raises(MediaError, match="ran out of memory"):
        pipe.encode(twenty_seconds, Reading(use_audio=False))


def test_budget_before_running(preview_pipeline: Pipeline, twenty_seconds: Path) -> None:
    budget = preview_pipeline.plan_long_video(7200.0, use_audio=True)
    assert budget.segments == budget.max_segments > 1 and budget.fits
    assert budget.estimated_seconds > 0 and budget.estimated_memory_bytes > 0
    assert "segment(s) x 8 frames" in budget.summary()
    from_file = preview_pipeline.plan_long_video(twenty_seconds, segments=3)
    assert (from_file.segments, from_file.duration) == (3, pytest.approx(20.0, abs=0.1))
