"""Repeated wall-clock timings: medians, with A/B runs interleaved so load spikes hit both sides."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def time_once(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def median_seconds(work: Callable[[], object], repeat: int, warmup: int = 1) -> float:
    """Median wall time of `repeat` calls, after `warmup` untimed ones (first-call costs aside)."""
    for _ in range(warmup):
        work()
    return statistics.median(time_once(work) for _ in range(repeat))


def interleaved_medians(works: dict[str, Callable[[], object]], repeat: int, warmup: int = 1) -> dict[str, float]:
    """Median wall time of each named call, run in turn A, B, A, B, ... so that the other jobs on a
    shared machine slow both sides alike (a ratio of two separate runs would not be stable)."""
    for work in works.values():
        for _ in range(warmup):
            work()
    samples: dict[str, list[float]] = {name: [] for name in works}
    for _ in range(repeat):
        for name, work in works.items():
            samples[name].append(time_once(work))
    return {name: statistics.median(values) for name, values in samples.items()}
