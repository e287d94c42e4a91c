"""Tiny random checkpoints in every official Video-LLaMA file format, under the official key names.

Written from the spec's key lists (reference/videollama_spec.md §6, §7.2), not from weights.py's table,
so loading these files tests that table. Other suites (the pipeline tests) reuse
`write_official_checkpoints`. Values are random but well scaled (LayerNorm weights near 1, linear
weights ~ 1/sqrt(fan_in), non-zero biases) so a misrouted tensor changes the outputs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from videollama_demo.config import QFormerConfig, VideoLlamaConfig
from videollama_demo.model.weights import OfficialPaths

State = dict[str, torch.Tensor]


class RandomTensors:
    """Seeded tensors shaped like trained weights."""

    def __init__(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def normal(self, *shape: int, std: float = 1.0) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator) * std

    def linear(self, name: str, out_features: int, in_features: int, bias: bool = True) -> State:
        state = {f"{name}.weight": self.normal(out_features, in_features, std=in_features ** -0.5)}
        return state | ({f"{name}.bias": self.normal(out_features, std=0.1)} if bias else {})

    def layer_norm(self, name: str, width: int) -> State:
        return {f"{name}.weight": 1 + self.normal(width, std=0.1), f"{name}.bias": self.normal(width, std=0.1)}


def write_official_checkpoints(cfg: VideoLlamaConfig, directory: Path, seed: int = 0) -> OfficialPaths:
    """Write eva_vit_g.pth, the BLIP-2 file, VL (and AL + imagebind_huge.pth) under `cfg.files` names."""
    rng = RandomTensors(seed)
    paths = OfficialPaths(
        eva_vit=directory / cfg.files.eva_vit,
        blip2=directory / cfg.files.blip2,
        vl=directory / cfg.files.vl,
        al=directory / cfg.files.al if cfg.has_audio else None,
        imagebind=directory / cfg.files.imagebind if cfg.has_audio else None,
    )
    save(eva_vit_state(cfg, rng), paths.eva_vit)
    save({"model": blip2_model_state(cfg, rng)}, paths.blip2)
    save(training_checkpoint(vl_model_state(cfg, rng)), paths.vl)
    if paths.al is not None and paths.imagebind is not None:
        save(training_checkpoint(al_model_state(cfg, rng)), paths.al)
        save(imagebind_state(cfg, rng), paths.imagebind)
    return paths


def save(obj: Any, path: Path, legacy_format: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy_format)


def eva_vit_state(cfg: VideoLlamaConfig, rng: RandomTensors) -> State:
    """LAVIS's eva_vit_g.pth: a plain state dict with no prefix, one block more than BLIP-2 uses, fp16."""
    v = cfg.vision
    grid = v.image_size // v.patch_size
    state = {
        "cls_token": rng.normal(1, 1, v.width),
        "pos_embed": rng.normal(1, grid * grid + 1, v.width, std=0.5),
        "patch_embed.proj.weight": rng.normal(v.width, 3, v.patch_size, v.patch_size,
                                              std=(3 * v.patch_size ** 2) ** -0.5),
        "patch_embed.proj.bias": rng.normal(v.width, std=0.1),
    }
    for i in range(v.depth + 1):
        block = f"blocks.{i}."
        state |= rng.layer_norm(block + "norm1", v.width)
        state[block + "attn.q_bias"] = rng.normal(v.width, std=0.1)
        state[block + "attn.v_bias"] = rng.normal(v.width, std=0.1)
        state[block + "attn.qkv.weight"] = rng.normal(3 * v.width, v.width, std=v.width ** -0.5)
        state |= rng.linear(block + "attn.proj", v.width, v.width)
        state |= rng.layer_norm(block + "norm2", v.width)
        state |= rng.linear(block + "mlp.fc1", v.mlp_dim, v.width)
        state |= rng.linear(block + "mlp.fc2", v.width, v.mlp_dim)
    return {key: value.half() for key, value in state.items()}


