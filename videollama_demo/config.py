"""Every size and default of the pipeline, as frozen dataclasses with named presets.

`VideoLlamaConfig.from_name("video-llama-2-7b")` gives the official model; `tiny` is what the
tests build; `preview` is the embedded default that runs without the Video-LLaMA weights.
Sizes follow the official code: Video-LLaMA `video_llama/models/eva_vit.py` (`create_eva_vit_g`),
`video_llama/models/Qformer.py`, `video_llama/models/video_llama.py` (`VideoLLAMA.__init__`),
ImageBind `imagebind/models/imagebind_model.py` (`imagebind_huge`) and the LLMs' `config.json`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal

TemplateName = Literal["llama2", "vicuna", "chatml"]
LLMFormat = Literal["hf", "gguf"]

DEFAULT_MAX_SECONDS = 3 * 3600.0  # the longest video accepted by default (`--max-duration`)


@dataclass(frozen=True)
class VisionConfig:
    """EVA ViT-g/14 as BLIP-2 uses it: the first `depth` blocks, no final norm, then ln_vision."""

    image_size: int = 224
    patch_size: int = 14
    width: int = 1408
    depth: int = 39  # EVA-CLIP-g has 40 blocks; BLIP-2 keeps the output of the 39th
    num_heads: int = 16
    mlp_dim: int = 6144  # int(1408 * 4.3637)
    layer_norm_eps: float = 1e-6
    ln_vision_eps: float = 1e-5  # torch default; not the blocks' 1e-6

    def __post_init__(self) -> None:
        _check_positive(self, "image_size", "patch_size", "width", "depth", "num_heads", "mlp_dim")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.width % self.num_heads:
            raise ValueError(f"vision width {self.width} is not divisible by num_heads {self.num_heads}")


@dataclass(frozen=True)
class QFormerConfig:
    """A query-only BERT Q-Former (post-LN; cross-attention every `cross_attention_freq` layers)."""

    num_layers: int = 12
    hidden_size: int = 768
    num_heads: int = 12
    intermediate_size: int = 3072
    encoder_width: int = 1408
    cross_attention_freq: int = 2
    num_queries: int = 32
    layer_norm_eps: float = 1e-12

    def __post_init__(self) -> None:
        _check_positive(self, "num_layers", "hidden_size", "num_heads", "intermediate_size",
                        "encoder_width", "cross_attention_freq", "num_queries")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"Q-Former hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")


@dataclass(frozen=True)
class AudioEncoderConfig:
    """ImageBind-Huge's audio trunk and its fbank front end (Video-LLaMA's copy of ImageBind:
    `video_llama/models/ImageBind/data.py`, `load_and_transform_audio_data`, and
    `video_llama/models/ImageBind/models/imagebind_model.py`, `imagebind_huge`)."""

    width: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: int = 4
    kernel_size: int = 16
    stride: int = 10
    out_dim: int = 1024
    logit_scale: float = 20.0  # the fixed exp(log_logit_scale) of ImageBind's audio postprocessor
    sample_rate: int = 16000
    num_clips: int = 8
    clip_duration: float = 2.0
    num_mel_bins: int = 128
    target_length: int = 204
    fbank_mean: float = -4.268
    fbank_std: float = 9.138

    def __post_init__(self) -> None:
        _check_positive(self, "width", "depth", "num_heads", "mlp_ratio", "kernel_size", "stride",
                        "out_dim", "sample_rate", "num_clips", "num_mel_bins", "target_length")
        if self.width % self.num_heads:
            raise ValueError(f"audio width {self.width} is not divisible by num_heads {self.num_heads}")
        if self.clip_duration <= 0 or self.fbank_std <= 0:
            raise ValueError("clip_duration and fbank_std must be positive")

    @property
    def num_patches(self) -> int:
        rows = (self.num_mel_bins - self.kernel_size) // self.stride + 1
        cols = (self.target_length - self.kernel_size) // self.stride + 1
        return rows * cols  # 12 * 19 = 228 for the official front end


@dataclass(frozen=True)
class LlamaShape:
    """A LLaMA's published `config.json` (with `LLMConfig.hidden_size`): its memory is known before it is on disk."""

    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    vocab_size: int
    max_position_embeddings: int
    rms_norm_eps: float


# The `config.json` of `llama-2-7b-chat-hf` in DAMO-NLP-SG/Video-LLaMA-2-7B-Finetuned (rms_norm_eps 1e-6, not the
# later 1e-5 of Meta's own conversion) and of `llama-2-13b-chat-hf` in DAMO-NLP-SG/Video-LLaMA-2-13B-Finetuned.
LLAMA_2_7B = LlamaShape(intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32, vocab_size=32000,
                        max_position_embeddings=4096, rms_norm_eps=1e-6)
