"""Official Video-LLaMA checkpoints → `VideoLlamaEncoder`: one table of key names and a strict loader.

Files are read in the official order (Video-LLaMA `video_llama/models/video_llama.py`,
`VideoLLAMA.from_config`): `eva_vit_g.pth`, the BLIP-2 file, `imagebind_huge.pth`
(all three loaded while the official model is built), then the VL and AL files. Where two files hold
the same key the later one wins, as the official `strict=False` loads do. The module is built on the
`meta` device and the (memory-mapped) file tensors are assigned to it, so nothing is randomly
initialised and then overwritten.
"""

from __future__ import annotations

import logging
import math
import pickle
import re
import zipfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from ..config import VideoLlamaConfig
from .video_llama import VideoLlamaEncoder

log = logging.getLogger(__name__)

FileKind = Literal["eva_vit", "blip2", "imagebind", "vl", "al"]
LOAD_ORDER: tuple[FileKind, ...] = ("eva_vit", "blip2", "imagebind", "vl", "al")
FILE_LABELS: dict[FileKind, str] = {
    "eva_vit": "the EVA ViT-g file (eva_vit_g.pth)",
    "blip2": "the BLIP-2 file (blip2_pretrained_flant5xxl.pth)",
    "imagebind": "the ImageBind file (imagebind_huge.pth)",
    "vl": "the VL (vision-language) checkpoint",
    "al": "the AL (audio-language) checkpoint",
}
# eva_vit_g.pth and imagebind_huge.pth are the submodules' own state dicts: prefixing their keys gives
# the official model's names. The other three are training checkpoints whose ['model'] is the model's.
FILE_NAMESPACE: dict[FileKind, str] = {"eva_vit": "visual_encoder.", "imagebind": "audio_encoder."}
TRAINING_CHECKPOINTS: tuple[FileKind, ...] = ("blip2", "vl", "al")


# One Q-Former's keys relative to its prefix; all three share this layout (`crossattention` rows apply
# to the layers that have it). transformers calls BERT's `self` attention `attention`.
QFORMER_KEYS: tuple[tuple[str, str], ...] = (
    ("embeddings.LayerNorm.*",                             "layernorm.*"),
    ("encoder.layer.{}.attention.self.query.*",            "encoder.layer.{}.attention.attention.query.*"),
    ("encoder.layer.{}.attention.self.key.*",              "encoder.layer.{}.attention.attention.key.*"),
    ("encoder.layer.{}.attention.self.value.*",            "encoder.layer.{}.attention.attention.value.*"),
    ("encoder.layer.{}.attention.output.dense.*",          "encoder.layer.{}.attention.output.dense.*"),
    ("encoder.layer.{}.attention.output.LayerNorm.*",      "encoder.layer.{}.attention.output.LayerNorm.*"),
    ("encoder.layer.{}.crossattention.self.query.*",       "encoder.layer.{}.crossattention.attention.query.*"),
    ("encoder.layer.{}.crossattention.self.key.*",         "encoder.layer.{}.crossattention.attention.key.*"),
    ("encoder.layer.{}.crossattention.self.value.*",       "encoder.layer.{}.crossattention.attention.value.*"),
    ("encoder.layer.{}.crossattention.output.dense.*",     "encoder.layer.{}.crossattention.output.dense.*"),
    ("encoder.layer.{}.crossattention.output.LayerNorm.*", "encoder.layer.{}.crossattention.output.LayerNorm.*"),
    ("encoder.layer.{}.intermediate_query.dense.*",        "encoder.layer.{}.intermediate_query.dense.*"),
    ("encoder.layer.{}.output_query.dense.*",              "encoder.layer.{}.output_query.dense.*"),
    ("encoder.layer.{}.output_query.LayerNorm.*",          "encoder.layer.{}.output_query.LayerNorm.*"),
)


def _qformer_keys(official_prefix: str, our_prefix: str) -> tuple[tuple[str, str], ...]:
    return tuple((official_prefix + official, our_prefix + ours) for official, ours in QFORMER_KEYS)


# ImageBind's audio keys as the official model names them (imagebind_huge.pth's keys + "audio_encoder.").
_IB_PRE = "audio_encoder.modality_preprocessors.audio."
_IB_BLOCK = "audio_encoder.modality_trunks.audio.blocks.{}."
_IB_HEAD = "audio_encoder.modality_heads.audio."

