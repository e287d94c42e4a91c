"""Subtitles from speech through the pipeline: real espeak-ng speech, the shipped Whisper model run
in the decoder worker, its cues in the prompt beside the frames, the transcript cache (memory, a
second visitor, a restart), the fallback of "embedded", and the default prompt left official."""

from __future__ import annotations

import re
import shutil
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests import media_factory as factory
from tests.speech_factory import Talk, make_chirp, make_talk, word_error_rate
from videollama_demo import Pipeline, Reading, load_pipeline
from videollama_demo.media.speech import NO_AUDIO_NOTE, NO_SPEECH_NOTE
from videollama_demo.pipeline.pipeline import NO_SUBTITLE_STREAM

FIRST = "Please open the window in the kitchen."
SECOND = "My sister likes to read books in the garden."
MAX_WORD_ERROR_RATE = 0.25
PROGRESS = re.compile(r"^Transcribing speech: \d+:\d\d of 0:1[0-9]$")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def pipe(tiny_checkpoints: Path, cache_dir: Path) -> Pipeline:
    pipeline = load_pipeline("tiny", checkpoints=tiny_checkpoints, device="cpu", cache_dir=cache_dir)
    yield pipeline
    pipeline.close()


@pytest.fixture(scope="module")
def talk(tmp_path_factory: pytest.TempPathFactory) -> Talk:
    """1 s of silence, a sentence, 4 s of silence, a sentence, 1 s of silence (about 12 s)."""
    return make_talk(tmp_path_factory.mktemp("talk") / "talk.mp4", [1.0, FIRST, 4.0, SECOND, 1.0])


@pytest.fixture(scope="module")
def heard(pipe: Pipeline, talk: Talk):
    stages: list[str] = []
    before = pipe.transcriber.transcriptions
    encoding = pipe.encode(talk.path, Reading(subtitles="speech"), on_stage=stages.append)
    return encoding, stages, pipe.transcriber.transcriptions - before


def test_speech_becomes_the_subtitles_beside_the_frames(talk: Talk, heard) -> None:
    encoding, _, runs = heard
    assert runs == 1
    said = " ".join(cue.text for cue in encoding.subtitles)
    assert word_error_rate(talk.text, said) <= MAX_WORD_ERROR_RATE, said
    transcript = encoding.transcript
    assert transcript is not None and transcript.kept_words == transcript.total_words >= 14
    # Each sentence sits beside the frames sampled while it is said: the first near the start,
    # the second only after the 4 s pause.
    first_end = talk.sentences[0].end
    early = " ".join(text for at, text in transcript.lines if at <= first_end + 1.0).lower()
    late = " ".join(text for at, text in transcript.lines if at >= talk.sentences[1].start - 1.5).lower()
    assert "window" in early and "garden" in late and "garden" not in early


def test_transcribing_reports_its_progress_as_stage_text(heard) -> None:
    _, stages, _ = heard
    progress = [stage for stage in stages if stage.startswith("Transcribing")]
    assert progress and all(PROGRESS.match(line) for line in progress), stages
    assert progress[-1].split(" of ")[0].endswith(progress[-1].split(" of ")[1])  # the last says "0:12 of 0:12"


def test_the_cues_reach_the_prompt(pipe: Pipeline, heard) -> None:
    encoding, _, _ = heard
    session = pipe.new_session()
    session.add_media(encoding)
    prompt = session.prompt_text("What is said?")
    assert "Subtitles, what is said near the sampled frames:" in prompt
    assert "kitchen" in prompt.lower() and "garden" in prompt.lower()


def test_a_second_question_other_settings_and_a_second_visitor_do_not_transcribe_again(
        pipe: Pipeline, talk: Talk, heard, tmp_path: Path) -> None:
    encoding, _, _ = heard
    before = pipe.transcriber.transcriptions
    again = pipe.encode(talk.path, Reading(subtitles="speech", num_frames=4, use_audio=False))
    copy = shutil.copy(talk.path, tmp_path / "same talk, another visitor.mp4")
    visitor = pipe.encode(copy, Reading(subtitles="speech"))
    assert pipe.transcriber.transcriptions == before
    assert again.subtitles == visitor.subtitles == encoding.subtitles


