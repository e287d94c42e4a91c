"""engines/vllm_server.py: the preview conversion, the server's command line and its life cycle
(a start that fails, a crash in the middle of an answer, a restart on the same port)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.engines.conftest import VLLM_VENV, SmolLM2, record_measurement, request, start_server, transformers_greedy
from videollama_demo.engines.base import EngineError, SamplingSettings
from videollama_demo.engines.vllm import VLLMEngine
from videollama_demo.engines.vllm_server import STAMP, VLLMServer, VLLMServerError, parse_args, prepare_served_model

pytestmark = pytest.mark.vllm


def test_prepare_converts_once(served_dir: Path, smollm2_gguf: Path) -> None:
    config = json.loads((served_dir / "config.json").read_text())
    assert "quantization_config" not in config and config["architectures"] == ["LlamaForCausalLM"]
    assert (served_dir / "model.safetensors").is_file() and (served_dir / "tokenizer.json").is_file()
    assert str(smollm2_gguf.resolve()) in (served_dir / STAMP).read_text()
    started = time.perf_counter()
    assert prepare_served_model(smollm2_gguf, served_dir) == served_dir
    assert time.perf_counter() - started < 0.5


def test_prepare_serves_an_hf_dir_as_is(served_dir: Path, tmp_path: Path) -> None:
    assert prepare_served_model(served_dir, tmp_path / "unused") == served_dir
    assert not (tmp_path / "unused").exists()
    (tmp_path / "notes.txt").write_text("no model here")
    with pytest.raises(VLLMServerError, match="neither a model directory"):
        prepare_served_model(tmp_path, tmp_path / "out")


def test_command_line(tmp_path: Path) -> None:
    server = VLLMServer(tmp_path, VLLM_VENV, dtype="float16", max_model_len=4096, port=8123,
                        extra_args=["--tensor-parallel-size", "2"])
    command = server.command()
    assert command[:3] == [str(VLLM_VENV / "bin" / "python"), "-m", "vllm.entrypoints.openai.api_server"]
    for flag in ("--enable-prompt-embeds", "--enable-prefix-caching"):
        assert flag in command
    assert command[command.index("--port") + 1] == "8123" and command[command.index("--dtype") + 1] == "float16"
    assert command[-2:] == ["--tensor-parallel-size", "2"]
    assert server.url == "http://127.0.0.1:8123/v1"


def test_parse_args_passes_the_rest_to_vllm() -> None:
    args, extra = parse_args(["--model-source", "/m", "--port", "9000", "--", "--tensor-parallel-size", "2"])
    assert (args.model_source, args.port, args.venv) == ("/m", 9000, ".venv-vllm")
    assert extra == ["--tensor-parallel-size", "2"]


def test_a_missing_environment_is_named(tmp_path: Path) -> None:
    with pytest.raises(VLLMServerError, match="setup-vllm.sh"):
        VLLMServer(tmp_path, tmp_path / "no-venv").start()


def test_a_start_that_fails_shows_the_log(tmp_path: Path) -> None:
    server = VLLMServer(tmp_path / "no-model-here", VLLM_VENV, log_path=tmp_path / "vllm.log")
    with pytest.raises(VLLMServerError, match=r"exited with code \d+ while starting. Last lines of .*vllm\.log:\n"):
        server.start()
    assert not server.running


def test_killed_mid_answer_then_restarted(served_dir: Path, smollm2: SmolLM2,
                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    logs = tmp_path_factory.mktemp("crash_logs")
    server = start_server(served_dir, logs)
    engine = VLLMEngine(server.url)
    prompt = smollm2.embed(smollm2.chat_ids("Tell me a long story about a dragon."))
    try:
        stream = engine.generate(request(prompt, SamplingSettings(max_new_tokens=1500, seed=0), frozenset()))
        next(stream)
        server.kill()
        with pytest.raises(EngineError, match=r"stopped in the middle of the answer.*ask again"):
            for _ in stream:
                pass
        with pytest.raises(EngineError, match="is not answering"):
            list(engine.generate(request(prompt)))
        server = start_server(served_dir, logs, port=server.port)
        record_measurement("server_restart_s", round(server.startup_seconds, 1))
        # The same engine, whose pooled connections went to the dead process, answers again.
        assert list(engine.generate(request(prompt))) == transformers_greedy(smollm2, prompt, 48)
    finally:
        engine.close()
        server.stop()
