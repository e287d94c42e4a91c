"""Run every benchmark row in order and print one markdown table, with the machine it ran on.

    python -m bench.run_all [--quick] [--cache-dir DIR]     (same as `python -m bench`)
"""

from __future__ import annotations

import datetime
import logging

from videollama_demo import Pipeline

from . import frames, gpu, gradio_stream, hour_upload, long_video, peak_rss, second_upload, startup, ttft
from .context import BenchContext, RowRunner, parse_args
from .report import Row, machine_line, markdown_table

log = logging.getLogger(__name__)

ROWS: tuple[tuple[str, RowRunner], ...] = (
    ("frames", frames.run),
    ("second_upload", second_upload.run),
    ("ttft", ttft.run),
    ("gradio_stream", gradio_stream.run),
    ("peak_rss", peak_rss.run),
    ("gpu", gpu.run),
    ("long_video", long_video.run),
    ("hour_upload", hour_upload.run),
    ("startup", startup.run),
)


def run_rows(context: BenchContext) -> list[Row]:
    rows: list[Row] = []
    for name, runner in ROWS:
        log.info("running bench.%s", name)
        rows += runner(context)
    return rows


def report(rows: list[Row], quick: bool) -> str:
    """The table, then the date, the mode and the machine."""
    mode = " (--quick: small inputs, few repeats)" if quick else ""
    return (f"{markdown_table(rows)}\n\nRun {datetime.date.today().isoformat()}{mode}, "
            f"medians of repeated runs.\n{machine_line()}")


def main(argv: list[str] | None = None, pipeline: Pipeline | None = None) -> int:
    """`pipeline`: an already loaded preview pipeline to use (the smoke test passes its fixture's)."""
    args = parse_args(__doc__.splitlines()[0], argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    context = BenchContext(quick=args.quick, cache_root=args.cache_dir, _pipeline=pipeline)
    try:
        rows = run_rows(context)
    finally:
        if pipeline is None:
            context.close()
    print(report(rows, args.quick))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