LLAMA_2_13B = LlamaShape(intermediate_size=13824, num_hidden_layers=40, num_attention_heads=40, vocab_size=32000,
                         max_position_embeddings=4096, rms_norm_eps=1e-6)
VICUNA_7B_V0 = dataclasses.replace(LLAMA_2_7B, vocab_size=32001,  # v0 added a pad token
                                   max_position_embeddings=2048)


@dataclass(frozen=True)
class LLMConfig:
    """The frozen chat LLM: where it lives, how it is prompted, and (official presets) its published shape."""

    hidden_size: int = 4096
    path: str = "Video-LLaMA-2-7B-Finetuned/llama-2-7b-chat-hf"  # relative to the checkpoints dir
    format: LLMFormat = "hf"
    template: TemplateName = "llama2"
    context_length: int = 2000  # official Chat.answer max_length (prompt + new tokens)
    max_new_tokens: int = 300
    shape: LlamaShape | None = None  # None: read it from the LLM folder

    def __post_init__(self) -> None:
        _check_positive(self, "hidden_size", "context_length", "max_new_tokens")
        _check_choice(self, "format", ("hf", "gguf"))
        _check_choice(self, "template", ("llama2", "vicuna", "chatml"))
        if self.max_new_tokens >= self.context_length:
            raise ValueError(f"max_new_tokens {self.max_new_tokens} leaves no room in "
                             f"context_length {self.context_length}")


@dataclass(frozen=True)
class CheckpointFiles:
    """Official file names, relative to the checkpoints dir (a file under the `hf_repo` folder comes from that
    Hugging Face repo), and the download size of the repo's files. Empty name = not used."""

    eva_vit: str = "eva_vit_g.pth"
    blip2: str = "blip2_pretrained_flant5xxl.pth"
    vl: str = "Video-LLaMA-2-7B-Finetuned/VL_LLaMA_2_7B_Finetuned.pth"
    al: str = "Video-LLaMA-2-7B-Finetuned/AL_LLaMA_2_7B_Finetuned.pth"
    imagebind: str = "Video-LLaMA-2-7B-Finetuned/imagebind_huge.pth"
    hf_repo: str = "DAMO-NLP-SG/Video-LLaMA-2-7B-Finetuned"
    # About how many bytes the repo's files are (its file listing), to size a download before it starts.
    vl_bytes: int = 270_000_000
    al_bytes: int = 280_000_000
    imagebind_bytes: int = 4_800_000_000
    llm_bytes: int = 13_500_000_000  # the LLM folder's fp16 shards; 0 when the repo does not hold the LLM


