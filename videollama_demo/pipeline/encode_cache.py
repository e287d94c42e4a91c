"""Encodings of uploaded files, kept so that the same content is encoded only once.

An `EncodeKey` is a digest of the file's bytes (`content_digest.py`) plus every setting that changes the numbers.
One `EncodeCache` is shared by all sessions of a pipeline: an LRU in memory bounded in bytes,
and optionally a directory that survives restarts (one safetensors file per encoding, written
atomically, bounded in bytes, oldest evicted). Concurrent requests for the same key wait for the
one encode in flight instead of repeating it.
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
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..encoding import MediaEncoding
from ..media import MediaInfo
from ..media.subtitles import Cue

log = logging.getLogger(__name__)

DEFAULT_MEMORY_BYTES = 256 * 2**20  # ~200 encodings of 8 frames (the 224x224 thumbnails dominate)
DEFAULT_DISK_BYTES = 2 * 2**30
# Bump when what an encoding holds or how it is computed changes: old files on disk then miss.
FORMAT_VERSION = 3  # 2: segments, subtitle cues and notes are kept too; 3: no "no subtitle stream" note
_SUFFIX = ".safetensors"
_METADATA_KEY = "videollama_encoding"


def tensors_sha256(tensors: Iterable[torch.Tensor]) -> str:
    """Hex SHA-256 of the tensors' values, dtypes and shapes (used to tell weight sets apart)."""
    digest = hashlib.sha256()
    for tensor in tensors:
        flat = tensor.detach().to("cpu").contiguous()
        digest.update(f"{flat.dtype}{tuple(flat.shape)}".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return digest.hexdigest()


@dataclass(frozen=True)
class EncodeKey:
    content: str  # the file's bytes, named by `content_digest`
    settings: str  # canonical JSON of every setting that changes the encoding

    @classmethod
    def of(cls, content: str, settings: dict[str, Any]) -> EncodeKey:
        return cls(content, json.dumps({"format": FORMAT_VERSION, **settings}, sort_keys=True))

    @property
    def digest(self) -> str:
        """A file-name-safe name for this key."""
        return hashlib.sha256(f"{self.content}\n{self.settings}".encode()).hexdigest()


class EncodeCache:
    """Thread-safe store of encodings; `get_or_create` is the one call a pipeline needs.

    `memory_bytes=0` keeps nothing in memory; `cache_dir` adds the on-disk layer.
    """

    def __init__(self, memory_bytes: int = DEFAULT_MEMORY_BYTES, cache_dir: str | Path | None = None,
                 disk_bytes: int = DEFAULT_DISK_BYTES) -> None:
        if memory_bytes < 0 or disk_bytes < 0:
            raise ValueError("cache sizes must be >= 0 bytes")
        self.memory_bytes = memory_bytes
        self._entries: OrderedDict[str, tuple[MediaEncoding, int]] = OrderedDict()  # digest -> (encoding, bytes)
        self._used = 0
        self._in_flight: dict[str, Future[MediaEncoding]] = {}
        self._lock = threading.Lock()
        self._disk = _DiskStore(Path(cache_dir), disk_bytes) if cache_dir is not None else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    @property
    def bytes_used(self) -> int:
        """Bytes held in memory (tensor and thumbnail data)."""
        with self._lock:
            return self._used

    def get(self, key: EncodeKey) -> MediaEncoding | None:
        """The kept encoding for `key` (memory only), marked `from_cache`; None on a miss."""
        with self._lock:
            return self._memory_hit(key)

    def get_or_create(self, key: EncodeKey, create: Callable[[], MediaEncoding]) -> MediaEncoding:
        """The kept encoding for `key`, else the one another thread is computing, else `create()`.

        Only a `create()` made by this call comes back with `from_cache=False`. Its exceptions
        reach every caller that waited for it, and nothing is kept.
        """
        with self._lock:
            hit = self._memory_hit(key)
            if hit is not None:
                return hit
            pending = self._in_flight.get(key.digest)
            if pending is None:
                owned = self._in_flight[key.digest] = Future()
        if pending is not None:
            return dataclasses.replace(pending.result(), from_cache=True)
        try:
            encoding = self._load_or_create(key, create)
            owned.set_result(encoding)
            return encoding
        except BaseException as err:
            owned.set_exception(err)
            raise
        finally:
            with self._lock:
                self._in_flight.pop(key.digest, None)

    def _load_or_create(self, key: EncodeKey, create: Callable[[], MediaEncoding]) -> MediaEncoding:
        encoding = self._disk.load(key) if self._disk is not None else None
        if encoding is None:
            encoding = create()
            if self._disk is not None:
                self._disk.save(key, encoding)
        self._remember(key, encoding)
        return encoding

    def _memory_hit(self, key: EncodeKey) -> MediaEncoding | None:
        entry = self._entries.get(key.digest)
        if entry is None:
            return None
        self._entries.move_to_end(key.digest)
        return dataclasses.replace(entry[0], from_cache=True)

    def _remember(self, key: EncodeKey, encoding: MediaEncoding) -> None:
        size = encoding_bytes(encoding)
        if size > self.memory_bytes:
            return  # would evict everything and still not fit
        with self._lock:
            old = self._entries.pop(key.digest, None)
            self._used -= old[1] if old is not None else 0
            self._entries[key.digest] = (encoding, size)
            self._used += size
            while self._used > self.memory_bytes:
                _, (_, freed) = self._entries.popitem(last=False)  # least recently used first
                self._used -= freed


def encoding_bytes(encoding: MediaEncoding) -> int:
    """What an encoding costs to keep: its tensors and its thumbnails."""
    blocks = [encoding.video] + ([encoding.audio] if encoding.audio is not None else [])
    return sum(block.numel() * block.element_size() for block in blocks) + encoding.thumbnails.nbytes


class _DiskStore:
    """One `<key digest>.safetensors` per encoding: tensors, plus the rest as JSON in its header.

    Only tensors and JSON are read back (never pickles). A file that cannot be read, or that
    belongs to another key, counts as a miss and is deleted; the new encoding replaces it.
    """

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)

    def load(self, key: EncodeKey) -> MediaEncoding | None:
        path = self._path(key)
        if not path.exists():
            return None
        try:
            encoding = _read_encoding(path, key)
            os.utime(path)  # recently used: evicted last
        except (SafetensorError, OSError, ValueError, KeyError, TypeError, RuntimeError) as err:
            log.warning("ignoring the unreadable cache file %s (%s); it will be replaced", path.name, err)
            path.unlink(missing_ok=True)
            return None
        return encoding

    def save(self, key: EncodeKey, encoding: MediaEncoding) -> None:
        """Write atomically (temporary file, then rename); a full disk only costs the cache entry."""
        try:
            self._write(self._path(key), key, encoding)
            self._evict()
        except (OSError, SafetensorError) as err:
            log.warning("could not write the encode cache in %s: %s", self.directory, err)

    def _path(self, key: EncodeKey) -> Path:
        return self.directory / f"{key.digest}{_SUFFIX}"

    def _write(self, path: Path, key: EncodeKey, encoding: MediaEncoding) -> None:
        tensors, metadata = _encoding_record(encoding, key)
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=f".{path.stem}.", suffix=".tmp")
        os.close(handle)
        try:
            save_file(tensors, temporary, metadata={_METADATA_KEY: json.dumps(metadata)})
            os.replace(temporary, path)
        finally:
            Path(temporary).unlink(missing_ok=True)

    def _evict(self) -> None:
        files = sorted(self.directory.glob(f"*{_SUFFIX}"), key=lambda file: file.stat().st_mtime)
        total = sum(file.stat().st_size for file in files)
        for file in files:
            if total <= self.max_bytes:
                break
            total -= file.stat().st_size
            file.unlink(missing_ok=True)


