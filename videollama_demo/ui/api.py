"""The OpenAI chat API on the page's own server: `GET /v1/models`, `POST /v1/chat/completions`.

Every client that speaks OpenAI's chat format (the `openai` package, LangChain, curl scripts) can
ask about a video: user content parts `text`, `video_url` and `image_url` (a `data:` URL, or
http(s) with `--allow-url-fetch`). Each request is stateless: it carries the whole conversation,
which is rebuilt as a fresh session (earlier turns replayed, the last user message answered);
the shared encode cache makes a follow-up about the same bytes skip the encoders.

The page and the API share one `ModelGate`: at most `--concurrency` model jobs run at once, page
and API together, and API requests beyond `--queue-size` waiting are refused with 429, so a burst
of API calls queues behind the page's jobs instead of starving them.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import inspect
import json
import mimetypes
import secrets
import shutil
import tempfile
import threading
import time
import typing
import uuid
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.routing import BaseRoute

from .. import ChatError, ChatSession, EngineError, MediaError, Pipeline, Reading, Reply, SamplingSettings

OWNER = "videollama-demo"
LOCAL_PATHS_REFUSED = ("Media must come as a data: URL (base64) or, when the server allows it, an http(s) URL; "
                       "local paths are refused.")
URL_FETCH_OFF = "This server does not fetch URLs (start it with --allow-url-fetch); send the file as a data: URL."
NO_MEDIA = "Send one video or image with the first user message (a video_url or image_url content part)."


class ApiError(Exception):
    """An error the client gets as OpenAI does: `{"error": {"message", "type", "code"}}` with a status."""

    def __init__(self, status: int, message: str, code: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.kind = status, message, code, kind

    def response(self) -> JSONResponse:
        return JSONResponse({"error": {"message": self.message, "type": self.kind, "param": None, "code": self.code}},
                            status_code=self.status)


class ModelGate:
    """The model's job slots, shared by the page and the API: `concurrency` at once, and at most
    `max_waiting` API requests waiting for one (more get 429)."""

    def __init__(self, concurrency: int, max_waiting: int) -> None:
        self._slots = threading.Semaphore(max(1, concurrency))
        self._max_waiting = max_waiting
        self._waiting = 0
        self._count = threading.Lock()

    @contextlib.contextmanager
    def slot(self, refuse_when_full: bool = False) -> Iterator[None]:
        with self._count:
            if refuse_when_full and self._waiting >= self._max_waiting:
                raise ApiError(429, "The model's queue is full; try again in a little while.", "queue_full",
                               "rate_limit_error")
            self._waiting += 1
        try:
            self._slots.acquire()
        finally:
            with self._count:
                self._waiting -= 1
        try:
            yield
        finally:
            self._slots.release()

    def wrap(self, handler: Callable) -> Callable:
        """`handler` (a page event) run while holding a slot. Gradio reads handlers' signatures and
        type hints (gr.Request, gr.Progress), so the wrapper shows the handler's, resolved."""
        if inspect.isgeneratorfunction(handler):
            @functools.wraps(handler)
            def held_stream(*args: Any, **kwargs: Any) -> Iterator[Any]:
                with self.slot():
                    yield from handler(*args, **kwargs)
            wrapper: Callable = held_stream
        else:
            @functools.wraps(handler)
            def held(*args: Any, **kwargs: Any) -> Any:
                with self.slot():
                    return handler(*args, **kwargs)
            wrapper = held
        wrapper.__annotations__ = typing.get_type_hints(handler)
        return wrapper


@dataclass(frozen=True)
class ApiOptions:
    api_key: str | None = None  # None: the routes are open (fine on 127.0.0.1)
    allow_url_fetch: bool = False
    max_file_bytes: int | None = None  # the page's upload limit


@dataclass
class Conversation:
    media_url: str
    turns: list[tuple[str, str]]  # earlier (question, answer) pairs
    question: str


# -- parsing a request ----------------------------------------------------------------------
def parse_messages(messages: Any) -> Conversation:
    """OpenAI `messages` -> the medium, the earlier turns and the question to answer (ApiError 400)."""
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list.", "invalid_messages")
    media: list[str] = []
    turns: list[tuple[str, str]] = []
    pending: str | None = None
    for message in messages:
        role = message.get("role") if isinstance(message, dict) else None
        if role == "user":
            if pending is not None:
                turns.append((pending, ""))  # two user messages in a row: the first got no answer
            text, urls = _user_content(message.get("content"))
            media += urls
            pending = text
        elif role == "assistant":
            if pending is None:
                raise ApiError(400, "An assistant message must follow a user message.", "invalid_messages")
            turns.append((pending, _plain_text(message.get("content"))))
            pending = None
        elif role not in ("system", "developer"):  # the model's own official system text is kept
            raise ApiError(400, f"Unknown message role {role!r}.", "invalid_messages")
    if pending is None or not pending.strip():
        raise ApiError(400, "The last message must be a user message with a question.", "invalid_messages")
    if len(media) != 1:
        raise ApiError(400, NO_MEDIA if not media else "Only one video or image per conversation.", "invalid_media")
    return Conversation(media[0], turns, pending)


