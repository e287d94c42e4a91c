"""engines/vllm.py against a real vLLM server: token ids equal transformers' own greedy decoding
of the same embeddings, concurrent answers do not mix, Stop aborts, errors read as sentences."""

from __future__ import annotations

import base64
import io
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import torch

from tests.engines.conftest import GREEDY, SmolLM2, record_measurement, request, transformers_greedy
from videollama_demo.engines.base import EngineError, SamplingSettings
from videollama_demo.engines.vllm import (
    VLLMEngine,
    api_base,
    encode_embeds,
    error_message,
    sampling_fields,
    server_events,
)
from videollama_demo.engines.vllm_server import VLLMServer, free_loopback_port

pytestmark = pytest.mark.vllm

QUESTIONS = ["Name three colors.", "What is the capital of France?", "Write a haiku about rain.",
             "How many legs does a spider have?", "Give me a tip for sleeping well.",
             "What is 12 times 12?", "Name a famous painter.", "Why is the sky blue?"]
MEDIA_ROWS = 24


# ------------------------------------------------------------------------------- pure functions


@pytest.mark.parametrize(("given", "expected"), [
    ("http://127.0.0.1:8000", "http://127.0.0.1:8000/v1"),
    ("http://127.0.0.1:8000/", "http://127.0.0.1:8000/v1"),
    ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
    ("http://gpu-box:9000/v1/", "http://gpu-box:9000/v1"),
])
def test_api_base(given: str, expected: str) -> None:
    assert api_base(given) == expected


def test_encode_embeds_round_trips_in_the_servers_dtype() -> None:
    embeds = torch.randn(5, 8)
    decoded = torch.load(io.BytesIO(base64.b64decode(encode_embeds(embeds, torch.float16))), weights_only=True)
    assert decoded.dtype == torch.float16 and torch.equal(decoded, embeds.half())
    with pytest.raises(ValueError, match=r"\(L, H\)"):
        encode_embeds(torch.randn(1, 5, 8))


@pytest.mark.parametrize(("settings", "expected"), [
    (SamplingSettings(), {"temperature": 1.0, "top_p": 0.9, "top_k": 50, "repetition_penalty": 1.0,
                          "max_tokens": 300}),
    (SamplingSettings(temperature=0, max_new_tokens=7), {"temperature": 0, "max_tokens": 7}),
    (SamplingSettings(seed=3, top_k=0, repetition_penalty=1.2), {"seed": 3, "top_k": 0, "repetition_penalty": 1.2}),
])
def test_sampling_is_spelled_out(settings: SamplingSettings, expected: dict) -> None:
    fields = sampling_fields(settings, frozenset({2, 7}))
    assert fields.items() >= expected.items()
    assert fields["stop_token_ids"] == [2, 7] and fields["ignore_eos"] is True
    assert ("seed" in fields) == (settings.seed is not None)


def test_server_events_stop_at_done() -> None:
    lines = ['data: {"a": 1}', "", ": keep-alive", 'data: {"b": 2}', "data: [DONE]", 'data: {"c": 3}']
    assert list(server_events(iter(lines))) == [{"a": 1}, {"b": 2}]


@pytest.mark.parametrize(("status", "body", "expected"), [
    (400, {"error": {"message": "too long", "type": "BadRequestError"}}, "too long"),
    (404, {"detail": "Not Found"}, "{'detail': 'Not Found'}"),
    (502, None, "HTTP 502"),
])
def test_error_message(status: int, body: dict | None, expected: str) -> None:
    response = httpx.Response(status, json=body) if body is not None else httpx.Response(status, text="<html>")
    assert error_message(response) == expected


# ------------------------------------------------------------------------- against the server


def with_media(smollm2: SmolLM2, question: str) -> torch.Tensor:
    """A chat prompt with random "media" rows where a video would be spliced in (L, H)."""
    text = smollm2.tokenizer.apply_chat_template([{"role": "user", "content": f"MEDIA {question}"}],
                                                 add_generation_prompt=True, tokenize=False)
    before, after = text.split("MEDIA")
    encode = lambda part: smollm2.tokenizer(part, add_special_tokens=False)["input_ids"]  # noqa: E731
    table = smollm2.model.get_input_embeddings().weight
    media = torch.randn(MEDIA_ROWS, table.shape[1], generator=torch.Generator().manual_seed(0)) * table.std()
    return torch.cat([smollm2.embed(encode(before)), media.detach(), smollm2.embed(encode(after))])


