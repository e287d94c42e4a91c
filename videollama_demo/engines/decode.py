"""Prefill / decode over an explicit KV cache, and sampling in the official warper order.

The loop is a plain generator that yields token ids, so the caller (and Gradio's Stop, which
closes the generator) ends the work at the next token: no background thread keeps running.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from transformers import DynamicCache, PreTrainedModel
from transformers.generation.logits_process import (
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from .base import SamplingSettings


def logits_processors(settings: SamplingSettings) -> LogitsProcessorList:
    """Processors first, then warpers in the order transformers 4.28 applies them for the official
    `generate` call: temperature, top-k, top-p."""
    steps: list = []
    if settings.repetition_penalty != 1.0:
        steps.append(RepetitionPenaltyLogitsProcessor(settings.repetition_penalty))
    if not settings.greedy:
        steps.append(TemperatureLogitsWarper(settings.temperature))
        if settings.top_k > 0:
            steps.append(TopKLogitsWarper(settings.top_k))
        if settings.top_p < 1.0:
            steps.append(TopPLogitsWarper(settings.top_p))
    return LogitsProcessorList(steps)


@torch.inference_mode()
def prefill(model: PreTrainedModel, embeds: torch.Tensor, cache: DynamicCache) -> torch.Tensor:
    """Run (1, L, H) embeddings after what `cache` already holds; return the last logits (V,)."""
    out = model(inputs_embeds=embeds, past_key_values=cache, use_cache=True, logits_to_keep=1)
    return out.logits[0, -1].float()


@torch.inference_mode()
def decode_one(model: PreTrainedModel, token_id: int, cache: DynamicCache) -> torch.Tensor:
    """Feed one token after the cache; return the next logits (V,)."""
    device = model.get_input_embeddings().weight.device
    ids = torch.tensor([[token_id]], dtype=torch.long, device=device)
    out = model(input_ids=ids, past_key_values=cache, use_cache=True)
    return out.logits[0, -1].float()


def choose_token(logits: torch.Tensor, history: list[int], processors: LogitsProcessorList,
                 settings: SamplingSettings, generator: torch.Generator | None) -> int:
    """Apply the processors to (V,) logits and pick the next token (argmax when greedy)."""
    seen = torch.tensor(history, dtype=torch.long, device=logits.device).reshape(1, -1)  # (1, n)
    scores = processors(seen, logits[None])[0]
    if settings.greedy:
        return int(scores.argmax())
    probs = torch.softmax(scores, dim=-1)
    return int(torch.multinomial(probs.cpu(), 1, generator=generator))


def generate_tokens(model: PreTrainedModel, cache: DynamicCache, first_logits: torch.Tensor,
                    settings: SamplingSettings, stop_ids: frozenset[int]) -> Iterator[int]:
    """Yield sampled token ids until a stop id (not yielded) or max_new_tokens.

    Each yielded token is already in `cache` except the last one, which is fed on the next
    step; so after the caller stops iterating, the cache holds every yielded token but the last.
    """
    processors = logits_processors(settings)
    generator = None
    if settings.seed is not None:
        generator = torch.Generator().manual_seed(settings.seed)
    history: list[int] = []
    logits = first_logits
    for step in range(settings.max_new_tokens):
        token = choose_token(logits, history, processors, settings, generator)
        if token in stop_ids:
            return
        history.append(token)
        yield token
        if step + 1 < settings.max_new_tokens:
            logits = decode_one(model, token, cache)
