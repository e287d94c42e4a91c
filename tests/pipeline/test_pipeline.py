"""The whole path, file in -> tokens -> streamed answer, through the public API."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.media.test_audio import official_front_end, official_waveform
from tests.media.test_video import _reference_frames
from tests.model import reference
from videollama_demo import ChatError, MediaError, Pipeline, Reading, load_pipeline
from videollama_demo.hub import resolve_weights

GREEDY = dict(temperature=0, max_new_tokens=16)


@pytest.fixture(scope="module")
def tiny_pipeline(tiny_checkpoints: Path) -> Pipeline:
    return load_pipeline("tiny", checkpoints=tiny_checkpoints, device="cpu")


def test_tiny_official_files_encode_like_the_official_computation(tiny_pipeline: Pipeline, tiny_checkpoints: Path,
                                                                  shared_media: dict[str, Path]) -> None:
    config = tiny_pipeline.config
    encoding = tiny_pipeline.encode(shared_media["video"], Reading(use_audio=True))
    assert encoding.kind == "video" and encoding.audio_note is None
    assert encoding.video.shape == (1, config.video_qformer.num_queries, config.llm.hidden_size)
    assert encoding.audio.shape == (1, config.audio_qformer.num_queries, config.llm.hidden_size)
    assert encoding.message == "The video contains 8 frames sampled at 0.0, 0.4, 0.7, 1.1, 1.5, 1.8, 2.2, 2.6 seconds. "

    files = reference.official_files(resolve_weights(config, tiny_checkpoints).official_paths())
    _, pixels = _reference_frames(shared_media["video"], encoding.frame_indices, config.vision.image_size)
    expected_video = reference.encode_video(torch.from_numpy(pixels)[None], files, config)
    expected_audio = reference.encode_audio(official_front_end(official_waveform(shared_media["video"]))[None],
                                            files, config)
    assert reference.max_error(encoding.video, expected_video) < 1e-5
    assert reference.max_error(encoding.audio, expected_audio) < 1e-5


def test_tiny_pipeline_answers_about_an_image(tiny_pipeline: Pipeline, shared_media: dict[str, Path]) -> None:
    encoding = tiny_pipeline.encode(shared_media["image"])
    assert encoding.kind == "image" and encoding.frame_times == [0.0] and encoding.audio is None
    assert encoding.thumbnails.shape[0] == 1
    session = tiny_pipeline.new_session()
    session.add_media(encoding)
    assert session.prompt_text("What is it?").startswith(
        "[INST] <<SYS>>\nYou are able to understand the visual content that the user provides.")
    assert "".join(session.ask("What is it?", **GREEDY))


def test_audio_notes_say_why_audio_was_not_used(tiny_pipeline: Pipeline, shared_media: dict[str, Path]) -> None:
    assert "no audio track" in tiny_pipeline.encode(shared_media["mute"]).audio_note
    off = tiny_pipeline.encode(shared_media["video"], Reading(use_audio=False))
    assert off.audio is None and "turned off" in off.audio_note
    assert off.message.startswith("The video contains 8 frames")


def test_frame_count_is_a_per_call_setting(tiny_pipeline: Pipeline, shared_media: dict[str, Path]) -> None:
    assert len(tiny_pipeline.encode(shared_media["video"], Reading(num_frames=16)).frame_times) == 16
    assert len(tiny_pipeline.encode(shared_media["video"]).frame_times) == 8  # the shared default is untouched
    with pytest.raises(MediaError, match="between 1 and 32"):
        tiny_pipeline.encode(shared_media["video"], Reading(num_frames=33))


def test_a_broken_file_is_a_media_error(tiny_pipeline: Pipeline, shared_media: dict[str, Path]) -> None:
    with pytest.raises(MediaError):
        tiny_pipeline.encode(shared_media["broken"])


def test_auto_without_weights_is_the_preview_and_says_why(preview_pipeline: Pipeline) -> None:
    assert preview_pipeline.is_preview
    assert "no Video-LLaMA weights found" in preview_pipeline.preview_reason


def test_preview_end_to_end_with_the_real_smollm2(preview_pipeline: Pipeline, shared_media: dict[str, Path]) -> None:
    session = preview_pipeline.new_session()
    encoding = session.add_media(preview_pipeline.encode(shared_media["video"], Reading(use_audio=True)))
    assert encoding.video.shape == (1, 32, 576) and encoding.audio.shape == (1, 8, 576)
    assert len(encoding.clip_spans) == 8

    reply = session.ask("What happens in this video?", **GREEDY)
    deltas = list(reply)
    assert len(deltas) >= 2 and reply.text.strip()
    follow_up = session.ask("And what about the sound?", **GREEDY)
    assert "".join(follow_up).strip() and follow_up.reused > follow_up.prefilled

    stopped = session.ask("Describe every frame.", temperature=0, max_new_tokens=60)
    next(stopped)
    stopped.close()
    assert session.turns[-1].stopped
    again = session.ask("Thanks. One more thing?", **GREEDY)
    assert "".join(again).strip() and len(session.turns) == 4

    session.reset()
    with pytest.raises(ChatError):
        session.ask("Still there?")


def test_preview_greedy_answers_are_deterministic(preview_pipeline: Pipeline, shared_media: dict[str, Path]) -> None:
    answers = []
    for _ in range(2):
        session = preview_pipeline.new_session()
        session.add_media(preview_pipeline.encode(shared_media["other_video"]))
        answers.append("".join(session.ask("What do you see?", **GREEDY)))
    assert answers[0] == answers[1]
