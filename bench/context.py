"""What every benchmark row gets: full or --quick sizes, the media files, the preview pipeline.

The pipeline is loaded once, on first use, and shared by the rows that need it (loading the preview
takes ~20 s on 2 cores, mostly parsing the GGUF). A caller that already has one (the smoke test's
session fixture) passes it in.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from videollama_demo import Pipeline, load_pipeline

from .media import LONG_SECONDS, QUICK_LONG_SECONDS, SHORT_SECONDS, VideoSpec, cache_dir, synthetic_video
from .report import Row, machine_line, markdown_table

log = logging.getLogger(__name__)


@dataclass
class BenchContext:
    quick: bool = False
    cache_root: Path | None = None  # None: bench/.cache
    _pipeline: Pipeline | None = field(default=None, repr=False)

    def repeats(self, full: int, quick: int = 1) -> int:
        """How many timed runs a row makes (their median is reported)."""
        return quick if self.quick else full

    @property
    def short_spec(self) -> VideoSpec:
        return VideoSpec(SHORT_SECONDS)

    @property
    def long_spec(self) -> VideoSpec:
        return VideoSpec(QUICK_LONG_SECONDS if self.quick else LONG_SECONDS)

    def short_video(self) -> Path:
        return synthetic_video(self.short_spec, self.cache_root)

    def long_video(self) -> Path:
        return synthetic_video(self.long_spec, self.cache_root)

    def scratch_dir(self, name: str) -> Path:
        """A fresh directory for one row's scratch files, inside the cache."""
        parent = cache_dir(self.cache_root) / "scratch"
        parent.mkdir(exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=parent))

    def pipeline(self) -> Pipeline:
        """The preview pipeline (real SmolLM2 LLM, small random encoders), as the app loads it."""
        if self._pipeline is None:
            log.info("loading the preview pipeline")
            empty = cache_dir(self.cache_root) / "no-checkpoints"  # no weights there: the preview it is
            empty.mkdir(exist_ok=True)
            self._pipeline = load_pipeline("preview", checkpoints=empty, device="cpu")
        return self._pipeline

    def close(self) -> None:
        if self._pipeline is not None:
            self._pipeline.close()


RowRunner = Callable[[BenchContext], list[Row]]


def parse_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small inputs and few repeats (a smoke run)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="where generated media go (default bench/.cache)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice; 1 gives steadier numbers on a busy machine)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    return args


def run_standalone(runner: RowRunner, description: str, argv: list[str] | None = None) -> int:
    """`python -m bench.<row>`: run one row module and print its table and the machine."""
    args = parse_args(description, argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    context = BenchContext(quick=args.quick, cache_root=args.cache_dir)
    try:
        rows = runner(context)
    finally:
        context.close()
    print(markdown_table(rows))
    print()
    print(machine_line())
    return 0
