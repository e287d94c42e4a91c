"""EVA ViT-g + ln_vision and the query-only Q-Former (transformers' BLIP-2 classes) vs the spec."""

from __future__ import annotations

import torch

from tests.model import reference
from tests.model.reference import TOLERANCE, max_error
from videollama_demo.config import QFormerConfig, VideoLlamaConfig, VisionConfig
from videollama_demo.model.video_llama import VideoLlamaEncoder
from videollama_demo.model.vision import build_qformer, build_vision_encoder


def _frames(pixels: torch.Tensor) -> torch.Tensor:
    return torch.stack([pixels[b, :, t] for b in range(pixels.shape[0]) for t in range(pixels.shape[2])])


def test_vit_and_ln_vision_match_the_eva_reference(encoder: VideoLlamaEncoder, official: dict,
                                                   tiny_config: VideoLlamaConfig, pixels: torch.Tensor) -> None:
    images = _frames(pixels)
    with torch.inference_mode():
        ours = encoder.vision(pixel_values=images).last_hidden_state
    expected = reference.eva_vit(images, official["eva_vit"], official["blip2"], tiny_config)
    assert max_error(ours, expected) <= TOLERANCE


def test_image_qformer_matches_the_bert_reference(encoder: VideoLlamaEncoder, official: dict,
                                                  tiny_config: VideoLlamaConfig, pixels: torch.Tensor) -> None:
    blip2 = official["blip2"]
    image_embeds = reference.eva_vit(_frames(pixels), official["eva_vit"], blip2, tiny_config)
    queries = blip2["query_tokens"].expand(len(image_embeds), -1, -1)
    with torch.inference_mode():
        ours = encoder.image_qformer(query_embeds=encoder.query_tokens.expand(len(image_embeds), -1, -1),
                                     encoder_hidden_states=image_embeds).last_hidden_state
    expected = reference.qformer(queries, image_embeds, blip2, "Qformer.bert.", tiny_config.image_qformer)
    assert max_error(ours, expected) <= TOLERANCE


def test_ln_vision_uses_torch_default_eps_while_the_blocks_use_1e_6() -> None:
    with torch.device("meta"):
        vit = build_vision_encoder(VisionConfig())
    assert vit.post_layernorm.eps == 1e-5
    assert {layer.layer_norm1.eps for layer in vit.encoder.layers} == {1e-6}
    assert {layer.layer_norm2.eps for layer in vit.encoder.layers} == {1e-6}


def test_official_vit_size_is_39_eva_g_blocks() -> None:
    """985,894,528 parameters (spec §2.1) + a zero k-bias slot per block + ln_vision's weight and bias."""
    cfg = VisionConfig()
    with torch.device("meta"):
        vit = build_vision_encoder(cfg)
    assert len(vit.encoder.layers) == 39
    assert vit.embeddings.position_embedding.shape == (1, 257, 1408)
    assert vit.encoder.layers[0].mlp.fc1.weight.shape == (6144, 1408)
    assert vit.config.num_attention_heads == 16 and vit.config.hidden_act == "gelu"
    assert sum(p.numel() for p in vit.parameters()) == 985_894_528 + 39 * 1408 + 2 * 1408


def test_qformer_cross_attention_layers_follow_the_frequency() -> None:
    blip2 = _meta_qformer(QFormerConfig())
    video = _meta_qformer(QFormerConfig(num_layers=2, encoder_width=768, cross_attention_freq=1))
    assert [layer.has_cross_attention for layer in blip2.encoder.layer] == [i % 2 == 0 for i in range(12)]
    assert [layer.has_cross_attention for layer in video.encoder.layer] == [True, True]
    assert blip2.encoder.layer[0].crossattention.attention.key.weight.shape == (768, 1408)


def test_official_qformer_sizes_match_the_pruned_official_ones() -> None:
    """Parameter counts of the trimmed official Q-Formers (spec §2.2, §2.3, §3.3): no text branch left."""
    sizes = {
        105_137_664: QFormerConfig(),
        18_905_088: QFormerConfig(num_layers=2, encoder_width=768, cross_attention_freq=1),
        19_691_520: QFormerConfig(num_layers=2, encoder_width=1024, cross_attention_freq=1, num_queries=8),
    }
    for count, cfg in sizes.items():
        qformer = _meta_qformer(cfg)
        assert sum(p.numel() for p in qformer.parameters()) == count
        assert not any(hasattr(layer, "intermediate") for layer in qformer.encoder.layer)
        assert not list(qformer.buffers())


def _meta_qformer(cfg: QFormerConfig):  # type: ignore[no-untyped-def]
    with torch.device("meta"):
        return build_qformer(cfg)
