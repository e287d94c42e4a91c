"""Turns 1, 5 and 10 of one conversation: time to first token with the kept KV cache against the
official re-prefill of the whole conversation, and decode tokens/s (preview SmolLM2, greedy).

`python -m bench.turns [--quick] [--threads N]` prints one row per turn; row 3 of `python -m bench`
is the summary of the same measurement (turn 10 against turn 1).
"""

from __future__ import annotations

import logging
import statistics

from .context import BenchContext, parse_args
from .report import machine_line, seconds
from .ttft import conversation

SHOWN_TURNS = (1, 5, 10)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0], argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    context = BenchContext(quick=args.quick, cache_root=args.cache_dir)
    try:
        pipeline = context.pipeline()
        media = pipeline.encode(context.short_video())
        turns, max_new_tokens = (5, 8) if args.quick else (10, 48)
        conversation(pipeline, media, 1, 2)  # warm-up: the first forward passes allocate
        runs = [conversation(pipeline, media, turns, max_new_tokens) for _ in range(context.repeats(3, 1))]
    finally:
        context.close()

    def median(turn: int, key: str) -> float:
        return statistics.median(run[turn - 1][key] for run in runs)

    print("| turn | prompt positions | first token, kept cache | first token, re-prefill (official) "
          "| kept vs turn 1 | re-prefill vs kept | decode tokens/s |")
    print("|---|---|---|---|---|---|---|")
    for turn in (t for t in SHOWN_TURNS if t <= turns):
        print(f"| {turn} | {runs[0][turn - 1]['positions']} | {seconds(median(turn, 'ours'))} "
              f"| {seconds(median(turn, 'naive'))} | {median(turn, 'ours') / median(1, 'ours'):.2f}× "
              f"| {median(turn, 'naive') / median(turn, 'ours'):.1f}× | {median(turn, 'tokens_per_s'):.1f} |")
    print()
    print(machine_line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
