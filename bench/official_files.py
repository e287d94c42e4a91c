"""Random weights of any size in the official Video-LLaMA file formats, written one file at a time.

Every official file is first described as a layout (key -> shape, dtype, how to fill it) and only
then made into tensors, so the full-size files (about 21 GB for the 7B preset) are written with at
most one file (or one LLM shard) in memory. Key names, shapes and storage dtypes follow the
official sources:

- `eva_vit_g.pth`: LAVIS's EVA ViT-g state dict, fp16, 40 blocks (Video-LLaMA
  `video_llama/models/eva_vit.py`, `create_eva_vit_g`, builds 39 and drops the last by strict=False);
- `blip2_pretrained_flant5xxl.pth`: a LAVIS training checkpoint; its ['model'] holds the query
  tokens, `ln_vision`, the pruned Q-Former (LAVIS `blip2_t5.py` sets the text parts to None) and
  the unused `t5_proj`;
- the VL / AL files: `video_llama/runners/runner_base.py` `_save_checkpoint` keeps the trainable
  parameters and every buffer under ['model'], next to the optimizer state, fp32;
- `imagebind_huge.pth`: Meta's plain state dict of all six modalities
  (`video_llama/models/ImageBind/models/imagebind_model.py`), fp32;
- `llama-2-7b-chat-hf/`: a 4.28-era `config.json` and tokenizer files with bf16 safetensors shards
  (the released dir has fp16 `.bin` shards; bf16 safetensors load memory-mapped on CPU).
Values are small (normal x 0.02, norms near 1) so that a forward pass stays finite.
"""

from __future__ import annotations

import gc
import json
import math
import multiprocessing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig

from tests.tiny_llama import train_tiny_sentencepiece, write_tokenizer_files
from videollama_demo.config import AudioEncoderConfig, QFormerConfig, VideoLlamaConfig, VisionConfig

Wrapping = Literal["plain", "model", "training"]  # a state dict; {'model': it}; plus the optimizer state
Fill = Literal["normal", "norm", "position_ids", "causal_mask", "inv_freq", "constant"]
BUFFER_FILLS: frozenset[Fill] = frozenset({"position_ids", "causal_mask", "inv_freq", "constant"})
STD = 0.02
SHARD_BYTES = 4 * 2**30  # one LLM shard, the most this writer holds in memory for the LLM


@dataclass(frozen=True)
class TensorSpec:
    shape: tuple[int, ...]
    dtype: torch.dtype = torch.float32
    fill: Fill = "normal"
    value: float = 0.0  # for "constant"

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    @property
    def is_buffer(self) -> bool:
        return self.fill in BUFFER_FILLS


Layout = dict[str, TensorSpec]


@dataclass(frozen=True)
class Modality:
    """One ImageBind trunk that Video-LLaMA never runs: width, blocks, and its learned extra k/v slot."""

    width: int
    blocks: int
    bias_kv: bool


@dataclass(frozen=True)
class UnusedSizes:
    """Sizes of what the official files hold but Video-LLaMA never runs (ImageBind-Huge's other five
    modalities, BLIP-2's projection into FlanT5-XXL). The defaults are the released ones."""

    vision: Modality = Modality(1280, 32, bias_kv=False)
    text: Modality = Modality(1024, 24, bias_kv=False)
    depth: Modality = Modality(384, 12, bias_kv=True)
    thermal: Modality = Modality(768, 12, bias_kv=True)
    imu: Modality = Modality(512, 6, bias_kv=True)
    image_size: int = 224
    vision_patch: int = 14
    image_patch: int = 16  # depth and thermal
    text_vocab: int = 49408
    text_context: int = 77
    imu_channels: int = 6
    imu_length: int = 2000
    imu_kernel: int = 8
    t5_width: int = 4096


@dataclass(frozen=True)
class OfficialSizes:
    """Everything needed to write one complete checkpoints dir."""

    config: VideoLlamaConfig
    llm: LlamaConfig
    unused: UnusedSizes


@dataclass(frozen=True)
class WrittenFile:
    path: Path
    keys: tuple[str, ...]  # state-dict keys (under ['model'] for training checkpoints)
    bytes: int