# ---- THE TABLE: (official key, our key). `{}` is a layer index; a trailing `*` is `weight` and `bias`.
KEY_TABLE: dict[FileKind, tuple[tuple[str, str], ...]] = {
    "eva_vit": (
        ("visual_encoder.cls_token",                 "vision.embeddings.class_embedding"),
        ("visual_encoder.pos_embed",                 "vision.embeddings.position_embedding"),
        ("visual_encoder.patch_embed.proj.*",        "vision.embeddings.patch_embedding.*"),
        ("visual_encoder.blocks.{}.norm1.*",         "vision.encoder.layers.{}.layer_norm1.*"),
        ("visual_encoder.blocks.{}.attn.qkv.weight", "vision.encoder.layers.{}.self_attn.qkv.weight"),
        ("visual_encoder.blocks.{}.attn.proj.*",     "vision.encoder.layers.{}.self_attn.projection.*"),
        ("visual_encoder.blocks.{}.norm2.*",         "vision.encoder.layers.{}.layer_norm2.*"),
        ("visual_encoder.blocks.{}.mlp.fc1.*",       "vision.encoder.layers.{}.mlp.fc1.*"),
        ("visual_encoder.blocks.{}.mlp.fc2.*",       "vision.encoder.layers.{}.mlp.fc2.*"),
    ),
    "blip2": (
        ("ln_vision.*",  "vision.post_layernorm.*"),
        ("query_tokens", "query_tokens"),
        *_qformer_keys("Qformer.bert.", "image_qformer."),
    ),
    "imagebind": (  # the head is LayerNorm, SelectElement(0), Linear: hence indices 0 and 2
        (_IB_PRE + "rgbt_stem.proj.weight",           "audio_encoder.patch_embed.weight"),
        (_IB_PRE + "rgbt_stem.norm_layer.*",          "audio_encoder.patch_norm.*"),
        (_IB_PRE + "cls_token",                       "audio_encoder.cls_token"),
        (_IB_PRE + "pos_embedding_helper.pos_embed",  "audio_encoder.pos_embed"),
        (_IB_BLOCK + "norm_1.*",                      "audio_encoder.blocks.{}.norm1.*"),
        (_IB_BLOCK + "attn.in_proj_weight",           "audio_encoder.blocks.{}.attn.in_proj_weight"),
        (_IB_BLOCK + "attn.in_proj_bias",             "audio_encoder.blocks.{}.attn.in_proj_bias"),
        (_IB_BLOCK + "attn.bias_k",                   "audio_encoder.blocks.{}.attn.bias_k"),
        (_IB_BLOCK + "attn.bias_v",                   "audio_encoder.blocks.{}.attn.bias_v"),
        (_IB_BLOCK + "attn.out_proj.*",               "audio_encoder.blocks.{}.attn.out_proj.*"),
        (_IB_BLOCK + "norm_2.*",                      "audio_encoder.blocks.{}.norm2.*"),
        (_IB_BLOCK + "mlp.fc1.*",                     "audio_encoder.blocks.{}.fc1.*"),
        (_IB_BLOCK + "mlp.fc2.*",                     "audio_encoder.blocks.{}.fc2.*"),
        (_IB_HEAD + "0.*",                            "audio_encoder.head_norm.*"),
        (_IB_HEAD + "2.weight",                       "audio_encoder.head_proj.weight"),
    ),
    "vl": (
        ("video_query_tokens",                    "video_query_tokens"),
        ("video_frame_position_embedding.weight", "frame_position_embedding.weight"),
        *_qformer_keys("video_Qformer.bert.", "video_qformer."),
        ("llama_proj.*",                          "video_proj.*"),
    ),
    "al": (
        ("audio_query_tokens",              "audio_query_tokens"),
        ("audio_position_embedding.weight", "audio_position_embedding.weight"),
        *_qformer_keys("audio_Qformer.bert.", "audio_qformer."),
        ("audio_llama_proj.*",              "audio_proj.*"),
    ),
}


def _qkv_bias(q_bias: torch.Tensor, v_bias: torch.Tensor) -> torch.Tensor:
    return torch.cat([q_bias, torch.zeros_like(q_bias), v_bias])