def _encoding_record(encoding: MediaEncoding, key: EncodeKey) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"video": encoding.video.contiguous(), "thumbnails": torch.from_numpy(encoding.thumbnails.copy())}
    if encoding.audio is not None:
        tensors["audio"] = encoding.audio.contiguous()
    metadata = {
        "content": key.content, "settings": key.settings, "device": str(encoding.video.device),
        "kind": encoding.kind, "frame_indices": encoding.frame_indices, "frame_times": encoding.frame_times,
        "message": encoding.message, "audio_note": encoding.audio_note, "clip_spans": encoding.clip_spans,
        "info": dataclasses.asdict(encoding.info), "segment_spans": encoding.segment_spans,
        "subtitles": [dataclasses.asdict(cue) for cue in encoding.subtitles], "notes": encoding.notes,
    }
    return tensors, metadata


def _read_encoding(path: Path, key: EncodeKey) -> MediaEncoding:
    with safe_open(str(path), framework="pt") as file:
        metadata = json.loads(file.metadata()[_METADATA_KEY])
        if (metadata["content"], metadata["settings"]) != (key.content, key.settings):
            raise ValueError("the file belongs to another key")
        tensors = {name: file.get_tensor(name) for name in file.keys()}
    device = torch.device(metadata["device"])
    audio = tensors.get("audio")
    return MediaEncoding(
        kind=metadata["kind"], video=tensors["video"].to(device), audio=audio.to(device) if audio is not None else None,
        frame_indices=[int(i) for i in metadata["frame_indices"]],
        frame_times=[float(t) for t in metadata["frame_times"]],
        message=str(metadata["message"]), thumbnails=np.ascontiguousarray(tensors["thumbnails"].numpy()),
        audio_note=metadata["audio_note"], clip_spans=[(float(a), float(b)) for a, b in metadata["clip_spans"]],
        info=MediaInfo(**metadata["info"]), from_cache=True,
        segment_spans=tuple((float(a), float(b)) for a, b in metadata["segment_spans"]),
        subtitles=tuple(Cue(**cue) for cue in metadata["subtitles"]), notes=tuple(metadata["notes"]))
