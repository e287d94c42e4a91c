"""Keeps a long-running server's disk and memory bounded: idle sessions end, old files go.

Gradio keeps a session's state until 10,000 sessions exist when its client never opens the
heartbeat (raw HTTP and REST `/call` clients), and it deletes no upload, thumbnail or aborted
partial upload unless asked. A `Housekeeper` thread, every `period` seconds:

1. ends each session unused for `session_ttl` seconds (no event touched its state: Gradio's
   `StateHolder.time_last_used`) and with no job in the queue: its `gr.State` delete callbacks run
   (our `PageSession.close` frees the encoding and the engine's KV cache) and Gradio's own record
   of the session is dropped;
2. deletes every file in Gradio's upload/cache folder older than `keep_seconds` that no live
   session holds (uploads, the thumbnails and converted files made from them, partial uploads
   of cut-off requests, which Gradio never tracks), then the empty folders they leave.
"""

from __future__ import annotations

import datetime
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from .limits import client_address

log = logging.getLogger(__name__)

EXPIRED_REMEMBERED = 10_000  # session ids kept to say "expired" instead of "upload first"


class EndedSessions:
    """The ids of the sessions the housekeeper ended (the newest EXPIRED_REMEMBERED), so that a tab
    coming back is told its session expired rather than to upload a first file."""

    def __init__(self, remembered: int = EXPIRED_REMEMBERED) -> None:
        self._ended: OrderedDict[str, float] = OrderedDict()
        self._remembered = remembered
        self._lock = threading.Lock()

    def add(self, session_hash: str) -> None:
        with self._lock:
            self._ended[session_hash] = time.time()
            while len(self._ended) > self._remembered:
                self._ended.popitem(last=False)

    def __contains__(self, session_hash: object) -> bool:
        return bool(session_hash) and session_hash in self._ended

    def __len__(self) -> int:
        return len(self._ended)


@dataclass(frozen=True)
class Upkeep:
    """How long things may stay (the --keep-uploads and --session-ttl flags)."""

    keep_seconds: float = 3600.0
    session_ttl: float = 1800.0

    @property
    def period(self) -> float:
        """How often the housekeeper looks: often enough that nothing outlives its bound by much."""
        return max(0.5, min(60.0, self.keep_seconds / 4, self.session_ttl / 4))


