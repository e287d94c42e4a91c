"""zero_gpu.py off ZeroGPU, and the ZeroGPU engine on the tiny model (CPU).

On ZeroGPU every answer is prefilled from scratch in a GPU worker from plain, pickled data; its
greedy text must equal the text of the local engine with its kept cache, turn after turn.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import pytest
import torch

from videollama_demo import Pipeline, load_pipeline
from videollama_demo.chat.conversation import ChatSession
from videollama_demo.engines.local import LocalEngine
from videollama_demo.pipeline.zero_gpu import ZeroGPUEngine, gpu_task, on_zero_gpu, to_cpu

GREEDY = dict(temperature=0, max_new_tokens=8)
QUESTIONS = ("What is the dog doing?", "What colour is the ball?", "And then?")


@pytest.fixture(scope="module")
def tiny_pipeline(tiny_checkpoints: Path) -> Pipeline:
    return load_pipeline("tiny", checkpoints=tiny_checkpoints, device="cpu")


def answer(session: ChatSession, question: str) -> tuple[str, int]:
    reply = session.ask(question, **GREEDY)
    text = "".join(reply)
    return text, reply.reused


@pytest.mark.parametrize("value", [None, "", "0", "false"])
def test_off_zero_gpu_the_decorator_returns_the_function_itself(monkeypatch: pytest.MonkeyPatch,
                                                                value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    else:
        monkeypatch.setenv("SPACES_ZERO_GPU", value)

    def encode(x: int) -> int:
        return x + 1

    def stream(n: int):
        yield from range(n)
    assert not on_zero_gpu()
    assert gpu_task(duration=30)(encode) is encode
    assert gpu_task()(stream) is stream and list(stream(3)) == [0, 1, 2]


def test_zero_gpu_without_the_spaces_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.setitem(sys.modules, "spaces", None)  # not importable, whatever this machine has
    with pytest.raises(RuntimeError, match="add `spaces` to the Space's requirements.txt"):
        gpu_task()(print)


def test_to_cpu_keeps_the_structure(tiny_pipeline: Pipeline, shared_media: dict[str, Path]) -> None:
    encoding = tiny_pipeline.encode(shared_media["video"])
    moved = to_cpu({"encoding": encoding, "pair": (torch.ones(2), [torch.zeros(1)]), "n": 3})
    assert moved["n"] == 3 and isinstance(moved["pair"], tuple) and isinstance(moved["pair"][1], list)
    assert type(moved["encoding"]) is type(encoding) and moved["encoding"].info == encoding.info
    assert torch.equal(moved["encoding"].video, encoding.video) and moved["encoding"].video.device.type == "cpu"


def in_another_process(answerer):
    """What ZeroGPU's worker boundary does to a call: the arguments cross pickled, tokens come back."""
    def call(*args):
        crossed = pickle.loads(pickle.dumps(args))  # raises if anything unpicklable (a live cache, a lock) goes in
        for token in answerer(*crossed):
            yield pickle.loads(pickle.dumps(token))
    return call


def test_answers_from_scratch_in_a_gpu_worker_equal_the_kept_cache(tiny_pipeline: Pipeline,
                                                                   shared_media: dict[str, Path]) -> None:
    """The ZeroGPU path: every answer re-prefills the whole prompt from plain data; no cache stays."""
    encoding = tiny_pipeline.encode(shared_media["video"])
    engine = ZeroGPUEngine(tiny_pipeline.llm)
    engine._answer = in_another_process(engine._answer_from_scratch)
    kept = tiny_pipeline.new_session()
    remote = ChatSession(tiny_pipeline.llm, tiny_pipeline.config.llm.template, engine)
    for session in (kept, remote):
        session.add_media(encoding)
    for question in QUESTIONS:
        (expected, reused_kept), (text, reused_remote) = answer(kept, question), answer(remote, question)
        assert text == expected and reused_remote == 0
    assert reused_kept > 0
    assert [t.answer for t in remote.turns] == [t.answer for t in kept.turns]


def test_an_engine_that_keeps_no_cache_gives_the_same_follow_ups(tiny_pipeline: Pipeline,
                                                                  shared_media: dict[str, Path]) -> None:
    encoding = tiny_pipeline.encode(shared_media["video"])
    fresh_engine = LocalEngine(tiny_pipeline.llm, keep_caches=False)
    kept = tiny_pipeline.new_session()
    fresh = ChatSession(tiny_pipeline.llm, tiny_pipeline.config.llm.template, fresh_engine)
    for session in (kept, fresh):
        session.add_media(encoding)
    for question in QUESTIONS[:2]:
        (expected, _), (text, reused) = answer(kept, question), answer(fresh, question)
        assert text == expected and reused == 0
    assert fresh_engine.cached_conversations() == 0