def test_a_restart_with_the_same_cache_directory_does_not_transcribe_again(
        tiny_checkpoints: Path, cache_dir: Path, talk: Talk, heard) -> None:
    encoding, _, _ = heard
    restarted = load_pipeline("tiny", checkpoints=tiny_checkpoints, device="cpu", cache_dir=cache_dir,
                              isolate_decoding=False)
    again = restarted.encode(talk.path, Reading(subtitles="speech", num_frames=6))
    assert restarted.transcriber.transcriptions == 0
    assert again.subtitles == encoding.subtitles


def test_another_language_is_another_transcript(tiny_checkpoints: Path, cache_dir: Path, talk: Talk,
                                                heard) -> None:
    english = load_pipeline("tiny", checkpoints=tiny_checkpoints, device="cpu", cache_dir=cache_dir,
                            isolate_decoding=False, asr_language="en")
    english.encode(talk.path, Reading(subtitles="speech"))
    assert english.transcriber.transcriptions == 1  # the key has the language: "en" is not "detected"


def test_embedded_without_a_subtitle_stream_falls_back_to_speech(pipe: Pipeline, talk: Talk, heard) -> None:
    encoding, _, _ = heard
    embedded = pipe.encode(talk.path, Reading(subtitles="embedded"))
    assert embedded.subtitles == encoding.subtitles
    assert NO_SUBTITLE_STREAM in embedded.notes


@pytest.mark.parametrize("make, note", [
    (lambda directory: factory.make_video(directory / "silent.mp4", seconds=6, audio="silent"), NO_SPEECH_NOTE),
    (lambda directory: make_chirp(directory / "chirp.mp4", seconds=10), NO_SPEECH_NOTE),
    (lambda directory: factory.make_video(directory / "mute.mp4", seconds=2, audio=None), NO_AUDIO_NOTE),
], ids=["silence", "music", "no sound track"])
def test_no_speech_gives_no_cues_and_a_note_never_an_error(pipe: Pipeline, tmp_path: Path, make, note: str) -> None:
    encoding = pipe.encode(make(tmp_path), Reading(subtitles="speech"))
    assert encoding.subtitles == ()
    assert note in encoding.notes


def test_by_default_nothing_is_transcribed_and_the_prompt_is_the_official_one(pipe: Pipeline, talk: Talk) -> None:
    before = pipe.transcriber.transcriptions
    encoding = pipe.encode(talk.path)
    session = pipe.new_session()
    session.add_media(encoding)
    assert pipe.transcriber.transcriptions == before
    assert encoding.transcript is None and encoding.subtitles == ()
    # The tiny preset speaks LLaMA-2-Chat: the official audio+video turn (Video-LLaMA
    # `video_llama/conversation/conversation_video.py`, `upload_video`), byte for byte.
    assert session.prompt_text("Q?") == (
        "[INST] <<SYS>>\n\n<</SYS>>\n\nClose your eyes, open your ears and you imagine only based on the sound "
        "that: <ImageHere>." + " " * 17 + "Close your ears, open your eyes and you see that <Video><ImageHere>"
        "</Video>." + " " * 18 + "Now answer my question based on what you have just seen and heard. Q? [/INST]")


def test_two_visitors_asking_for_the_same_speech_at_once_share_one_transcription(
        pipe: Pipeline, talk: Talk, heard, tmp_path: Path) -> None:
    encoding, _, _ = heard
    # New bytes (a trailing MP4 `free` box), so nothing is kept for them yet; two names for them.
    data = talk.path.read_bytes() + struct.pack(">I", 16) + b"free" + b"newbytes"
    first, second = tmp_path / "visitor one.mp4", tmp_path / "visitor two.mp4"
    first.write_bytes(data)
    second.write_bytes(data)
    before = pipe.transcriber.transcriptions
    at_once = threading.Barrier(2)

    def visit(path: Path) -> tuple:
        at_once.wait()
        return pipe.encode(path, Reading(subtitles="speech")).subtitles

    with ThreadPoolExecutor(2) as visitors:
        heard_by = list(visitors.map(visit, [first, second]))
    assert pipe.transcriber.transcriptions == before + 1
    assert heard_by[0] == heard_by[1] == encoding.subtitles
