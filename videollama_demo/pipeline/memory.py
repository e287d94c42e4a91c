"""How much GPU memory each part of a preset needs, per precision.

Computed from the modules themselves, built on the `meta` device (nothing is allocated) and cast
by the production `to_runtime` rule, so the numbers follow the code; on a GPU the start-up log adds
what `torch.cuda.memory_allocated` measures after loading. `python -m videollama_demo memory` prints
the table the README shows.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, PretrainedConfig

from ..config import VideoLlamaConfig
from ..model.video_llama import VideoLlamaEncoder

# The four ways to run: everything fp32 (CPU); the official GPU mix (fp16 ViT linears, fp32 rest,
# 16-bit LLM: fp16 and bf16 take the same room); and the same with a bitsandbytes 8- or 4-bit LLM.
Precision = Literal["fp32", "16bit", "8bit", "4bit"]
PRECISIONS: tuple[Precision, ...] = get_args(Precision)
PRECISION_LABELS: dict[Precision, str] = {"fp32": "fp32 (CPU)", "16bit": "fp16/bf16", "8bit": "8-bit LLM",
                                          "4bit": "4-bit LLM"}
GIB = 1024**3

# Each row of the table and the encoder attributes it is made of.
ENCODER_PARTS: dict[str, tuple[str, ...]] = {
    "EVA ViT-g": ("vision",),
    "BLIP-2 Q-Former": ("image_qformer", "query_tokens"),
    "video branch": ("frame_position_embedding", "video_qformer", "video_query_tokens", "video_proj"),
    "ImageBind audio": ("audio_encoder",),
    "audio branch": ("audio_position_embedding", "audio_qformer", "audio_query_tokens", "audio_proj"),
}
LLM_ROW = "LLM"
KV_ROW = "KV cache"

@dataclass(frozen=True)
class FitTarget:
    """A preset and precision that must fit a card, with room left for activations and the CUDA context."""

    preset: str
    precision: Precision
    card: str
    usable_gib: float  # what the card offers to a process (nvidia-smi's total, in GiB)


# Activations of an 8-frame answer (ViT over 8 x 257 tokens, the prefill) and the CUDA context, which
# max_memory_allocated does not count. The gpu tests measure the activations against this.
RUNTIME_ALLOWANCE_GIB = 1.5
FIT_TARGETS = (
    FitTarget("video-llama-2-7b", "16bit", "24 GB (A10G, L4, RTX 3090/4090)", 22.49),  # 23028 MiB
    FitTarget("video-llama-2-13b", "8bit", "24 GB (A10G, L4, RTX 3090/4090)", 22.49),
    FitTarget("video-llama-2-7b", "4bit", "12 GB (RTX 3060/4070)", 11.7),
)


@dataclass(frozen=True)
class Component:
    name: str
    params: int
    bytes: int


@dataclass(frozen=True)
class MemoryEstimate:
    preset: str
    precision: Precision
    context_length: int
    components: tuple[Component, ...]

    @property
    def total_bytes(self) -> int:
        return sum(component.bytes for component in self.components)

    def bytes_of(self, name: str) -> int:
        return next(component.bytes for component in self.components if component.name == name)

    def fits(self, target: FitTarget) -> bool:
        return self.total_bytes / GIB + RUNTIME_ALLOWANCE_GIB <= target.usable_gib


def estimate_memory(config: VideoLlamaConfig, precision: Precision, llm_shape: PretrainedConfig | None = None,
                    context_length: int | None = None) -> MemoryEstimate:
    """Bytes of every component of `config` in `precision`, plus a KV cache of `context_length` positions
    (default: the preset's context, 2000 for the official models)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    shape = llm_shape or llm_shape_of(config)
    context = context_length or config.llm.context_length
    rows = (*encoder_components(config, precision), llm_component(shape, precision),
            Component(KV_ROW, 0, kv_cache_bytes(shape, context, precision)))
    return MemoryEstimate(config.name, precision, context, rows)


def encoder_components(config: VideoLlamaConfig, precision: Precision) -> list[Component]:
    """The encoder built on `meta` and cast by `to_runtime` exactly as it runs (the official mix on GPU)."""
    with torch.device("meta"):
        encoder = VideoLlamaEncoder(config)
    encoder.to_runtime("meta", torch.float32 if precision == "fp32" else torch.float16)
    rows = []
    for name, attributes in ENCODER_PARTS.items():
        tensors = [t for attr in attributes if hasattr(encoder, attr) for t in _tensors(getattr(encoder, attr))]
        if tensors:
            rows.append(Component(name, sum(t.numel() for t in tensors),
                                  sum(t.numel() * t.element_size() for t in tensors)))
    return rows


def llm_component(shape: PretrainedConfig, precision: Precision) -> Component:
    """The LLM built on `meta`; bitsandbytes quantizes the decoder's Linear layers, not `lm_head`."""
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(shape)
    params = size = 0
    for name, module in model.named_modules():
        quantized = isinstance(module, nn.Linear) and name != "lm_head"
        for tensor in [*module.parameters(recurse=False), *module.buffers(recurse=False)]:
            params += tensor.numel() if isinstance(tensor, nn.Parameter) else 0
            size += _stored_bytes(tensor, module, precision, quantized)
    return Component(LLM_ROW, params, size)


def _stored_bytes(tensor: torch.Tensor, module: nn.Module, precision: Precision, quantized: bool) -> int:
    if not isinstance(tensor, nn.Parameter):
        return tensor.numel() * tensor.element_size()  # buffers (RoPE inv_freq) stay as built
    count = tensor.numel()
    if precision == "fp32":
        return 4 * count
    if not quantized or precision == "16bit" or tensor.dim() != 2:
        return 2 * count
    if precision == "8bit":  # int8 weights + an fp32 scale per output row (LLM.int8)
        return count + 4 * module.out_features
    blocks = math.ceil(count / 64)  # NF4: two weights a byte, an 8-bit absmax per 64, fp32 per 256 absmax
    return count // 2 + blocks + 4 * math.ceil(blocks / 256)


def kv_cache_bytes(shape: PretrainedConfig, positions: int, precision: Precision) -> int:
    """Keys and values of every layer for `positions` positions, in the compute dtype."""
    heads = shape.num_attention_heads
    kv_heads = getattr(shape, "num_key_value_heads", None) or heads
    head_dim = getattr(shape, "head_dim", None) or shape.hidden_size // heads
    return 2 * shape.num_hidden_layers * positions * kv_heads * head_dim * (4 if precision == "fp32" else 2)


def llm_shape_of(config: VideoLlamaConfig, llm_dir: Path | None = None) -> PretrainedConfig:
    """The LLM's config: from its folder when there, else the official model's published shape."""
    if llm_dir is not None and (Path(llm_dir) / "config.json").is_file():
        return AutoConfig.from_pretrained(llm_dir)
    if config.llm.shape is not None:
        return LlamaConfig(hidden_size=config.llm.hidden_size, **dataclasses.asdict(config.llm.shape))
    raise ValueError(f"the LLM shape of preset {config.name!r} is not known: give its folder")


def precision_of(device: torch.device, llm_dtype: torch.dtype, quantization: str | None) -> Precision:
    """The precision a loaded pipeline runs in."""
    if quantization in ("8bit", "4bit"):
        return quantization  # type: ignore[return-value]
    return "fp32" if torch.device(device).type == "cpu" or llm_dtype == torch.float32 else "16bit"


def memory_table(config: VideoLlamaConfig, precisions: tuple[Precision, ...] = ("16bit", "8bit", "4bit", "fp32"),
                 llm_shape: PretrainedConfig | None = None) -> str:
    """A Markdown table: one row per component, one column per precision, in GiB."""
    estimates = [estimate_memory(config, precision, llm_shape) for precision in precisions]
    header = ["component", "parameters", *(PRECISION_LABELS[p] for p in precisions)]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in estimates[0].components:
        cells = [row.name if row.name != KV_ROW else f"{KV_ROW} ({estimates[0].context_length} positions)",
                 _count(row.params) if row.params else "",
                 *(f"{estimate.bytes_of(row.name) / GIB:.2f}" for estimate in estimates)]
        lines.append("| " + " | ".join(cells) + " |")
    totals = [f"**{estimate.total_bytes / GIB:.2f}**" for estimate in estimates]
    lines.append("| " + " | ".join(["**total**", "", *totals]) + " |")
    return "\n".join(lines)


def startup_report(config: VideoLlamaConfig, precision: Precision, llm_shape: PretrainedConfig,
                   device: torch.device) -> str:
    """What the start-up log says: the estimate per component and, on a GPU, what is allocated."""
    estimate = estimate_memory(config, precision, llm_shape)
    parts = ", ".join(f"{row.name} {row.bytes / GIB:.2f}" for row in estimate.components)
    text = (f"memory of {config.name} ({PRECISION_LABELS[precision]}): about {estimate.total_bytes / GIB:.1f} GiB "
            f"({parts} GiB)")
    if torch.device(device).type == "cuda":
        allocated = torch.cuda.memory_allocated(device) / GIB
        text += f"; measured after loading: {allocated:.2f} GiB allocated on {device}"
    return text


def _tensors(value: nn.Module | torch.Tensor) -> list[torch.Tensor]:
    if isinstance(value, nn.Module):
        return [*value.parameters(), *value.buffers()]
    return [value]


def _count(params: int) -> str:
    return f"{params / 1e9:.2f} B" if params >= 1e9 else f"{params / 1e6:.1f} M"
