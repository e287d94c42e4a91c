"""Where the model runs and in which dtypes: the official mix on a GPU, fp32 on a CPU (or a 16-bit LLM
on a CPU when asked)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class RuntimeChoice:
    device: torch.device
    encoder_dtype: torch.dtype  # autocast dtype of the encoders (official: fp16 on GPU)
    llm_dtype: torch.dtype  # official: bf16 on GPU


def choose_runtime(device: str | torch.device | None, dtype: torch.dtype | None) -> RuntimeChoice:
    """CPU runs fp32, or a given dtype for the LLM alone. On GPU the default is the official mix (fp16
    encoders, bf16 LLM); a GPU without bf16 (T4, V100) gets an fp16 LLM. A given dtype is used for both."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu":
        # The encoders stay fp32 on a CPU: the official code runs them in fp16 (Video-LLaMA
        # `video_llama/models/eva_vit.py` `convert_weights_to_fp16`), whose 11-bit mantissa bf16 (8
        # bits) cannot reproduce, and CPUs have no fast fp16. They are ~1.3 B parameters; the LLM's
        # 6.7 B are what a 16-bit dtype saves (a 7B model: 13.5 GB in bf16 instead of 27 GB).
        return RuntimeChoice(device, torch.float32, dtype or torch.float32)
    if dtype is None:
        return RuntimeChoice(device, torch.float16, _default_llm_dtype(device))
    return RuntimeChoice(device, dtype, dtype)


def _default_llm_dtype(device: torch.device) -> torch.dtype:
    if device.type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
        return torch.float16
    return torch.bfloat16