def _linear(name: str, out_features: int, in_features: int, bias: bool = True,
            dtype: torch.dtype = torch.float32) -> Layout:
    layout = {f"{name}.weight": TensorSpec((out_features, in_features), dtype)}
    return layout | ({f"{name}.bias": TensorSpec((out_features,), dtype)} if bias else {})


def _norm(name: str, width: int, dtype: torch.dtype = torch.float32) -> Layout:
    return {f"{name}.weight": TensorSpec((width,), dtype, "norm"), f"{name}.bias": TensorSpec((width,), dtype)}


# ---- Video-LLaMA's own files ------------------------------------------------------------------

def eva_vit_layout(v: VisionConfig) -> Layout:
    """eva_vit_g.pth: no prefix, fp16, one block more than BLIP-2 uses (EVA-CLIP-g's 40th)."""
    half, grid = torch.float16, v.image_size // v.patch_size
    layout = {
        "cls_token": TensorSpec((1, 1, v.width), half),
        "pos_embed": TensorSpec((1, grid * grid + 1, v.width), half),
        "patch_embed.proj.weight": TensorSpec((v.width, 3, v.patch_size, v.patch_size), half),
        "patch_embed.proj.bias": TensorSpec((v.width,), half),
    }
    for i in range(v.depth + 1):
        block = f"blocks.{i}."
        layout |= _norm(block + "norm1", v.width, half)
        layout[block + "attn.q_bias"] = TensorSpec((v.width,), half)
        layout[block + "attn.v_bias"] = TensorSpec((v.width,), half)
        layout[block + "attn.qkv.weight"] = TensorSpec((3 * v.width, v.width), half)
        layout |= _linear(block + "attn.proj", v.width, v.width, dtype=half)
        layout |= _norm(block + "norm2", v.width, half)
        layout |= _linear(block + "mlp.fc1", v.mlp_dim, v.width, dtype=half)
        layout |= _linear(block + "mlp.fc2", v.width, v.mlp_dim, dtype=half)
    return layout


def qformer_layout(prefix: str, q: QFormerConfig) -> Layout:
    """A query-only BERT Q-Former as the official code prunes it (`Blip2Base.init_Qformer`)."""
    layout = {prefix + "embeddings.position_ids": TensorSpec((1, 512), torch.int64, "position_ids")}
    layout |= _norm(prefix + "embeddings.LayerNorm", q.hidden_size)
    for i in range(q.num_layers):
        layer = f"{prefix}encoder.layer.{i}."
        layout |= _bert_attention(layer + "attention.", q.hidden_size, q.hidden_size)
        if i % q.cross_attention_freq == 0:
            layout |= _bert_attention(layer + "crossattention.", q.hidden_size, q.encoder_width)
        layout |= _linear(layer + "intermediate_query.dense", q.intermediate_size, q.hidden_size)
        layout |= _linear(layer + "output_query.dense", q.hidden_size, q.intermediate_size)
        layout |= _norm(layer + "output_query.LayerNorm", q.hidden_size)
    return layout


def _bert_attention(prefix: str, hidden: int, key_width: int) -> Layout:
    return (_linear(prefix + "self.query", hidden, hidden) | _linear(prefix + "self.key", hidden, key_width)
            | _linear(prefix + "self.value", hidden, key_width) | _linear(prefix + "output.dense", hidden, hidden)
            | _norm(prefix + "output.LayerNorm", hidden))


def blip2_layout(sizes: OfficialSizes) -> Layout:
    cfg = sizes.config
    layout = {"query_tokens": TensorSpec((1, cfg.image_qformer.num_queries, cfg.image_qformer.hidden_size))}
    layout |= _norm("ln_vision", cfg.vision.width)
    layout |= qformer_layout("Qformer.bert.", cfg.image_qformer)
    return layout | _linear("t5_proj", sizes.unused.t5_width, cfg.image_qformer.hidden_size)


def _rope_buffers(llm: LlamaConfig) -> Layout:
    """The 4.28 LLaMA's persistent `inv_freq` buffers, saved with every Video-LLaMA checkpoint."""
    half_head = llm.hidden_size // llm.num_attention_heads // 2
    return {f"llama_model.model.layers.{i}.self_attn.rotary_emb.inv_freq": TensorSpec((half_head,), fill="inv_freq")
            for i in range(llm.num_hidden_layers)}


