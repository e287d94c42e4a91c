"""`load_pipeline`: choose the preset, the device and dtypes, find (or download) the weights, load."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from ..config import DEFAULT_MAX_SECONDS, VideoLlamaConfig
from ..engines.base import Engine
from ..engines.local import LocalEngine
from ..engines.vllm import VLLMEngine
from ..engines.vllm_server import ServedVLLMEngine, VLLMServer, prepare_served_model
from ..hub import (
    AUTO_DOWNLOAD_PRESET,
    DOWNLOADABLE_PRESETS,
    PathOverrides,
    ResolvedWeights,
    auto_download_blocker,
    download_command,
    download_weights,
    find_local_preset,
    resolve_weights,
)
from ..media.isolation import DecoderPool
from ..media.speech import SHIPPED, resolve_speech_model
from ..model.llm import LLMLoadError, LoadedLLM, Quantization, load_llm, load_llm_embeddings, resolve_llm_path
from ..model.video_llama import VideoLlamaEncoder
from ..model.weights import CheckpointError, load_official_weights
from .encode_cache import DEFAULT_DISK_BYTES, DEFAULT_MEMORY_BYTES, EncodeCache
from .memory import precision_of, startup_report
from .pipeline import Pipeline
from .runtime import RuntimeChoice, choose_runtime
from .speech_cache import Transcriber, TranscriptCache
from .zero_gpu import ZeroGPUEngine, on_zero_gpu

log = logging.getLogger(__name__)

EngineName = Literal["local", "vllm"]
VLLM_DTYPES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}


@dataclass(frozen=True)
class VLLMOptions:
    """How the `vllm` engine reaches its server: one already running (`server`, an OpenAI-style
    URL), or one this process starts from `venv` and stops when it closes."""

    server: str | None = None
    venv: Path = Path(".venv-vllm")
    served_dir: Path = Path("cache/vllm")  # the LLM as vLLM reads it (the preview GGUF converted once)
    extra_args: tuple[str, ...] = ()  # passed to vLLM unchanged: --tensor-parallel-size 2, ...
    kv_cache_gib: float = 4.0  # KV-cache space of a CPU-only vLLM (a GPU build sizes its own)


def load_pipeline(model: str | VideoLlamaConfig = "auto", checkpoints: str | Path = "checkpoints",
                  device: str | torch.device | None = None, dtype: torch.dtype | None = None,
                  kv_cache_sessions: int = 8, *, paths: PathOverrides | None = None,
                  quantization: Quantization | None = None, lora: str | Path | None = None,
                  merge_lora: bool = True, download: bool = False, cache_bytes: int = DEFAULT_MEMORY_BYTES,
                  cache_dir: str | Path | None = None, cache_dir_bytes: int = DEFAULT_DISK_BYTES,
                  isolate_decoding: bool = True, max_seconds: float | None = DEFAULT_MAX_SECONDS,
                  engine: EngineName = "local", vllm: VLLMOptions | None = None, asr_model: str = SHIPPED,
                  asr_language: str | None = None) -> Pipeline:
    """Load a preset (or "auto": complete local official checkpoints, else the preview).

    `paths` puts single files elsewhere (keys eva_vit, blip2, vl, al, imagebind, llm). `download`
    fetches what is missing first (with "auto": the 7B model, and only with a GPU and the network).
    `quantization` ("8bit"/"4bit", GPU only) loads the LLM with bitsandbytes; `lora` applies a peft
    adapter to the LLM (merged into its weights unless `merge_lora` is False). Encodings are kept in
    `cache_bytes` of memory, and in `cache_dir` (at most `cache_dir_bytes`) across restarts when given.
    Uploads are decoded in a worker process (`isolate_decoding`), and videos longer than `max_seconds`
    are refused. Subtitles from speech use the Whisper model `asr_model` (the shipped English tiny
    model, a faster-whisper name such as "large-v3", fetched only with `download`, or a folder) in
    `asr_language` (None: detected); their transcripts are kept with the encodings.

    `engine="vllm"` answers through a vLLM server (`vllm`: a running one, or one started here):
    this process then holds only the tokenizer and the token embeddings of the LLM."""
    checkpoints = Path(checkpoints)
    speech_model = resolve_speech_model(asr_model, allow_download=download)  # a bad flag fails at once
    config, preview_reason = _choose_config(model, checkpoints, paths, download)
    runtime = choose_runtime(device, dtype)
    weights = None if config.random_init_seed is not None else _resolve(config, checkpoints, paths, download)
    encoder = _load_encoder(config, weights, runtime)
    llm_path = weights.llm_dir if weights is not None else resolve_llm_path(config.llm, checkpoints)
    if engine == "vllm":
        if quantization is not None or lora is not None:
            raise LLMLoadError("--load-8bit/--load-4bit and --lora are for the local engine; a vLLM server "
                               "quantizes and applies adapters itself (see the vLLM documentation)")
        llm = load_llm_embeddings(config.llm, llm_path, runtime.device, runtime.llm_dtype)
        answering = _vllm_engine(llm, llm_path, config.name, runtime, vllm or VLLMOptions())
    elif engine == "local":
        llm = load_llm(config.llm, llm_path, runtime.device, runtime.llm_dtype, quantization, lora, merge_lora)
        answering = _local_engine(llm, kv_cache_sessions)
        if log.isEnabledFor(logging.INFO):
            precision = precision_of(runtime.device, runtime.llm_dtype, quantization)
            log.info("%s", startup_report(config, precision, llm.model.config, runtime.device))
    else:
        raise ValueError(f"unknown engine {engine!r}; choose local or vllm")
    decoder = DecoderPool() if isolate_decoding else None
    if decoder is not None:
        decoder.warm_up()  # the worker imports torch in the background, not on the first upload
    return Pipeline(config, encoder, llm, runtime, engine=answering,
                    preview_reason=preview_reason, encode_cache=EncodeCache(cache_bytes, cache_dir, cache_dir_bytes),
                    decoder=decoder, max_seconds=max_seconds,
                    transcriber=Transcriber(speech_model, asr_language, TranscriptCache(cache_dir), decoder,
                                            max_seconds))


def _local_engine(llm: LoadedLLM, kv_cache_sessions: int) -> Engine:
    """On ZeroGPU each answer runs from scratch in a GPU call; elsewhere the caches are kept."""
    return ZeroGPUEngine(llm) if on_zero_gpu() else LocalEngine(llm, kv_cache_sessions)


def _vllm_engine(llm: LoadedLLM, llm_path: Path, name: str, runtime: RuntimeChoice,
                 options: VLLMOptions) -> Engine:
    """A client of the given server, or of one started here on the same LLM weights. Embeddings
    travel in the LLM's dtype, which the server is started with."""
    if options.server is not None:
        engine = VLLMEngine(options.server, dtype=llm.dtype)
        log.info("answering through the vLLM server at %s (model %s)", engine.url, engine.model)
        return engine
    served = prepare_served_model(llm_path, options.served_dir / name)
    server = VLLMServer(served, options.venv, dtype=VLLM_DTYPES[llm.dtype], max_model_len=llm.context_length,
                        kv_cache_gib=options.kv_cache_gib, extra_args=options.extra_args)
    log.info("starting a vLLM server for %s (a minute or more)", name)
    return ServedVLLMEngine(server.start(), dtype=llm.dtype)


