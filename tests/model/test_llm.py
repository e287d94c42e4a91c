"""model/llm.py: LoRA adapters (peft) and the 8/4-bit options' checks on a machine without a GPU.

The adapter is built and saved here with peft for the tiny LLaMA; the reference merges it by hand
(W + alpha/r * B @ A, the LoRA formula) into a plain transformers model, without peft.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file
from transformers import DynamicCache, LlamaForCausalLM

from tests.tiny_llama import tiny_llama_dir, write_tiny_llama_dir  # noqa: F401  (session fixture)
from videollama_demo.config import LLMConfig
from videollama_demo.engines.decode import prefill
from videollama_demo.model.llm import LLMLoadError, bitsandbytes_config, load_llm, placement_options

CPU = torch.device("cpu")
RANK, ALPHA = 4, 16
IDS = torch.tensor([[1, 45, 300, 12, 7, 999, 3, 250]])


def llm_config(directory: Path) -> LLMConfig:
    return LLMConfig(hidden_size=64, path=str(directory), template="llama2")


def save_adapter(base_dir: Path, out: Path, targets: tuple[str, ...] = ("q_proj", "v_proj"), seed: int = 0) -> Path:
    """A LoRA adapter for the LLaMA at `base_dir` with non-zero A and B (peft starts B at zero)."""
    model = LlamaForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    adapted = get_peft_model(model, LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=list(targets),
                                               lora_dropout=0.0, task_type="CAUSAL_LM"))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in adapted.named_parameters():
            if ".lora_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.2)
    adapted.save_pretrained(out)
    return out


def merged_by_hand(base_dir: Path, adapter: Path) -> LlamaForCausalLM:
    """The base model with every adapted weight replaced by W + (alpha / r) * B @ A."""
    model = LlamaForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    lora = load_file(adapter / "adapter_model.safetensors")
    weights = dict(model.named_parameters())
    with torch.no_grad():
        for key in [k for k in lora if k.endswith("lora_A.weight")]:
            module = key.removeprefix("base_model.model.").removesuffix(".lora_A.weight")
            delta = lora[key.replace("lora_A", "lora_B")] @ lora[key]  # (out, r) @ (r, in)
            weights[module + ".weight"] += ALPHA / RANK * delta
    return model.eval()


@pytest.fixture(scope="module")
def adapter(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    return save_adapter(tiny_llama_dir, tmp_path_factory.mktemp("lora"))


@pytest.mark.parametrize("merge", [True, False])
def test_a_lora_adapter_changes_the_logits_as_its_formula_says(tiny_llama_dir: Path, adapter: Path,  # noqa: F811
                                                                merge: bool) -> None:
    llm = load_llm(llm_config(tiny_llama_dir), tiny_llama_dir, CPU, torch.float32, lora=adapter, merge_lora=merge)
    with torch.no_grad():
        ours = llm.model(input_ids=IDS).logits
        expected = merged_by_hand(tiny_llama_dir, adapter)(input_ids=IDS).logits
        base = LlamaForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32).eval()(input_ids=IDS).logits
    assert (ours - expected).abs().max() < 1e-4
    assert (ours - base).abs().max() > 0.1  # the adapter really does something
    assert type(llm.model).__name__ == ("LlamaForCausalLM" if merge else "PeftModelForCausalLM")
    assert not any(p.requires_grad for p in llm.model.parameters())
    first = prefill(llm.model, llm.embed_tokens(IDS[0].tolist()), DynamicCache(config=llm.model.config))
    assert (first - expected[0, -1]).abs().max() < 1e-4  # the chat engine's own path through the adapter


def test_an_adapter_for_another_base_is_a_clear_error(tiny_llama_dir: Path,  # noqa: F811
                                                      tmp_path: Path) -> None:
    other_base = write_tiny_llama_dir(tmp_path / "hidden32", hidden_size=32)
    wrong = save_adapter(other_base, tmp_path / "wrong_adapter")
    with pytest.raises(LLMLoadError) as error:
        load_llm(llm_config(tiny_llama_dir), tiny_llama_dir, CPU, torch.float32, lora=wrong)
    message = str(error.value)
    assert f"The LoRA adapter at {wrong} does not fit this LLM (it was made for '{other_base}')" in message
    assert "size mismatch" in message


def test_an_adapter_for_modules_the_llm_lacks_is_a_clear_error(tiny_llama_dir: Path,  # noqa: F811
                                                               tmp_path: Path) -> None:
    wrong = save_adapter(tiny_llama_dir, tmp_path / "adapter", targets=("q_proj",))
    config = (wrong / "adapter_config.json").read_text().replace('"q_proj"', '"query_key_value"')
    (wrong / "adapter_config.json").write_text(config)  # a GPT-NeoX-style adapter
    with pytest.raises(LLMLoadError, match="does not fit this LLM.*query_key_value"):
        load_llm(llm_config(tiny_llama_dir), tiny_llama_dir, CPU, torch.float32, lora=wrong)


def test_a_folder_without_an_adapter_is_a_clear_error(tiny_llama_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    with pytest.raises(LLMLoadError, match=f"No LoRA adapter at {tmp_path}: expected a folder with adapter_config"):
        load_llm(llm_config(tiny_llama_dir), tiny_llama_dir, CPU, torch.float32, lora=tmp_path)


@pytest.mark.parametrize("quantization", ["8bit", "4bit"])
def test_quantization_on_a_cpu_is_a_clear_error(tiny_llama_dir: Path, quantization: str) -> None:  # noqa: F811
    with pytest.raises(LLMLoadError, match=f"{quantization} loading \\(bitsandbytes\\) needs a CUDA GPU"):
        load_llm(llm_config(tiny_llama_dir), tiny_llama_dir, CPU, torch.float32, quantization=quantization)


def test_quantization_without_bitsandbytes_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # not importable, whatever this machine has
    with pytest.raises(LLMLoadError, match=r"needs the bitsandbytes package.*pip install -r requirements-gpu.txt"):
        bitsandbytes_config("8bit", torch.float16)


def test_an_unknown_quantization_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown quantization '3bit'; choose one of: 8bit, 4bit"):
        placement_options(torch.device("cuda"), torch.float16, "3bit")  # type: ignore[arg-type]


def test_on_cpu_the_weights_are_loaded_without_a_device_map() -> None:
    assert placement_options(CPU, torch.float32, None) == {}
