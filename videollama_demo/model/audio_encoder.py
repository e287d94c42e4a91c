"""ImageBind-Huge's audio path: fbank patches → 12-block ViT → CLS head → unit vector ×20
(ImageBind `imagebind/models/imagebind_model.py`, `imagebind_huge`, audio branch; Video-LLaMA keeps a
copy in `video_llama/models/ImageBind/`).

Ours because no usable package exists (the `imagebind` PyPI name is an empty placeholder). Only
the audio modality is built; the other five ImageBind modalities never run in Video-LLaMA.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import AudioEncoderConfig

BLOCK_NORM_EPS = 1e-6  # ImageBind's trunk and head LayerNorms; the stem's LayerNorm keeps torch's 1e-5


class AudioBlock(nn.Module):
    """A pre-LN transformer block whose attention has one extra learned key/value slot (`add_bias_kv`)."""

    def __init__(self, width: int, num_heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=BLOCK_NORM_EPS)
        self.attn = nn.MultiheadAttention(width, num_heads, bias=True, add_bias_kv=True)
        self.norm2 = nn.LayerNorm(width, eps=BLOCK_NORM_EPS)
        self.fc1 = nn.Linear(width, mlp_ratio * width)
        self.fc2 = nn.Linear(mlp_ratio * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(L, N, D) -> (L, N, D): sequence first, the layout ImageBind feeds nn.MultiheadAttention."""
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class ImageBindAudioEncoder(nn.Module):
    """(N, 1, mel, target_len) normalised fbank clips -> (N, out_dim) embeddings of norm `logit_scale`."""

    def __init__(self, cfg: AudioEncoderConfig) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(1, cfg.width, kernel_size=cfg.kernel_size, stride=cfg.stride, bias=False)
        self.patch_norm = nn.LayerNorm(cfg.width)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.width))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_patches + 1, cfg.width))
        self.blocks = nn.ModuleList(AudioBlock(cfg.width, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.head_norm = nn.LayerNorm(cfg.width, eps=BLOCK_NORM_EPS)
        self.head_proj = nn.Linear(cfg.width, cfg.out_dim, bias=False)
        # ImageBind's fixed exp(log_logit_scale) buffer; Video-LLaMA feeds this scaled vector to its Q-Former.
        self.logit_scale = cfg.logit_scale

    def embed_patches(self, fbank: torch.Tensor) -> torch.Tensor:
        """(N, 1, mel, target_len) -> (N, 1 + patches, D): LN'd conv patches after a CLS token, plus positions."""
        patches = self.patch_embed(fbank).flatten(2).transpose(1, 2)  # (N, 12*19, D) for 128x204
        cls = self.cls_token.expand(patches.shape[0], -1, -1)
        return torch.cat([cls, self.patch_norm(patches)], dim=1) + self.pos_embed

    def forward(self, fbank: torch.Tensor) -> torch.Tensor:
        x = self.embed_patches(fbank).transpose(0, 1)  # (L, N, D)
        for block in self.blocks:
            x = block(x)
        cls = self.head_norm(x[0])  # (N, D): the head keeps only the CLS token
        return F.normalize(self.head_proj(cls), dim=-1) * self.logit_scale