def _choose_config(model: str | VideoLlamaConfig, checkpoints: Path, paths: PathOverrides | None,
                   download: bool) -> tuple[VideoLlamaConfig, str | None]:
    reason = None
    if isinstance(model, VideoLlamaConfig):
        config = model
    elif model == "auto":
        name, reason = find_local_preset(checkpoints, paths)
        if name == "preview" and download:
            blocker = auto_download_blocker()
            if blocker is None:
                name, reason = AUTO_DOWNLOAD_PRESET, None  # _resolve downloads it
            else:
                reason = f"{reason} (not downloaded: {blocker})"
        config = VideoLlamaConfig.from_name(name)
    else:
        config = VideoLlamaConfig.from_name(model)
    if config.random_init_seed is not None and reason is None:
        reason = "the preview preset was chosen"
    return config, reason


def _resolve(config: VideoLlamaConfig, checkpoints: Path, paths: PathOverrides | None,
             download: bool) -> ResolvedWeights:
    """Every file of `config`, downloaded first if asked; a missing one is an error with the command."""
    if download:
        return download_weights(config, checkpoints, paths).require()
    return resolve_weights(config, checkpoints, paths).require()


def _load_encoder(config: VideoLlamaConfig, weights: ResolvedWeights | None,
                  runtime: RuntimeChoice) -> VideoLlamaEncoder:
    if weights is not None:
        try:
            encoder, report = load_official_weights(config, weights.official_paths(), runtime.device,
                                                    runtime.encoder_dtype)
        except CheckpointError as err:
            if config.name not in DOWNLOADABLE_PRESETS:
                raise
            command = download_command(config.name, weights.checkpoints)
            raise CheckpointError(f"{err}. To get the official file again, delete it and run `{command}`") from err
        log.info("%s", report)
        return encoder
    encoder = VideoLlamaEncoder(config)
    encoder.init_random(config.random_init_seed)
    return encoder.to_runtime(runtime.device, runtime.encoder_dtype)
