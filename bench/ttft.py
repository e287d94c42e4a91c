"""Row 3: time to first token at turn 10 against turn 1, with the kept KV cache and re-prefilled.

Ours is `ChatSession.ask` (preview pipeline, real SmolLM2): a follow-up prefills only the new
question, after the conversation's kept KV cache. The reference is the official way: every turn
re-prefills the whole conversation. It is measured on the same tokens — `prompt_embeddings(question)`
is exactly the prompt the session is about to answer — with `engines.decode.prefill` into a fresh
cache and the greedy pick of the first token, just before the session answers the same question.
"""

from __future__ import annotations

import statistics
import time

from transformers import DynamicCache

from videollama_demo import ChatSession, MediaEncoding, Pipeline
from videollama_demo.engines.decode import prefill

from .context import BenchContext, run_standalone
from .report import Row, Target, seconds

QUESTIONS = (
    "What is shown in this video?",
    "Which colours do you see?",
    "Is there any text on the screen?",
    "What can you hear?",
    "Does anything move?",
    "How does the video start?",
    "How does it end?",
    "Is it a real scene or a test pattern?",
    "What would you call this video?",
    "Summarise our conversation in one sentence.",
)


def reprefill_first_token(pipeline: Pipeline, session: ChatSession, question: str) -> int:
    """The official way: embed the whole conversation plus `question`, prefill it from scratch."""
    embeds = session.prompt_embeddings(question)  # (L, H): the same positions the session will use
    logits = prefill(pipeline.llm.model, embeds[None], DynamicCache(config=pipeline.llm.model.config))
    return int(logits.argmax())


def kept_positions(pipeline: Pipeline, session: ChatSession) -> int:
    """How many positions the engine's kept KV cache holds for `session`'s conversation."""
    state = pipeline.engine.pool._states.get(session._id)
    return len(state.keys) if state is not None else 0


def conversation(pipeline: Pipeline, media: MediaEncoding, turns: int, max_new_tokens: int) -> list[dict]:
    """One greedy conversation; per turn: both times, the prompt length, whether the first tokens
    agree, and the decode speed after the first token."""
    session = pipeline.new_session()
    session.add_media(media)
    measured = []
    for question in QUESTIONS[:turns]:
        start = time.perf_counter()
        token = reprefill_first_token(pipeline, session, question)
        naive = time.perf_counter() - start
        start = time.perf_counter()
        reply = session.ask(question, temperature=0, max_new_tokens=max_new_tokens)
        first = next(reply, "")  # the first streamed text: what the user waits for
        first_at = time.perf_counter()
        rest = "".join(reply)
        decoding = time.perf_counter() - first_at
        # The kept cache holds the prompt and then every generated token: their count, exactly.
        generated = kept_positions(pipeline, session) - (reply.reused + reply.prefilled)
        expected = pipeline.llm.tokenizer.decode([token]).strip()
        measured.append({"ours": first_at - start, "naive": naive, "positions": reply.reused + reply.prefilled,
                         "agree": (first + rest).strip().startswith(expected),
                         "tokens_per_s": max(generated - 1, 0) / decoding if decoding > 0 else 0.0})
    return measured


def run(ctx: BenchContext) -> list[Row]:
    pipeline = ctx.pipeline()
    media = pipeline.encode(ctx.short_video())
    turns, max_new_tokens = (2, 4) if ctx.quick else (len(QUESTIONS), 48)
    conversation(pipeline, media, 1, 2)  # untimed warm-up: first forward passes allocate
    runs = [conversation(pipeline, media, turns, max_new_tokens) for _ in range(ctx.repeats(3, 1))]

    def median(turn: int, key: str) -> float:
        return statistics.median(run[turn][key] for run in runs)

    last, positions = turns - 1, runs[0][turns - 1]["positions"]
    ours_first, ours_last = median(0, "ours"), median(last, "ours")
    naive_first, naive_last = median(0, "naive"), median(last, "naive")
    disagree = sum(not turn["agree"] for run in runs for turn in run)
    note = "" if not disagree else f"; first tokens differ in {disagree} turn(s)"
    return [Row(
        benchmark=f"3. time to first token, turn {turns} vs turn 1 (kept KV cache, preview SmolLM2)",
        ours=f"turn {turns}: {seconds(ours_last)}; turn 1: {seconds(ours_first)}",
        reference=(f"re-prefill every turn: turn {turns} ({positions} positions): {seconds(naive_last)}; "
                   f"turn 1: {seconds(naive_first)} ({naive_last / naive_first:.2f}×); "
                   f"kept cache is {naive_last / ours_last:.1f}× faster at turn {turns}{note}"),
        ratio=ours_last / ours_first, target=Target(1.2))]


def main(argv: list[str] | None = None) -> int:
    return run_standalone(run, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    raise SystemExit(main())