# Our tensors made from several official ones: transformers keeps one qkv bias where EVA has
# separate q and v biases and no k bias (EVA uses zeros for it).
FUSED_KEYS: tuple[tuple[FileKind, tuple[str, ...], str, Callable[..., torch.Tensor]], ...] = (
    ("eva_vit", ("visual_encoder.blocks.{}.attn.q_bias", "visual_encoder.blocks.{}.attn.v_bias"),
     "vision.encoder.layers.{}.self_attn.qkv.bias", _qkv_bias),
)

# Official keys left out on purpose, and why (shown in the load report).
DROPPED_KEYS: tuple[tuple[str, str], ...] = (
    (r"^visual_encoder\.(norm|fc_norm|head)\.", "EVA-CLIP's final norm/head, which BLIP-2's ViT does not have"),
    (r"\.position_ids$", "an unused Q-Former buffer (the Q-Formers take no text)"),
    (r"\.rotary_emb\.inv_freq$", "a LLaMA RoPE buffer, recomputed by the LLM"),
    (r"^audio_encoder\.modality_\w+\.(vision|text|depth|thermal|imu)\.",
     "an ImageBind modality Video-LLaMA never runs"),
    (r"^\w*Qformer\.cls\.", "the Q-Former's text head, pruned by the official code"),
    (r"^\w*Qformer\.bert\.embeddings\.(word|position)_embeddings\.",
     "Q-Former text embeddings, pruned by the official code"),
    (r"^\w*Qformer\.bert\.encoder\.layer\.\d+\.(intermediate|output)\.",
     "Q-Former text FFN, pruned by the official code"),
)
AUDIO_LOGIT_SCALE = "audio_encoder.modality_postprocessors.audio.1.log_logit_scale"
VIT_BLOCK = re.compile(r"^visual_encoder\.blocks\.(\d+)\.")
AUDIO_PREFIXES = ("audio_Qformer.", "audio_query_tokens", "audio_position_embedding.", "audio_llama_proj.")
VIDEO_PREFIXES = ("video_Qformer.", "video_query_tokens", "video_frame_position_embedding.")
TRAINING_STATE = "training state (the official code reads only ['model'])"
NOT_VIDEO_LLAMA = "not part of Video-LLaMA (the official code ignores it too)"
LLM_SIZES = {4096: "7B", 5120: "13B", 6656: "33B", 8192: "65B/70B"}


class CheckpointError(Exception):
    """A weight file that cannot be used; the message names the file, the key(s) and the likely cause."""


@dataclass(frozen=True)
class OfficialPaths:
    eva_vit: Path
    blip2: Path
    vl: Path
    al: Path | None
    imagebind: Path | None

    def of(self, kind: FileKind) -> Path | None:
        return getattr(self, kind)


@dataclass
class FileReport:
    kind: FileKind
    path: Path
    loaded: list[str]  # official keys read into the model
    ignored: dict[str, list[str]]  # reason -> keys (or top-level entries) left out on purpose
    overridden: list[str] = field(default_factory=list)  # loaded here, then replaced by a later file

    def summary(self) -> str:
        ignored = sum(len(keys) for keys in self.ignored.values())
        text = f"{self.path.name}: {len(self.loaded) - len(self.overridden)} keys loaded, {ignored} ignored on purpose"
        return text + (f", {len(self.overridden)} replaced by a later file" if self.overridden else "")

    def details(self) -> str:
        lines = [f"{self.path}: {len(self.loaded)} keys loaded"]
        lines += [f"  replaced by a later file: {', '.join(self.overridden)}"] if self.overridden else []
        lines += [f"  ignored {len(keys)}: {reason} (e.g. {keys[0]})" for reason, keys in self.ignored.items()]
        return "\n".join(lines)


@dataclass
class LoadReport:
    preset: str
    files: list[FileReport]

    def file(self, kind: FileKind) -> FileReport:
        return next(report for report in self.files if report.kind == kind)

    def __str__(self) -> str:
        header = f"Video-LLaMA encoder weights for preset {self.preset!r}: every parameter came from a file"
        return "\n".join([header] + [f"  {report.summary()}" for report in self.files])

    def details(self) -> str:
        """Every file's loaded count and each group of ignored keys with its reason."""
        return "\n".join(report.details() for report in self.files)


@dataclass(frozen=True)
class Source:
    """Where one of our tensors comes from: official key(s) in one kind of file, maybe combined."""

    kind: FileKind
    official: tuple[str, ...]
    combine: Callable[..., torch.Tensor] | None = None