def _user_content(content: Any) -> tuple[str, list[str]]:
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise ApiError(400, "A message's 'content' must be a string or a list of parts.", "invalid_messages")
    texts, urls = [], []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            texts.append(str(part.get("text", "")))
        elif kind in ("video_url", "image_url"):
            url = (part.get(kind) or {}).get("url") if isinstance(part.get(kind), dict) else part.get(kind)
            if not isinstance(url, str) or not url:
                raise ApiError(400, f"A {kind} part needs {{\"{kind}\": {{\"url\": ...}}}}.", "invalid_media")
            urls.append(url)
        else:
            raise ApiError(400, f"Content parts may be text, video_url or image_url, not {kind!r}.", "invalid_messages")
    return "\n".join(texts), urls


def _plain_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


# -- getting the file -----------------------------------------------------------------------
def fetch_media(url: str, folder: Path, options: ApiOptions) -> Path:
    """The medium of a `data:` (or allowed http(s)) URL, written into `folder` (ApiError 400)."""
    if url.startswith("data:"):
        mime, data = _data_url(url, options.max_file_bytes)
    elif url.startswith(("http://", "https://")):
        if not options.allow_url_fetch:
            raise ApiError(400, URL_FETCH_OFF, "url_fetch_disabled")
        mime, data = _download(url, options.max_file_bytes)
    else:
        raise ApiError(400, LOCAL_PATHS_REFUSED, "invalid_media")
    path = folder / f"upload{mimetypes.guess_extension(mime or '') or '.bin'}"
    path.write_bytes(data)
    return path


def _data_url(url: str, limit: int | None) -> tuple[str, bytes]:
    header, sep, payload = url.partition(",")
    if not sep or not header.endswith(";base64"):
        raise ApiError(400, "A data: URL must be base64: data:video/mp4;base64,....", "invalid_media")
    if limit is not None and len(payload) * 3 // 4 > limit:
        raise _too_large(limit)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "The data: URL is not valid base64.", "invalid_media") from None
    if not data:
        raise ApiError(400, "The data: URL holds no bytes.", "invalid_media")
    return header[len("data:"):-len(";base64")], data


def _download(url: str, limit: int | None) -> tuple[str, bytes]:
    chunks, size = [], 0
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=30) as response:
            response.raise_for_status()
            for chunk in response.iter_bytes():
                size += len(chunk)
                if limit is not None and size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
            mime = response.headers.get("content-type", "").split(";")[0]
    except httpx.HTTPError as err:
        raise ApiError(400, f"Could not fetch the media URL: {err}", "invalid_media") from None
    return mime, b"".join(chunks)


def _too_large(limit: int) -> ApiError:
    return ApiError(400, f"The file is larger than this server accepts ({limit / 2**20:.0f} MB).", "file_too_large")


