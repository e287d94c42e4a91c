"""Sampling order, greedy decoding and KV-cache continuation of engines/decode.py + kv_cache.py."""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache

from tests.tiny_llama import tiny_llama_dir  # noqa: F401  (session fixture)
from videollama_demo.config import LLMConfig
from videollama_demo.engines.base import SamplingSettings
from videollama_demo.engines.decode import choose_token, generate_tokens, logits_processors, prefill
from videollama_demo.engines.kv_cache import KVCachePool, KVCacheState, common_prefix_length
from videollama_demo.model.llm import LoadedLLM, load_llm


@pytest.fixture(scope="module")
def tiny_llm(tiny_llama_dir) -> LoadedLLM:  # noqa: F811
    cfg = LLMConfig(hidden_size=64, path=str(tiny_llama_dir), template="llama2")
    return load_llm(cfg, tiny_llama_dir, torch.device("cpu"), torch.float32)


def reference_filtered_probs(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """transformers 4.28's warpers by hand: temperature, then top-k, then top-p (keep >= 1)."""
    scores = logits / temperature
    kth = torch.topk(scores, top_k).values[-1]
    scores = torch.where(scores < kth, torch.tensor(float("-inf")), scores)
    order = torch.argsort(scores, descending=False)
    cumulative = torch.softmax(scores[order], dim=-1).cumsum(-1)
    drop_sorted = cumulative <= (1 - top_p)
    drop_sorted[-1] = False
    drop = torch.zeros_like(drop_sorted)
    drop[order] = drop_sorted
    scores = torch.where(drop, torch.tensor(float("-inf")), scores)
    return torch.softmax(scores, dim=-1)


@pytest.mark.parametrize("temperature,top_k,top_p", [(1.0, 50, 0.9), (0.7, 5, 0.5), (1.5, 3, 1.0), (0.2, 100, 0.95)])
def test_warpers_match_the_official_order(temperature: float, top_k: int, top_p: float) -> None:
    logits = torch.randn(200, generator=torch.Generator().manual_seed(7)) * 3
    settings = SamplingSettings(temperature=temperature, top_k=top_k, top_p=top_p)
    ours = torch.softmax(logits_processors(settings)(torch.zeros(1, 0, dtype=torch.long), logits[None])[0], -1)
    torch.testing.assert_close(ours, reference_filtered_probs(logits, temperature, top_k, top_p))


def test_greedy_is_argmax_and_sampling_is_seeded() -> None:
    logits = torch.tensor([0.1, 2.0, 1.9, -3.0])
    greedy = SamplingSettings(temperature=0)
    assert choose_token(logits, [], logits_processors(greedy), greedy, None) == 1
    sample = SamplingSettings(temperature=1.0, top_k=0, top_p=1.0)
    draws = [choose_token(logits, [], logits_processors(sample), sample, torch.Generator().manual_seed(s))
             for s in range(200)]
    assert {1, 2} <= set(draws)  # really sampled, not argmax
    again = [choose_token(logits, [], logits_processors(sample), sample, torch.Generator().manual_seed(s))
             for s in range(200)]
    assert draws == again


def test_repetition_penalty_lowers_seen_tokens() -> None:
    logits = torch.tensor([1.0, 1.0, 0.5])
    settings = SamplingSettings(temperature=0, repetition_penalty=2.0)
    assert choose_token(logits, [0], logits_processors(settings), settings, None) == 1


@pytest.mark.parametrize("bad", [dict(temperature=-1), dict(top_p=0), dict(top_p=1.5), dict(max_new_tokens=0)])
def test_bad_settings_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        SamplingSettings(**bad)


def test_generation_stops_on_a_stop_id_and_at_max_tokens(tiny_llm: LoadedLLM) -> None:
    embeds = tiny_llm.embed_tokens([1, 40, 41, 42])
    cache = DynamicCache(config=tiny_llm.model.config)
    first = prefill(tiny_llm.model, embeds, cache)
    free = list(generate_tokens(tiny_llm.model, cache, first, SamplingSettings(temperature=0, max_new_tokens=6),
                                frozenset()))
    assert len(free) == 6
    cache = DynamicCache(config=tiny_llm.model.config)
    first = prefill(tiny_llm.model, embeds, cache)
    stopped = list(generate_tokens(tiny_llm.model, cache, first, SamplingSettings(temperature=0, max_new_tokens=6),
                                   frozenset({free[2]})))
    assert stopped == free[:free.index(free[2])]


def full_prefill_logits(llm: LoadedLLM, ids: list[int]) -> torch.Tensor:
    cache = DynamicCache(config=llm.model.config)
    return prefill(llm.model, llm.embed_tokens(ids), cache)


def test_cache_continuation_equals_a_full_prefill(tiny_llm: LoadedLLM) -> None:
    """Turn 1 is prefilled and decoded; turn 2's prompt shares a prefix but retokenises the tail."""
    turn1 = [1, 30, 31, 32, 33, 34]
    state = KVCacheState(tiny_llm.model.config)
    start = state.reuse_prefix(turn1)
    first = prefill(tiny_llm.model, tiny_llm.embed_tokens(turn1[start:]), state.cache)
    state.keys.extend(turn1[start:])
    answer = list(generate_tokens(tiny_llm.model, state.cache, first, SamplingSettings(temperature=0, max_new_tokens=5),
                                  frozenset()))
    state.sync_keys(answer)
    assert len(state.keys) == state.cache.get_seq_length() == len(turn1) + len(answer) - 1

    turn2 = turn1 + answer[:3] + [50, 2, 1, 60, 61, 62]  # the answer's tail differs on re-render
    start = state.reuse_prefix(turn2)
    assert start == len(turn1) + 3
    continued = prefill(tiny_llm.model, tiny_llm.embed_tokens(turn2[start:]), state.cache)
    torch.testing.assert_close(continued, full_prefill_logits(tiny_llm, turn2), atol=1e-4, rtol=0)


def test_common_prefix_length() -> None:
    assert common_prefix_length([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix_length([1, 2], [1, 2, 3]) == 2
    assert common_prefix_length([], [1]) == 0
    assert common_prefix_length([(0, 0, 1), 5], [(0, 0, 1), 5]) == 2


def test_pool_keeps_at_most_capacity_idle_caches(tiny_llm: LoadedLLM) -> None:
    pool = KVCachePool(tiny_llm.model.config, capacity=2)
    states = []
    for owner in range(4):
        state = pool.checkout(owner)
        state.reuse_prefix([1, 2, 3])
        states.append(state)
        pool.release(owner)
    assert pool.cached_sessions() == 2
    assert [s.cache is None for s in states] == [True, True, False, False]
    busy = pool.checkout(10)
    busy.reuse_prefix([1, 2])
    pool.checkout(11)  # busy caches are never evicted, even past capacity
    pool.checkout(12)
    assert busy.cache is not None
    pool.forget(10)
    assert busy.cache is None and pool.cached_sessions() == 0  # the idle ones made room for the busy ones
