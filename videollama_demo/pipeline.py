"""Ties media, encoders and the LLM together: `load_pipeline(...)`, `Pipeline.encode`, sessions."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from .chat.conversation import ChatSession
from .chat.kv_cache import KVCachePool
from .config import VideoLlamaConfig
from .encode_cache import DEFAULT_MEMORY_BYTES, EncodeCache, EncodeKey, file_sha256, tensors_sha256
from .encoding import MediaEncoding
from .hub import (
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
from .media import MediaError
from .media.isolation import DecoderPool
from .media.probe import require_file
from .media.upload import DecodedUpload, check_duration, decode_upload
from .memory import precision_of, startup_report
from .model.llm import LoadedLLM, Quantization, load_llm, resolve_llm_path
from .model.video_llama import VideoLlamaEncoder
from .model.weights import CheckpointError, load_official_weights

log = logging.getLogger(__name__)

StageCallback = Callable[[str], None]
FRAMES_ONLY = "answering from the frames only"
DEFAULT_MAX_SECONDS = 3 * 3600.0  # longest video accepted by default (`--max-duration`)


@dataclass(frozen=True)
class RuntimeChoice:
    device: torch.device
    encoder_dtype: torch.dtype  # autocast dtype of the encoders (official: fp16 on GPU)
    llm_dtype: torch.dtype  # official: bf16 on GPU


def choose_runtime(device: str | torch.device | None, dtype: torch.dtype | None) -> RuntimeChoice:
    """CPU runs fp32. On GPU the default is the official mix (fp16 encoders, bf16 LLM); a GPU without
    bf16 (T4, V100) gets an fp16 LLM. A given dtype is used for both."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu":
        return RuntimeChoice(device, torch.float32, torch.float32)
    if dtype is None:
        return RuntimeChoice(device, torch.float16, _default_llm_dtype(device))
    return RuntimeChoice(device, dtype, dtype)


def _default_llm_dtype(device: torch.device) -> torch.dtype:
    if device.type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
        return torch.float16
    return torch.bfloat16