@pytest.fixture(scope="module")
def prompts(smollm2: SmolLM2) -> dict[str, torch.Tensor]:
    return {"chat": smollm2.embed(smollm2.chat_ids(QUESTIONS[0])),
            "media": with_media(smollm2, "Describe what happens in this video.")}


@pytest.mark.parametrize("kind", ["chat", "media"])
def test_greedy_equals_transformers(engine: VLLMEngine, smollm2: SmolLM2, prompts: dict, kind: str) -> None:
    expected = transformers_greedy(smollm2, prompts[kind], GREEDY.max_new_tokens)
    got = list(engine.generate(request(prompts[kind])))
    assert got == expected, (smollm2.tokenizer.decode(got), smollm2.tokenizer.decode(expected))
    assert len(got) >= 8 and smollm2.eos_id not in got
    record_measurement(f"greedy_equal_{kind}_tokens", len(got))


def test_stats_report_the_prefix_the_server_reused(engine: VLLMEngine) -> None:
    long_prompt = torch.randn(300, 576, generator=torch.Generator().manual_seed(1)) * 0.05
    first, second = request(long_prompt), request(long_prompt)
    list(engine.generate(first))
    list(engine.generate(second))
    assert first.stats == {"prefilled": 300, "reused": 0}
    assert second.stats["reused"] > 0 and sum(second.stats.values()) == 300


def test_concurrent_answers_equal_each_alone(engine: VLLMEngine, smollm2: SmolLM2) -> None:
    # No stop ids: each answer runs its full 64 tokens, so the throughputs compare like for like.
    settings = SamplingSettings(temperature=0, max_new_tokens=64)
    embeds = [smollm2.embed(smollm2.chat_ids(question)) for question in QUESTIONS]
    run = lambda e: list(engine.generate(request(e, settings, frozenset())))  # noqa: E731
    started = time.perf_counter()
    alone = [run(e) for e in embeds]
    alone_s = time.perf_counter() - started
    started = time.perf_counter()
    with ThreadPoolExecutor(len(embeds)) as pool:
        together = list(pool.map(run, embeds))
    together_s = time.perf_counter() - started
    assert together == alone
    assert len(set(map(tuple, alone))) == len(QUESTIONS)  # distinct answers, so a mix-up would show
    tokens = sum(map(len, alone))
    record_measurement("tokens_per_s_1_at_a_time", round(tokens / alone_s, 1))
    record_measurement("tokens_per_s_8_concurrent", round(tokens / together_s, 1))


def running_requests(server: VLLMServer) -> float:
    metrics = httpx.get(server.url.removesuffix("/v1") + "/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith("vllm:num_requests_running{"))


def test_closing_the_stream_aborts_the_request(engine: VLLMEngine, vllm_server: VLLMServer,
                                               smollm2: SmolLM2, prompts: dict) -> None:
    stream = engine.generate(request(prompts["chat"], SamplingSettings(max_new_tokens=1500, seed=0), frozenset()))
    assert len([next(stream) for _ in range(3)]) == 3
    assert running_requests(vllm_server) == 1
    started = time.perf_counter()
    stream.close()
    assert time.perf_counter() - started < 1.0
    deadline = time.monotonic() + 5  # 1500 tokens would take minutes here: only an abort ends it
    while running_requests(vllm_server) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert running_requests(vllm_server) == 0
    expected = transformers_greedy(smollm2, prompts["chat"], GREEDY.max_new_tokens)
    assert list(engine.generate(request(prompts["chat"]))) == expected


def test_a_request_the_server_refuses_says_why(engine: VLLMEngine) -> None:
    too_long = torch.zeros(2100, 576)  # the server was started with --max-model-len 2048
    with pytest.raises(EngineError, match=r"refused the request: .*(length|context|2048)"):
        list(engine.generate(request(too_long)))


def test_no_server_fails_at_once() -> None:
    engine = VLLMEngine(f"http://127.0.0.1:{free_loopback_port()}")
    started = time.perf_counter()
    with pytest.raises(EngineError, match=r"^The language-model server at http://127\.0\.0\.1:\d+/v1 is not answering"):
        next(engine.generate(request(torch.zeros(3, 576))))
    assert time.perf_counter() - started < 2.0
    engine.close()
