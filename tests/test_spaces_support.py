"""spaces_support.py off ZeroGPU, and the KV-cache policies ZeroGPU needs, on the tiny model (CPU).

A follow-up answered after the cache was offloaded, dropped, or carried to another session as a
pickled `ConversationState` must be the same greedy text as with the cache kept.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import pytest
import torch

from videollama_demo import Pipeline, load_pipeline
from videollama_demo.chat.conversation import ChatSession, answer_from_scratch
from videollama_demo.chat.kv_cache import KVCachePool, default_kv_policy
from videollama_demo.spaces_support import (
    ConversationState,
    export_conversation,
    gpu_task,
    import_conversation,
    on_zero_gpu,
    to_cpu,
)

GREEDY = dict(temperature=0, max_new_tokens=8)
QUESTIONS = ("What is the dog doing?", "What colour is the ball?")


@pytest.fixture(scope="module")
def tiny_pipeline(tiny_checkpoints: Path) -> Pipeline:
    return load_pipeline("tiny", checkpoints=tiny_checkpoints, device="cpu")


def session_with(pipe: Pipeline, pool: KVCachePool) -> ChatSession:
    return ChatSession(pipe.llm, pipe.config.llm.template, pipe.encode, pool)


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
    assert default_kv_policy() == "keep"


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


@pytest.mark.parametrize("policy, keeps_cache", [("offload", True), ("drop", False)])
def test_kv_policies_give_the_same_follow_up(tiny_pipeline: Pipeline, shared_media: dict[str, Path],
                                             policy: str, keeps_cache: bool) -> None:
    encoding = tiny_pipeline.encode(shared_media["video"])
    pool = KVCachePool(2, policy=policy)
    kept, other = session_with(tiny_pipeline, KVCachePool(2, policy="keep")), session_with(tiny_pipeline, pool)
    for session in (kept, other):
        session.add_media(encoding)
        answer(session, QUESTIONS[0])
    assert pool.cached_sessions() == int(keeps_cache)
    (kept_text, kept_reused), (text, reused) = answer(kept, QUESTIONS[1]), answer(other, QUESTIONS[1])
    assert text and text == kept_text and kept_reused > 0
    assert (reused > 0) == keeps_cache  # a dropped cache is rebuilt by prefilling everything


def test_a_conversation_crosses_a_process_boundary_as_state(tiny_pipeline: Pipeline,
                                                           shared_media: dict[str, Path]) -> None:
    """What a ZeroGPU call receives and returns: pickled, CPU only; the answer goes on the same."""
    session = tiny_pipeline.new_session()
    session.add_media(shared_media["video"])
    first, _ = answer(session, QUESTIONS[0])
    with pytest.raises(TypeError):
        pickle.dumps(session)  # locks and a live cache: a session itself cannot travel
    state = pickle.loads(pickle.dumps(export_conversation(session)))
    assert isinstance(state, ConversationState) and state.turns[0].answer == session.turns[0].answer
    assert state.media.video.device.type == state.media.audio.device.type == "cpu"

    elsewhere = import_conversation(tiny_pipeline, state)
    assert elsewhere.prompt_text(QUESTIONS[1]) == session.prompt_text(QUESTIONS[1])
    (expected, reused_here), (text, reused_there) = answer(session, QUESTIONS[1]), answer(elsewhere, QUESTIONS[1])
    assert text == expected and reused_here > 0 and reused_there == 0


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
    kept = tiny_pipeline.new_session()
    remote = ChatSession(tiny_pipeline.llm, tiny_pipeline.config.llm.template, tiny_pipeline.encode,
                         KVCachePool(2), in_another_process(answer_from_scratch(tiny_pipeline.llm)))
    for session in (kept, remote):
        session.add_media(encoding)
    for question in (*QUESTIONS, "And then?"):
        (expected, reused_kept), (text, reused_remote) = answer(kept, question), answer(remote, question)
        assert text == expected and reused_remote == 0
        assert remote._kv.cache is None  # nothing of the answer is kept where the GPU was
    assert reused_kept > 0
    assert [t.answer for t in remote.turns] == [t.answer for t in kept.turns]