@dataclass(frozen=True)
class VideoLlamaConfig:
    """The whole pipeline. `audio` is None for a model without the audio branch."""

    name: str = "video-llama-2-7b"
    vision: VisionConfig = field(default_factory=VisionConfig)
    image_qformer: QFormerConfig = field(default_factory=QFormerConfig)
    video_qformer: QFormerConfig = field(default_factory=lambda: QFormerConfig(
        num_layers=2, encoder_width=768, cross_attention_freq=1, num_queries=32))
    audio: AudioEncoderConfig | None = field(default_factory=AudioEncoderConfig)
    audio_qformer: QFormerConfig | None = field(default_factory=lambda: QFormerConfig(
        num_layers=2, encoder_width=1024, cross_attention_freq=1, num_queries=8))
    max_frame_pos: int = 32  # rows of the frame-position table: the hard limit on frames
    num_frames: int = 8  # official default
    llm: LLMConfig = field(default_factory=LLMConfig)
    files: CheckpointFiles = field(default_factory=CheckpointFiles)
    random_init_seed: int | None = None  # preview: encoders get seeded random weights, no files

    def __post_init__(self) -> None:
        if (self.audio is None) != (self.audio_qformer is None):
            raise ValueError("audio and audio_qformer must both be set or both be None")
        if not 1 <= self.num_frames <= self.max_frame_pos:
            raise ValueError(f"num_frames must be in 1..{self.max_frame_pos}, got {self.num_frames}")
        _require_equal("image_qformer.encoder_width", self.image_qformer.encoder_width,
                       "vision.width", self.vision.width)
        _require_equal("video_qformer.encoder_width", self.video_qformer.encoder_width,
                       "image_qformer.hidden_size", self.image_qformer.hidden_size)
        if self.audio is not None and self.audio_qformer is not None:
            _require_equal("audio_qformer.encoder_width", self.audio_qformer.encoder_width,
                           "audio.out_dim", self.audio.out_dim)

    @property
    def has_audio(self) -> bool:
        return self.audio is not None

    @classmethod
    def from_name(cls, name: str, **overrides: Any) -> VideoLlamaConfig:
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
        return dataclasses.replace(PRESETS[name], **overrides)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def _check_positive(obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if value <= 0:
            raise ValueError(f"{type(obj).__name__}.{name} must be positive, got {value}")


def _check_choice(obj: object, name: str, allowed: tuple[str, ...]) -> None:
    value = getattr(obj, name)
    if value not in allowed:
        raise ValueError(f"{type(obj).__name__}.{name} must be one of {allowed}, got {value!r}")


def _require_equal(name_a: str, a: int, name_b: str, b: int) -> None:
    if a != b:
        raise ValueError(f"{name_a} ({a}) must equal {name_b} ({b})")


def _video_llama_2(size: str, hidden: int, shape: LlamaShape, llm_bytes: int) -> VideoLlamaConfig:
    """The layout of the Hugging Face repos DAMO-NLP-SG/Video-LLaMA-2-{7B,13B}-Finetuned."""
    repo_dir = f"Video-LLaMA-2-{size}-Finetuned"
    return VideoLlamaConfig(
        name=f"video-llama-2-{size.lower()}",
        llm=LLMConfig(hidden_size=hidden, path=f"{repo_dir}/llama-2-{size.lower()}-chat-hf", template="llama2",
                      shape=shape),
        files=CheckpointFiles(
            vl=f"{repo_dir}/VL_LLaMA_2_{size}_Finetuned.pth",
            al=f"{repo_dir}/AL_LLaMA_2_{size}_Finetuned.pth",
            imagebind=f"{repo_dir}/imagebind_huge.pth",
            hf_repo=f"DAMO-NLP-SG/{repo_dir}",
            llm_bytes=llm_bytes,
        ),
    )


def _small_qformer(hidden: int, layers: int, encoder_width: int, freq: int, queries: int) -> QFormerConfig:
    return QFormerConfig(num_layers=layers, hidden_size=hidden, num_heads=4, intermediate_size=2 * hidden,
                         encoder_width=encoder_width, cross_attention_freq=freq, num_queries=queries)


def _small(name: str, image_size: int, width: int, queries: tuple[int, int, int], llm: LLMConfig,
           seed: int | None) -> VideoLlamaConfig:
    """A reduced-size model with the official structure (the real media front end is kept)."""
    image_queries, video_queries, audio_queries = queries
    return VideoLlamaConfig(
        name=name,
        vision=VisionConfig(image_size=image_size, patch_size=14, width=width, depth=2, num_heads=4, mlp_dim=2 * width),
        image_qformer=_small_qformer(width, 2, width, 2, image_queries),
        video_qformer=_small_qformer(width, 2, width, 1, video_queries),
        audio=AudioEncoderConfig(width=width, depth=2, num_heads=4, mlp_ratio=2, out_dim=width),
        audio_qformer=_small_qformer(width, 2, width, 1, audio_queries),
        llm=llm,
        files=CheckpointFiles(vl="tiny/VL_tiny.pth", al="tiny/AL_tiny.pth", imagebind="tiny/imagebind_huge.pth",
                              hf_repo="", vl_bytes=0, al_bytes=0, imagebind_bytes=0, llm_bytes=0),
        random_init_seed=seed,
    )


PRESETS: dict[str, VideoLlamaConfig] = {
    "video-llama-2-7b": _video_llama_2("7B", 4096, LLAMA_2_7B, llm_bytes=13_500_000_000),
    "video-llama-2-13b": _video_llama_2("13B", 5120, LLAMA_2_13B, llm_bytes=26_000_000_000),
    # The Vicuna-era files of DAMO-NLP-SG/Video-LLaMA-Series (its README_Vicuna.md); Vicuna v0 itself is
    # published only as a delta on LLaMA, so the user builds it and the repo holds no LLM.
    "video-llama-vicuna-7b": VideoLlamaConfig(
        name="video-llama-vicuna-7b",
        llm=LLMConfig(hidden_size=4096, path="vicuna-7b-v0", template="vicuna", shape=VICUNA_7B_V0),
        files=CheckpointFiles(
            vl="Video-LLaMA-Series/finetune-vicuna7b-v2.pth",
            al="Video-LLaMA-Series/finetune_vicuna7b_audiobranch.pth",
            imagebind="imagebind_huge.pth",
            hf_repo="DAMO-NLP-SG/Video-LLaMA-Series",
            llm_bytes=0,
        ),
    ),
    # Official structure at toy size, loaded from tiny official-format files the tests write.
    "tiny": _small("tiny", image_size=28, width=32, queries=(4, 4, 2),
                   llm=LLMConfig(hidden_size=64, path="tiny/llama", template="llama2"), seed=None),
    # The embedded default: real media path, seeded random encoders, SmolLM2 answering.
    "preview": _small("preview", image_size=224, width=64, queries=(32, 32, 8),
                      llm=LLMConfig(hidden_size=576, path="", format="gguf", template="chatml",
                                    context_length=2048, max_new_tokens=300), seed=0),
}
