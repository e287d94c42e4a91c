"""Time-range questions: frames sampled inside the span (decord's frames at those indices), audio
clips from the span, the clip shown with the question, and questions without a range left official."""

from __future__ import annotations

from pathlib import Path

import decord
import numpy as np
import pytest

from videollama_demo import ChatError, Pipeline
from videollama_demo.media.audio import load_audio_clips_in_spans, load_waveform, waveform_to_clips
from videollama_demo.media.video import FrameSampling, load_sampled_frames
from videollama_demo.prompt.media_prompts import time_range_parts
from videollama_demo.prompt.parts import PromptState
from videollama_demo.prompt.templates import Llama2Style, VicunaStyle

GREEDY = dict(temperature=0, max_new_tokens=8)


def test_indices_lie_inside_the_span_and_frames_are_decords(shared_media: dict[str, Path]) -> None:
    path = shared_media["other_video"]  # 120 frames at 30 fps
    sampling = FrameSampling(8, span=(1.0, 3.0))
    # Frames 30..90 lie in [1 s, 3 s]: 61 of them, sampled as an official clip of 61 frames.
    assert sampling.indices(120, 30.0) == [30 + (i * 61) // 8 for i in range(8)]
    frames = load_sampled_frames(path, sampling, image_size=224)
    expected = decord.VideoReader(str(path), height=224, width=224).get_batch(frames.indices).asnumpy()
    assert np.array_equal(frames.thumbnails, expected)
    # 30, 37, 45, 52, 60, 68, 75, 83 / 30 fps, rounded to 0.1 as the official message does.
    assert frames.message == "The video contains 8 frames sampled at 1.0, 1.2, 1.5, 1.7, 2.0, 2.3, 2.5, 2.8 seconds. "
    assert sampling.spans(120, 30.0) == [(1.0, 3.0)]


def test_audio_clips_come_from_the_span(shared_media: dict[str, Path]) -> None:
    from videollama_demo.config import AudioEncoderConfig

    cfg = AudioEncoderConfig()
    (clips,) = load_audio_clips_in_spans(shared_media["other_video"], cfg, [(1.0, 3.0)])
    assert all(1.0 <= a and b <= 3.0 for a, b in clips.clip_spans)
    cut = load_waveform(shared_media["other_video"], cfg.sample_rate)[:, 16000:48000]
    assert np.array_equal(clips.fbank.numpy(), waveform_to_clips(cut, cfg).fbank.numpy())  # the span as a video


def test_time_range_clip_exact_prompt_vicuna_and_llama2() -> None:
    message = "The video contains 8 frames sampled at 130.0, 136.2 seconds. "
    parts = time_range_parts(130.0, 180.0, False, 1, message)
    state = PromptState("", (), (("What happens?", None),), (parts,))
    body = ("The part of the video from 2:10 to 3:00: <Video><ImageHere></Video> The video contains 8 frames "
            "sampled at 130.0, 136.2 seconds.  What happens?")
    assert VicunaStyle().prompt_text(VicunaStyle().render(state)) == "###Human: " + body + "###Assistant:"
    expected = "[INST] <<SYS>>\n\n<</SYS>>\n\n" + body + " [/INST]"
    assert Llama2Style().prompt_text(Llama2Style().render(state)) == expected
    with_audio = time_range_parts(130.0, 180.0, True, 2, message)
    assert VicunaStyle().prompt_text(list(with_audio)) == (
        "The part of the video from 2:10 to 3:00: you hear <ImageHere>, and see <Video><ImageHere></Video>. "
        + message)


def test_preview_end_to_end_time_range_question(preview_pipeline: Pipeline, shared_media: dict[str, Path]) -> None:
    session = preview_pipeline.new_session()
    session.add_media(preview_pipeline.encode(shared_media["other_video"]))

    def ask(question: str, time_range: tuple[float, float] | None = None, detect: bool = False, **sampling):
        clip = preview_pipeline.question_clip(session.media, question, time_range, detect)
        return session.ask(question, clip=clip, **sampling)
    official = session.prompt_text("What happens?")
    plain = session.ask("What happens?", **GREEDY)
    "".join(plain)
    assert session.turns[-1].clip is None and session.prompt_text() == official + plain.text + "<|im_end|>\n"

    reply = ask("What happens between 0:01 and 0:03?", detect=True, **GREEDY)
    assert "".join(reply).strip()
    turn = session.turns[-1]
    assert turn.time_range == (1.0, 3.0) and turn.clip.uses_audio
    assert all(30 <= i <= 90 for i in turn.clip.frame_indices)
    assert all(1.0 <= a and b <= 3.0 for a, b in turn.clip.clip_spans)
    assert ("<|im_start|>user\nThe part of the video from 0:01 to 0:03: you hear <ImageHere>, and see "
            "<Video><ImageHere></Video>. The video contains 8 frames sampled at 1.0, 1.2, 1.5, 1.7, 2.0, 2.3, "
            "2.5, 2.8 seconds.  What happens between 0:01 and 0:03?<|im_end|>") in session.prompt_text()
    media_rows = 8 + 32
    assert session.prompt_embeddings().shape[0] == len(preview_pipeline.llm.tokenizer.encode_parts(
        session._style.render(session._prompt_state(session.turns)))) - 4 + 2 * media_rows  # 2 x (audio, video)

    again = session.retry(**GREEDY)
    "".join(again)
    assert session.turns[-1].time_range == (1.0, 3.0)
    explicit = ask("And here?", time_range=(0.5, 1.5), **GREEDY)
    "".join(explicit)
    assert "from 0:00.5 to 0:01.5" in session.prompt_text()
    with pytest.raises(ChatError, match="after the video ends"):
        ask("Late?", time_range=(10.0, 12.0))
    "".join(ask("What is said between 50 and 60 s?", detect=True, **GREEDY))  # outside the video: an ordinary question
    assert session.turns[-1].clip is None and session.turns[-1].time_range is None
