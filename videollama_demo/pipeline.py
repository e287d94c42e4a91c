"""Ties media, encoders and the LLM together: `load_pipeline(...)`, `Pipeline.encode`, sessions."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .chat.conversation import ChatSession
from .chat.kv_cache import KVCachePool
from .config import VideoLlamaConfig
from .encoding import MediaEncoding
from .hub import find_local_preset, official_paths
from .media import MediaError, MediaInfo, SampledFrames, load_audio_clips, load_image, load_video_frames, probe
from .media.audio import AudioClips
from .model.llm import LoadedLLM, load_llm, resolve_llm_path
from .model.video_llama import VideoLlamaEncoder
from .model.weights import load_official_weights

log = logging.getLogger(__name__)

StageCallback = Callable[[str], None]
FRAMES_ONLY = "answering from the frames only"


@dataclass(frozen=True)
class RuntimeChoice:
    device: torch.device
    encoder_dtype: torch.dtype  # autocast dtype of the encoders (official: fp16 on GPU)
    llm_dtype: torch.dtype  # official: bf16 on GPU


def choose_runtime(device: str | torch.device | None, dtype: torch.dtype | None) -> RuntimeChoice:
    """CPU runs fp32. On GPU the default is the official mix (fp16 encoders, bf16 LLM)."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu":
        return RuntimeChoice(device, torch.float32, torch.float32)
    if dtype is None:
        return RuntimeChoice(device, torch.float16, torch.bfloat16)
    return RuntimeChoice(device, dtype, dtype)


class Pipeline:
    """The loaded model. Shared by every session; per-session state lives in ChatSession."""

    def __init__(self, config: VideoLlamaConfig, encoder: VideoLlamaEncoder, llm: LoadedLLM,
                 runtime: RuntimeChoice, preview_reason: str | None = None, kv_cache_sessions: int = 8) -> None:
        self.config = config
        self.encoder = encoder
        self.llm = llm
        self.runtime = runtime
        self.preview_reason = preview_reason
        self._kv_pool = KVCachePool(kv_cache_sessions)

    @property
    def is_preview(self) -> bool:
        """True when answers come from the preview LLM, not grounded in the video."""
        return self.config.random_init_seed is not None

    def new_session(self) -> ChatSession:
        return ChatSession(self.llm, self.config.llm.template, self.encode, self._kv_pool)

    def encode(self, path: str | Path, use_audio: bool = True, num_frames: int | None = None,
               on_stage: StageCallback | None = None) -> MediaEncoding:
        """Encode a video or an image file into LLM-space tokens (raises MediaError)."""
        stage = on_stage or (lambda _: None)
        num_frames = self._check_frames(num_frames)
        stage("Reading the file")
        info = probe(path)
        stage("Decoding frames")
        frames = self._frames(info, num_frames)
        clips, audio_note = self._audio(info, use_audio, stage)
        stage("Encoding")
        video = self.encoder.encode_video(frames.pixels.unsqueeze(0).to(self.runtime.device))  # (1, Nq, H)
        audio = None
        if clips is not None:
            audio = self.encoder.encode_audio(clips.fbank.unsqueeze(0).to(self.runtime.device))  # (1, Na, H)
        return MediaEncoding(
            kind=info.kind, video=video, audio=audio, frame_indices=frames.indices,
            frame_times=frames.times, message=frames.message, thumbnails=frames.thumbnails,
            audio_note=audio_note, clip_spans=clips.clip_spans if clips is not None else [], info=info)

    def _check_frames(self, num_frames: int | None) -> int:
        limit = self.config.max_frame_pos
        num_frames = num_frames or self.config.num_frames
        if not 1 <= num_frames <= limit:
            raise MediaError(f"The number of frames must be between 1 and {limit} "
                             f"(the model's frame-position table has {limit} rows).")
        return num_frames

    def _frames(self, info: MediaInfo, num_frames: int) -> SampledFrames:
        size = self.config.vision.image_size
        if info.kind == "image":
            return load_image(info.path, image_size=size)
        return load_video_frames(info.path, num_frames=num_frames, image_size=size)

    def _audio(self, info: MediaInfo, use_audio: bool, stage: StageCallback) -> tuple[AudioClips | None, str | None]:
        """The audio clips to use, or None and the reason in words (the official code said nothing)."""
        if info.kind == "image":
            return None, None
        if self.config.audio is None:
            return None, f"This model has no audio branch: {FRAMES_ONLY}."
        if not use_audio:
            return None, f"Audio is turned off: {FRAMES_ONLY}."
        if not info.has_audio:
            return None, f"The file has no audio track: {FRAMES_ONLY}."
        stage("Reading the audio track")
        try:
            return load_audio_clips(info.path, self.config.audio), None
        except MediaError as err:
            log.info("audio not used for %s: %s", info.path, err)
            return None, f"{err} The audio was not used: {FRAMES_ONLY}."


def load_pipeline(model: str | VideoLlamaConfig = "auto", checkpoints: str | Path = "checkpoints",
                  device: str | torch.device | None = None, dtype: torch.dtype | None = None,
                  kv_cache_sessions: int = 8) -> Pipeline:
    """Load a preset (or "auto": local official checkpoints if complete, else the preview)."""
    checkpoints = Path(checkpoints)
    preview_reason = None
    if isinstance(model, VideoLlamaConfig):
        config = model
    elif model == "auto":
        name, preview_reason = find_local_preset(checkpoints)
        config = VideoLlamaConfig.from_name(name)
    else:
        config = VideoLlamaConfig.from_name(model)
    if config.random_init_seed is not None and preview_reason is None:
        preview_reason = "the preview preset was chosen"
    runtime = choose_runtime(device, dtype)
    encoder = _load_encoder(config, checkpoints, runtime)
    llm = load_llm(config.llm, resolve_llm_path(config.llm, checkpoints), runtime.device, runtime.llm_dtype)
    return Pipeline(config, encoder, llm, runtime, preview_reason, kv_cache_sessions)


def _load_encoder(config: VideoLlamaConfig, checkpoints: Path, runtime: RuntimeChoice) -> VideoLlamaEncoder:
    if config.random_init_seed is None:
        encoder, report = load_official_weights(config, official_paths(config, checkpoints),
                                                runtime.device, runtime.encoder_dtype)
        log.info("%s", report)
        return encoder
    encoder = VideoLlamaEncoder(config)
    encoder.init_random(config.random_init_seed)
    return encoder.to_runtime(runtime.device, runtime.encoder_dtype)