def vl_layout(sizes: OfficialSizes) -> Layout:
    cfg = sizes.config
    q = cfg.video_qformer
    layout = {
        "video_query_tokens": TensorSpec((1, q.num_queries, q.hidden_size)),
        "video_frame_position_embedding.weight": TensorSpec((cfg.max_frame_pos, cfg.image_qformer.hidden_size)),
        **_linear("llama_proj", cfg.llm.hidden_size, q.hidden_size),
        "Qformer.bert.embeddings.position_ids": TensorSpec((1, 512), torch.int64, "position_ids"),
    }
    return layout | qformer_layout("video_Qformer.bert.", q) | _rope_buffers(sizes.llm)


def al_layout(sizes: OfficialSizes) -> Layout:
    """The audio branch's trainables plus every buffer of the model built with audio (ImageBind's text
    mask and logit scales included; the text scale is a frozen parameter, so it is not saved)."""
    cfg, unused = sizes.config, sizes.unused
    q, audio = cfg.audio_qformer, cfg.audio
    assert q is not None and audio is not None
    position_ids = TensorSpec((1, 512), torch.int64, "position_ids")
    layout = {
        "audio_query_tokens": TensorSpec((1, q.num_queries, q.hidden_size)),
        "audio_position_embedding.weight": TensorSpec((audio.num_clips, audio.out_dim)),
        **_linear("audio_llama_proj", cfg.llm.hidden_size, q.hidden_size),
        "Qformer.bert.embeddings.position_ids": position_ids,
        "video_Qformer.bert.embeddings.position_ids": position_ids,
        "audio_encoder.modality_preprocessors.text.mask": _text_mask(unused),
    }
    for name, scale in (("audio", 20.0), ("depth", 5.0), ("thermal", 10.0), ("imu", 5.0)):
        layout[f"audio_encoder.modality_postprocessors.{name}.1.log_logit_scale"] = _log_scale(scale)
    return layout | qformer_layout("audio_Qformer.bert.", q) | _rope_buffers(sizes.llm)


# ---- imagebind_huge.pth: all six modalities ---------------------------------------------------

def _log_scale(scale: float) -> TensorSpec:
    return TensorSpec((), fill="constant", value=math.log(scale))


def _text_mask(unused: UnusedSizes) -> TensorSpec:
    return TensorSpec((unused.text_context, unused.text_context), fill="causal_mask")


def imagebind_layout(audio: AudioEncoderConfig, unused: UnusedSizes) -> Layout:
    """ImageBind-Huge's state dict in module order: preprocessors, trunks, heads, postprocessors."""
    u = unused
    audio_modality = Modality(audio.width, audio.depth, bias_kv=True)
    trunks = {"vision": u.vision, "text": u.text, "audio": audio_modality, "depth": u.depth,
              "thermal": u.thermal, "imu": u.imu}
    layout = _imagebind_preprocessors(audio, u)
    for name, modality in trunks.items():
        mlp_ratio = audio.mlp_ratio if name == "audio" else 4
        layout |= _trunk(f"modality_trunks.{name}.", modality, mlp_ratio, pre_norm=name == "vision")
    layout |= _imagebind_heads(trunks, audio.out_dim)
    layout["modality_postprocessors.text.1.log_logit_scale"] = TensorSpec((), fill="normal")  # learnable
    for name, scale in (("audio", 20.0), ("depth", 5.0), ("thermal", 10.0), ("imu", 5.0)):
        layout[f"modality_postprocessors.{name}.1.log_logit_scale"] = _log_scale(scale)
    return layout