def load_official_weights(cfg: VideoLlamaConfig, paths: OfficialPaths, device: str | torch.device = "cpu",
                          dtype: torch.dtype = torch.float32) -> tuple[VideoLlamaEncoder, LoadReport]:
    """Build the encoder on `meta`, fill every parameter from the official files, then cast and move once."""
    with torch.device("meta"):
        encoder = VideoLlamaEncoder(cfg)
    sources = plan_sources(encoder)
    found, report = _read_files(cfg, paths, sources)
    expected = {key: value.shape for key, value in encoder.state_dict().items()}
    encoder.load_state_dict(_assemble(sources, found, expected, cfg), strict=True, assign=True)
    left_on_meta = [name for name, t in [*encoder.named_parameters(), *encoder.named_buffers()] if t.is_meta]
    assert not left_on_meta, f"parameters not loaded from any file: {left_on_meta}"
    log.debug("%s", report.details())
    return encoder.to_runtime(device, dtype), report


def _read_files(cfg: VideoLlamaConfig, paths: OfficialPaths,
                sources: dict[str, Source]) -> tuple[dict[str, tuple[torch.Tensor, FileReport]], LoadReport]:
    """Official key -> (tensor, file it came from), in load order: a later file replaces an earlier one."""
    needed = {official: source.kind for source in sources.values() for official in source.official}
    found: dict[str, tuple[torch.Tensor, FileReport]] = {}
    reports = []
    for kind, path in _files_to_read(cfg, paths):
        kept, report = _read_and_check(kind, path, needed, cfg)
        for key, tensor in kept.items():
            if key in found:
                found[key][1].overridden.append(key)
            found[key] = (tensor, report)
        reports.append(report)
    return found, LoadReport(cfg.name, reports)


def plan_sources(module: nn.Module) -> dict[str, Source]:
    """Our key -> the official key(s) it is read from, by expanding the table over the module's keys."""
    rules = [(kind, (official,), ours, None) for kind, rows in KEY_TABLE.items() for official, ours in rows]
    rules += list(FUSED_KEYS)
    compiled = [(_pattern_regex(ours), kind, officials, combine) for kind, officials, ours, combine in rules]
    plan = {}
    for key in module.state_dict():
        matches = [(m, kind, officials, combine) for regex, kind, officials, combine in compiled
                   if (m := regex.fullmatch(key))]
        if len(matches) != 1:
            raise RuntimeError(f"weights.py's table has {len(matches)} sources for {key}; it needs exactly one")
        m, kind, officials, combine = matches[0]
        plan[key] = Source(kind, tuple(_fill(official, m.groups()) for official in officials), combine)
    return plan


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    regex = re.escape(pattern).replace(r"\{\}", r"(\d+)")
    return re.compile(regex[:-2] + "(weight|bias)" if regex.endswith(r"\*") else regex)


def _fill(pattern: str, groups: tuple[str, ...]) -> str:
    values = iter(groups)
    return re.sub(r"\{\}|\*$", lambda _: next(values), pattern)


def _files_to_read(cfg: VideoLlamaConfig, paths: OfficialPaths) -> list[tuple[FileKind, Path]]:
    kinds = [kind for kind in LOAD_ORDER if cfg.has_audio or kind not in ("imagebind", "al")]
    files = []
    for kind in kinds:
        path = paths.of(kind)
        if path is None:
            raise CheckpointError(f"model {cfg.name!r} has an audio branch, so it needs {FILE_LABELS[kind]}; "
                                  "give its path, or use a model without audio")
        files.append((kind, Path(path)))
    return files


def _read_and_check(kind: FileKind, path: Path, needed: dict[str, FileKind],
                    cfg: VideoLlamaConfig) -> tuple[dict[str, torch.Tensor], FileReport]:
    """The file's tensors that the model needs; raises if a key is unknown or an expected one is missing."""
    state, ignored = _read_state(kind, path)
    kept, unknown = {}, []
    for key, tensor in state.items():
        if key in needed:
            kept[key] = tensor
        elif (reason := _drop_reason(key, tensor, cfg, path)) is not None:
            ignored[reason].append(key)
        elif key.split(".")[0] in KNOWN_PREFIXES:
            unknown.append(key)
        else:
            ignored[NOT_VIDEO_LLAMA].append(key)
    if unknown:
        raise CheckpointError(_unknown_message(kind, path, unknown, cfg))
    missing = sorted(key for key, source_kind in needed.items() if source_kind == kind and key not in kept)
    if missing:
        raise CheckpointError(_missing_message(kind, path, missing, set(state), cfg))
    return kept, FileReport(kind, path, sorted(kept), dict(ignored))