class Housekeeper:
    """The thread that ends idle sessions and sweeps old files, around one launched `gr.Blocks`."""

    def __init__(self, demo: gr.Blocks, upkeep: Upkeep, upload_folder: Path | None = None,
                 ended: EndedSessions | None = None) -> None:
        self.demo = demo
        self.upkeep = upkeep
        self._folder = upload_folder
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ended = ended if ended is not None else EndedSessions()  # the page reads it to say "expired"
        self.permanent: set[Path] = set()  # what the page itself put in the cache (the examples)

    @property
    def folder(self) -> Path:
        return self._folder or Path(gr.utils.get_upload_folder())

    def start(self) -> None:
        # Files Gradio cached while the page was built are the examples' copies: the page links to
        # them for as long as it is served, so they are never swept.
        built = set(getattr(self.demo, "temp_files", set())).union(*getattr(self.demo, "temp_file_sets", []))
        self.permanent = {Path(path) for path in built}
        self._thread = threading.Thread(target=self._run, name="housekeeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.upkeep.period):
            try:
                self.run_once()
            except Exception:  # the next round tries again; a crash here would stop all cleaning
                log.exception("housekeeping round failed")

    def run_once(self) -> None:
        self.expire_sessions()
        self.sweep()

    # -- sessions ---------------------------------------------------------------------------
    def expire_sessions(self) -> list[str]:
        holder = getattr(self.demo, "state_holder", None)
        if holder is None:
            return []
        now = datetime.datetime.now()
        idle = [sid for sid, last in list(holder.time_last_used.items())
                if (now - last).total_seconds() > self.upkeep.session_ttl and not self._has_jobs(sid)]
        for sid in idle:
            self._end(holder, sid)
        if idle:
            log.info("ended %d session(s) idle for more than %.0f s", len(idle), self.upkeep.session_ttl)
        return idle

    def _has_jobs(self, session_hash: str) -> bool:
        queue = getattr(self.demo, "_queue", None)
        return bool(queue is not None and queue.pending_event_ids_session.get(session_hash))

    def _end(self, holder: Any, session_hash: str) -> None:
        try:
            holder.delete_state(session_hash)  # runs each gr.State's delete_callback
        except Exception:
            log.exception("freeing the state of session %s failed", session_hash)
        with holder.lock:
            holder.session_data.pop(session_hash, None)
            holder.time_last_used.pop(session_hash, None)
        self.ended.add(session_hash)

    def files_in_use(self) -> set[Path]:
        """The files live sessions hold: each session's current upload and any file path in its state."""
        holder = getattr(self.demo, "state_holder", None)
        if holder is None:
            return set()
        used: set[Path] = set()
        for session in list(holder.session_data.values()):
            for value in list(session.state_data.values()):
                used.update(_paths_in(value))
        # A file uploaded for a job still waiting in the queue is not in any session yet.
        queue = getattr(self.demo, "_queue", None)
        for event in list(queue.event_ids_to_events.values()) if queue is not None else []:
            body = getattr(event, "data", None)
            for value in getattr(body, "data", None) or []:
                if isinstance(value, dict) and isinstance(value.get("path"), str):
                    used.add(Path(value["path"]))
        return used

    # -- files ------------------------------------------------------------------------------
    def sweep(self) -> tuple[int, int]:
        """Delete old unused files under the upload folder; returns (files, bytes) removed."""
        folder = self.folder
        if not folder.is_dir():
            return 0, 0
        cutoff = time.time() - self.upkeep.keep_seconds
        in_use = self.files_in_use() | self.permanent
        files = freed = 0
        for root, dirs, names in os.walk(folder, topdown=False):
            for name in names:
                path = Path(root) / name
                size = _remove_if_old(path, cutoff, in_use)
                if size is not None:
                    files, freed = files + 1, freed + size
            for name in dirs:
                _remove_dir_if_old_and_empty(Path(root) / name, cutoff)
        if files:
            log.info("removed %d old upload/cache file(s), %.1f MB", files, freed / 2**20)
        return files, freed


def jobs_by_address(demo: gr.Blocks, address: str, trusted_proxy: bool) -> int:
    """Queued or running events whose request came from `address`."""
    queue = getattr(demo, "_queue", None)
    if queue is None:
        return 0
    count = 0
    for event in list(queue.event_ids_to_events.values()):
        request = getattr(event, "request", None)
        if request is not None and client_address(request.scope, trusted_proxy) == address:
            count += 1
    return count


def queue_length(demo: gr.Blocks) -> int:
    queue = getattr(demo, "_queue", None)
    return len(queue) if queue is not None else 0


def is_model_job(demo: gr.Blocks, target: int | str | None, concurrency_id: str) -> bool:
    """Whether the event `target` (fn_index or api name) queues under `concurrency_id`."""
    if target is None:
        return False
    fns: Iterable[Any] = demo.fns.values()
    if isinstance(target, int):
        fn = demo.fns.get(target)
    else:
        fn = next((fn for fn in fns if fn.api_name == target), None)
    return fn is not None and bool(fn.queue) and fn.concurrency_id == concurrency_id


def _paths_in(value: Any) -> Iterable[Path]:
    if isinstance(value, str) and os.sep in value:
        return [Path(value)]
    source = getattr(value, "source", None)  # a PageSession: the file its conversation is about
    return [Path(source)] if isinstance(source, str) else []


def _remove_if_old(path: Path, cutoff: float, in_use: set[Path]) -> int | None:
    try:
        stat = path.lstat()
        if max(stat.st_mtime, stat.st_ctime) > cutoff or path in in_use or path.resolve() in in_use:
            return None
        path.unlink()
    except OSError:
        return None  # gone meanwhile, or not ours to remove
    return stat.st_size


def _remove_dir_if_old_and_empty(path: Path, cutoff: float) -> None:
    try:
        if path.lstat().st_mtime <= cutoff and not any(path.iterdir()):
            path.rmdir()
    except OSError:
        pass  # not empty after all, or gone
