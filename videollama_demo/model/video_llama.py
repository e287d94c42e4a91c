"""Video-LLaMA's encoders glued together: frames → video tokens, audio clips → audio tokens
(Video-LLaMA `video_llama/models/video_llama.py`, `VideoLLAMA.encode_videoQformer_visual` and
`encode_audioQformer`).

`VideoLlamaEncoder` holds every module the official `VideoLLAMA` runs before the LLM, under our
own names (`weights.py` maps the official keys onto them). Its `encode_*` methods return
LLM-space embeddings ready to splice into the prompt.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch
from torch import nn
from transformers import Blip2QFormerModel

from ..config import VideoLlamaConfig
from .audio_encoder import ImageBindAudioEncoder
from .vision import build_qformer, build_vision_encoder

log = logging.getLogger(__name__)

INIT_STD = 0.02  # BERT/ViT initializer range, for the preview's seeded random weights
HALF_DTYPES = (torch.float16, torch.bfloat16)


class VideoLlamaEncoder(nn.Module):
    """Vision + BLIP-2 Q-Former + video Q-Former (+ ImageBind audio + audio Q-Former) and projections."""

    def __init__(self, cfg: VideoLlamaConfig) -> None:
        super().__init__()
        self.config = cfg
        hidden = cfg.image_qformer.hidden_size
        self.vision = build_vision_encoder(cfg.vision)
        self.image_qformer = build_qformer(cfg.image_qformer)
        self.query_tokens = nn.Parameter(torch.zeros(1, cfg.image_qformer.num_queries, hidden))
        self.frame_position_embedding = nn.Embedding(cfg.max_frame_pos, hidden)
        self.video_qformer = build_qformer(cfg.video_qformer)
        self.video_query_tokens = nn.Parameter(torch.zeros(1, cfg.video_qformer.num_queries, hidden))
        self.video_proj = nn.Linear(cfg.video_qformer.hidden_size, cfg.llm.hidden_size)  # official `llama_proj`
        if cfg.audio is not None and cfg.audio_qformer is not None:
            self.audio_encoder = ImageBindAudioEncoder(cfg.audio)
            self.audio_position_embedding = nn.Embedding(cfg.audio.num_clips, cfg.audio.out_dim)
            self.audio_qformer = build_qformer(cfg.audio_qformer)
            self.audio_query_tokens = nn.Parameter(
                torch.zeros(1, cfg.audio_qformer.num_queries, cfg.audio_qformer.hidden_size))
            self.audio_proj = nn.Linear(cfg.audio_qformer.hidden_size, cfg.llm.hidden_size)  # `audio_llama_proj`
        self.autocast_dtype: torch.dtype | None = None  # set by to_runtime; None = plain fp32
        self.requires_grad_(False)
        self.eval()

    @property
    def device(self) -> torch.device:
        return self.query_tokens.device

    @torch.inference_mode()
    def encode_video(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, S, S) CLIP-normalised frames (an image is T=1) -> (B, video queries, llm hidden)."""
        frames = self._check_pixels(pixels).shape[2]
        pixels = pixels.to(self.device, torch.float32)
        with self._autocast():
            images = pixels.transpose(1, 2).flatten(0, 1)  # (B*T, 3, S, S), frames of one sample together
            image_embeds = self.vision(pixel_values=images).last_hidden_state  # (B*T, 257, 1408), after ln_vision
            frame_queries = _run_qformer(self.image_qformer, self.query_tokens, image_embeds)  # (B*T, 32, 768)
            positions = self.frame_position_embedding(torch.arange(frames, device=self.device))  # (T, 768)
            frame_tokens = add_frame_positions(frame_queries, positions)  # (B, T*32, 768)
            video = _run_qformer(self.video_qformer, self.video_query_tokens, frame_tokens)  # (B, 32, 768)
            return self.video_proj(video)  # (B, 32, llm hidden)

    @torch.inference_mode()
    def encode_audio(self, fbank: torch.Tensor) -> torch.Tensor:
        """(B, S, 1, mel, L) normalised fbank clips -> (B, audio queries, llm hidden)."""
        batch, clips = self._check_fbank(fbank).shape[:2]
        fbank = fbank.to(self.device, torch.float32)
        with self._autocast():
            clip_embeds = self.audio_encoder(fbank.flatten(0, 1))  # (B*S, 1024): unit vectors ×20
            positions = self.audio_position_embedding(torch.arange(clips, device=self.device))  # (S, 1024)
            clip_tokens = clip_embeds.unflatten(0, (batch, clips)) + positions  # (B, S, 1024)
            audio = _run_qformer(self.audio_qformer, self.audio_query_tokens, clip_tokens)  # (B, 8, 768)
            return self.audio_proj(audio)  # (B, 8, llm hidden)

    def to_runtime(self, device: str | torch.device, dtype: torch.dtype = torch.float32) -> VideoLlamaEncoder:
        """Move and cast once. CPU: fp32. CUDA + fp16/bf16: the official mix (fp16 ViT as
        `vit_precision="fp16"`, the rest under `maybe_autocast`, Video-LLaMA `video_llama/models/blip2.py`).

        In the mix only the ViT blocks' linear layers are half precision; LayerNorms, CLS/positions,
        the patch conv, ImageBind, every Q-Former and the projections stay fp32, as in the official code.
        """
        if dtype not in (torch.float32, *HALF_DTYPES):
            raise ValueError(f"encoder dtype must be float32, float16 or bfloat16, got {dtype}")
        device = torch.device(device)
        if device.type == "cpu" and dtype != torch.float32:
            log.info("the encoders run in fp32 on CPU (asked for %s)", dtype)
            dtype = torch.float32
        autocast_dtype = dtype if dtype in HALF_DTYPES else None
        half_modules = set(self._half_precision_modules()) if autocast_dtype else set()
        for module in self.modules():
            _move_own_tensors(module, device, autocast_dtype if module in half_modules else torch.float32)
        self.autocast_dtype = autocast_dtype
        return self

    def _half_precision_modules(self) -> Iterator[nn.Module]:
        """The official fp16 ViT weights (`convert_weights_to_fp16`): its blocks' Linear layers.

        The fused qkv bias goes with its Linear; the official fp32 q/v biases are cast to half by autocast
        at the op, which gives the same values. The patch conv is fp16 in the official code too, but
        transformers gives the CLS/position sum the conv weight's dtype: fp32 keeps that sum, and so the
        residual stream, fp32 as in the official code. Autocast runs the conv in half precision either way.
        """
        return (m for m in self.vision.encoder.modules() if isinstance(m, nn.Linear))

    def init_random(self, seed: int) -> None:
        """Seeded weights for every parameter (the preview preset has no weight files)."""
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for module in self.modules():
                for name, param in module.named_parameters(recurse=False):
                    param.copy_(_random_init(module, name, param, generator))

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _check_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        size = self.config.vision.image_size
        if pixels.dim() != 5 or pixels.shape[1] != 3 or tuple(pixels.shape[3:]) != (size, size):
            raise ValueError(f"expected frames of shape (B, 3, T, {size}, {size}), got {tuple(pixels.shape)}")
        frames, limit = pixels.shape[2], self.config.max_frame_pos
        if not 1 <= frames <= limit:
            raise ValueError(f"{frames} frames given, but the frame-position table has {limit} rows: "
                             f"use 1 to {limit} frames")
        return pixels

    def _check_fbank(self, fbank: torch.Tensor) -> torch.Tensor:
        audio = self.config.audio
        if audio is None:
            raise ValueError(f"model {self.config.name!r} has no audio branch")
        if fbank.dim() != 5 or tuple(fbank.shape[2:]) != (1, audio.num_mel_bins, audio.target_length):
            raise ValueError(f"expected fbank clips of shape (B, S, 1, {audio.num_mel_bins}, "
                             f"{audio.target_length}), got {tuple(fbank.shape)}")
        if not 1 <= fbank.shape[1] <= audio.num_clips:
            raise ValueError(f"{fbank.shape[1]} audio clips given, but the audio-position table has "
                             f"{audio.num_clips} rows")
        return fbank


