"""EVA ViT-g/14 and the BLIP-2 Q-Former, built from transformers' BLIP-2 classes, which give the
official outputs (LAVIS `lavis/models/eva_vit.py`, Video-LLaMA `video_llama/models/Qformer.py`; tested).

`Blip2VisionModel` is the EVA ViT BLIP-2 uses (pre-LN blocks, q/v bias, exact GELU) and its
`post_layernorm` plays the part of `ln_vision`. `Blip2QFormerModel` with
`use_qformer_text_input=False` is the query-only Q-Former of all three Q-Formers (Video-LLaMA
`VideoLLAMA.__init__` drops the text branch: `Qformer.cls = None`, word and position embeddings None).
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface, Blip2QFormerConfig, Blip2QFormerModel, Blip2VisionConfig, Blip2VisionModel

from ..config import QFormerConfig, VisionConfig

EVA_ATTENTION = "video_llama_eva"


def _eva_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                   attention_mask: torch.Tensor | None, scaling: float, dropout: float = 0.0,
                   **kwargs: object) -> tuple[torch.Tensor, torch.Tensor]:
    """EVA scales q *before* q·kᵀ (LAVIS `eva_vit.py`, `Attention.forward`); in fp16 that rounds
    differently from scaling the scores.

    The ViT never masks and never runs in training mode, so the mask and dropout are unused.
    """
    scores = torch.matmul(query * scaling, key.transpose(-1, -2))  # (N, heads, L, L)
    probs = scores.softmax(dim=-1)
    context = torch.matmul(probs, value).transpose(1, 2).contiguous()  # (N, L, heads, head_dim)
    return context, probs


AttentionInterface.register(EVA_ATTENTION, _eva_attention)


def build_vision_encoder(cfg: VisionConfig) -> Blip2VisionModel:
    """The first `cfg.depth` EVA blocks, then `ln_vision` (as `post_layernorm`); no other final norm."""
    config = Blip2VisionConfig(
        hidden_size=cfg.width,
        intermediate_size=cfg.mlp_dim,
        num_hidden_layers=cfg.depth,
        num_attention_heads=cfg.num_heads,
        image_size=cfg.image_size,
        patch_size=cfg.patch_size,
        hidden_act="gelu",  # exact erf GELU, as EVA's nn.GELU
        layer_norm_eps=cfg.layer_norm_eps,
        qkv_bias=True,
        attention_dropout=0.0,
        attn_implementation=EVA_ATTENTION,
    )
    model = Blip2VisionModel(config)
    # ln_vision is a plain torch LayerNorm (eps 1e-5); the config's eps (1e-6) is right for the blocks only.
    model.post_layernorm.eps = cfg.ln_vision_eps
    return model.eval()


def build_qformer(cfg: QFormerConfig) -> Blip2QFormerModel:
    """A query-only, post-LN BERT Q-Former with cross-attention every `cross_attention_freq` layers."""
    config = Blip2QFormerConfig(
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        intermediate_size=cfg.intermediate_size,
        hidden_act="gelu",
        layer_norm_eps=cfg.layer_norm_eps,
        cross_attention_frequency=cfg.cross_attention_freq,
        encoder_hidden_size=cfg.encoder_width,
        use_qformer_text_input=False,  # the official code prunes the text branch
        hidden_dropout_prob=0.0,  # inference only
        attention_probs_dropout_prob=0.0,
        attn_implementation="eager",  # BERT's own order: q·kᵀ, then ÷√d, softmax
    )
    return Blip2QFormerModel(config).eval()
