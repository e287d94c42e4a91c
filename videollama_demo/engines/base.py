"""What every LLM engine takes and gives: a whole prompt's embeddings in, token ids out.

An engine knows no conversation, no template and no file: the chat layer builds the prompt
embeddings (text and media spliced) and decides when an answer ends; the engine only runs the
LLM. Closing the iterator that `generate` returns cancels the request (Stop).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import torch

PositionKey = Hashable  # what one prompt position holds: a token id, or (media id, block, row)


@dataclass(frozen=True)
class SamplingSettings:
    """The official sampling (Video-LLaMA `video_llama/conversation/conversation_video.py`,
    `Chat.answer`): sampling on, temperature 1, top-k 50 (transformers' default), top-p 0.9,
    300 new tokens. temperature 0 means greedy decoding; repetition_penalty 1.0 is the no-op."""

    temperature: float = 1.0
    top_p: float = 0.9
    top_k: int = 50
    repetition_penalty: float = 1.0
    max_new_tokens: int = 300
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0 or self.max_new_tokens < 1 or self.repetition_penalty <= 0:
            raise ValueError("top_k must be >= 0, max_new_tokens >= 1 and repetition_penalty > 0")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass(frozen=True)
class GenerationRequest:
    """One answer to write.

    embeds      (L, H) the whole prompt: token embeddings with the media rows spliced in.
    keys        L position keys, one per row of `embeds` (an engine that keeps a KV cache per
                conversation reuses the longest prefix whose keys are unchanged).
    conversation  who asks (a per-session id), so an engine can keep that conversation's cache.
    stop_ids    token ids that end the answer (not yielded).
    """

    embeds: torch.Tensor
    keys: tuple[PositionKey, ...]
    settings: SamplingSettings
    stop_ids: frozenset[int]
    conversation: Hashable = None
    stats: dict[str, int] = field(default_factory=dict, compare=False)  # filled by the engine: reused / prefilled


class EngineError(Exception):
    """The engine could not answer (a server down or restarted); the message tells the user."""


class Engine(Protocol):
    name: str
    # How many requests are worth sending at once: 1 for an engine that answers one at a time
    # (the local model), more for one that batches them (vLLM). Batch runs and timelines use it.
    parallel_requests: int

    def generate(self, request: GenerationRequest) -> Iterator[int]:
        """Yield the answer's token ids; closing the iterator cancels the request."""
        ...

    def forget(self, conversation: Hashable) -> None:
        """The conversation is over (reset, new file, expired): free what is kept for it."""
        ...

    def close(self) -> None:
        ...
