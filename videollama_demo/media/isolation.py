"""Decode uploads in worker processes, so a hostile file cannot take the server down.

The C decoders under us are not hardened: fuzzing found an mp4 on which decord aborts the whole
process (`std::bad_alloc`). In a worker that costs one worker, which is restarted; the user gets
a MediaError; every other session goes on. A worker that hangs past the timeout is killed too.
"""

from __future__ import annotations

import logging
import multiprocessing
import pickle
import queue
import signal
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

from ..config import AudioEncoderConfig
from .probe import MediaError, display_name
from .speech import SpeechModelSpec, SpeechTranscript
from .upload import DecodedUpload, StageCallback, decode_upload, transcribe_upload
from .video import FrameSampling

log = logging.getLogger(__name__)

# decode_upload's arguments: path, frames, image size, audio config, longest video, sampling, subtitles
Request = tuple[str, int, int, AudioEncoderConfig | None, float | None, FrameSampling | None, bool]
# transcribe_upload's arguments: path, speech model, language, longest video
SpeechRequest = tuple[str, SpeechModelSpec, str | None, float | None]


def _serve(connection: Connection) -> None:
    """The worker's loop: one job in ("decode" or "transcribe"), stage messages and one outcome out."""
    import torch

    torch.set_num_threads(1)
    while True:
        try:
            job, request = connection.recv()
        except (EOFError, OSError):
            return
        try:
            result = _run(job, request, connection)
            connection.send_bytes(pickle.dumps(("result", result)))
        except MediaError as err:
            connection.send_bytes(pickle.dumps(("media_error", str(err))))
        except Exception as err:  # noqa: BLE001 - reported to the parent, which logs it
            connection.send_bytes(pickle.dumps(("failure", f"{type(err).__name__}: {err}")))


def _run(job: str, request: Request | SpeechRequest, connection: Connection) -> DecodedUpload | SpeechTranscript:
    def stage(text: str) -> None:
        connection.send(("stage", text))

    if job == "transcribe":
        path, model, language, max_seconds = request
        # The parent's deadline grows to the transcription's limit once the worker knows the length.
        return transcribe_upload(path, model, language, on_stage=stage, max_seconds=max_seconds,
                                 on_time_limit=lambda seconds: connection.send(("time_limit", seconds)))
    path, num_frames, image_size, audio, max_seconds, sampling, read_subtitles = request
    return decode_upload(path, num_frames, image_size, audio, on_stage=stage, max_seconds=max_seconds,
                         sampling=sampling, read_subtitles=read_subtitles)


class _Worker:
    def __init__(self) -> None:
        self._process: multiprocessing.process.BaseProcess | None = None
        self._connection: Connection | None = None
        self._lock = threading.Lock()

    def run(self, job: str, request: Request | SpeechRequest, timeout_s: float,
            on_stage: StageCallback) -> DecodedUpload | SpeechTranscript:
        connection = self.start()
        connection.send((job, request))
        started = time.monotonic()
        deadline = started + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not connection.poll(remaining):
                self.stop()
                verb = "transcribe" if job == "transcribe" else "decode"
                raise MediaError(f"'{display_name(request[0])}' took too long to {verb} "
                                 f"(over {deadline - started:.0f} s). Please try a shorter or smaller file.")
            try:
                kind, payload = pickle.loads(connection.recv_bytes())
            except (EOFError, OSError):
                killed = self.stop(ended=True) == -signal.SIGKILL
                if killed:  # not the file's doing: the system (out of memory) or an operator ended it
                    log.warning("the decoder worker was killed while reading %s", request[0])
                    raise MediaError(f"The server stopped its video decoder while reading '{display_name(request[0])}' "
                                     "(it may be short of memory). Please try again in a moment.") from None
                raise MediaError(f"'{display_name(request[0])}' crashed the video decoder: it is probably "
                                 "damaged. Please try another file.") from None
            if kind == "stage":
                on_stage(payload)
            elif kind == "time_limit":  # a transcription may take as long as its file is long
                deadline = max(deadline, started + timeout_s + float(payload))
            elif kind == "result":
                return payload
            elif kind == "media_error":
                raise MediaError(payload)
            else:
                log.error("decoding %s failed: %s", request[0], payload)
                raise MediaError(f"'{display_name(request[0])}' could not be read. Please try another file.")

    def start(self) -> Connection:
        with self._lock:
            if self._process is None or not self._process.is_alive():
                context = multiprocessing.get_context("spawn")  # fork is unsafe with torch threads/CUDA
                parent, child = context.Pipe()
                self._process = context.Process(target=_serve, args=(child,), daemon=True, name="media-decoder")
                self._process.start()
                child.close()
                self._connection = parent
            assert self._connection is not None
            return self._connection

    def stop(self, ended: bool = False) -> int | None:
        """End the worker process; its exit code (negative: the signal that ended it), None if none.
        `ended`: its pipe closed, so it is exiting on its own: wait a moment for its own exit code."""
        with self._lock:  # the warm-up thread may be starting this worker right now
            process, connection = self._process, self._connection
            self._process = self._connection = None
        code = None
        if process is not None:
            if ended:
                process.join(timeout=2)
            code = process.exitcode
            process.kill()
            process.join(timeout=5)
        if connection is not None:
            connection.close()
        return code


class DecoderPool:
    """`decode_upload` in `workers` processes (started on first use, restarted after a crash)."""

    def __init__(self, workers: int = 1, timeout_s: float = 120.0) -> None:
        if workers < 1:
            raise ValueError(f"the decoder pool needs at least one worker, got {workers}")
        self.timeout_s = timeout_s
        self._workers = [_Worker() for _ in range(workers)]
        self._idle: queue.Queue[_Worker] = queue.Queue()
        for worker in self._workers:
            self._idle.put(worker)

    def decode(self, path: str | Path, num_frames: int, image_size: int, audio: AudioEncoderConfig | None,
               on_stage: StageCallback | None = None, max_seconds: float | None = None,
               sampling: FrameSampling | None = None, read_subtitles: bool = False) -> DecodedUpload:
        """`decode_upload` with the same arguments, in a worker process."""
        request = (str(path), num_frames, image_size, audio, max_seconds, sampling, read_subtitles)
        return self._run("decode", request, on_stage)

    def transcribe(self, path: str | Path, model: SpeechModelSpec, language: str | None = None,
                   on_stage: StageCallback | None = None, max_seconds: float | None = None) -> SpeechTranscript:
        """`transcribe_upload` in a worker process: a Whisper run that crashes or hangs on a hostile
        file costs a worker. The time limit grows with the file's length (the worker reports it)."""
        return self._run("transcribe", (str(path), model, language, max_seconds), on_stage)

    def _run(self, job: str, request: Request | SpeechRequest,
             on_stage: StageCallback | None) -> DecodedUpload | SpeechTranscript:
        worker = self._idle.get()  # waits while every worker is busy
        try:
            return worker.run(job, request, self.timeout_s, on_stage or (lambda _: None))
        finally:
            self._idle.put(worker)

    def warm_up(self) -> None:
        """Start the workers in the background now (each takes seconds to import), not on first use."""
        threading.Thread(target=self._start_all, daemon=True, name="decoder-warm-up").start()

    def _start_all(self) -> None:
        taken = [self._idle.get() for _ in self._workers]  # an upload meanwhile waits, as it would anyway
        try:
            for worker in taken:
                worker.start()
        finally:
            for worker in taken:
                self._idle.put(worker)

    def close(self) -> None:
        for worker in self._workers:
            worker.stop()
