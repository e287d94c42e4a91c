"""A benchmark row, its target, and the markdown table with the machine it ran on."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from typing import Literal

import torch

Unit = Literal["×", "%", "s"]  # a ratio, a fraction shown in percent, or a time (no reference)
COLUMNS = ("benchmark", "ours", "naive / reference", "ratio", "target", "met?")
NO_GPU = "n/a (no CUDA GPU)"


@dataclass(frozen=True)
class Target:
    """`ratio <= bound` (or >= when `at_least`), shown in `unit` ("×", or "%" for a fraction)."""

    bound: float
    unit: Unit = "×"
    at_least: bool = False

    def met(self, ratio: float) -> bool:
        return ratio >= self.bound if self.at_least else ratio <= self.bound

    def __str__(self) -> str:
        return f"{'≥' if self.at_least else '≤'} {format_ratio(self.bound, self.unit)}"


@dataclass(frozen=True)
class Row:
    benchmark: str
    ours: str
    reference: str
    ratio: float | None  # None: not measured on this machine (e.g. no GPU)
    unit: Unit = "×"
    target: Target | None = None  # None: the issue sets no target; the row is for information

    @property
    def met(self) -> str:
        if self.ratio is None or self.target is None:
            return "—"
        return "yes" if self.target.met(self.ratio) else "**no**"

    def cells(self) -> tuple[str, ...]:
        ratio = NO_GPU if self.ratio is None else format_ratio(self.ratio, self.unit)
        target = str(self.target) if self.target is not None else "— (none set)"
        return (self.benchmark, self.ours, self.reference, ratio, target, self.met)


def format_ratio(value: float, unit: Unit) -> str:
    if unit == "s":
        return seconds(value)
    if unit == "%":
        # Two significant digits below 0.1%: a cache hit of 1 ms against 1.8 s is 0.055%, not "0.0%".
        percent = value * 100
        return f"{percent:.2g}%" if 0 < percent < 0.1 else f"{percent:.1f}%"
    return f"{value:.2f}×"


def seconds(value: float) -> str:
    """A duration for the table: ms below one second."""
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def machine_line() -> str:
    """CPU model, cores, memory, GPU and library versions: what the numbers depend on."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"Machine: {cpu_model()}, {os.cpu_count()} cores, {memory:.0f} GiB RAM, {gpu}; "
            f"Python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} CPU threads), "
            f"{platform.system()} {platform.release()}")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
