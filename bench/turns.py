"""Turns 1, 5 and 10 of one conversation: time to first token with the kept KV cache against the
official re-prefill of the whole conversation, and decode tokens/s (preview SmolLM2, greedy).

`python -m bench.turns [--quick] [--threads N]` prints one row per turn; row 3 of `python -m bench`
is the summary of the same measurement (turn 10 against turn 1).
"""

from __future__ import annotations

import logging
import statistics
import time

from videollama_demo import MediaEncoding, Pipeline

from .context import BenchContext, parse_args
from .report import machine_line, seconds
from .ttft import QUESTIONS, reprefill_first_token

SHOWN_TURNS = (1, 5, 10)


def measure_turns(pipeline: Pipeline, media: MediaEncoding, turns: int, max_new_tokens: int) -> list[dict]:
    """Per turn: kept-cache TTFT, re-prefill TTFT, prompt positions, decode tokens/s."""
    session = pipeline.new_session()
    session.add_media(media)
    measured = []
    for question in QUESTIONS[:turns]:
        start = time.perf_counter()
        reprefill_first_token(pipeline, session, question)
        naive = time.perf_counter() - start
        start = time.perf_counter()
        reply = session.ask(question, temperature=0, max_new_tokens=max_new_tokens)
        next(reply, "")
        first = time.perf_counter()
        "".join(reply)
        end = time.perf_counter()
        # The kept cache holds the prompt and then every generated token: their count, exactly.
        generated = len(session._kv.keys) - (reply.reused + reply.prefilled)
        measured.append({"ours": first - start, "naive": naive, "positions": reply.reused + reply.prefilled,
                         "tokens_per_s": max(generated - 1, 0) / (end - first) if end > first else 0.0})
    return measured


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0], argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    context = BenchContext(quick=args.quick, cache_root=args.cache_dir)
    try:
        pipeline = context.pipeline()
        media = pipeline.encode(context.short_video())
        turns, max_new_tokens = (5, 8) if args.quick else (10, 48)
        measure_turns(pipeline, media, 1, 2)  # warm-up: the first forward passes allocate
        runs = [measure_turns(pipeline, media, turns, max_new_tokens) for _ in range(context.repeats(3, 1))]
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
