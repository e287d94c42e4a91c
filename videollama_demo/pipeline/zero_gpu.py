"""Hugging Face Spaces glue: ZeroGPU's `@spaces.GPU` where the app runs on ZeroGPU, nothing elsewhere.

On ZeroGPU a decorated function runs in a forked worker process that holds a GPU for the call
only. Its arguments and results travel pickled, and nothing it changes comes back to the main
process. So the pipeline runs its GPU work through `gpu_task`: the encoders (returning tensors on
the CPU, `to_cpu`) and each answer, prefilled from scratch from plain data (`ZeroGPUEngine`: the
same logits as a kept cache, which cannot survive the call). Off ZeroGPU `gpu_task` is a no-op.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
from collections.abc import Callable, Hashable, Iterator
from typing import Any, TypeVar

import torch

from ..engines.base import GenerationRequest, SamplingSettings
from ..engines.local import LocalEngine
from ..model.llm import LoadedLLM

log = logging.getLogger(__name__)

ZERO_GPU_ENV = "SPACES_ZERO_GPU"  # set by ZeroGPU Spaces; the `spaces` decorator is a no-op without it
SPACE_ID_ENV = "SPACE_ID"  # set on every Space
DEFAULT_GPU_SECONDS = 60  # ZeroGPU's default; shorter durations get better queue priority
F = TypeVar("F", bound=Callable[..., Any])


def on_spaces() -> bool:
    return bool(os.environ.get(SPACE_ID_ENV))


def on_zero_gpu() -> bool:
    """True on a ZeroGPU Space. Its `SPACES_ZERO_GPU` without the `spaces` package is an error."""
    if os.environ.get(ZERO_GPU_ENV, "").strip().lower() not in ("1", "true", "yes", "on"):
        return False
    if importlib.util.find_spec("spaces") is None:
        raise RuntimeError(f"{ZERO_GPU_ENV} is set (a ZeroGPU Space), but the `spaces` package is not "
                           "installed: add `spaces` to the Space's requirements.txt")
    return True


def gpu_task(duration: int | Callable[..., int] = DEFAULT_GPU_SECONDS) -> Callable[[F], F]:
    """Decorate a function that uses the GPU: `spaces.GPU(duration=...)` on ZeroGPU, unchanged elsewhere.

    `duration` is the most seconds one call may hold the GPU, or a function of the call's arguments
    that says so. Generators work too (ZeroGPU streams what they yield)."""
    def decorate(function: F) -> F:
        if not on_zero_gpu():
            return function
        import spaces  # only on ZeroGPU: the package patches torch when imported there

        log.info("%s runs on ZeroGPU (at most %s s per call)", function.__qualname__, duration)
        return spaces.GPU(duration=duration)(function)
    return decorate


def to_cpu(value: Any) -> Any:
    """`value` with every tensor inside (dataclasses, lists, tuples, dicts) moved to the CPU.

    What a ZeroGPU function returns is pickled into the main process, where CUDA memory of the
    worker does not exist."""
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: to_cpu(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
        return dataclasses.replace(value, **changes)
    if isinstance(value, (list, tuple)):
        return type(value)(to_cpu(item) for item in value)
    if isinstance(value, dict):
        return {key: to_cpu(item) for key, item in value.items()}
    return value


class ZeroGPUEngine:
    """Each answer is prefilled from scratch inside a GPU call; only CPU tensors and plain
    settings cross the process boundary (the model is reached through `self`: ZeroGPU forks)."""

    name = "zero-gpu"
    parallel_requests = 1

    def __init__(self, llm: LoadedLLM) -> None:
        self._local = LocalEngine(llm, keep_caches=False)
        self._answer = gpu_task()(self._answer_from_scratch)

    def _answer_from_scratch(self, embeds: torch.Tensor, settings: SamplingSettings,
                             stop_ids: frozenset[int]) -> Iterator[int]:
        yield from self._local.generate(GenerationRequest(embeds, (), settings, stop_ids))

    def generate(self, request: GenerationRequest) -> Iterator[int]:
        request.stats.update(reused=0, prefilled=len(request.keys))
        return self._answer(request.embeds.detach().cpu(), request.settings, request.stop_ids)

    def forget(self, conversation: Hashable) -> None:
        """Nothing is kept between calls."""

    def close(self) -> None:
        """Nothing runs in the background."""
