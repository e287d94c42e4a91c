"""The local engine: the transformers model in this process, with each conversation's KV cache kept.

A follow-up question prefills only what changed since the conversation's cached prefix (keys
compared position by position), where the official code re-prefills everything each turn; the
logits are the same (tested). With `keep_caches=False` every answer starts from a fresh cache
(ZeroGPU, where nothing on the GPU outlives a call).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator

import torch
from transformers import DynamicCache

from ..model.llm import LoadedLLM
from .base import GenerationRequest
from .decode import generate_tokens, prefill
from .kv_cache import KVCachePool, KVCacheState


class LocalEngine:
    name = "local"
    parallel_requests = 1  # one model in this process: answers run one after another

    def __init__(self, llm: LoadedLLM, kept_conversations: int = 8, keep_caches: bool = True) -> None:
        self.llm = llm
        self.keep_caches = keep_caches
        self.pool = KVCachePool(llm.model.config, kept_conversations)

    def generate(self, request: GenerationRequest) -> Iterator[int]:
        if not self.keep_caches or request.conversation is None:
            return self._from_scratch(request)
        return self._with_kept_cache(request)

    def _from_scratch(self, request: GenerationRequest) -> Iterator[int]:
        cache = DynamicCache(config=self.llm.model.config)
        request.stats.update(reused=0, prefilled=len(request.keys))
        first_logits = prefill(self.llm.model, self._on_device(request.embeds), cache)
        yield from generate_tokens(self.llm.model, cache, first_logits, request.settings, request.stop_ids)

    def _with_kept_cache(self, request: GenerationRequest) -> Iterator[int]:
        state = self.pool.checkout(request.conversation)
        generated: list[int] = []
        try:
            tokens = self._start(state, request)
            for token in tokens:
                generated.append(token)
                yield token
        except BaseException:
            if not generated:
                state.drop()  # a failed prefill may have left the cache half-filled
            raise
        finally:
            if state.cache is not None:
                state.sync_keys(generated)
            self.pool.release(request.conversation)

    def _start(self, state: KVCacheState, request: GenerationRequest) -> Iterator[int]:
        keys = list(request.keys)
        start = state.reuse_prefix(keys)
        request.stats.update(reused=start, prefilled=len(keys) - start)
        first_logits = prefill(self.llm.model, self._on_device(request.embeds[start:]), state.cache)
        state.keys.extend(keys[start:])
        return generate_tokens(self.llm.model, state.cache, first_logits, request.settings, request.stop_ids)

    def _on_device(self, embeds: torch.Tensor) -> torch.Tensor:
        """(L, H) -> (1, L, H) on the model's device and in its dtype."""
        table = self.llm.model.get_input_embeddings().weight
        return embeds.to(device=table.device, dtype=table.dtype)[None]

    def forget(self, conversation: Hashable) -> None:
        self.pool.forget(conversation)

    def cached_conversations(self) -> int:
        return self.pool.cached_sessions()

    def close(self) -> None:
        """Nothing runs in the background: the model goes with the process."""
