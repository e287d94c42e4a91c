"""`load_pipeline`: choose the preset, the device and dtypes, find (or download) the weights, load."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..config import DEFAULT_MAX_SECONDS, VideoLlamaConfig
from ..engines.base import Engine
from ..engines.local import LocalEngine
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
from ..model.llm import LoadedLLM, Quantization, load_llm, resolve_llm_path
from ..model.video_llama import VideoLlamaEncoder
from ..model.weights import CheckpointError, load_official_weights
from .encode_cache import DEFAULT_MEMORY_BYTES, EncodeCache
from .memory import precision_of, startup_report
from .pipeline import Pipeline
from .runtime import RuntimeChoice, choose_runtime
from .speech_cache import Transcriber, TranscriptCache
from .zero_gpu import ZeroGPUEngine, on_zero_gpu

log = logging.getLogger(__name__)


def load_pipeline(model: str | VideoLlamaConfig = "auto", checkpoints: str | Path = "checkpoints",
                  device: str | torch.device | None = None, dtype: torch.dtype | None = None,
                  kv_cache_sessions: int = 8, *, paths: PathOverrides | None = None,
                  quantization: Quantization | None = None, lora: str | Path | None = None,
                  merge_lora: bool = True, download: bool = False, cache_bytes: int = DEFAULT_MEMORY_BYTES,
                  cache_dir: str | Path | None = None, isolate_decoding: bool = True,
                  max_seconds: float | None = DEFAULT_MAX_SECONDS, asr_model: str = SHIPPED,
                  asr_language: str | None = None) -> Pipeline:
    """Load a preset (or "auto": complete local official checkpoints, else the preview).

    `paths` puts single files elsewhere (keys eva_vit, blip2, vl, al, imagebind, llm). `download`
    fetches what is missing first (with "auto": the 7B model, and only with a GPU and the network).
    `quantization` ("8bit"/"4bit", GPU only) loads the LLM with bitsandbytes; `lora` applies a peft
    adapter to the LLM (merged into its weights unless `merge_lora` is False). Encodings are kept in
    `cache_bytes` of memory, and in `cache_dir` across restarts when given. Uploads are decoded in a
    worker process (`isolate_decoding`), and videos longer than `max_seconds` are refused.
    Subtitles from speech use the Whisper model `asr_model` (the shipped English tiny model, a
    faster-whisper name such as "large-v3", fetched only with `download`, or a folder) in
    `asr_language` (None: detected); their transcripts are kept with the encodings."""
    checkpoints = Path(checkpoints)
    speech_model = resolve_speech_model(asr_model, allow_download=download)  # a bad flag fails at once
    config, preview_reason = _choose_config(model, checkpoints, paths, download)
    runtime = choose_runtime(device, dtype)
    weights = None if config.random_init_seed is not None else _resolve(config, checkpoints, paths, download)
    encoder = _load_encoder(config, weights, runtime)
    llm_path = weights.llm_dir if weights is not None else resolve_llm_path(config.llm, checkpoints)
    llm = load_llm(config.llm, llm_path, runtime.device, runtime.llm_dtype, quantization, lora, merge_lora)
    if log.isEnabledFor(logging.INFO):
        precision = precision_of(runtime.device, runtime.llm_dtype, quantization)
        log.info("%s", startup_report(config, precision, llm.model.config, runtime.device))
    decoder = DecoderPool() if isolate_decoding else None
    if decoder is not None:
        decoder.warm_up()  # the worker imports torch in the background, not on the first upload
    return Pipeline(config, encoder, llm, runtime, engine=_local_engine(llm, kv_cache_sessions),
                    preview_reason=preview_reason, encode_cache=EncodeCache(cache_bytes, cache_dir), decoder=decoder,
                    max_seconds=max_seconds,
                    transcriber=Transcriber(speech_model, asr_language, TranscriptCache(cache_dir), decoder,
                                            max_seconds))


def _local_engine(llm: LoadedLLM, kv_cache_sessions: int) -> Engine:
    """On ZeroGPU each answer runs from scratch in a GPU call; elsewhere the caches are kept."""
    return ZeroGPUEngine(llm) if on_zero_gpu() else LocalEngine(llm, kv_cache_sessions)


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
