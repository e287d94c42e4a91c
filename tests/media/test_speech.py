"""Speech -> cues through the real shipped Whisper (tiny.en) on real espeak-ng speech.

The talks are made once per module (tests/speech_factory.py) and the two-sentence talk is
transcribed once and shared: each transcription of a few seconds costs about a second on 2 cores.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests import media_factory
from tests.speech_factory import (
    SpokenSentence,
    Talk,
    make_chirp,
    make_talk,
    word_error_rate,
)
from videollama_demo.media import MediaError
from videollama_demo.media.cue_formats import CUE_FORMATS, format_cues_as
from videollama_demo.media.speech import (
    NO_AUDIO_NOTE,
    NO_SPEECH_NOTE,
    SHIPPED,
    SpeechModelError,
    SpeechTranscript,
    clock,
    default_device,
    default_time_limit,
    load_speech_model,
    resolve_speech_model,
    transcribe,
)
from videollama_demo.media.subtitles import Cue, parse_subtitles

FIRST = "Please open the window in the kitchen."
SECOND = "My sister likes to read books in the garden."
MAX_WORD_ERROR_RATE = 0.25
MAX_TIMING_ERROR_S = 1.0


@pytest.fixture(scope="module")
def speech_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("speech")


@pytest.fixture(scope="module")
def two_sentences(speech_dir: Path) -> Talk:
    """1 s of silence, a sentence, 3 s of silence, a sentence, 1 s of silence."""
    return make_talk(speech_dir / "two_sentences.mp4", [1.0, FIRST, 3.0, SECOND, 1.0])


@pytest.fixture(scope="module")
def heard(two_sentences: Talk) -> tuple[SpeechTranscript, list[tuple[float, float]]]:
    """The two-sentence talk transcribed, with every progress report it made."""
    progress: list[tuple[float, float]] = []
    result = transcribe(two_sentences.path, on_progress=lambda done, total: progress.append((done, total)))
    return result, progress


# ---- what is heard and when ---------------------------------------------------------------------

def test_words_are_recognised(two_sentences: Talk, heard: tuple[SpeechTranscript, list]) -> None:
    result, _ = heard
    said = " ".join(cue.text for cue in result.cues)
    assert word_error_rate(two_sentences.text, said) <= MAX_WORD_ERROR_RATE, said
    assert (result.language, result.note, result.complete) == ("en", None, True)
    assert result.seconds_of_audio == pytest.approx(two_sentences.seconds, abs=0.1)


def test_cue_times_match_the_speech(two_sentences: Talk, heard: tuple[SpeechTranscript, list]) -> None:
    result, _ = heard
    for sentence in two_sentences.sentences:
        # The cues of a sentence: those whose middle lies nearer to it than to the other one.
        mine = [cue for cue in result.cues if _nearest(two_sentences, (cue.start + cue.end) / 2) is sentence]
        assert mine, f"no cue for {sentence.text!r} in {result.cues}"
        assert abs(mine[0].start - sentence.start) <= MAX_TIMING_ERROR_S, (sentence, mine)
        assert abs(mine[-1].end - sentence.end) <= MAX_TIMING_ERROR_S, (sentence, mine)
    assert all(a.end <= b.start for a, b in zip(result.cues, result.cues[1:]))


def _nearest(talk: Talk, time_s: float) -> SpokenSentence:
    return min(talk.sentences, key=lambda sentence: max(sentence.start - time_s, 0.0, time_s - sentence.end))


def test_progress_is_reported_as_segments_arrive(heard: tuple[SpeechTranscript, list]) -> None:
    result, progress = heard
    done = [point for point, _ in progress]
    assert len(progress) >= 2 and done == sorted(done)
    assert {total for _, total in progress} == {result.seconds_of_audio}
    assert progress[-1] == (result.seconds_of_audio, result.seconds_of_audio)


def test_a_given_language_is_used(two_sentences: Talk) -> None:
    result = transcribe(two_sentences.path, language="en")
    assert result.language == "en" and len(result.cues) >= 2


def test_a_language_the_model_does_not_know_is_refused(two_sentences: Talk) -> None:
    with pytest.raises(ValueError, match="does not know the language 'de'"):
        transcribe(two_sentences.path, language="de")  # tiny.en is English only


# ---- no speech: notes, never errors -------------------------------------------------------------

def test_silence_gives_no_cues(speech_dir: Path) -> None:
    silent = media_factory.make_video(speech_dir / "silent.mp4", seconds=8, audio="silent")
    result = transcribe(silent)
    assert (result.cues, result.language, result.note, result.complete) == ([], None, NO_SPEECH_NOTE, True)


def test_music_gives_no_cues(speech_dir: Path) -> None:
    result = transcribe(make_chirp(speech_dir / "chirp.mp4", seconds=15))
    assert (result.cues, result.note) == ([], NO_SPEECH_NOTE)
    assert result.seconds_of_audio == pytest.approx(15, abs=0.1)


def test_a_file_without_sound_track(speech_dir: Path) -> None:
    no_audio = media_factory.make_video(speech_dir / "no_audio.mp4", seconds=2, audio=None)
    assert transcribe(no_audio) == SpeechTranscript([], None, NO_AUDIO_NOTE, 0.0)


def test_an_unreadable_file_is_a_media_error(speech_dir: Path) -> None:
    noise = media_factory.make_random_bytes(speech_dir / "noise.mp4")
    with pytest.raises(MediaError, match="noise.mp4"):
        transcribe(noise)


# ---- the model, its cache and the time limit ----------------------------------------------------

def test_the_model_is_loaded_once_per_process(two_sentences: Talk, heard: tuple[SpeechTranscript, list]) -> None:
    spec = resolve_speech_model(SHIPPED)
    before = load_speech_model.cache_info()
    transcribe(two_sentences.path, model=spec)
    after = load_speech_model.cache_info()
    assert (after.misses, after.hits) == (before.misses, before.hits + 1)
    assert load_speech_model(spec) is load_speech_model(resolve_speech_model(SHIPPED))


def test_half_an_hour_finishes_within_its_time_limit(speech_dir: Path) -> None:
    talk = make_talk(speech_dir / "half_hour.mp4", [2.0, FIRST], total_seconds=1800)
    started = time.monotonic()
    result = transcribe(talk.path)
    elapsed = time.monotonic() - started
    assert result.complete and result.note is None
    assert elapsed < default_time_limit(result.seconds_of_audio)
    assert result.seconds_of_audio == pytest.approx(1800, abs=0.5)
    assert word_error_rate(FIRST, " ".join(cue.text for cue in result.cues)) <= MAX_WORD_ERROR_RATE
    assert result.cues[-1].end < 10  # nothing made up in the half hour of silence


def test_past_the_time_limit_what_was_done_is_returned(speech_dir: Path) -> None:
    # Over 30 s of speech: more than one of Whisper's windows, so more than one segment.
    talk = make_talk(speech_dir / "forty_seconds.mp4", [FIRST, 0.5, SECOND, 0.5] * 7)
    result = transcribe(talk.path, time_limit_s=0.0)  # stops after the first segment
    assert not result.complete and result.language == "en"
    assert result.cues and result.cues[-1].end < talk.sentences[-1].start
    stopped_at = clock(result.cues[-1].end)
    assert result.note == (f"Speech was transcribed up to {stopped_at} of {clock(talk.seconds)} only: "
                           "the time limit of 0:00 was reached.")


def test_the_shipped_model_resolves_offline() -> None:
    spec = resolve_speech_model(SHIPPED)
    assert (Path(spec.path) / "model.bin").is_file() and isinstance(spec.path, str)
    assert (spec.device, spec.compute_type) == (default_device(), {"cpu": "int8", "cuda": "float16"}[spec.device])
    assert resolve_speech_model(SHIPPED, device="cpu").compute_type == "int8"


def test_a_local_folder_is_used_as_it_is(tmp_path: Path) -> None:
    shipped = resolve_speech_model(SHIPPED)
    assert resolve_speech_model(shipped.path).path == shipped.path
    with pytest.raises(SpeechModelError, match="has no model.bin"):
        resolve_speech_model(str(tmp_path))


def test_a_hub_model_not_on_disk_is_not_fetched_without_permission() -> None:
    with pytest.raises(SpeechModelError, match="'large-v3' is not on disk.*Systran/faster-whisper-large-v3"):
        resolve_speech_model("large-v3", allow_download=False)


def test_an_unknown_model_name_lists_the_known_ones() -> None:
    with pytest.raises(SpeechModelError, match="neither a folder nor.*tiny.en"):
        resolve_speech_model("no-such-model")
    with pytest.raises(ValueError, match="device must be one of"):
        resolve_speech_model(SHIPPED, device="tpu")


@pytest.mark.gpu
def test_cuda_runs_in_float16(two_sentences: Talk) -> None:
    spec = resolve_speech_model(SHIPPED, device="cuda")
    result = transcribe(two_sentences.path, model=spec)
    assert spec.compute_type == "float16"
    assert word_error_rate(two_sentences.text, " ".join(cue.text for cue in result.cues)) <= MAX_WORD_ERROR_RATE


# ---- output formats and small helpers -----------------------------------------------------------

FORMAT_CUES = [Cue(0.0, 1.5, "Hello there."), Cue(62.25, 64.0, "Fish & chips, 3 < 4."),
               Cue(3725.125, 3726.0, "An hour in.")]


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_srt_and_vtt_parse_back(fmt: str, heard: tuple[SpeechTranscript, list]) -> None:
    for cues in (FORMAT_CUES, heard[0].cues):
        back = parse_subtitles(format_cues_as(cues, fmt))
        assert [c.text for c in back] == [c.text for c in cues]
        assert [(c.start, c.end) for c in back] == [(round(c.start, 3), round(c.end, 3)) for c in cues]


def test_srt_and_vtt_text() -> None:
    assert format_cues_as(FORMAT_CUES[1:2], "srt") == "1\n00:01:02,250 --> 00:01:04,000\nFish & chips, 3 < 4.\n"
    assert format_cues_as(FORMAT_CUES[1:2], "vtt") == (
        "WEBVTT\n\n00:01:02.250 --> 00:01:04.000\nFish &amp; chips, 3 &lt; 4.\n")


def test_json_parses_back() -> None:
    assert [Cue(**item) for item in json.loads(format_cues_as(FORMAT_CUES, "json"))] == FORMAT_CUES


def test_an_unknown_format_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=", ".join(CUE_FORMATS)):
        format_cues_as(FORMAT_CUES, "txt")  # type: ignore[arg-type]


@pytest.mark.parametrize("seconds, shown", [(0, "0:00"), (42.9, "0:42"), (190, "3:10"), (3725, "1:02:05")])
def test_clock(seconds: float, shown: str) -> None:
    assert clock(seconds) == shown


@pytest.mark.parametrize("reference, hypothesis, rate", [
    ("The cat sat.", "the cat sat", 0.0),
    ("The cat sat.", "The bat sat.", 1 / 3),  # one substitution
    ("The cat sat.", "The cat.", 1 / 3),  # one deletion
    ("The cat sat.", "Oh, the cat sat down.", 2 / 3),  # two insertions
    ("It's here.", "its here", 1 / 2),  # the apostrophe makes another word
    ("one two", "", 1.0),
])
def test_word_error_rate(reference: str, hypothesis: str, rate: float) -> None:
    assert word_error_rate(reference, hypothesis) == pytest.approx(rate)
