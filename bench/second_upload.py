"""Row 2: the second upload of the same file against the first (`Pipeline.encode`, preview preset).

The first upload decodes the file (in the decoder worker, as in the app) and runs the encoders; the
second finds the encoding in the pipeline's shared encode cache (`videollama_demo/pipeline/encode_cache.py`),
which costs a BLAKE3 of the file's bytes (once: the digest is remembered for an unchanged file).
Each repeat starts from an empty cache.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from videollama_demo import Pipeline
from videollama_demo.pipeline.encode_cache import EncodeCache

from .context import BenchContext, run_standalone
from .media import duration_label
from .report import Row, Target, seconds
from .timing import time_once


def first_and_second(pipeline: Pipeline, path: Path, repeat: int) -> tuple[float, float]:
    """Median seconds of a first upload (empty cache) and of the same file's second upload."""
    kept = pipeline.encode_cache
    firsts, seconds_ = [], []
    try:
        pipeline.encode(path)  # untimed: the decoder worker and the encoders warm up
        for _ in range(repeat):
            pipeline.encode_cache = EncodeCache(kept.memory_bytes)  # nothing kept: a first upload
            firsts.append(time_once(lambda: pipeline.encode(path)))
            seconds_.append(time_once(lambda: _cached(pipeline, path)))
    finally:
        pipeline.encode_cache = kept  # the pipeline may be shared (the smoke test's fixture)
    return statistics.median(firsts), statistics.median(seconds_)


def _cached(pipeline: Pipeline, path: Path) -> None:
    if not pipeline.encode(path).from_cache:
        raise RuntimeError(f"the second upload of {path.name} was encoded again: the encode cache missed")


def run(ctx: BenchContext) -> list[Row]:
    pipeline = ctx.pipeline()
    rows = []
    for label, spec, path in [("a", ctx.short_spec, ctx.short_video()), ("b", ctx.long_spec, ctx.long_video())]:
        first, second = first_and_second(pipeline, path, ctx.repeats(7, 2))
        name = duration_label(spec.seconds)
        size_mb = path.stat().st_size / 1e6
        rows.append(Row(
            benchmark=f"2{label}. second upload vs first, {name} file ({size_mb:.1f} MB), Pipeline.encode",
            ours=f"second: {seconds(second)}", reference=f"first (decode + encode): {seconds(first)}",
            ratio=second / first, unit="%", target=Target(0.05, "%")))
    return rows


def main(argv: list[str] | None = None) -> int:
    return run_standalone(run, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    raise SystemExit(main())
