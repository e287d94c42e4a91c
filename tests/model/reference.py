"""The official Video-LLaMA encoder computation, rebuilt in plain torch from the spec's formulas.

Every function reads the *official* state dicts (official key names, as loaded from the files) and
never goes through `videollama_demo.model`, so comparing the two checks our modules and
weights.py's table at once. fp32, batch-first, one step per line of the spec (§2.1-§2.3, §3.2-§3.3).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from videollama_demo.config import AudioEncoderConfig, QFormerConfig, VideoLlamaConfig

if TYPE_CHECKING:  # only the container of file paths; nothing here computes through the package's model
    from videollama_demo.model.weights import OfficialPaths

State = dict[str, torch.Tensor]
TOLERANCE = 1e-5  # fp32 on CPU: ours vs this reference


def max_error(ours: torch.Tensor, expected: torch.Tensor) -> float:
    assert ours.shape == expected.shape, f"shape {tuple(ours.shape)} != {tuple(expected.shape)}"
    return (ours.float() - expected).abs().max().item()


def official_files(paths: OfficialPaths) -> dict[str, State]:
    """The state dicts the official code reads: eva/imagebind as they are, the others' ['model'], in fp32."""
    def read(path: Path | None, entry: str | None = None) -> State:
        raw = torch.load(path, weights_only=True)
        state = raw[entry] if entry else raw
        return {key: value.float() if value.is_floating_point() else value for key, value in state.items()}

    files = {"eva_vit": read(paths.eva_vit), "blip2": read(paths.blip2, "model"), "vl": read(paths.vl, "model")}
    if paths.al is not None:
        files |= {"al": read(paths.al, "model"), "imagebind": read(paths.imagebind)}
    return files


def layer_norm(x: torch.Tensor, sd: State, name: str, eps: float) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * sd[name + ".weight"] + sd[name + ".bias"]


def linear(x: torch.Tensor, sd: State, name: str) -> torch.Tensor:
    out = x @ sd[name + ".weight"].T
    return out + sd[name + ".bias"] if name + ".bias" in sd else out


