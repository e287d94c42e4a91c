"""ImageBind-Huge's audio path (ours) vs the spec's formulas, stage by stage."""

from __future__ import annotations

import torch

from tests.model import reference
from tests.model.reference import TOLERANCE, max_error
from videollama_demo.config import AudioEncoderConfig, VideoLlamaConfig
from videollama_demo.model.audio_encoder import ImageBindAudioEncoder
from videollama_demo.model.video_llama import VideoLlamaEncoder


def test_stem_matches_the_reference(encoder: VideoLlamaEncoder, official: dict, tiny_config: VideoLlamaConfig,
                                    fbank: torch.Tensor) -> None:
    clips = fbank[0]
    with torch.inference_mode():
        ours = encoder.audio_encoder.embed_patches(clips)
    expected = reference.imagebind_stem(clips, official["imagebind"], tiny_config.audio)
    assert ours.shape == (8, 12 * 19 + 1, tiny_config.audio.width)  # the real 128x204 front end: 228 patches + CLS
    assert max_error(ours, expected) <= TOLERANCE


def test_block_with_learned_key_value_slot_matches_the_reference(encoder: VideoLlamaEncoder, official: dict,
                                                                 tiny_config: VideoLlamaConfig) -> None:
    tokens = torch.randn((3, 229, tiny_config.audio.width), generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        ours = encoder.audio_encoder.blocks[1](tokens.transpose(0, 1)).transpose(0, 1)
    expected = reference.imagebind_block(tokens, official["imagebind"], 1, tiny_config.audio.num_heads)
    assert max_error(ours, expected) <= TOLERANCE


def test_encoder_matches_the_reference_and_outputs_norm_20(encoder: VideoLlamaEncoder, official: dict,
                                                           tiny_config: VideoLlamaConfig, fbank: torch.Tensor) -> None:
    clips = fbank.flatten(0, 1)
    with torch.inference_mode():
        ours = encoder.audio_encoder(clips)
    expected = reference.imagebind_audio(clips, official["imagebind"], tiny_config.audio)
    assert max_error(ours, expected) <= TOLERANCE
    assert torch.allclose(ours.norm(dim=-1), torch.full((len(clips),), 20.0))


def test_official_audio_encoder_size() -> None:
    """ImageBind-Huge audio: preprocessor 374,784 + trunk 85,072,896 + head 787,968 parameters (spec §7.2)."""
    with torch.device("meta"):
        audio = ImageBindAudioEncoder(AudioEncoderConfig())
    assert audio.pos_embed.shape == (1, 229, 768)
    assert audio.blocks[0].attn.bias_k.shape == (1, 1, 768)
    assert sum(p.numel() for p in audio.parameters()) == 374_784 + 85_072_896 + 787_968
    assert audio.patch_norm.eps == 1e-5 and audio.blocks[0].norm1.eps == 1e-6 and audio.head_norm.eps == 1e-6
