"""Row 8: long-video mode on the hour-long file (K official clips) against the 10 s file (one clip).

Both are `Pipeline.encode` as the page calls it (preview preset, decoding in the worker process),
from empty encode caches: the hour with `Reading(long_video=True)` (as many segments as the context holds),
the 10 s file as the official single clip. Time is the median of repeats; memory is this process's
peak resident set during the call (the kernel's high-water mark, reset just before it through
/proc/self/clear_refs) above what it held before: the encoders' work. Reading the file happens in
the decoder worker, whose memory row 5 measures.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

from videollama_demo import MediaEncoding, Pipeline, Reading
from videollama_demo.pipeline.encode_cache import EncodeCache

from .context import BenchContext, run_standalone
from .media import duration_label
from .peak_rss import mib, own_peak_rss_bytes, process_status_bytes
from .report import Row, seconds


def peak_growth(call: Callable[[], object]) -> int:
    """Bytes the resident set grew to at its peak during `call`."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # resets VmHWM to the current RSS (Linux 4.0+)
    before = process_status_bytes("VmRSS")
    call()
    return max(own_peak_rss_bytes() - before, 0)


def fresh_encode(pipeline: Pipeline, path: Path, reading: Reading | None = None) -> MediaEncoding:
    """An encode that cannot come from a cache (the pipeline's cache starts empty)."""
    pipeline.encode_cache = EncodeCache(pipeline.encode_cache.memory_bytes)
    return pipeline.encode(path, reading)


def measure(pipeline: Pipeline, path: Path, repeat: int,
            reading: Reading | None = None) -> tuple[float, int, MediaEncoding]:
    encoding = fresh_encode(pipeline, path, reading)  # untimed warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fresh_encode(pipeline, path, reading)
        times.append(time.perf_counter() - start)
    memory = peak_growth(lambda: fresh_encode(pipeline, path, reading))
    return statistics.median(times), memory, encoding


def run(ctx: BenchContext) -> list[Row]:
    pipeline = ctx.pipeline()
    kept = pipeline.encode_cache
    try:
        short_time, short_memory, _ = measure(pipeline, ctx.short_video(), ctx.repeats(5, 1))
        long_time, long_memory, segmented = measure(pipeline, ctx.long_video(), ctx.repeats(3, 1),
                                                    Reading(long_video=True))
    finally:
        pipeline.encode_cache = kept  # the pipeline may be shared
    segments = len(segmented.segment_spans)
    long_name, short_name = duration_label(ctx.long_spec.seconds), duration_label(ctx.short_spec.seconds)
    return [Row(
        benchmark=(f"8. long-video mode: {long_name} file in {segments} segments vs a {short_name} file "
                   "(Pipeline.encode)"),
        ours=f"{long_name}, {segments} × 8 frames: {seconds(long_time)}, +{mib(long_memory)} peak",
        reference=f"{short_name}, the official 8-frame clip: {seconds(short_time)}, +{mib(short_memory)} peak; "
                  f"memory ratio {long_memory / max(short_memory, 1):.1f}×",
        ratio=long_time / short_time)]


def main(argv: list[str] | None = None) -> int:
    return run_standalone(run, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    raise SystemExit(main())
