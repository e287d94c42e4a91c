"""weights.py: official files in, every parameter filled, every leftover explained, clear errors."""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.official_format import save, write_official_checkpoints
from videollama_demo.config import LLMConfig, VideoLlamaConfig
from videollama_demo.model.video_llama import VideoLlamaEncoder
from videollama_demo.model.weights import (
    FUSED_KEYS,
    KEY_TABLE,
    CheckpointError,
    LoadReport,
    OfficialPaths,
    load_official_weights,
    plan_sources,
)


def _file_keys(path: Path, entry: str | None = None, prefix: str = "") -> set[str]:
    raw = torch.load(path, weights_only=True)
    return {prefix + key for key in (raw[entry] if entry else raw)}


def _rewrite(src: Path, dst: Path, edit: Callable[[dict[str, Any]], object]) -> Path:
    """Copy a checkpoint, with `edit` changing in place the dict that torch.load returns."""
    obj = torch.load(src, weights_only=True)
    edit(obj)
    save(obj, dst)
    return dst


def _load_error(cfg: VideoLlamaConfig, paths: OfficialPaths) -> str:
    with pytest.raises(CheckpointError) as err:
        load_official_weights(cfg, paths)
    return str(err.value)


def test_every_official_key_lands_or_is_ignored_for_a_stated_reason(loaded: tuple[VideoLlamaEncoder, LoadReport],
                                                                     official_paths: OfficialPaths,
                                                                     tiny_config: VideoLlamaConfig) -> None:
    report = loaded[1]
    depth = tiny_config.vision.depth
    expected_ignored = {
        "eva_vit": lambda key: key.startswith(f"visual_encoder.blocks.{depth}."),
        "blip2": lambda key: (key.startswith(("Qformer.cls.", "t5_proj.")) or key.endswith("position_ids")
                              or re.search(r"(word|position)_embeddings|layer\.\d+\.(intermediate|output)\.", key)),
        "imagebind": lambda key: ".audio." not in key or key.endswith("log_logit_scale"),
        "vl": lambda key: key.endswith(("position_ids", "inv_freq")),
        "al": lambda key: key.endswith(("position_ids", "inv_freq", "log_logit_scale")),
    }
    keys = {
        "eva_vit": _file_keys(official_paths.eva_vit, prefix="visual_encoder."),
        "blip2": _file_keys(official_paths.blip2, "model"),
        "imagebind": _file_keys(official_paths.imagebind, prefix="audio_encoder."),
        "vl": _file_keys(official_paths.vl, "model"),
        "al": _file_keys(official_paths.al, "model"),
    }
    for kind, is_leftover in expected_ignored.items():
        file_report = report.file(kind)
        ignored = {key for reason_keys in file_report.ignored.values() for key in reason_keys}
        assert set(file_report.loaded) == {key for key in keys[kind] if not is_leftover(key)}, kind
        assert ignored - {"optimizer", "config", "scaler", "epoch"} == {k for k in keys[kind] if is_leftover(k)}, kind
        assert not file_report.overridden
    assert set(report.file("vl").ignored["training state (the official code reads only ['model'])"]) == {
        "optimizer", "config", "scaler", "epoch"}


def test_every_parameter_came_from_a_file(loaded: tuple[VideoLlamaEncoder, LoadReport], official: dict,
                                          tiny_config: VideoLlamaConfig) -> None:
    encoder, report = loaded
    assert not any(t.is_meta for t in [*encoder.parameters(), *encoder.buffers()])
    assert {p.dtype for p in encoder.parameters()} == {torch.float32}  # the eva file is fp16, cast once on load
    loaded_numel = sum(official[f.kind][_strip(f.kind, key)].numel() for f in report.files for key in f.loaded)
    zero_k_bias = tiny_config.vision.depth * tiny_config.vision.width  # EVA's k bias: zeros that no file holds
    assert sum(p.numel() for p in encoder.parameters()) == loaded_numel + zero_k_bias


def _strip(kind: str, key: str) -> str:
    prefix = {"eva_vit": "visual_encoder.", "imagebind": "audio_encoder."}.get(kind, "")
    return key.removeprefix(prefix)


def test_eva_q_and_v_biases_become_one_qkv_bias_with_zero_k(encoder: VideoLlamaEncoder, official: dict) -> None:
    eva = official["eva_vit"]
    bias = encoder.vision.encoder.layers[1].self_attn.qkv.bias
    expected = torch.cat([eva["blocks.1.attn.q_bias"], torch.zeros(32), eva["blocks.1.attn.v_bias"]])
    assert torch.equal(bias, expected)


def test_the_table_uses_the_same_placeholders_on_both_sides() -> None:
    def placeholders(key: str) -> tuple[str, ...]:
        return tuple(re.findall(r"\{\}|\*$", key))
    for rows in KEY_TABLE.values():
        for official, ours in rows:
            assert placeholders(official) == placeholders(ours), official
    for _, officials, ours, _ in FUSED_KEYS:
        assert all(placeholders(official) == placeholders(ours) for official in officials)