def qformer_state(prefix: str, q: QFormerConfig, rng: RandomTensors, text_leftovers: bool = False) -> State:
    """A BERT Q-Former under `prefix` (e.g. "Qformer.bert."), pruned as the official code prunes it."""
    state = {prefix + "embeddings.position_ids": torch.arange(512).unsqueeze(0)}
    state |= rng.layer_norm(prefix + "embeddings.LayerNorm", q.hidden_size)
    for i in range(q.num_layers):
        layer = f"{prefix}encoder.layer.{i}."
        state |= _bert_attention(layer + "attention.", q.hidden_size, q.hidden_size, rng)
        if i % q.cross_attention_freq == 0:
            state |= _bert_attention(layer + "crossattention.", q.hidden_size, q.encoder_width, rng)
        state |= rng.linear(layer + "intermediate_query.dense", q.intermediate_size, q.hidden_size)
        state |= rng.linear(layer + "output_query.dense", q.hidden_size, q.intermediate_size)
        state |= rng.layer_norm(layer + "output_query.LayerNorm", q.hidden_size)
        if text_leftovers:
            state |= rng.linear(layer + "intermediate.dense", q.intermediate_size, q.hidden_size)
            state |= rng.linear(layer + "output.dense", q.hidden_size, q.intermediate_size)
            state |= rng.layer_norm(layer + "output.LayerNorm", q.hidden_size)
    if text_leftovers:
        state[prefix + "embeddings.word_embeddings.weight"] = rng.normal(30, q.hidden_size)
        state[prefix + "embeddings.position_embeddings.weight"] = rng.normal(16, q.hidden_size)
    return state


def _bert_attention(prefix: str, hidden: int, key_width: int, rng: RandomTensors) -> State:
    return (rng.linear(prefix + "self.query", hidden, hidden) | rng.linear(prefix + "self.key", hidden, key_width)
            | rng.linear(prefix + "self.value", hidden, key_width) | rng.linear(prefix + "output.dense", hidden, hidden)
            | rng.layer_norm(prefix + "output.LayerNorm", hidden))


def blip2_model_state(cfg: VideoLlamaConfig, rng: RandomTensors) -> State:
    """['model'] of blip2_pretrained_flant5xxl.pth: ln_vision, query tokens, Q-Former, plus leftovers."""
    q = cfg.image_qformer
    state = {"query_tokens": rng.normal(1, q.num_queries, q.hidden_size)}
    state |= rng.layer_norm("ln_vision", cfg.vision.width)
    state |= qformer_state("Qformer.bert.", q, rng, text_leftovers=True)
    state["Qformer.cls.predictions.bias"] = rng.normal(30)
    state |= rng.linear("Qformer.cls.predictions.transform.dense", q.hidden_size, q.hidden_size)
    state |= rng.linear("t5_proj", 48, q.hidden_size)  # BLIP-2's projection into T5, unused by Video-LLaMA
    return state


def vl_model_state(cfg: VideoLlamaConfig, rng: RandomTensors) -> State:
    """['model'] of a VL file: the trainable video branch plus every buffer of the model."""
    q = cfg.video_qformer
    state = {
        "video_query_tokens": rng.normal(1, q.num_queries, q.hidden_size),
        "video_frame_position_embedding.weight": rng.normal(cfg.max_frame_pos, cfg.image_qformer.hidden_size, std=0.5),
        **rng.linear("llama_proj", cfg.llm.hidden_size, q.hidden_size),
        "Qformer.bert.embeddings.position_ids": torch.arange(512).unsqueeze(0),
    }
    return state | qformer_state("video_Qformer.bert.", q, rng) | _llama_rope_buffers()


def al_model_state(cfg: VideoLlamaConfig, rng: RandomTensors) -> State:
    """['model'] of an AL file: the trainable audio branch plus buffers (ImageBind's four logit scales)."""
    q, audio = cfg.audio_qformer, cfg.audio
    assert q is not None and audio is not None
    state = {
        "audio_query_tokens": rng.normal(1, q.num_queries, q.hidden_size),
        "audio_position_embedding.weight": rng.normal(audio.num_clips, audio.out_dim, std=2.0),
        **rng.linear("audio_llama_proj", cfg.llm.hidden_size, q.hidden_size),
        "Qformer.bert.embeddings.position_ids": torch.arange(512).unsqueeze(0),
    }
    for modality, scale in (("audio", 20.0), ("depth", 5.0), ("thermal", 10.0), ("imu", 5.0)):
        state[f"audio_encoder.modality_postprocessors.{modality}.1.log_logit_scale"] = torch.tensor(math.log(scale))
    return state | qformer_state("audio_Qformer.bert.", q, rng) | _llama_rope_buffers()


