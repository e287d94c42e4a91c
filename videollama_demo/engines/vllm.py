"""The `vllm` engine: a client of a vLLM OpenAI-compatible server fed prompt embeddings.

Each answer is one streamed `POST /v1/completions` whose prompt is the (L, H) embeddings
(`prompt_embeds`, a base64 `torch.save`), with `return_token_ids` so the stream carries token
ids and the chat layer detokenizes exactly as with the local engine. vLLM batches every open
request (continuous batching) and its prefix cache replaces our per-conversation KV cache, so
`forget` has nothing to free. The server must run with `--enable-prompt-embeds` (and
`--enable-prefix-caching`, `--enable-prompt-tokens-details` to be fast and to report reuse).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import threading
from collections.abc import Hashable, Iterator
from typing import Any

import httpx
import torch

from .base import (
    EngineError,
    GenerationRequest,
    SamplingSettings,
)

log = logging.getLogger(__name__)


def api_base(url: str) -> str:
    """`http://host:8000` or `http://host:8000/v1/` -> `http://host:8000/v1`."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"


def encode_embeds(embeds: torch.Tensor, dtype: torch.dtype | None = None) -> str:
    """(L, H) -> the base64 `torch.save` bytes vLLM reads as `prompt_embeds`."""
    if embeds.dim() != 2:
        raise ValueError(f"prompt embeddings must be (L, H), got shape {tuple(embeds.shape)}")
    tensor = embeds.detach().to("cpu", dtype or embeds.dtype).contiguous()
    buffer = io.BytesIO()
    torch.save(tensor, buffer)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def sampling_fields(settings: SamplingSettings, stop_ids: frozenset[int]) -> dict[str, Any]:
    """Every sampling knob spelled out: vLLM's own defaults (top-k off, top-p 1) are not official."""
    fields: dict[str, Any] = {
        "temperature": settings.temperature,  # 0 is greedy in vLLM as in our contract
        "top_p": settings.top_p,
        "top_k": settings.top_k,  # 0 disables it, as in transformers
        "repetition_penalty": settings.repetition_penalty,
        "max_tokens": settings.max_new_tokens,
        "stop_token_ids": sorted(stop_ids),
        # Only the request's stop ids end the answer, as in the local engine; otherwise vLLM
        # would also stop at the model's EOS, which a Vicuna-style prompt does not use.
        "ignore_eos": True,
    }
    if settings.seed is not None:
        fields["seed"] = settings.seed
    return fields


def server_events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Server-sent events -> decoded JSON chunks, up to the `[DONE]` that ends a whole stream."""
    for line in lines:
        if not line.startswith("data:"):
            continue  # blank separators and comments
        data = line[len("data:"):].strip()
        if data == "[DONE]":
            return
        yield json.loads(data)


def error_message(response: httpx.Response) -> str:
    """The server's own reason for refusing a request (OpenAI error body), else the status."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)


class VLLMEngine:
    """Many sessions' answers at once through one pooled, thread-safe HTTP client."""

    name = "vllm"

    def __init__(self, base_url: str, model: str | None = None, *, timeout: float = 120.0,
                 connect_timeout: float = 5.0, dtype: torch.dtype | None = None,
                 max_connections: int = 64, parallel_requests: int = 16) -> None:
        """`timeout` bounds the wait for each streamed chunk (the first one includes the
        prefill and any queueing); `dtype` is the server's, so embeddings travel at its size."""
        self.url = api_base(base_url)
        self.dtype = dtype
        # vLLM batches whatever is in flight; batch runs and timelines send this many at once.
        self.parallel_requests = parallel_requests
        self._model = model
        self._model_lock = threading.Lock()
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._client = httpx.Client(base_url=self.url, limits=limits,
                                    timeout=httpx.Timeout(timeout, connect=connect_timeout))

    # ------------------------------------------------------------------------- user-facing errors

    def _down(self, error: Exception) -> EngineError:
        return EngineError(f"The language-model server at {self.url} is not answering ({error}); "
                           "start it, or check the address given with --llm-server.")

    def _dropped(self, error: Exception | None) -> EngineError:
        detail = f" ({error})" if error else ""
        return EngineError(f"The language-model server at {self.url} stopped in the middle of the "
                           f"answer{detail}; it may have restarted. Please ask again.")

    def _refused(self, response: httpx.Response) -> EngineError:
        return EngineError(f"The language-model server at {self.url} refused the request: "
                           f"{error_message(response)}")

    # --------------------------------------------------------------------------------- the model

    @property
    def model(self) -> str:
        """The served model's name: the one given, else the only one the server lists."""
        with self._model_lock:
            if self._model is None:
                self._model = self._listed_model()
            return self._model

    def _listed_model(self) -> str:
        try:
            response = self._client.get("/models")
        except httpx.TransportError as error:
            raise self._down(error) from error
        if response.status_code != 200:
            raise self._refused(response)
        names = [entry["id"] for entry in response.json().get("data", [])]
        if len(names) != 1:
            raise EngineError(f"The language-model server at {self.url} serves {len(names)} models "
                              f"({', '.join(names) or 'none'}); name the one to use.")
        return names[0]

    # ---------------------------------------------------------------------------------- answering

    def payload(self, request: GenerationRequest) -> dict[str, Any]:
        return {
            "model": self.model,
            "prompt_embeds": encode_embeds(request.embeds, self.dtype),
            "stream": True,
            "stream_options": {"include_usage": True},  # the last chunk says how much was cached
            "return_token_ids": True,
            **sampling_fields(request.settings, request.stop_ids),
        }

    def generate(self, request: GenerationRequest) -> Iterator[int]:
        """Yield the answer's token ids as the server streams them; stop ids are not yielded.

        Closing this generator leaves the `with` below, which closes the HTTP stream; vLLM sees
        the client go and aborts the request, freeing its batch slot at once.
        """
        body = self.payload(request)
        request.stats.update(prefilled=int(request.embeds.shape[0]), reused=0)
        try:
            with self._client.stream("POST", "/completions", json=body) as response:
                if response.status_code != 200:
                    response.read()
                    raise self._refused(response)
                yield from self._token_ids(response, request)
        except httpx.ConnectError as error:
            raise self._down(error) from error
        except httpx.TimeoutException as error:
            raise EngineError(f"The language-model server at {self.url} did not answer in time "
                              f"({error or type(error).__name__}); it may be overloaded.") from error
        except httpx.TransportError as error:
            raise self._dropped(error) from error

    def _token_ids(self, response: httpx.Response, request: GenerationRequest) -> Iterator[int]:
        finished = False
        for chunk in server_events(response.iter_lines()):
            if "error" in chunk:
                raise EngineError(f"The language-model server at {self.url} failed while answering: "
                                  f"{chunk['error'].get('message', chunk['error'])}")
            self._note_usage(chunk.get("usage"), request)
            for choice in chunk.get("choices", ()):
                for token in choice.get("token_ids") or ():
                    if token not in request.stop_ids:
                        yield token
                finished = finished or choice.get("finish_reason") is not None
        if not finished:
            raise self._dropped(None)  # the stream ended without saying why: the server went away

    @staticmethod
    def _note_usage(usage: dict[str, Any] | None, request: GenerationRequest) -> None:
        cached = ((usage or {}).get("prompt_tokens_details") or {}).get("cached_tokens")
        if cached:
            request.stats.update(reused=int(cached), prefilled=int(usage["prompt_tokens"]) - int(cached))

    def forget(self, conversation: Hashable) -> None:
        """Nothing is kept per conversation: the server's prefix cache evicts on its own."""

    def close(self) -> None:
        self._client.close()