def test_official_size_model_reads_the_official_key_counts() -> None:
    """Spec §6: 511 `visual_encoder.` keys for 39 blocks. The pruned Q-Formers (parameter counts pinned in
    test_vision) have 254 / 54 / 54 weight keys; their unused `position_ids` buffer is dropped by rule."""
    with torch.device("meta"):
        encoder = VideoLlamaEncoder(VideoLlamaConfig.from_name("video-llama-2-7b"))
    counts: dict[str, int] = {}
    for source in plan_sources(encoder).values():
        for official in source.official:
            counts[official.split(".")[0]] = counts.get(official.split(".")[0], 0) + 1
    assert counts == {
        "visual_encoder": 511, "ln_vision": 2, "query_tokens": 1, "Qformer": 254,
        "video_query_tokens": 1, "video_frame_position_embedding": 1, "video_Qformer": 54, "llama_proj": 2,
        "audio_encoder": 5 + 12 * 14 + 3, "audio_query_tokens": 1, "audio_position_embedding": 1,
        "audio_Qformer": 54, "audio_llama_proj": 2,
    }


def test_report_is_a_short_summary(loaded: tuple[VideoLlamaEncoder, LoadReport]) -> None:
    text = str(loaded[1])
    assert text.splitlines()[0] == "Video-LLaMA encoder weights for preset 'tiny': every parameter came from a file"
    assert "  eva_vit_g.pth: 30 keys loaded, 13 ignored on purpose" in text.splitlines()
    assert len(text.splitlines()) == 6
    assert "t5_proj.weight" in loaded[1].details()


def test_a_model_without_audio_needs_no_audio_files(official_paths: OfficialPaths) -> None:
    cfg = VideoLlamaConfig.from_name("tiny", audio=None, audio_qformer=None)
    paths = dataclasses.replace(official_paths, al=None, imagebind=None)
    encoder, report = load_official_weights(cfg, paths)
    assert [f.kind for f in report.files] == ["eva_vit", "blip2", "vl"]
    assert not any(t.is_meta for t in encoder.parameters())


def test_an_audio_model_without_the_al_file_is_an_error(official_paths: OfficialPaths,
                                                        tiny_config: VideoLlamaConfig) -> None:
    message = _load_error(tiny_config, dataclasses.replace(official_paths, al=None))
    assert "has an audio branch, so it needs the AL (audio-language) checkpoint" in message


def test_a_later_file_wins_where_two_hold_the_same_key(official_paths: OfficialPaths, official: dict,
                                                       tiny_config: VideoLlamaConfig, tmp_path: Path) -> None:
    tokens = torch.full_like(official["vl"]["video_query_tokens"], 0.5)
    al = _rewrite(official_paths.al, tmp_path / "AL.pth",
                  lambda ckpt: ckpt["model"].__setitem__("video_query_tokens", tokens))
    encoder, report = load_official_weights(tiny_config, dataclasses.replace(official_paths, al=al))
    assert torch.equal(encoder.video_query_tokens, tokens)
    assert report.file("vl").overridden == ["video_query_tokens"]


def test_torch_legacy_format_loads_too(official_paths: OfficialPaths, tiny_config: VideoLlamaConfig,
                                       tmp_path: Path) -> None:
    legacy = tmp_path / "eva_vit_g.pth"
    save(torch.load(official_paths.eva_vit, weights_only=True), legacy, legacy_format=True)
    encoder, _ = load_official_weights(tiny_config, dataclasses.replace(official_paths, eva_vit=legacy))
    assert torch.equal(encoder.vision.embeddings.class_embedding,
                       torch.load(legacy, weights_only=True)["cls_token"].float())


# ---- the errors a user can meet ---------------------------------------------------------------

def test_a_13b_checkpoint_with_a_7b_model(tmp_path: Path) -> None:
    def with_llm(hidden: int) -> VideoLlamaConfig:
        return VideoLlamaConfig.from_name("tiny", llm=LLMConfig(hidden_size=hidden, path="tiny/llama"))
    paths = write_official_checkpoints(with_llm(5120), tmp_path)
    message = _load_error(with_llm(4096), paths)
    assert f"{paths.vl}: llama_proj.weight is (5120, 32), the model expects (4096, 32)" in message
    assert "a 13B checkpoint with a 7B model" in message


def test_a_minigpt4_checkpoint_given_as_vl(official_paths: OfficialPaths, official: dict,
                                           tiny_config: VideoLlamaConfig, tmp_path: Path) -> None:
    minigpt4 = {"model": {key: official["vl"][key] for key in ("llama_proj.weight", "llama_proj.bias")}}
    save(minigpt4, tmp_path / "prerained_minigpt4.pth")
    message = _load_error(tiny_config, dataclasses.replace(official_paths, vl=tmp_path / "prerained_minigpt4.pth"))
    assert message.startswith(f"{tmp_path / 'prerained_minigpt4.pth'}: the VL (vision-language) checkpoint is missing")
    assert "this looks like a MiniGPT-4 checkpoint given as the VL checkpoint" in message