def _read_state(kind: FileKind, path: Path) -> tuple[dict[str, Any], defaultdict[str, list[str]]]:
    """The file's state dict under the official model's key names, and its ignored top-level entries."""
    raw = _torch_load(path, kind)
    ignored: defaultdict[str, list[str]] = defaultdict(list)
    is_training_checkpoint = isinstance(raw, dict) and isinstance(raw.get("model"), dict)
    if kind in TRAINING_CHECKPOINTS:
        if not is_training_checkpoint:
            raise CheckpointError(f"{path}: {FILE_LABELS[kind]} should be a training checkpoint with a 'model' "
                                  "entry, but this file has none: is it the right file?")
        training_state = [entry for entry in raw if entry != "model"]
        if training_state:
            ignored[TRAINING_STATE] = training_state
        return raw["model"], ignored
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: {FILE_LABELS[kind]} should hold a state dict, but it holds a "
                              f"{type(raw).__name__}: is it the right file?")
    if is_training_checkpoint:
        raise CheckpointError(f"{path}: {FILE_LABELS[kind]} should be a plain state dict, but this file is a "
                              "training checkpoint (it has a 'model' entry): is it the right file?")
    return {FILE_NAMESPACE[kind] + key: value for key, value in raw.items()}, ignored


def _torch_load(path: Path, kind: FileKind) -> Any:
    if not path.is_file():
        raise CheckpointError(f"{FILE_LABELS[kind]} was not found at {path}")
    try:
        if zipfile.is_zipfile(path):
            return torch.load(path, map_location="cpu", mmap=True, weights_only=True)
        return torch.load(path, map_location="cpu", weights_only=True)  # torch's legacy format cannot be mmapped
    except pickle.UnpicklingError as err:
        if "weights only load failed" in str(err).lower():
            raise CheckpointError(f"{path}: {FILE_LABELS[kind]} holds Python objects other than tensors and "
                                  "plain containers, which are not loaded for safety; re-download the "
                                  "official file") from err
        raise CheckpointError(_corrupt_message(kind, path, err)) from err
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(_corrupt_message(kind, path, err)) from err


def _corrupt_message(kind: FileKind, path: Path, err: Exception) -> str:
    return (f"{path}: {FILE_LABELS[kind]} could not be read ({type(err).__name__}: {err}); it looks truncated "
            "or corrupt (an interrupted download?) — re-download it")


def _drop_reason(key: str, tensor: Any, cfg: VideoLlamaConfig, path: Path) -> str | None:
    """Why an official key that the model does not need is left out, or None if it is not a known leftover."""
    for pattern, reason in _DROPPED:
        if pattern.search(key):
            return reason
    block = VIT_BLOCK.match(key)
    if block and int(block.group(1)) >= cfg.vision.depth:
        return (f"ViT blocks from index {cfg.vision.depth} on: BLIP-2 uses the output of block "
                f"{cfg.vision.depth - 1}, EVA-CLIP's second-to-last")
    if not cfg.has_audio and key.startswith((*AUDIO_PREFIXES, "audio_encoder.")):
        return f"model {cfg.name!r} has no audio branch"
    if key == AUDIO_LOGIT_SCALE:
        return _check_logit_scale(tensor, cfg, path)
    return None


def _check_logit_scale(tensor: torch.Tensor, cfg: VideoLlamaConfig, path: Path) -> str:
    """The fixed ×20 buffer is not loaded: the model uses cfg.audio.logit_scale, so the two must agree."""
    assert cfg.audio is not None
    scale = float(tensor.float().exp())
    if not math.isclose(scale, cfg.audio.logit_scale, rel_tol=1e-5):
        raise CheckpointError(f"{path}: {AUDIO_LOGIT_SCALE} gives a scale of {scale:g}, but ImageBind's audio "
                              f"head (and this model) uses {cfg.audio.logit_scale:g}: not an official file")
    return f"ImageBind's fixed audio scale (checked: exp of it is {cfg.audio.logit_scale:g}, the model's own)"