class Pipeline:
    """The loaded model. Shared by every session; per-session state lives in ChatSession."""

    def __init__(self, config: VideoLlamaConfig, encoder: VideoLlamaEncoder, llm: LoadedLLM,
                 runtime: RuntimeChoice, preview_reason: str | None = None, kv_cache_sessions: int = 8,
                 encode_cache: EncodeCache | None = None, decoder: DecoderPool | None = None,
                 max_seconds: float | None = DEFAULT_MAX_SECONDS) -> None:
        self.config = config
        self.encoder = encoder
        self.llm = llm
        self.runtime = runtime
        self.preview_reason = preview_reason
        self._kv_pool = KVCachePool(kv_cache_sessions)
        self.encode_cache = encode_cache if encode_cache is not None else EncodeCache()
        self._weights_id = _weights_fingerprint(encoder)
        # Uploads are decoded in worker processes when given a pool: a decoder that crashes or hangs
        # on a hostile file then costs one worker, not the server.
        self.decoder = decoder
        self.max_seconds = max_seconds

    @property
    def is_preview(self) -> bool:
        """True when answers come from the preview LLM, not grounded in the video."""
        return self.config.random_init_seed is not None

    def new_session(self) -> ChatSession:
        return ChatSession(self.llm, self.config.llm.template, self.encode, self._kv_pool)

    def encode(self, path: str | Path, use_audio: bool = True, num_frames: int | None = None,
               on_stage: StageCallback | None = None) -> MediaEncoding:
        """Encode a video or an image file into LLM-space tokens (raises MediaError).

        The same bytes with the same settings are encoded once: later calls, from any session, get
        the kept encoding (`from_cache` is then True)."""
        stage = on_stage or (lambda _: None)
        num_frames = self._check_frames(num_frames)
        stage("Reading the file")
        key = self.cache_key(require_file(path), use_audio, num_frames)
        encoding = self.encode_cache.get_or_create(key, lambda: self._encode_file(path, use_audio, num_frames, stage))
        if encoding.from_cache:  # made from another upload of the same bytes, maybe under another name
            encoding = dataclasses.replace(encoding, info=dataclasses.replace(encoding.info, path=str(path)))
            check_duration(encoding.info, self.max_seconds)  # the limit may be lower than when it was made
        return encoding

    def warm_cache(self, paths: Iterable[str | Path], use_audio: bool = True,
                   num_frames: int | None = None) -> threading.Thread:
        """Encode `paths` (e.g. the bundled examples) in a background thread, so that choosing one
        answers at once. A file that fails is logged and skipped; the thread is returned."""
        paths = list(paths)
        worker = threading.Thread(target=self._warm, args=(paths, use_audio, num_frames),
                                  name="encode-cache-warmer", daemon=True)
        worker.start()
        return worker

    def _warm(self, paths: list[str | Path], use_audio: bool, num_frames: int | None) -> None:
        for path in paths:
            try:
                self.encode(path, use_audio=use_audio, num_frames=num_frames)
            except MediaError as err:
                log.warning("could not pre-encode %s: %s", path, err)
            except Exception:  # a background nicety must never take the app down
                log.exception("could not pre-encode %s", path)

    def _encode_file(self, path: str | Path, use_audio: bool, num_frames: int, stage: StageCallback) -> MediaEncoding:
        decoded = self._decode(path, use_audio, num_frames, stage)
        info, frames, clips = decoded.info, decoded.frames, decoded.audio
        stage("Encoding")
        video = self.encoder.encode_video(frames.pixels.unsqueeze(0).to(self.runtime.device))  # (1, Nq, H)
        audio = None
        if clips is not None:
            audio = self.encoder.encode_audio(clips.fbank.unsqueeze(0).to(self.runtime.device))  # (1, Na, H)
        return MediaEncoding(
            kind=info.kind, video=video, audio=audio, frame_indices=frames.indices,
            frame_times=frames.times, message=frames.message, thumbnails=frames.thumbnails,
            audio_note=self._audio_note(decoded, use_audio),
            clip_spans=clips.clip_spans if clips is not None else [], info=info)

    def _decode(self, path: str | Path, use_audio: bool, num_frames: int, stage: StageCallback) -> DecodedUpload:
        """Probe, frames and audio clips, in a worker process when the pipeline has a decoder pool."""
        audio = self.config.audio if use_audio else None
        size = self.config.vision.image_size
        if self.decoder is not None:
            return self.decoder.decode(path, num_frames, size, audio, stage, max_seconds=self.max_seconds)
        try:
            return decode_upload(path, num_frames, size, audio, stage, max_seconds=self.max_seconds)
        except MediaError:
            raise
        except Exception as err:  # a decoder failure we did not foresee is still the file's fault
            log.exception("decoding %s failed", path)
            raise MediaError(f"'{Path(path).name}' could not be read. Please try another file.") from err

    def cache_key(self, path: str | Path, use_audio: bool, num_frames: int) -> EncodeKey:
        """What identifies an encoding: the file's bytes and every setting that changes the numbers
        (image size, frames default, audio settings and the preset name are all in the config)."""
        return EncodeKey.of(file_sha256(path), {
            "config": self.config.to_json(), "weights": self._weights_id, "frames": num_frames, "audio": use_audio,
            "encoder_dtype": str(self.runtime.encoder_dtype), "device": self.runtime.device.type,
            "torch": torch.__version__})

    def _check_frames(self, num_frames: int | None) -> int:
        limit = self.config.max_frame_pos
        num_frames = num_frames or self.config.num_frames
        if not 1 <= num_frames <= limit:
            raise MediaError(f"The number of frames must be between 1 and {limit} "
                             f"(the model's frame-position table has {limit} rows).")
        return num_frames

    def _audio_note(self, decoded: DecodedUpload, use_audio: bool) -> str | None:
        """Why the audio was not used, in words (the official code said nothing); None when it was."""
        if decoded.info.kind == "image" or decoded.audio is not None:
            return None
        if self.config.audio is None:
            return f"This model has no audio branch: {FRAMES_ONLY}."
        if not use_audio:
            return f"Audio is turned off: {FRAMES_ONLY}."
        if not decoded.info.has_audio:
            return f"The file has no audio track: {FRAMES_ONLY}."
        return f"{decoded.audio_error} The audio was not used: {FRAMES_ONLY}."

    def close(self) -> None:
        """Stop the decoder workers (the app calls this when it shuts down)."""
        if self.decoder is not None:
            self.decoder.close()


def _weights_fingerprint(encoder: VideoLlamaEncoder) -> str:
    """Tells weight sets apart for the on-disk cache: every released fine-tune trains the output
    projections (`llama_proj`, `audio_llama_proj`), and hashing them takes milliseconds."""
    projections = [encoder.video_proj] + ([encoder.audio_proj] if hasattr(encoder, "audio_proj") else [])
    return tensors_sha256(param for projection in projections for param in projection.parameters())


def load_pipeline(model: str | VideoLlamaConfig = "auto", checkpoints: str | Path = "checkpoints",
                  device: str | torch.device | None = None, dtype: torch.dtype | None = None,
                  kv_cache_sessions: int = 8, *, paths: PathOverrides | None = None,
                  quantization: Quantization | None = None, lora: str | Path | None = None,
                  merge_lora: bool = True, download: bool = False, cache_bytes: int = DEFAULT_MEMORY_BYTES,
                  cache_dir: str | Path | None = None, isolate_decoding: bool = True,
                  max_seconds: float | None = DEFAULT_MAX_SECONDS) -> Pipeline:
    """Load a preset (or "auto": complete local official checkpoints, else the preview).

    `paths` puts single files elsewhere (keys eva_vit, blip2, vl, al, imagebind, llm). `download`
    fetches what is missing first (with "auto": the 7B model, and only with a GPU and the network).
    `quantization` ("8bit"/"4bit", GPU only) loads the LLM with bitsandbytes; `lora` applies a peft
    adapter to the LLM (merged into its weights unless `merge_lora` is False). Encodings are kept in
    `cache_bytes` of memory, and in `cache_dir` across restarts when given. Uploads are decoded in a
    worker process (`isolate_decoding`), and videos longer than `max_seconds` are refused."""
    checkpoints = Path(checkpoints)
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
    return Pipeline(config, encoder, llm, runtime, preview_reason, kv_cache_sessions,
                    EncodeCache(cache_bytes, cache_dir), decoder, max_seconds)


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
