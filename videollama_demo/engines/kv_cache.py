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

from transformers import DynamicCache, PretrainedConfig

from .base import PositionKey


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


class KVCachePool:
    """Holds the caches of at most `capacity` idle conversations (the least recently used go).

    A dropped cache is rebuilt by the next turn's prefill; nothing is lost but time.
    """

    def __init__(self, model_config: PretrainedConfig, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"the KV cache pool needs a capacity of at least 1, got {capacity}")
        self.model_config = model_config
        self.capacity = capacity
        self._states: OrderedDict[Hashable, KVCacheState] = OrderedDict()
        self._busy: set[Hashable] = set()
        self._lock = threading.Lock()

    def checkout(self, owner: Hashable) -> KVCacheState:
        """`owner` is about to use its cache: mark it busy and most recent, evict idle old ones."""
        with self._lock:
            state = self._states.pop(owner, None) or KVCacheState(self.model_config)
            self._states[owner] = state
            self._busy.add(owner)
            idle = [key for key in self._states if key not in self._busy]
            for key in idle[: max(0, len(self._states) - self.capacity)]:
                self._states.pop(key).drop()
        return state

    def release(self, owner: Hashable) -> None:
        """`owner`'s answer is written: its cache stays until it is evicted or forgotten."""
        with self._lock:
            self._busy.discard(owner)

    def forget(self, owner: Hashable) -> None:
        """The conversation is over: free its cache now."""
        with self._lock:
            self._busy.discard(owner)
            state = self._states.pop(owner, None)
        if state is not None:
            state.drop()

    def cached_sessions(self) -> int:
        """How many conversations hold a cache right now."""
        with self._lock:
            return sum(state.cache is not None for state in self._states.values())