# -- answering ------------------------------------------------------------------------------
class ChatCompletions:
    """The two routes around one pipeline and the gate it shares with the page."""

    def __init__(self, pipeline: Pipeline, gate: ModelGate, options: ApiOptions) -> None:
        self.pipeline = pipeline
        self.gate = gate
        self.options = options
        self.model = pipeline.config.name

    def routes(self) -> list[BaseRoute]:
        router = APIRouter(dependencies=[Depends(self._check_key)])
        router.add_api_route("/v1/models", self.list_models, methods=["GET"])
        router.add_api_route("/v1/chat/completions", self.create, methods=["POST"])
        return router.routes

    def _check_key(self, request: Request) -> None:
        if self.options.api_key is None:
            return
        given = request.headers.get("authorization", "")
        if not secrets.compare_digest(given.encode(), f"Bearer {self.options.api_key}".encode()):
            raise ApiError(401, "Missing or wrong API key: send 'Authorization: Bearer <key>'.", "invalid_api_key")

    def list_models(self) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": self.model, "object": "model", "created": 0, "owned_by": OWNER}]}

    def create(self, body: dict[str, Any] = Body(...)) -> Any:  # noqa: B008  (FastAPI's way to take a JSON body)
        conversation = parse_messages(body.get("messages"))
        sampling = _sampling(body)
        slot = self.gate.slot(refuse_when_full=True)
        slot.__enter__()
        try:
            session, reply, first = self._start(conversation, sampling)
        except (MediaError, ChatError, ValueError) as err:  # the file, the length, a sampling value
            slot.__exit__(None, None, None)
            raise ApiError(400, str(err), _code_of(err)) from None
        except EngineError as err:
            slot.__exit__(None, None, None)
            raise ApiError(503, str(err), "engine_unavailable", "server_error") from None
        except BaseException:
            slot.__exit__(None, None, None)
            raise
        max_tokens = sampling.get("max_new_tokens", SamplingSettings().max_new_tokens)
        completion = Completion(self.model, reply, first, max_tokens)
        if body.get("stream"):
            return StreamingResponse(_released(completion.chunks(), session, slot), media_type="text/event-stream")
        try:
            return completion.whole()
        finally:
            _release(session, slot)

    def _start(self, conversation: Conversation, sampling: dict[str, Any]) -> tuple[ChatSession, Reply, str | None]:
        """Encode the medium, replay the earlier turns, start the answer and take its first words,
        so that a refusal (bad file, too long) is still an HTTP error, not a broken stream."""
        session = self.pipeline.new_session()
        try:
            session.add_media(self._encode(conversation.media_url))
            for question, answer in conversation.turns:
                session.add_answered_turn(question, answer)
            reply = session.ask(conversation.question, **sampling)
            return session, reply, next(reply, None)
        except BaseException:
            session.reset()
            raise

    def _encode(self, url: str) -> Any:
        folder = Path(tempfile.mkdtemp(prefix="videollama-api-"))
        try:
            return self.pipeline.encode(fetch_media(url, folder, self.options), Reading())
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def _code_of(err: Exception) -> str:
    if isinstance(err, MediaError):
        return "invalid_media"
    return "context_length_exceeded" if isinstance(err, ChatError) and "too long" in str(err) else "invalid_value"


def _sampling(body: dict[str, Any]) -> dict[str, Any]:
    names = {"temperature": "temperature", "top_p": "top_p", "max_tokens": "max_new_tokens",
             "max_completion_tokens": "max_new_tokens"}
    sampling = {ours: body[theirs] for theirs, ours in names.items() if body.get(theirs) is not None}
    for name, value in sampling.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ApiError(400, f"{name} must be a number.", "invalid_value")
    return sampling


def _release(session: ChatSession, slot: contextlib.AbstractContextManager) -> None:
    session.reset()  # frees the engine's cache for this one-request conversation
    slot.__exit__(None, None, None)


def _released(chunks: Iterator[str], session: ChatSession, slot: contextlib.AbstractContextManager) -> Iterator[str]:
    try:
        yield from chunks
    finally:
        _release(session, slot)


class Completion:
    """One answer in OpenAI's shapes: a whole `chat.completion`, or `chat.completion.chunk` events."""

    def __init__(self, model: str, reply: Reply, first: str | None, max_tokens: int) -> None:
        self.model, self.reply, self.first, self.max_tokens = model, reply, first, max_tokens
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())

    def _deltas(self) -> Iterator[str]:
        if self.first is not None:
            yield self.first
            yield from self.reply

    def whole(self) -> dict[str, Any]:
        for _ in self._deltas():
            pass
        message = {"role": "assistant", "content": self.reply.text}
        return {"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "message": message, "finish_reason": self._finish_reason()}],
                "usage": self._usage()}

    def chunks(self) -> Iterator[str]:
        yield self._event({"role": "assistant", "content": ""}, None)
        for delta in self._deltas():
            yield self._event({"content": delta}, None)
        yield self._event({}, self._finish_reason())
        yield "data: [DONE]\n\n"

    def _event(self, delta: dict[str, Any], finish_reason: str | None) -> str:
        chunk = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    def _finish_reason(self) -> str:
        return "length" if self.reply.generated >= self.max_tokens else "stop"

    def _usage(self) -> dict[str, int]:
        prompt = self.reply.prefilled + self.reply.reused
        return {"prompt_tokens": prompt, "completion_tokens": self.reply.generated,
                "total_tokens": prompt + self.reply.generated}


# -- wiring -----------------------------------------------------------------------------------
_routes_of: weakref.WeakKeyDictionary[Any, list[BaseRoute]] = weakref.WeakKeyDictionary()


def attach(demo: Any, pipeline: Pipeline, gate: ModelGate, options: ApiOptions) -> None:
    """Remember the API routes of `demo` (built by build_demo) for `launch_demo` to serve."""
    _routes_of[demo] = ChatCompletions(pipeline, gate, options).routes()


def app_kwargs(demo: Any) -> dict[str, Any]:
    """What `Blocks.launch(app_kwargs=...)` needs to serve the API on the same FastAPI app: the
    routes, and OpenAI-shaped bodies for their refusals (only these routes raise ApiError)."""
    return {"routes": _routes_of.get(demo, []), "exception_handlers": {ApiError: _api_error_response}}


def _api_error_response(_: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, ApiError)
    return err.response()