def _unknown_message(kind: FileKind, path: Path, unknown: list[str], cfg: VideoLlamaConfig) -> str:
    if all(key.startswith("llama_model.") for key in unknown):
        cause = ("it carries LLM weights (llama_model.*), which this app loads only from the LLM's own "
                 "directory; use the official VL/AL files")
    else:
        cause = f"the file was made for a different model than preset {cfg.name!r}, or is not an official file"
    return (f"{path}: {FILE_LABELS[kind]} has {len(unknown)} key(s) under Video-LLaMA's names that this model "
            f"does not have, e.g. {', '.join(sorted(unknown)[:3])}: {cause}")


def _missing_message(kind: FileKind, path: Path, missing: list[str], file_keys: set[str],
                     cfg: VideoLlamaConfig) -> str:
    has_video = any(key.startswith(VIDEO_PREFIXES) for key in file_keys)
    has_audio = any(key.startswith(AUDIO_PREFIXES) for key in file_keys)
    if kind == "vl" and has_audio and not has_video:
        cause = "it holds the audio branch instead: the AL and VL files look swapped"
    elif kind == "al" and has_video and not has_audio:
        cause = "it holds the video branch instead: the AL and VL files look swapped"
    elif kind == "vl" and not has_video and any(key.startswith("llama_proj.") for key in file_keys):
        cause = ("it holds only llama_proj.*: this looks like a MiniGPT-4 checkpoint given as the VL checkpoint "
                 "(a Video-LLaMA VL file also has video_Qformer.*, video_query_tokens and the frame positions)")
    elif kind == "eva_vit" and all(VIT_BLOCK.match(key) for key in missing):
        cause = f"it has fewer ViT blocks than the {cfg.vision.depth} the model needs"
    else:
        cause = f"the file is incomplete, or is not {FILE_LABELS[kind]} for preset {cfg.name!r}"
    return (f"{path}: {FILE_LABELS[kind]} is missing {len(missing)} key(s) the model needs, "
            f"e.g. {', '.join(missing[:3])}: {cause}")


def _assemble(sources: dict[str, Source], found: dict[str, tuple[torch.Tensor, FileReport]],
              expected: dict[str, torch.Size], cfg: VideoLlamaConfig) -> dict[str, torch.Tensor]:
    """Our state dict from the winning file tensors; raises one error listing the shape mismatches."""
    tensors, mismatches, causes = {}, [], []
    for key, source in sources.items():
        parts = [found[official][0] for official in source.official]
        try:
            tensor = source.combine(*parts) if source.combine else parts[0]
        except RuntimeError:  # parts whose shapes cannot be combined
            tensor = None
        if tensor is None or tensor.shape != expected[key]:
            mismatch, cause = _shape_mismatch(source, parts, found, expected[key], cfg)
            mismatches.append(mismatch)
            causes += [cause] if cause not in causes else []
        tensors[key] = tensor
    if mismatches:
        raise CheckpointError(f"{len(mismatches)} tensor(s) have the wrong shape: {'; '.join(mismatches[:4])}"
                              f"{'; ...' if len(mismatches) > 4 else ''}. Likely cause: {'; '.join(causes)}")
    return tensors


def _shape_mismatch(source: Source, parts: list[torch.Tensor], found: dict[str, tuple[torch.Tensor, FileReport]],
                    want: torch.Size, cfg: VideoLlamaConfig) -> tuple[str, str]:
    """What is wrong with one tensor, and the likely cause in words."""
    official, got = source.official[0], parts[0].shape
    path = found[official][1].path
    other_size = f"the file was made for a model of another size than preset {cfg.name!r}"
    if source.combine is not None:
        return f"{path}: {' + '.join(source.official)} cannot make a tensor of shape {tuple(want)}", other_size
    text = f"{path}: {official} is {tuple(got)}, the model expects {tuple(want)}"
    if official.startswith(("llama_proj.", "audio_llama_proj.")) and got[0] != want[0]:
        return text, f"a {_llm_size(got[0])} checkpoint with a {_llm_size(want[0])} model; use the matching preset"
    return text, other_size


def _llm_size(hidden: int) -> str:
    return LLM_SIZES.get(hidden, f"hidden-size-{hidden}")


_DROPPED = tuple((re.compile(pattern), reason) for pattern, reason in DROPPED_KEYS)
KNOWN_PREFIXES = frozenset(
    [official.split(".")[0] for rows in KEY_TABLE.values() for official, _ in rows]
    + [official.split(".")[0] for _, officials, _, _ in FUSED_KEYS for official in officials]
    + ["llama_model"]
)
