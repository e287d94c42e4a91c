"""A conversation's KV cache and what each cached position holds, so a turn reuses the prefix.

Every position is identified by a key: a token id for text, or (media id, block, row) for a
row of a media embedding. A new turn's full prompt is compared with the cached keys; the
common prefix stays, the cache is cropped there and only the rest is prefilled. That gives the
same logits as the official full re-prefill (tested), whatever retokenisation did to the tail.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

from transformers import DynamicCache, PretrainedConfig

from ..spaces_support import on_zero_gpu

PositionKey = Hashable
# What happens to a conversation's cache once an answer is written: "keep" it where it is (fastest
# follow-ups), "offload" it to CPU memory until the next turn, or "drop" it (the next turn re-prefills;
# what ZeroGPU needs, where nothing on the GPU outlives the call).
KVPolicy = Literal["keep", "offload", "drop"]
KV_POLICIES: tuple[KVPolicy, ...] = get_args(KVPolicy)


def default_kv_policy() -> KVPolicy:
    """"drop" on ZeroGPU (a reused GPU worker must not keep CUDA memory between calls), else "keep"."""
    return "drop" if on_zero_gpu() else "keep"


def common_prefix_length(a: Sequence[PositionKey], b: Sequence[PositionKey]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


@dataclass
class KVCacheState:
    """The cache of one conversation and the key of every position in it."""

    model_config: PretrainedConfig
    cache: DynamicCache | None = None
    keys: list[PositionKey] = field(default_factory=list)

    def reuse_prefix(self, wanted: Sequence[PositionKey]) -> int:
        """Keep the longest cached prefix of `wanted` (at least one position is left to prefill)."""
        if self.cache is None:
            self.cache, self.keys = DynamicCache(config=self.model_config), []
        keep = min(common_prefix_length(self.keys, wanted), len(wanted) - 1)
        self.crop(keep)
        return keep

    def crop(self, length: int) -> None:
        assert self.cache is not None
        extra = self.cache.get_seq_length() - length
        if extra > 0:
            self.cache.crop(-extra)  # transformers 5: a negative count removes that many
        del self.keys[length:]

    def sync_keys(self, appended: Sequence[PositionKey]) -> None:
        """Record `appended` after the current keys, trimmed to what the cache really holds."""
        assert self.cache is not None
        self.keys.extend(appended)
        del self.keys[self.cache.get_seq_length():]

    def drop(self) -> None:
        self.cache, self.keys = None, []

    def offload(self) -> None:
        """Move the cached keys and values to CPU memory (each layer remembers its device)."""
        for layer in self._filled_layers():
            layer.keys, layer.values = layer.keys.to("cpu"), layer.values.to("cpu")

    def restore(self) -> None:
        """Move an offloaded cache back to the device it was computed on."""
        for layer in self._filled_layers():
            layer.keys, layer.values = layer.keys.to(layer.device), layer.values.to(layer.device)

    def _filled_layers(self) -> list:
        return [] if self.cache is None else [layer for layer in self.cache.layers if layer.is_initialized]


class KVCachePool:
    """Holds GPU/CPU caches for at most `capacity` idle conversations (least recently used go).

    A dropped cache is rebuilt by the next turn's prefill; nothing is lost but time.
    """

    def __init__(self, capacity: int, policy: KVPolicy | None = None) -> None:
        policy = policy or default_kv_policy()
        if capacity < 1:
            raise ValueError(f"the KV cache pool needs a capacity of at least 1, got {capacity}")
        if policy not in KV_POLICIES:
            raise ValueError(f"unknown KV cache policy {policy!r}; choose one of: {', '.join(KV_POLICIES)}")
        self.capacity = capacity
        self.policy = policy
        self._states: OrderedDict[int, KVCacheState] = OrderedDict()
        self._busy: set[int] = set()
        self._lock = threading.Lock()

    def checkout(self, owner: int, state: KVCacheState) -> None:
        """`owner` is about to use its cache: mark it busy and most recent, evict idle old ones."""
        with self._lock:
            self._states[owner] = state
            self._states.move_to_end(owner)
            self._busy.add(owner)
            idle = [key for key in self._states if key not in self._busy]
            for key in idle[: max(0, len(self._states) - self.capacity)]:
                self._states.pop(key).drop()
        state.restore()

    def release(self, owner: int) -> None:
        """`owner`'s answer is written: its cache is kept, offloaded or dropped, as the policy says."""
        with self._lock:
            self._busy.discard(owner)
            state = self._states.get(owner)
        if state is None or self.policy == "keep":
            return
        if self.policy == "offload":
            state.offload()
        else:
            state.drop()

    def forget(self, owner: int) -> None:
        with self._lock:
            self._busy.discard(owner)
            self._states.pop(owner, None)

    def cached_sessions(self) -> int:
        """How many conversations hold a cache right now."""
        with self._lock:
            return sum(state.cache is not None for state in self._states.values())
