"""Command-line options that choose, fetch and place the model: shared by `app.py` and the CLI."""

from __future__ import annotations

import argparse
import os
from typing import Any

import torch

from .config import DEFAULT_MAX_SECONDS, PRESETS
from .hub import ROLE_LABELS, ROLES

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """The options that choose, fetch and place the model (app.py and `ask` both have them)."""
    parser.add_argument("--model", default=os.environ.get("VIDEOLLAMA_MODEL", "auto"), choices=["auto", *PRESETS],
                        help="preset; auto = complete local checkpoints, else the preview model "
                             "(default: auto, or $VIDEOLLAMA_MODEL)")
    parser.add_argument("--checkpoints", default="checkpoints", help="directory with the weights")
    parser.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda if available)")
    parser.add_argument("--dtype", choices=list(DTYPES), default=None,
                        help="GPU: dtype of encoders and LLM (default: the official fp16 encoders + bf16 LLM); "
                             "CPU: dtype of the LLM, encoders stay fp32 (default fp32; bf16 halves the LLM)")
    bits = parser.add_mutually_exclusive_group()
    bits.add_argument("--load-8bit", dest="quantization", action="store_const", const="8bit",
                      help="load the LLM in 8 bits (bitsandbytes, GPU only): 13B fits a 24 GB GPU")
    bits.add_argument("--load-4bit", dest="quantization", action="store_const", const="4bit",
                      help="load the LLM in 4 bits (NF4, GPU only): 7B fits a 12 GB GPU")
    parser.add_argument("--lora", metavar="DIR", default=None, help="apply a peft LoRA adapter to the LLM")
    parser.add_argument("--no-merge-lora", action="store_true",
                        help="keep the LoRA adapter separate instead of merging it into the weights")
    parser.add_argument("--download", action="store_true", default=_env_flag("VIDEOLLAMA_DOWNLOAD"),
                        help="download missing weights first (with --model auto: the 7B model, on a GPU); "
                             "VIDEOLLAMA_DOWNLOAD=1 does the same (for Spaces, which start `python app.py` bare)")
    add_path_options(parser)
    parser.add_argument("--cache-dir", default=None, metavar="DIR",
                        help="also keep media encodings on disk here, so a restart keeps them (default: memory only)")
    parser.add_argument("--cache-size", type=int, default=256, metavar="MB",
                        help="memory for media encodings shared by all sessions (default: 256 MB)")
    parser.add_argument("--max-duration", type=float, default=DEFAULT_MAX_SECONDS / 60, metavar="MINUTES",
                        help=f"longest video accepted (default: {DEFAULT_MAX_SECONDS / 60:.0f} minutes)")


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def add_path_options(parser: argparse.ArgumentParser) -> None:
    for role in ROLES:
        parser.add_argument(f"--{role.replace('_', '-')}-path", metavar="PATH", default=None,
                            help=f"where the {ROLE_LABELS[role]} is, if not under --checkpoints")


def path_overrides(args: argparse.Namespace) -> dict[str, str]:
    return {role: getattr(args, f"{role}_path") for role in ROLES if getattr(args, f"{role}_path")}


def pipeline_options(args: argparse.Namespace) -> dict[str, Any]:
    """`load_pipeline` keyword arguments from the options of `add_model_options`."""
    return dict(model=args.model, checkpoints=args.checkpoints, device=args.device,
                dtype=DTYPES[args.dtype] if args.dtype else None, paths=path_overrides(args),
                quantization=args.quantization, lora=args.lora, merge_lora=not args.no_merge_lora,
                download=args.download, cache_dir=args.cache_dir, cache_bytes=args.cache_size * 2**20,
                max_seconds=args.max_duration * 60)
