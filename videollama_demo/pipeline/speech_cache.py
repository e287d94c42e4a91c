"""Speech -> cues for the pipeline: transcripts kept so that the same sound is transcribed only once.

A transcript depends on the file's bytes, the speech model and the language asked for (None =
detected), and on nothing the page's reading settings change (frames, audio, segments): so it is
kept apart from the encodings, and ticking "from speech" after a first question, changing the
frames, a second visitor or a restart (with a cache directory) reuse it. Only complete transcripts
are kept: one stopped by its time limit is shown, but the next request tries again.

In memory an LRU of `max_entries`; on disk one small JSON file per transcript in
`<cache dir>/transcripts/`, written atomically.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from concurrent.futures import Future
from pathlib import Path

from ..media.isolation import DecoderPool
from ..media.speech import SHIPPED, SpeechModelSpec, SpeechTranscript, resolve_speech_model
from ..media.subtitles import Cue
from ..media.upload import StageCallback, transcribe_upload

log = logging.getLogger(__name__)

FORMAT_VERSION = 1  # bump when a transcript is made differently: old files on disk then miss
DEFAULT_ENTRIES = 512  # a transcript is a few kB of text
SUBDIRECTORY = "transcripts"


def transcript_key(content_sha256: str, model: SpeechModelSpec, language: str | None) -> str:
    """A file-name-safe key: the file's digest, the model folder and the language asked for.
    The device and compute type are left out: they round differently, they do not hear differently."""
    fields = {"format": FORMAT_VERSION, "content": content_sha256, "model": model.path, "language": language}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


class TranscriptCache:
    """Thread-safe store of complete transcripts by `transcript_key`; `directory` adds a disk layer."""

    def __init__(self, directory: str | Path | None = None, max_entries: int = DEFAULT_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, SpeechTranscript] = OrderedDict()
        self._lock = threading.Lock()
        self.directory = Path(directory) / SUBDIRECTORY if directory is not None else None
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> SpeechTranscript | None:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        found = self._load(key)
        if found is not None:
            self._remember(key, found)
        return found

    def put(self, key: str, transcript: SpeechTranscript) -> None:
        """Keep `transcript` unless it is incomplete (stopped by its time limit)."""
        if not transcript.complete:
            return
        self._remember(key, transcript)
        self._save(key, transcript)

    def _remember(self, key: str, transcript: SpeechTranscript) -> None:
        with self._lock:
            self._entries[key] = transcript
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def _path(self, key: str) -> Path | None:
        return self.directory / f"{key}.json" if self.directory is not None else None

    def _load(self, key: str) -> SpeechTranscript | None:
        path = self._path(key)
        if path is None or not path.exists():
            return None
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            return SpeechTranscript(cues=[Cue(float(c["start"]), float(c["end"]), str(c["text"]))
                                          for c in record["cues"]],
                                    language=record["language"], note=record["note"],
                                    seconds_of_audio=float(record["seconds_of_audio"]))
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("ignoring the unreadable transcript %s (%s); it will be replaced", path.name, err)
            path.unlink(missing_ok=True)
            return None

    def _save(self, key: str, transcript: SpeechTranscript) -> None:
        path = self._path(key)
        if path is None:
            return
        try:
            handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{key}.", suffix=".tmp")
        except OSError as err:  # a full or read-only disk costs the cache entry, never the answer
            log.warning("could not write the transcript cache in %s: %s", path.parent, err)
            return
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                json.dump(dataclasses.asdict(transcript), file)
            os.replace(temporary, path)
        except OSError as err:
            log.warning("could not write the transcript cache in %s: %s", path.parent, err)
        finally:
            Path(temporary).unlink(missing_ok=True)


class Transcriber:
    """The pipeline's way to the speech in a file: a kept transcript, else Whisper in the decoder
    pool (a crash or hang on a hostile file costs a worker), or in this process without a pool.

    `model`: a `SpeechModelSpec`, or an `--asr-model` value resolved on first use (so a pipeline
    that never transcribes never looks for a model). `transcriptions` counts the runs of Whisper
    this transcriber started (cache hits do not count): what the page's cache promises is testable."""

    def __init__(self, model: SpeechModelSpec | str = SHIPPED, language: str | None = None,
                 cache: TranscriptCache | None = None, decoder: DecoderPool | None = None,
                 max_seconds: float | None = None) -> None:
        self._model = model
        self.language = language
        self.cache = cache if cache is not None else TranscriptCache()
        self.decoder = decoder
        self.max_seconds = max_seconds
        self.transcriptions = 0
        self._lock = threading.Lock()
        self._running: dict[str, Future[SpeechTranscript]] = {}  # key -> the Whisper run under way

    @property
    def model(self) -> SpeechModelSpec:
        with self._lock:
            if isinstance(self._model, str):
                self._model = resolve_speech_model(self._model)
            return self._model

    def transcript(self, path: str | Path, content_sha256: str,
                   on_stage: StageCallback | None = None) -> SpeechTranscript:
        """The speech in `path` (whose bytes hash to `content_sha256`), from the cache when kept."""
        key = transcript_key(content_sha256, self.model, self.language)
        kept = self.cache.get(key)
        if kept is not None:
            return kept
        with self._lock:
            running = self._running.get(key)
            mine = running is None
            if running is None:  # the first to ask runs Whisper; who asks meanwhile waits for it
                running = self._running[key] = Future()
                self.transcriptions += 1
        if not mine:
            if on_stage is not None:
                on_stage("Transcribing speech (already under way for this file)")
            return running.result()
        try:
            transcript = self._transcribe(path, on_stage)
            self.cache.put(key, transcript)
            running.set_result(transcript)
            return transcript
        except BaseException as err:
            running.set_exception(err)  # the same file fails the same way for who waits
            raise
        finally:
            with self._lock:
                self._running.pop(key, None)

    def _transcribe(self, path: str | Path, on_stage: StageCallback | None) -> SpeechTranscript:
        if self.decoder is not None:
            return self.decoder.transcribe(path, self.model, self.language, on_stage, self.max_seconds)
        return transcribe_upload(path, self.model, self.language, on_stage, max_seconds=self.max_seconds)