def gelu(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))  # exact (erf) GELU


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    n, length, width = x.shape
    return x.reshape(n, length, heads, width // heads).permute(0, 2, 1, 3)  # (N, heads, L, d)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    n, heads, length, d = x.shape
    return x.permute(0, 2, 1, 3).reshape(n, length, heads * d)


# ---- §2.1 EVA ViT-g + ln_vision ---------------------------------------------------------------

def eva_block(x: torch.Tensor, eva: State, i: int, heads: int) -> torch.Tensor:
    """Pre-LN block: qkv = x·Wᵀ + [q_bias, 0, v_bias]; q scaled by d^-0.5 before q·kᵀ; exact GELU MLP."""
    b = f"blocks.{i}."
    width = x.shape[-1]
    h = layer_norm(x, eva, b + "norm1", 1e-6)
    w = eva[b + "attn.qkv.weight"]
    q = h @ w[:width].T + eva[b + "attn.q_bias"]
    k = h @ w[width:2 * width].T  # the official k bias is zero
    v = h @ w[2 * width:].T + eva[b + "attn.v_bias"]
    q, k, v = (split_heads(t, heads) for t in (q, k, v))
    q = q * (width // heads) ** -0.5
    attention = torch.softmax(q @ k.transpose(-1, -2), dim=-1) @ v
    x = x + linear(merge_heads(attention), eva, b + "attn.proj")
    return x + linear(gelu(linear(layer_norm(x, eva, b + "norm2", 1e-6), eva, b + "mlp.fc1")), eva, b + "mlp.fc2")


def eva_vit(images: torch.Tensor, eva: State, blip2: State, cfg: VideoLlamaConfig) -> torch.Tensor:
    """(N, 3, S, S) -> (N, 1 + patches, width): the output of block depth-1, then ln_vision (eps 1e-5)."""
    v = cfg.vision
    patches = F.conv2d(images, eva["patch_embed.proj.weight"], eva["patch_embed.proj.bias"], stride=v.patch_size)
    patches = patches.flatten(2).transpose(1, 2)  # (N, grid*grid, width), row-major over the grid
    x = torch.cat([eva["cls_token"].expand(len(images), -1, -1), patches], dim=1) + eva["pos_embed"]
    for i in range(v.depth):
        x = eva_block(x, eva, i, v.num_heads)
    return layer_norm(x, blip2, "ln_vision", 1e-5)


# ---- §2.2 query-only Q-Former (all three) -------------------------------------------------------

def bert_attention(x: torch.Tensor, context: torch.Tensor, sd: State, name: str, heads: int) -> torch.Tensor:
    """Post-LN BERT attention: LN(dense(softmax(q·kᵀ/√d)·v) + x), with no mask."""
    q = split_heads(linear(x, sd, name + ".self.query"), heads)
    k = split_heads(linear(context, sd, name + ".self.key"), heads)
    v = split_heads(linear(context, sd, name + ".self.value"), heads)
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    out = linear(merge_heads(torch.softmax(scores, dim=-1) @ v), sd, name + ".output.dense")
    return layer_norm(out + x, sd, name + ".output.LayerNorm", 1e-12)


def qformer(query_tokens: torch.Tensor, encoder_states: torch.Tensor, sd: State, prefix: str,
            q: QFormerConfig) -> torch.Tensor:
    """(N, queries, H) tokens attend to (N, L, enc_width) states -> (N, queries, H)."""
    h = layer_norm(query_tokens, sd, prefix + "embeddings.LayerNorm", 1e-12)
    for i in range(q.num_layers):
        layer = f"{prefix}encoder.layer.{i}."
        a = bert_attention(h, h, sd, layer + "attention", q.num_heads)
        if i % q.cross_attention_freq == 0:
            a = bert_attention(a, encoder_states, sd, layer + "crossattention", q.num_heads)
        ffn = linear(gelu(linear(a, sd, layer + "intermediate_query.dense")), sd, layer + "output_query.dense")
        h = layer_norm(ffn + a, sd, layer + "output_query.LayerNorm", 1e-12)
    return h


# ---- §2.3 frames -> video tokens ----------------------------------------------------------------

def frame_tokens(frame_queries: torch.Tensor, positions: torch.Tensor, batch: int, frames: int) -> torch.Tensor:
    """F[b, t, q] = Qout[b·T + t, q] + P[t], laid out frame-major (t outer, q inner): (B, T·Nq, H)."""
    samples = []
    for b in range(batch):
        samples.append(torch.cat([frame_queries[b * frames + t] + positions[t] for t in range(frames)], dim=0))
    return torch.stack(samples)


def encode_video(pixels: torch.Tensor, files: dict[str, State], cfg: VideoLlamaConfig) -> torch.Tensor:
    """(B, 3, T, S, S) -> (B, video queries, llm hidden)."""
    batch, _, frames = pixels.shape[:3]
    images = torch.stack([pixels[b, :, t] for b in range(batch) for t in range(frames)])  # (B·T, 3, S, S)
    blip2, vl = files["blip2"], files["vl"]
    image_embeds = eva_vit(images, files["eva_vit"], blip2, cfg)
    queries = qformer(blip2["query_tokens"].expand(len(images), -1, -1), image_embeds, blip2, "Qformer.bert.",
                      cfg.image_qformer)
    tokens = frame_tokens(queries, vl["video_frame_position_embedding.weight"], batch, frames)
    video = qformer(vl["video_query_tokens"].expand(batch, -1, -1), tokens, vl, "video_Qformer.bert.",
                    cfg.video_qformer)
    return linear(video, vl, "llama_proj")


# ---- §3.2 ImageBind audio encoder -----------------------------------------------------------------

def imagebind_block(x: torch.Tensor, ib: State, i: int, heads: int) -> torch.Tensor:
    """Pre-LN block whose attention also sees one learned key/value slot (bias_k, bias_v) per head."""
    b = f"modality_trunks.audio.blocks.{i}."
    width = x.shape[-1]
    h = layer_norm(x, ib, b + "norm_1", 1e-6)
    w, bias = ib[b + "attn.in_proj_weight"], ib[b + "attn.in_proj_bias"]
    q = h @ w[:width].T + bias[:width]
    k = h @ w[width:2 * width].T + bias[width:2 * width]
    v = h @ w[2 * width:].T + bias[2 * width:]
    k = torch.cat([k, ib[b + "attn.bias_k"].expand(len(x), 1, width)], dim=1)  # (N, L+1, D)
    v = torch.cat([v, ib[b + "attn.bias_v"].expand(len(x), 1, width)], dim=1)
    q, k, v = (split_heads(t, heads) for t in (q, k, v))
    scores = q @ k.transpose(-1, -2) / math.sqrt(width // heads)  # (N, heads, L, L+1)
    x = x + linear(merge_heads(torch.softmax(scores, dim=-1) @ v), ib, b + "attn.out_proj")
    return x + linear(gelu(linear(layer_norm(x, ib, b + "norm_2", 1e-6), ib, b + "mlp.fc1")), ib, b + "mlp.fc2")


def imagebind_stem(fbank: torch.Tensor, ib: State, audio: AudioEncoderConfig) -> torch.Tensor:
    """(N, 1, mel, L) -> (N, 1 + patches, D): conv patches (no bias), LayerNorm eps 1e-5, CLS first, + positions."""
    pre = "modality_preprocessors.audio."
    patches = F.conv2d(fbank, ib[pre + "rgbt_stem.proj.weight"], stride=audio.stride).flatten(2).transpose(1, 2)
    patches = layer_norm(patches, ib, pre + "rgbt_stem.norm_layer", 1e-5)
    x = torch.cat([ib[pre + "cls_token"].expand(len(fbank), -1, -1), patches], dim=1)
    return x + ib[pre + "pos_embedding_helper.pos_embed"]


def imagebind_audio(fbank: torch.Tensor, ib: State, audio: AudioEncoderConfig) -> torch.Tensor:
    """(N, 1, mel, L) -> (N, out_dim): stem, trunk, head LN on CLS, Linear, L2 norm × exp(log_logit_scale)."""
    x = imagebind_stem(fbank, ib, audio)
    for i in range(audio.depth):
        x = imagebind_block(x, ib, i, audio.num_heads)
    cls = layer_norm(x, ib, "modality_heads.audio.0", 1e-6)[:, 0]
    embedding = cls @ ib["modality_heads.audio.2.weight"].T
    scale = torch.clip(ib["modality_postprocessors.audio.1.log_logit_scale"].exp(), max=100)
    return scale * embedding / embedding.norm(dim=-1, keepdim=True)


# ---- §3.3 clips -> audio tokens -----------------------------------------------------------------------

def encode_audio(fbank: torch.Tensor, files: dict[str, State], cfg: VideoLlamaConfig) -> torch.Tensor:
    """(B, S, 1, mel, L) -> (B, audio queries, llm hidden)."""
    assert cfg.audio is not None and cfg.audio_qformer is not None
    al = files["al"]
    batch, clips = fbank.shape[:2]
    per_clip = [imagebind_audio(fbank[b], files["imagebind"], cfg.audio) for b in range(batch)]  # each (S, out)
    tokens = torch.stack(per_clip) + al["audio_position_embedding.weight"][:clips]  # A[b, s] = E[b, s] + Pa[s]
    audio = qformer(al["audio_query_tokens"].expand(batch, -1, -1), tokens, al, "audio_Qformer.bert.",
                    cfg.audio_qformer)
    return linear(audio, al, "audio_llama_proj")
