"""What one request may cost the server, checked before Gradio or the model does any work.

A public demo is reached by scripts as well as browsers. Gradio stores an upload before any
handler sees it, parses a whole JSON body before any check, and lets one client fill the queue;
`gr.Textbox(max_length)` is enforced only in the browser. So these checks sit in an ASGI
middleware in front of Gradio's routes (`HostGuard`) and in event validators (`text_refusal`),
both of which answer at once, outside the model queue:

- uploads: the whole request body at most `request_bytes`, one file per request, and the upload
  folder as a whole at most `upload_dir_bytes` ("the server is full");
- event calls (queue join, REST `/call`): a body of at most `json_bytes`, so a 50 MB question is
  refused before it is parsed; at most `jobs_per_client` queued or running jobs per address;
- texts: a question or transcript longer than any context could hold is refused by length,
  before anything is tokenized.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# A token of any tokenizer we load covers at most about 16 characters of ordinary text, so a
# question with more than 16 characters per position of the context could never be answered:
# refusing it by length changes nothing that the model could have done.
CHARS_PER_TOKEN_BOUND = 16
TRANSCRIPT_CHARS = 1_000_000  # about 20 hours of subtitles; the word budget keeps far fewer
SUBTITLE_FILE_BYTES = 5 * 2**20
UPLOAD_ROUTE = "/gradio_api/upload"
EVENT_ROUTES = ("/gradio_api/queue/join", "/gradio_api/call/", "/gradio_api/run/")

SERVER_FULL = ("The server is full right now (uploads waiting to be cleaned up use all the space it sets aside). "
               "Try a smaller file, or try again in a few minutes.")
TOO_LARGE = "That upload is {size} MB; the largest this server accepts is {limit} MB. Try a smaller or shorter file."
ONE_FILE = "Send one file per upload."
BODY_TOO_LARGE = ("That request is {size} MB; this server accepts at most {limit} MB per question or setting. "
                  "Shorten the text.")
TOO_MANY_JOBS = ("You already have {jobs} requests waiting or running (the most one address may have). "
                 "Wait for them to finish (or press Stop), then try again; your file and question are kept.")
QUEUE_FULL = ("The server is busy: {waiting} requests are waiting for the model. Your file and question are kept; "
              "try again in a minute.")


@dataclass(frozen=True)
class HostLimits:
    """The bounds a public host sets (the flags of app.py; defaults suit one GPU)."""

    request_bytes: int = 500 * 2**20  # an upload request, all its files together
    upload_dir_bytes: int = 20 * 2**30  # Gradio's upload and cache folder as a whole
    json_bytes: int = 4 * 2**20  # one event call: the question, the transcript, the settings
    jobs_per_client: int = 2  # queued or running model jobs per client address
    trusted_proxy: bool = False  # take the client address from X-Forwarded-For
    queue_size: int | None = None  # Gradio's queue max_size, to say "busy" in our own words


SIZE_UNITS = {"b": 1, "kb": 2**10, "mb": 2**20, "gb": 2**30, "tb": 2**40}


def parse_size(text: str) -> int:
    """Bytes in "500mb", "2gb", "1024" (Gradio's units: powers of 1024)."""
    value = text.strip().lower()
    for unit in sorted(SIZE_UNITS, key=len, reverse=True):
        if value.endswith(unit) and value[:-len(unit)].strip().replace(".", "", 1).isdigit():
            return int(float(value[:-len(unit)]) * SIZE_UNITS[unit])
    if value.isdigit():
        return int(value)
    raise ValueError(f"a size is a number with b, kb, mb, gb or tb, like 500mb; got {text!r}")


def question_chars(context_length: int) -> int:
    """The longest question that could ever fit the model's context (see CHARS_PER_TOKEN_BOUND)."""
    return CHARS_PER_TOKEN_BOUND * context_length


def text_refusal(text: str | None, limit: int, what: str) -> str | None:
    """A sentence when `text` is longer than `limit` characters, else None (a length check only)."""
    if text is not None and len(text) > limit:
        return (f"That {what} is {len(text):,} characters long; the most this model can read is {limit:,}. "
                f"Shorten it and send it again.")
    return None


def subtitle_file_refusal(path: str | None) -> str | None:
    """A sentence when the subtitle file is too large to be a subtitle file, else None."""
    if not path:
        return None
    try:
        size = os.path.getsize(path)
    except OSError:
        return None  # the reader says what is wrong with a missing file
    if size > SUBTITLE_FILE_BYTES:
        return (f"That subtitle file is {size / 2**20:.1f} MB; subtitle files are text, at most "
                f"{SUBTITLE_FILE_BYTES // 2**20} MB here.")
    return None


def client_address(scope: Scope, trusted_proxy: bool) -> str:
    """Who sent the request: the socket's peer, or, behind a proxy we trust, the address that
    proxy appended last to X-Forwarded-For (earlier entries are whatever the client wrote)."""
    if trusted_proxy:
        for name, value in scope.get("headers") or []:
            if name == b"x-forwarded-for":
                forwarded = [part.strip() for part in value.decode("latin-1").split(",") if part.strip()]
                if forwarded:
                    return forwarded[-1]
    client = scope.get("client")
    return client[0] if client else "unknown"


def folder_bytes(folder: Path) -> int:
    """Bytes of the regular files under `folder` (0 if it does not exist)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass  # removed meanwhile
    return total


class HostGuard:
    """ASGI middleware in front of Gradio (pass it in `launch(app_kwargs={"middleware": ...})`).

    `jobs_of(address)` counts that address's queued and running jobs; `upload_folder()` is where
    Gradio stores uploads (read at each request: tests and hosts set GRADIO_TEMP_DIR);
    `is_model_job(fn_index or api_name)` says whether an event call would queue for the model
    (Stop, Undo and the other instant events are never refused)."""

    def __init__(self, app: ASGIApp, limits: HostLimits, jobs_of: Callable[[str], int],
                 queue_length: Callable[[], int], upload_folder: Callable[[], Path],
                 is_model_job: Callable[[int | str | None], bool]) -> None:
        self.app = app
        self.is_model_job = is_model_job
        self.limits = limits
        self.jobs_of = jobs_of
        self.queue_length = queue_length
        self.upload_folder = upload_folder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path == UPLOAD_ROUTE:
            await self._upload(scope, receive, send)
        elif path.startswith(EVENT_ROUTES):
            await self._event(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _upload(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limits.request_bytes
        length = _content_length(scope)
        if length is not None and length > limit + MULTIPART_OVERHEAD:
            await _refuse(send, 413, TOO_LARGE.format(size=f"{length / 2**20:.0f}", limit=f"{limit / 2**20:.0f}"))
            return
        used = folder_bytes(self.upload_folder())
        if used + (length or 0) > self.limits.upload_dir_bytes:
            log.warning("upload refused: the upload folder holds %.0f MB of %.0f MB", used / 2**20,
                        self.limits.upload_dir_bytes / 2**20)
            await _refuse(send, 507, SERVER_FULL)
            return
        counter = _BodyCounter(receive, limit + MULTIPART_OVERHEAD, _boundary(scope))
        await self.app(scope, counter.receive, send)
        if counter.cut:
            log.info("upload cut off from %s: %s", client_address(scope, self.limits.trusted_proxy), counter.cut)

    async def _event(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limits.json_bytes
        length = _content_length(scope)
        body = None if length is not None and length > limit else await _read_body(receive, limit)
        if body is None:
            size = (length or limit) / 2**20
            await _refuse(send, 413, BODY_TOO_LARGE.format(size=f"{size:.1f}", limit=limit // 2**20))
            return
        if self.is_model_job(_event_target(scope.get("path", ""), body)):
            refusal = self._job_refusal(client_address(scope, self.limits.trusted_proxy))
            if refusal:
                await _refuse(send, 429, refusal)
                return
        await self.app(scope, _replay(body, receive), send)

    def _job_refusal(self, address: str) -> str | None:
        jobs = self.jobs_of(address)
        if jobs >= self.limits.jobs_per_client:
            log.info("refused a job from %s: it has %d queued or running", address, jobs)
            return TOO_MANY_JOBS.format(jobs=jobs)
        waiting = self.queue_length()
        if self.limits.queue_size is not None and waiting >= self.limits.queue_size:
            log.info("refused a job from %s: %d waiting", address, waiting)
            return QUEUE_FULL.format(waiting=waiting)
        return None


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None as soon as it passes `limit` bytes (nothing more is read)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the app the body already read, then the client's later messages."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _event_target(path: str, body: bytes) -> int | str | None:
    """Which event a call starts: the fn_index of a queue join, the api name of a REST call."""
    if path.startswith("/gradio_api/call/"):
        return path.removeprefix("/gradio_api/call/").removeprefix("v2/").strip("/").split("/")[0] or None
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    return payload.get("fn_index") if isinstance(payload, dict) else None


# The multipart framing around one file: boundaries, part headers (the file name is at most a few
# hundred bytes). The body limit is the file limit plus this.
MULTIPART_OVERHEAD = 64 * 1024


class _BodyCounter:
    """Wraps `receive`: ends the body (as a client disconnect) once it passes `limit` bytes or,
    for multipart, a second part starts. The app then stops reading; what it stored so far is a
    partial file the sweeper removes."""

    def __init__(self, receive: Receive, limit: int, boundary: bytes | None) -> None:
        self._receive = receive
        self._limit = limit
        self._delimiter = b"--" + boundary if boundary else None
        self._seen = 0
        self._parts = 0
        self._tail = b""
        self.cut: str | None = None

    async def receive(self) -> Message:
        if self.cut:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] != "http.request":
            return message
        body = message.get("body", b"")
        self._seen += len(body)
        if self._seen > self._limit:
            self.cut = f"body over {self._limit} bytes"
        elif self._delimiter is not None and self._count_parts(body) > 1:
            self.cut = "more than one file in one request"
        return {"type": "http.disconnect"} if self.cut else message

    def _count_parts(self, body: bytes) -> int:
        """Parts begun so far: each delimiter except the closing one (`--boundary--`)."""
        assert self._delimiter is not None
        window = self._tail + body
        start = 0
        while (at := window.find(self._delimiter, start)) != -1:
            end = at + len(self._delimiter)
            if end + 2 > len(window):
                break  # cannot tell yet whether it is the closing delimiter
            if window[end:end + 2] != b"--":
                self._parts += 1
            start = end
        keep = max(start, len(window) - len(self._delimiter) - 2)
        self._tail = window[keep:]
        return self._parts


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or []:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _boundary(scope: Scope) -> bytes | None:
    for name, value in scope.get("headers") or []:
        if name == b"content-type":
            for piece in value.split(b";"):
                key, _, boundary = piece.strip().partition(b"=")
                if key.lower() == b"boundary" and boundary:
                    return boundary.strip(b'"')
    return None


async def _refuse(send: Send, status: int, message: str) -> None:
    """A JSON error the page shows as it is (Gradio's page shows `detail` of a failed request)."""
    body = json.dumps({"detail": message, "error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def validate_texts(limit: int, *texts_and_names: tuple[str | None, str]) -> None:
    """Raise the refusal for the first text over `limit` (for handlers that check themselves)."""
    for text, what in texts_and_names:
        refusal = text_refusal(text, limit, what)
        if refusal:
            raise gr.Error(refusal, print_exception=False)


def _verdicts(inputs: tuple[Any, ...], position: int, refusal: str | None) -> list[Any]:
    """One `gr.validate` per input of the event (Gradio wants as many as there are inputs)."""
    return [gr.validate(refusal is None or index != position, refusal or "" if index == position else "")
            for index in range(len(inputs))]


def question_validator(limit: int) -> Callable[..., Any]:
    """An event validator (runs before the job joins the queue) refusing over-long questions (input 0)."""

    def validate_question(*inputs: Any) -> list[Any]:
        return _verdicts(inputs, 0, text_refusal(inputs[0], limit, "question"))

    return validate_question


def transcript_validator(limit: int = TRANSCRIPT_CHARS) -> Callable[..., Any]:
    """An event validator refusing an over-long transcript (input 0), before it is parsed."""

    def validate_transcript(*inputs: Any) -> list[Any]:
        return _verdicts(inputs, 0, text_refusal(inputs[0], limit, "transcript"))

    return validate_transcript


def subtitle_validator(position: int) -> Callable[..., Any]:
    """An event validator refusing a subtitle file (input `position`) too large to be one."""

    def validate_subtitle_file(*inputs: Any) -> list[Any]:
        return _verdicts(inputs, position, subtitle_file_refusal(inputs[position]))

    return validate_subtitle_file
