"""VideoLlamaEncoder: frames -> video tokens, clips -> audio tokens, runtime placement, preview init."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.model import reference
from tests.model.reference import TOLERANCE, max_error
from videollama_demo.config import VideoLlamaConfig
from videollama_demo.model.video_llama import VideoLlamaEncoder, add_frame_positions


def test_encode_video_matches_the_reference(encoder: VideoLlamaEncoder, official: dict,
                                            tiny_config: VideoLlamaConfig, pixels: torch.Tensor) -> None:
    ours = encoder.encode_video(pixels)
    assert ours.shape == (2, tiny_config.video_qformer.num_queries, tiny_config.llm.hidden_size)
    assert max_error(ours, reference.encode_video(pixels, official, tiny_config)) <= TOLERANCE


def test_frame_positions_are_added_per_frame_before_the_frame_major_flatten() -> None:
    batch, frames, queries, hidden = 2, 3, 4, 5
    frame_queries = torch.randn(batch * frames, queries, hidden)
    positions = torch.randn(frames, hidden)
    expected = reference.frame_tokens(frame_queries, positions, batch, frames)
    assert torch.equal(add_frame_positions(frame_queries, positions), expected)


def test_video_qformer_and_projection_match_the_reference(encoder: VideoLlamaEncoder, official: dict,
                                                          tiny_config: VideoLlamaConfig) -> None:
    vl = official["vl"]
    tokens = torch.randn((2, 3 * tiny_config.image_qformer.num_queries, tiny_config.image_qformer.hidden_size))
    queries = vl["video_query_tokens"].expand(2, -1, -1)
    expected = reference.qformer(queries, tokens, vl, "video_Qformer.bert.", tiny_config.video_qformer)
    with torch.inference_mode():
        ours = encoder.video_qformer(query_embeds=encoder.video_query_tokens.expand(2, -1, -1),
                                     encoder_hidden_states=tokens).last_hidden_state
        projected = encoder.video_proj(expected)
    assert max_error(ours, expected) <= TOLERANCE
    assert max_error(projected, reference.linear(expected, vl, "llama_proj")) <= TOLERANCE


def test_an_image_is_a_one_frame_video(encoder: VideoLlamaEncoder, official: dict, tiny_config: VideoLlamaConfig,
                                       pixels: torch.Tensor) -> None:
    image = pixels[:1, :, :1]  # (1, 3, 1, S, S)
    assert max_error(encoder.encode_video(image), reference.encode_video(image, official, tiny_config)) <= TOLERANCE


def test_samples_of_a_batch_do_not_mix(encoder: VideoLlamaEncoder, pixels: torch.Tensor) -> None:
    together = encoder.encode_video(pixels)
    apart = torch.cat([encoder.encode_video(pixels[i:i + 1]) for i in range(len(pixels))])
    assert max_error(together, apart) <= TOLERANCE


def test_more_frames_than_frame_positions_is_a_clear_error(encoder: VideoLlamaEncoder,
                                                           tiny_config: VideoLlamaConfig) -> None:
    size = tiny_config.vision.image_size
    with pytest.raises(ValueError, match=r"33 frames given, but the frame-position table has 32 rows"):
        encoder.encode_video(torch.zeros(1, 3, 33, size, size))


def test_frames_of_the_wrong_size_are_a_clear_error(encoder: VideoLlamaEncoder) -> None:
    with pytest.raises(ValueError, match=r"expected frames of shape \(B, 3, T, 28, 28\), got \(1, 3, 2, 32, 32\)"):
        encoder.encode_video(torch.zeros(1, 3, 2, 32, 32))


def test_encode_audio_matches_the_reference(encoder: VideoLlamaEncoder, official: dict,
                                            tiny_config: VideoLlamaConfig, fbank: torch.Tensor) -> None:
    ours = encoder.encode_audio(fbank)
    assert ours.shape == (2, tiny_config.audio_qformer.num_queries, tiny_config.llm.hidden_size)
    assert max_error(ours, reference.encode_audio(fbank, official, tiny_config)) <= TOLERANCE


def test_fewer_clips_use_the_first_audio_positions(encoder: VideoLlamaEncoder, official: dict,
                                                   tiny_config: VideoLlamaConfig, fbank: torch.Tensor) -> None:
    clips = fbank[:1, :3]
    assert max_error(encoder.encode_audio(clips), reference.encode_audio(clips, official, tiny_config)) <= TOLERANCE


def test_more_clips_than_audio_positions_is_a_clear_error(encoder: VideoLlamaEncoder, fbank: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="9 audio clips given, but the audio-position table has 8 rows"):
        encoder.encode_audio(torch.cat([fbank[:1], fbank[:1, :1]], dim=1))


def test_a_model_without_audio_branch_says_so() -> None:
    cfg = VideoLlamaConfig.from_name("tiny", audio=None, audio_qformer=None)
    encoder = VideoLlamaEncoder(cfg)
    assert not hasattr(encoder, "audio_encoder")
    with pytest.raises(ValueError, match="has no audio branch"):
        encoder.encode_audio(torch.zeros(1, 8, 1, 128, 204))


def test_cpu_runtime_is_fp32_without_autocast(tiny_config: VideoLlamaConfig) -> None:
    encoder = VideoLlamaEncoder(tiny_config).to_runtime("cpu", torch.float16)
    assert encoder.autocast_dtype is None
    assert {p.dtype for p in encoder.parameters()} == {torch.float32}
    assert not any(p.requires_grad for p in encoder.parameters())


def test_init_random_is_seeded_and_sets_every_parameter(tiny_config: VideoLlamaConfig) -> None:
    torch.manual_seed(1)
    first = VideoLlamaEncoder(tiny_config)
    torch.manual_seed(2)  # a different construction-time init, which init_random must overwrite everywhere
    second = VideoLlamaEncoder(tiny_config)
    first.init_random(0)
    second.init_random(0)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    second.init_random(1)
    assert not torch.equal(first.query_tokens, second.query_tokens)
    assert torch.equal(first.vision.post_layernorm.weight, torch.ones(tiny_config.vision.width))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_official_mixed_precision_on_gpu(fresh_encoder: VideoLlamaEncoder, official: dict,
                                         tiny_config: VideoLlamaConfig, pixels: torch.Tensor, fbank: torch.Tensor,
                                         dtype: torch.dtype) -> None:
    """Spec §8: half-precision ViT linears under autocast, everything else fp32; outputs near the fp32 ones."""
    encoder = fresh_encoder.to_runtime("cuda", dtype)
    half = {id(p) for m in encoder.vision.encoder.modules() if isinstance(m, nn.Linear) for p in m.parameters()}
    assert {p.dtype for p in encoder.parameters() if id(p) in half} == {dtype}
    assert {p.dtype for p in encoder.parameters() if id(p) not in half} == {torch.float32}
    video, audio = encoder.encode_video(pixels), encoder.encode_audio(fbank)
    assert video.dtype == dtype and audio.dtype == dtype  # the projections run under autocast, as official
    expected_video = reference.encode_video(pixels, official, tiny_config)
    expected_audio = reference.encode_audio(fbank, official, tiny_config)
    tolerance = 0.05 if dtype == torch.bfloat16 else 0.01
    assert max_error(video.cpu(), expected_video) <= tolerance * expected_video.abs().max().item()
    assert max_error(audio.cpu(), expected_audio) <= tolerance * expected_audio.abs().max().item()