def _llama_rope_buffers(layers: int = 2, half_head_dim: int = 8) -> State:
    inv_freq = 1.0 / 10000 ** (torch.arange(half_head_dim) / half_head_dim)
    return {f"llama_model.model.layers.{i}.self_attn.rotary_emb.inv_freq": inv_freq for i in range(layers)}


def imagebind_state(cfg: VideoLlamaConfig, rng: RandomTensors) -> State:
    """imagebind_huge.pth: a plain dict of all six modalities; here the audio ones plus a few others."""
    audio = cfg.audio
    assert audio is not None
    width, kernel = audio.width, audio.kernel_size
    rows = (audio.num_mel_bins - kernel) // audio.stride + 1
    cols = (audio.target_length - kernel) // audio.stride + 1
    pre = "modality_preprocessors.audio."
    state = {
        pre + "cls_token": rng.normal(1, 1, width),
        pre + "rgbt_stem.proj.weight": rng.normal(width, 1, kernel, kernel, std=1 / kernel),
        **rng.layer_norm(pre + "rgbt_stem.norm_layer", width),
        pre + "pos_embedding_helper.pos_embed": rng.normal(1, rows * cols + 1, width, std=0.5),
    }
    for i in range(audio.depth):
        block = f"modality_trunks.audio.blocks.{i}."
        state[block + "attn.in_proj_weight"] = rng.normal(3 * width, width, std=width ** -0.5)
        state[block + "attn.in_proj_bias"] = rng.normal(3 * width, std=0.1)
        state[block + "attn.bias_k"] = rng.normal(1, 1, width)
        state[block + "attn.bias_v"] = rng.normal(1, 1, width)
        state |= rng.linear(block + "attn.out_proj", width, width)
        state |= rng.layer_norm(block + "norm_1", width) | rng.layer_norm(block + "norm_2", width)
        state |= rng.linear(block + "mlp.fc1", audio.mlp_ratio * width, width)
        state |= rng.linear(block + "mlp.fc2", width, audio.mlp_ratio * width)
    state |= rng.layer_norm("modality_heads.audio.0", width)
    state["modality_heads.audio.2.weight"] = rng.normal(audio.out_dim, width, std=width ** -0.5)
    state["modality_postprocessors.audio.1.log_logit_scale"] = torch.tensor(math.log(20.0))
    return state | _other_imagebind_modalities(rng)


def _other_imagebind_modalities(rng: RandomTensors) -> State:
    """A few keys of the five modalities Video-LLaMA never runs (the real file has ~1200)."""
    return {
        "modality_preprocessors.vision.cls_token": rng.normal(1, 1, 8),
        "modality_preprocessors.text.mask": torch.full((4, 4), float("-inf")).triu(1),
        "modality_trunks.text.blocks.0.attn.in_proj_weight": rng.normal(24, 8),
        "modality_heads.depth.2.weight": rng.normal(16, 8),
        "modality_postprocessors.text.1.log_logit_scale": torch.tensor(math.log(1 / 0.07)),
        "modality_postprocessors.thermal.1.log_logit_scale": torch.tensor(math.log(10.0)),
    }


def training_checkpoint(model: State) -> dict[str, Any]:
    """What the official runner saves: the trainable parameters and buffers, plus the training state."""
    first = next(iter(model.values()))
    return {
        "model": model,
        "optimizer": {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros_like(first)}},
                      "param_groups": [{"lr": 1e-4, "weight_decay": 0.05, "params": [0]}]},
        "config": {"model": {"arch": "video_llama", "max_frame_pos": 32}, "run": {"seed": 42}},
        "scaler": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000},
        "epoch": 3,
    }