def test_swapped_vl_and_al_files(official_paths: OfficialPaths, tiny_config: VideoLlamaConfig) -> None:
    swapped = dataclasses.replace(official_paths, vl=official_paths.al, al=official_paths.vl)
    message = _load_error(tiny_config, swapped)
    assert f"{official_paths.al}: the VL (vision-language) checkpoint is missing" in message
    assert "the AL and VL files look swapped" in message


def test_an_unknown_key_under_a_known_prefix(official_paths: OfficialPaths, official: dict,
                                             tiny_config: VideoLlamaConfig, tmp_path: Path) -> None:
    key = "video_Qformer.bert.encoder.layer.0.attention.self.rel_pos_bias"
    vl = _rewrite(official_paths.vl, tmp_path / "VL.pth", lambda ckpt: ckpt["model"].__setitem__(key, torch.ones(4)))
    message = _load_error(tiny_config, dataclasses.replace(official_paths, vl=vl))
    assert f"{vl}: the VL (vision-language) checkpoint has 1 key(s) under Video-LLaMA's names" in message
    assert key in message and "made for a different model than preset 'tiny'" in message


def test_a_missing_key(official_paths: OfficialPaths, tiny_config: VideoLlamaConfig, tmp_path: Path) -> None:
    key = "video_Qformer.bert.encoder.layer.1.output_query.LayerNorm.bias"
    vl = _rewrite(official_paths.vl, tmp_path / "VL.pth", lambda ckpt: ckpt["model"].pop(key))
    message = _load_error(tiny_config, dataclasses.replace(official_paths, vl=vl))
    assert f"{vl}: the VL (vision-language) checkpoint is missing 1 key(s) the model needs, e.g. {key}" in message


def test_a_vit_file_with_too_few_blocks(official_paths: OfficialPaths, tiny_config: VideoLlamaConfig,
                                        tmp_path: Path) -> None:
    def drop_block_one(state: dict[str, Any]) -> None:
        for key in [key for key in state if key.startswith("blocks.1.")]:
            del state[key]
    eva = _rewrite(official_paths.eva_vit, tmp_path / "eva_vit_g.pth", drop_block_one)
    message = _load_error(tiny_config, dataclasses.replace(official_paths, eva_vit=eva))
    assert "it has fewer ViT blocks than the 2 the model needs" in message


def test_a_truncated_file(official_paths: OfficialPaths, tiny_config: VideoLlamaConfig, tmp_path: Path) -> None:
    truncated = tmp_path / "blip2_pretrained_flant5xxl.pth"
    data = official_paths.blip2.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    message = _load_error(tiny_config, dataclasses.replace(official_paths, blip2=truncated))
    assert message.startswith(f"{truncated}: the BLIP-2 file (blip2_pretrained_flant5xxl.pth) could not be read")
    assert message.endswith("it looks truncated or corrupt (an interrupted download?) — re-download it")


def test_a_missing_file(official_paths: OfficialPaths, tiny_config: VideoLlamaConfig, tmp_path: Path) -> None:
    message = _load_error(tiny_config, dataclasses.replace(official_paths, imagebind=tmp_path / "nope.pth"))
    assert message == f"the ImageBind file (imagebind_huge.pth) was not found at {tmp_path / 'nope.pth'}"


def test_a_training_checkpoint_given_as_eva_vit(official_paths: OfficialPaths, tiny_config: VideoLlamaConfig) -> None:
    message = _load_error(tiny_config, dataclasses.replace(official_paths, eva_vit=official_paths.blip2))
    assert "should be a plain state dict, but this file is a training checkpoint" in message


def test_an_audio_logit_scale_other_than_20(official_paths: OfficialPaths, tiny_config: VideoLlamaConfig,
                                            tmp_path: Path) -> None:
    key = "modality_postprocessors.audio.1.log_logit_scale"
    imagebind = _rewrite(official_paths.imagebind, tmp_path / "imagebind_huge.pth",
                         lambda state: state.__setitem__(key, torch.tensor(math.log(10.0))))
    message = _load_error(tiny_config, dataclasses.replace(official_paths, imagebind=imagebind))
    assert "log_logit_scale gives a scale of 10, but ImageBind's audio head (and this model) uses 20" in message


def test_a_file_holding_arbitrary_python_objects(official_paths: OfficialPaths, tiny_config: VideoLlamaConfig,
                                                 tmp_path: Path) -> None:
    vl = _rewrite(official_paths.vl, tmp_path / "VL.pth",
                  lambda ckpt: ckpt.__setitem__("args", argparse.Namespace(lr=1e-4)))
    message = _load_error(tiny_config, dataclasses.replace(official_paths, vl=vl))
    assert f"{vl}: the VL (vision-language) checkpoint holds Python objects other than tensors" in message
