"""Row 4: streamed tokens/s through the running Gradio app against the raw token generator.

The app is the real one (`videollama_demo.ui.build_demo` + `launch_demo` around the preview pipeline,
served on a free local port, as tests/ui/conftest.py starts it); `gradio_client` uploads the 10 s
file, asks a question greedily and times each streamed update as it arrives. The raw generator is
`engines.decode.generate_tokens` on the same prompt (`prompt_embeddings` of a fresh session with the
same medium), timed at each yielded token id. Both rates are tokens over the time from the request
to the last token, as a user sees the answer come in: the prefill is the same on both sides, and the
question asks for a long answer so that decoding dominates. (A rate between the first and the last
arrival would flatter the app: its first update can carry several tokens at once.)
"""

from __future__ import annotations

import html
import socket
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from gradio_client import Client, handle_file
from transformers import DynamicCache

from videollama_demo import MediaEncoding, MediaError, Pipeline, SamplingSettings
from videollama_demo.engines.decode import generate_tokens, prefill
from videollama_demo.prompt.parts import Text
from videollama_demo.ui import UIOptions, build_demo, launch_demo
from videollama_demo.ui.examples import ensure_examples

from .context import BenchContext, run_standalone
from .report import Row, Target

QUESTION = "Count from 1 to 100, separated by commas."


@dataclass(frozen=True)
class Stream:
    start: float  # perf_counter when the question was sent
    times: list[float]  # perf_counter of each arrival that made the text longer
    text: str

    def rate(self, tokens: int) -> float:
        """Tokens per second from the request to the last arrival."""
        return tokens / (self.times[-1] - self.start)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def raw_stream(pipeline: Pipeline, media: MediaEncoding, max_new_tokens: int) -> tuple[Stream, int]:
    """The generator alone, on a new conversation's prompt for QUESTION; and how many tokens it gave."""
    session = pipeline.new_session()
    session.add_media(media)
    start = time.perf_counter()
    model = pipeline.llm.model
    cache = DynamicCache(config=model.config)
    first_logits = prefill(model, session.prompt_embeddings(QUESTION)[None], cache)  # (1, L, H)
    settings = SamplingSettings(temperature=0, max_new_tokens=max_new_tokens)
    times, tokens = [], []
    stop_ids = frozenset({pipeline.llm.tokenizer.eos_token_id})
    for token in generate_tokens(model, cache, first_logits, settings, stop_ids):
        times.append(time.perf_counter())
        tokens.append(token)
    return Stream(start, times, pipeline.llm.tokenizer.decode(tokens).strip()), len(tokens)


def app_stream(client: Client, max_new_tokens: int) -> Stream:
    """A new conversation in the app, then QUESTION answered greedily; timed as updates arrive."""
    client.predict(api_name="/reset")
    start = time.perf_counter()
    job = client.submit(QUESTION, temperature=0.0, top_p=0.9, max_new_tokens=max_new_tokens,
                        repetition_penalty=1.0, api_name="/ask")
    times, shown = [], ""
    for history in job:
        text = _answer_text(history)
        if len(text) > len(shown):
            times.append(time.perf_counter())
            shown = text
    if job.exception() is not None:  # iterating a failed job ends quietly; the error is kept here
        raise job.exception()
    return Stream(start, times, shown.strip())


def token_count(pipeline: Pipeline, text: str) -> int:
    """How many tokens `text` is, for an app answer that is not the generator's (other page defaults)."""
    ids = pipeline.llm.tokenizer.encode_parts([Text(html.unescape(text))])
    return len(ids) - (pipeline.llm.tokenizer.bos_token_id is not None)


def _answer_text(history: list[dict]) -> str:
    if not history or history[-1]["role"] != "assistant":
        return ""
    return "".join(block["text"] for block in history[-1]["content"] if block["type"] == "text")


def serve(pipeline: Pipeline, examples_dir: Path):
    """The app on a free port; returns (demo, url) once the example warm-up encodes are done."""
    options = UIOptions(port=free_port(), examples_dir=examples_dir)
    demo = build_demo(pipeline, options)
    _, url, _ = launch_demo(demo, options, prevent_thread_lock=True, quiet=True)
    for path, _ in ensure_examples(examples_dir):  # waits for the page's background warm-up: no stray load
        try:
            pipeline.encode(path)
        except MediaError:
            pass
    return demo, url


def run(ctx: BenchContext) -> list[Row]:
    pipeline, video = ctx.pipeline(), ctx.short_video()
    media = pipeline.encode(video)
    max_new_tokens = 8 if ctx.quick else 64
    demo, url = serve(pipeline, ctx.scratch_dir("gradio-examples"))
    try:
        client = Client(url, verbose=False)
        client.predict(handle_file(str(video)), api_name="/upload")
        app_stream(client, 2), raw_stream(pipeline, media, 2)  # untimed warm-up of both paths
        app_rates, raw_rates, same = [], [], True
        for _ in range(ctx.repeats(5, 1)):  # interleaved, so background load hits both alike
            raw, tokens = raw_stream(pipeline, media, max_new_tokens)
            shown = app_stream(client, max_new_tokens)
            same = same and shown.text == raw.text
            raw_rates.append(raw.rate(tokens))
            app_rates.append(shown.rate(tokens if shown.text == raw.text else token_count(pipeline, shown.text)))
        client.close()
    finally:
        demo.close()
    app_rate, raw_rate = statistics.median(app_rates), statistics.median(raw_rates)
    note = "" if same else ("; **the app answered another prompt** (its upload defaults differ from "
                            "Pipeline.encode's), so its tokens were counted from its text")
    return [Row(
        benchmark=f"4. streamed tokens/s through the Gradio app vs the raw generator ({tokens} greedy tokens)",
        ours=f"app (gradio_client): {app_rate:.1f} tok/s", reference=f"generate_tokens: {raw_rate:.1f} tok/s{note}",
        ratio=app_rate / raw_rate, unit="%", target=Target(0.9, "%", at_least=True))]


def main(argv: list[str] | None = None) -> int:
    return run_standalone(run, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    raise SystemExit(main())