def _imagebind_preprocessors(audio: AudioEncoderConfig, u: UnusedSizes) -> Layout:
    vision, text, depth, thermal, imu = (f"modality_preprocessors.{m}." for m in
                                         ("vision", "text", "depth", "thermal", "imu"))
    vision_tokens = (u.image_size // u.vision_patch) ** 2 + 1
    image_tokens = (u.image_size // u.image_patch) ** 2 + 1
    layout = {  # the vision stem is [PadIm2Video, Conv3d]: hence `proj.1`
        vision + "cls_token": TensorSpec((1, 1, u.vision.width)),
        vision + "rgbt_stem.proj.1.weight": TensorSpec((u.vision.width, 3, 2, u.vision_patch, u.vision_patch)),
        vision + "pos_embedding_helper.pos_embed": TensorSpec((1, vision_tokens, u.vision.width)),
        text + "pos_embed": TensorSpec((1, u.text_context, u.text.width)),
        text + "mask": _text_mask(u),
        text + "token_embedding.weight": TensorSpec((u.text_vocab, u.text.width)),
    }
    layout |= _patch_preprocessor("modality_preprocessors.audio.", "rgbt_stem", audio.width, audio.kernel_size,
                                  audio.num_patches + 1)
    layout |= _patch_preprocessor(depth, "depth_stem", u.depth.width, u.image_patch, image_tokens)
    layout |= _patch_preprocessor(thermal, "rgbt_stem", u.thermal.width, u.image_patch, image_tokens)
    return layout | {
        imu + "pos_embed": TensorSpec((1, u.imu_length // u.imu_kernel + 1, u.imu.width)),
        imu + "cls_token": TensorSpec((1, 1, u.imu.width)),
        imu + "imu_stem.proj.weight": TensorSpec((u.imu.width, u.imu_channels * u.imu_kernel)),
        **_norm(imu + "imu_stem.norm_layer", u.imu.width),
    }


def _patch_preprocessor(prefix: str, stem: str, width: int, kernel: int, tokens: int) -> Layout:
    """A one-channel conv stem with a LayerNorm, a CLS token and learned positions (audio, depth, thermal)."""
    return {
        prefix + "cls_token": TensorSpec((1, 1, width)),
        prefix + f"{stem}.proj.weight": TensorSpec((width, 1, kernel, kernel)),
        **_norm(prefix + f"{stem}.norm_layer", width),
        prefix + "pos_embedding_helper.pos_embed": TensorSpec((1, tokens, width)),
    }


def _trunk(prefix: str, m: Modality, mlp_ratio: int, pre_norm: bool) -> Layout:
    layout = _norm(prefix + "pre_transformer_layer.0", m.width) if pre_norm else {}
    for i in range(m.blocks):
        block = f"{prefix}blocks.{i}."
        layout[block + "attn.in_proj_weight"] = TensorSpec((3 * m.width, m.width))
        layout[block + "attn.in_proj_bias"] = TensorSpec((3 * m.width,))
        if m.bias_kv:
            layout[block + "attn.bias_k"] = TensorSpec((1, 1, m.width))
            layout[block + "attn.bias_v"] = TensorSpec((1, 1, m.width))
        layout |= _linear(block + "attn.out_proj", m.width, m.width)
        layout |= _norm(block + "norm_1", m.width)
        layout |= _linear(block + "mlp.fc1", mlp_ratio * m.width, m.width)
        layout |= _linear(block + "mlp.fc2", m.width, mlp_ratio * m.width)
        layout |= _norm(block + "norm_2", m.width)
    return layout


def _imagebind_heads(trunks: dict[str, Modality], out_dim: int) -> Layout:
    """LayerNorm, SelectElement, (Dropout for IMU,) Linear; text: SelectEOSAndProject(LayerNorm, Linear)."""
    layout: Layout = {}
    for name, m in trunks.items():
        head = f"modality_heads.{name}."
        if name == "text":
            layout |= _norm(head + "proj.0", m.width) | _linear(head + "proj.1", out_dim, m.width, bias=False)
            continue
        linear_index = 3 if name == "imu" else 2
        layout |= _norm(head + "0", m.width) | _linear(f"{head}{linear_index}", out_dim, m.width, bias=False)
    return layout


# ---- the LLM dir ------------------------------------------------------------------------------

def llama_layout(llm: LlamaConfig) -> Layout:
    """HF LLaMA keys in bf16, with the per-layer `inv_freq` buffers the 4.28-era files carry."""
    bf16, hidden, inter = torch.bfloat16, llm.hidden_size, llm.intermediate_size
    layout = {"model.embed_tokens.weight": TensorSpec((llm.vocab_size, hidden), bf16)}
    for i in range(llm.num_hidden_layers):
        layer = f"model.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            layout[f"{layer}self_attn.{proj}.weight"] = TensorSpec((hidden, hidden), bf16)
        layout[layer + "self_attn.rotary_emb.inv_freq"] = TensorSpec((hidden // llm.num_attention_heads // 2,),
                                                                     fill="inv_freq")
        layout[layer + "mlp.gate_proj.weight"] = TensorSpec((inter, hidden), bf16)
        layout[layer + "mlp.up_proj.weight"] = TensorSpec((inter, hidden), bf16)
        layout[layer + "mlp.down_proj.weight"] = TensorSpec((hidden, inter), bf16)
        layout[layer + "input_layernorm.weight"] = TensorSpec((hidden,), bf16, "norm")
        layout[layer + "post_attention_layernorm.weight"] = TensorSpec((hidden,), bf16, "norm")
    layout["model.norm.weight"] = TensorSpec((hidden,), bf16, "norm")
    layout["lm_head.weight"] = TensorSpec((llm.vocab_size, hidden), bf16)
    return layout


def llama_config_json(llm: LlamaConfig) -> dict[str, Any]:
    """config.json with the fields of the 4.28-era `llama-2-7b-chat-hf` file (MHA: no kv-heads field)."""
    return {
        "architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
        "hidden_size": llm.hidden_size, "initializer_range": 0.02, "intermediate_size": llm.intermediate_size,
        "max_position_embeddings": llm.max_position_embeddings, "model_type": "llama",
        "num_attention_heads": llm.num_attention_heads, "num_hidden_layers": llm.num_hidden_layers,
        "pad_token_id": 0, "rms_norm_eps": llm.rms_norm_eps, "tie_word_embeddings": False,
        "torch_dtype": "bfloat16", "transformers_version": "4.28.0", "use_cache": True,
        "vocab_size": llm.vocab_size,
    }


# ---- making tensors and files -----------------------------------------------------------------

def make_tensor(spec: TensorSpec, generator: torch.Generator) -> torch.Tensor:
    if spec.fill == "position_ids":
        return torch.arange(spec.shape[-1], dtype=spec.dtype).expand(spec.shape).clone()
    if spec.fill == "causal_mask":
        return torch.full(spec.shape, float("-inf"), dtype=spec.dtype).triu(1)
    if spec.fill == "inv_freq":
        half = spec.shape[0]
        return 1.0 / 10000 ** (torch.arange(0, 2 * half, 2, dtype=spec.dtype) / (2 * half))
    if spec.fill == "constant":
        return torch.full(spec.shape, spec.value, dtype=spec.dtype)
    values = torch.empty(spec.shape, dtype=torch.float32).normal_(0.0, STD, generator=generator)
    return (values.add_(1.0) if spec.fill == "norm" else values).to(spec.dtype)


def make_state(layout: Layout, generator: torch.Generator) -> dict[str, torch.Tensor]:
    return {key: make_tensor(spec, generator) for key, spec in layout.items()}


def training_checkpoint(layout: Layout, state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """What LAVIS's runner saves: ['model'] plus AdamW state (two moments per trainable tensor), fp32."""
    trainable = [key for key, spec in layout.items() if not spec.is_buffer]
    moments = {index: {"step": torch.tensor(1000.0), "exp_avg": torch.zeros_like(state[key]),
                       "exp_avg_sq": torch.zeros_like(state[key])} for index, key in enumerate(trainable)}
    return {
        "model": state,
        "optimizer": {"state": moments, "param_groups": [{"lr": 1e-5, "weight_decay": 0.05,
                                                          "params": list(range(len(trainable)))}]},
        "config": {"model": {"arch": "video_llama"}, "run": {"seed": 42}},
        "scaler": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000},
        "epoch": 2,
    }


def write_torch_file(path: Path, layout: Layout, generator: torch.Generator, wrapping: Wrapping) -> WrittenFile:
    """One `.pth` file: its whole state is in memory only while torch.save writes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = make_state(layout, generator)
    wrapped = {"plain": state, "model": {"model": state}, "training": training_checkpoint(layout, state)}[wrapping]
    torch.save(wrapped, path)
    del state
    gc.collect()
    return WrittenFile(path, tuple(layout), path.stat().st_size)


def plan_shards(layout: Layout, max_bytes: int = SHARD_BYTES) -> list[list[str]]:
    shards: list[list[str]] = [[]]
    size = 0
    for key, spec in layout.items():
        if shards[-1] and size + spec.nbytes > max_bytes:
            shards.append([])
            size = 0
        shards[-1].append(key)
        size += spec.nbytes
    return shards


def write_llm_dir(directory: Path, llm: LlamaConfig, generator: torch.Generator) -> WrittenFile:
    """bf16 safetensors shards + index, 4.28-era config.json, generation config and tokenizer files."""
    directory.mkdir(parents=True, exist_ok=True)
    layout = llama_layout(llm)
    shards = plan_shards(layout)
    weight_map: dict[str, str] = {}
    for number, keys in enumerate(shards, start=1):
        name = f"model-{number:05d}-of-{len(shards):05d}.safetensors"
        save_file(make_state({key: layout[key] for key in keys}, generator), directory / name,
                  metadata={"format": "pt"})
        weight_map |= dict.fromkeys(keys, name)
        gc.collect()
    total = sum(spec.nbytes for spec in layout.values())
    _write_json(directory / "model.safetensors.index.json", {"metadata": {"total_size": total},
                                                             "weight_map": weight_map})
    _write_json(directory / "config.json", llama_config_json(llm))
    _write_json(directory / "generation_config.json",
                {"_from_model_config": True, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
                 "transformers_version": "4.28.0"})
    write_tokenizer_files(directory, train_tiny_sentencepiece())
    size = sum(path.stat().st_size for path in directory.iterdir())
    return WrittenFile(directory, tuple(layout), size)


def official_layouts(sizes: OfficialSizes) -> Iterator[tuple[str, Layout, Wrapping]]:
    """(file, layout, wrapping) for every `.pth` file of the preset, in load order. Whether the released
    BLIP-2 file carries optimizer state is not known here, so it gets only ['model']; the VL/AL sizes
    (266 / 275 MB) show that theirs do."""
    cfg, files = sizes.config, sizes.config.files
    yield files.eva_vit, eva_vit_layout(cfg.vision), "plain"
    yield files.blip2, blip2_layout(sizes), "model"
    if cfg.audio is not None:
        yield files.imagebind, imagebind_layout(cfg.audio, sizes.unused), "plain"
    yield files.vl, vl_layout(sizes), "training"
    if cfg.audio is not None:
        yield files.al, al_layout(sizes), "training"


def write_checkpoints(sizes: OfficialSizes, directory: Path, seed: int = 0) -> dict[str, WrittenFile]:
    """Write a complete checkpoints dir for `sizes.config`, each file in its own child process; returns
    what was written. File `i` is filled from the seed `seed + i`."""
    written: dict[str, WrittenFile] = {}
    for index, (relative, layout, wrapping) in enumerate(official_layouts(sizes)):
        written[relative] = _in_child(_write_torch_file_seeded, directory / relative, layout, seed + index, wrapping)
    written[sizes.config.llm.path] = _in_child(_write_llm_dir_seeded, directory / sizes.config.llm.path,
                                               sizes.llm, seed + len(written))
    return written


def _in_child(function: Callable[..., WrittenFile], *args: Any) -> WrittenFile:
    """Run `function(*args)` in a new forked process and return its result.

    Writing several multi-GB files in one process grew it to 13.5 GiB while `torch.save` wrote
    imagebind_huge.pth after eva_vit_g.pth: the allocator kept the freed pages of the file before.
    A process per file gives every byte back to the system when the file is written. `fork` (not
    `spawn`) because nothing big is loaded yet and the child then needs no second import of torch.
    """
    with multiprocessing.get_context("fork").Pool(1) as pool:
        return pool.apply(function, args)


def _write_torch_file_seeded(path: Path, layout: Layout, seed: int, wrapping: Wrapping) -> WrittenFile:
    return write_torch_file(path, layout, torch.Generator().manual_seed(seed), wrapping)


def _write_llm_dir_seeded(directory: Path, llm: LlamaConfig, seed: int) -> WrittenFile:
    return write_llm_dir(directory, llm, torch.Generator().manual_seed(seed))


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")