def add_frame_positions(frame_queries: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """(B*T, Nq, H) per-frame queries + (T, H) positions -> (B, T*Nq, H), frame-major (t outer, q inner).

    Each frame's position is added to all of its queries *before* the flatten (`encode_videoQformer_visual`).
    """
    frames = positions.shape[0]
    frame_queries = frame_queries.unflatten(0, (-1, frames))  # (B, T, Nq, H)
    return (frame_queries + positions[:, None, :]).flatten(1, 2)


def _run_qformer(qformer: Blip2QFormerModel, query_tokens: torch.Tensor, encoder_states: torch.Tensor) -> torch.Tensor:
    """Query-only Q-Former over `encoder_states` (N, L, enc_width) -> (N, queries, hidden); no masks."""
    queries = query_tokens.expand(encoder_states.shape[0], -1, -1)
    return qformer(query_embeds=queries, encoder_hidden_states=encoder_states).last_hidden_state


def _move_own_tensors(module: nn.Module, device: torch.device, dtype: torch.dtype) -> None:
    """Move `module`'s own parameters and buffers (not its children's), casting floating parameters."""
    for name, param in list(module.named_parameters(recurse=False)):
        setattr(module, name, nn.Parameter(param.to(device, dtype), requires_grad=False))
    for name, buffer in list(module.named_buffers(recurse=False)):
        setattr(module, name, buffer.to(device))


def _random_init(module: nn.Module, name: str, param: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    if isinstance(module, nn.LayerNorm):
        return torch.ones_like(param) if name == "weight" else torch.zeros_like(param)
    if name.endswith("bias"):  # not bias_k/bias_v: those are learned key/value slots
        return torch.zeros_like(param)
    return torch.randn(param.shape, generator=generator, dtype=param.dtype) * INIT_STD
