"""hub/files.py: where a preset's files are found on disk (checkpoints dir, Hugging Face cache, torch's
hub cache, paths the user gave), what is missing and the command that gets it; no network is touched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants as hub_constants

from tests.hub.layouts import DOWNLOAD_7B, REPO_7B, copy_tree, make_hf_cache, repo_files, tiny_as
from videollama_demo import load_pipeline
from videollama_demo.config import PRESETS
from videollama_demo.hub.files import (
    MissingWeightsError,
    download_bytes,
    find_local_preset,
    llm_dir_missing,
    resolve_weights,
)
from videollama_demo.model.weights import CheckpointError

# ---- resolving from disk ---------------------------------------------------------------------------

def test_a_checkpoints_dir_with_every_file_is_the_auto_choice(official_7b: Path, tmp_path: Path) -> None:
    assert find_local_preset(official_7b, hf_cache=tmp_path) == ("video-llama-2-7b", None)
    resolved = resolve_weights(PRESETS["video-llama-2-7b"], official_7b, hf_cache=tmp_path)
    assert resolved.complete
    assert resolved.official_paths().vl == official_7b / "Video-LLaMA-2-7B-Finetuned/VL_LLaMA_2_7B_Finetuned.pth"
    assert resolved.llm_dir == official_7b / "Video-LLaMA-2-7B-Finetuned/llama-2-7b-chat-hf"


def test_the_hugging_face_cache_layout_loads_the_model(official_7b: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Repo files only in the hub cache (as `preload_from_hub` leaves them), LAVIS files in checkpoints/."""
    cache = tmp_path / "hub"
    snapshot = make_hf_cache(cache, REPO_7B, repo_files(official_7b))
    checkpoints = copy_tree(official_7b, tmp_path / "checkpoints", skip=("Video-LLaMA-2-7B-Finetuned",))
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))  # what HF_HOME sets when the hub is imported

    assert find_local_preset(checkpoints) == ("video-llama-2-7b", None)
    config = tiny_as("video-llama-2-7b")
    resolved = resolve_weights(config, checkpoints)
    assert resolved.official_paths().al == snapshot / "AL_LLaMA_2_7B_Finetuned.pth"
    assert resolved.llm_dir == snapshot / "llama-2-7b-chat-hf"
    pipe = load_pipeline(config, checkpoints=checkpoints, device="cpu")
    vl = torch.load(official_7b / config.files.vl, weights_only=True)["model"]
    assert torch.equal(pipe.encoder.video_proj.weight, vl["llama_proj.weight"])


def test_an_incomplete_snapshot_is_not_used(official_7b: Path, tmp_path: Path) -> None:
    files = repo_files(official_7b)
    del files["llama-2-7b-chat-hf/pytorch_model-00002-of-00002.bin"]  # an interrupted snapshot
    make_hf_cache(tmp_path / "hub", REPO_7B, files)
    checkpoints = copy_tree(official_7b, tmp_path / "checkpoints", skip=("Video-LLaMA-2-7B-Finetuned",))
    resolved = resolve_weights(PRESETS["video-llama-2-7b"], checkpoints, hf_cache=tmp_path / "hub")
    assert [item.file.role for item in resolved.missing] == ["llm"]
    assert "pytorch_model-00002-of-00002.bin" not in resolved.explain()  # it looked in checkpoints/ first
    assert DOWNLOAD_7B + " --checkpoints" in resolved.explain()


def test_the_torch_hub_cache_of_the_official_code_is_searched(official_7b: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The official code caches the LAVIS files in <torch hub>/checkpoints; users who ran it have them."""
    torch_home = tmp_path / "torch"
    copy_tree(official_7b, torch_home / "hub" / "checkpoints", skip=("Video-LLaMA-2-7B-Finetuned",))
    checkpoints = tmp_path / "checkpoints"
    copy_tree(official_7b / "Video-LLaMA-2-7B-Finetuned", checkpoints / "Video-LLaMA-2-7B-Finetuned")
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    resolved = resolve_weights(PRESETS["video-llama-2-7b"], checkpoints, hf_cache=tmp_path)
    assert resolved.complete
    assert resolved.official_paths().eva_vit == torch_home / "hub" / "checkpoints" / "eva_vit_g.pth"


def test_nothing_found_gives_the_preview_with_the_missing_file_and_the_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    name, reason = find_local_preset(Path("checkpoints"), hf_cache=tmp_path)
    assert name == "preview"
    assert "EVA ViT-g at checkpoints/eva_vit_g.pth" in reason
    assert f"`{DOWNLOAD_7B}` (about 21.3 GB)" in reason
    _, reason = find_local_preset(tmp_path / "weights", hf_cache=tmp_path)
    assert f"`{DOWNLOAD_7B} --checkpoints {tmp_path / 'weights'}`" in reason


def test_a_missing_preset_is_an_error_that_lists_every_file_and_the_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    with pytest.raises(MissingWeightsError) as error:
        load_pipeline("video-llama-2-7b", checkpoints=tmp_path, device="cpu")
    message = str(error.value)
    assert "missing 6 file(s)" in message
    for name in ("eva_vit_g.pth", "blip2_pretrained_flant5xxl.pth", "VL_LLaMA_2_7B_Finetuned.pth",
                 "AL_LLaMA_2_7B_Finetuned.pth", "imagebind_huge.pth", "llama-2-7b-chat-hf"):
        assert name in message
    assert f"{DOWNLOAD_7B} --checkpoints {tmp_path}" in message


def test_paths_given_by_the_user_win(official_7b: Path, tmp_path: Path) -> None:
    elsewhere = copy_tree(official_7b / "Video-LLaMA-2-7B-Finetuned", tmp_path / "my" / "files")
    checkpoints = copy_tree(official_7b, tmp_path / "checkpoints", skip=("Video-LLaMA-2-7B-Finetuned",))
    overrides = {"vl": elsewhere / "VL_LLaMA_2_7B_Finetuned.pth", "al": elsewhere / "AL_LLaMA_2_7B_Finetuned.pth",
                 "imagebind": elsewhere / "imagebind_huge.pth", "llm": elsewhere / "llama-2-7b-chat-hf"}
    config = tiny_as("video-llama-2-7b")
    pipe = load_pipeline(config, checkpoints=checkpoints, device="cpu", paths=overrides)
    assert pipe.config.name == "video-llama-2-7b"

    overrides["vl"] = tmp_path / "nowhere.pth"
    resolved = resolve_weights(config, checkpoints, overrides, hf_cache=tmp_path)
    assert f"the path given for it, {tmp_path / 'nowhere.pth'}, does not exist" in resolved.explain()
    assert f"Fix the path given for the video branch (VL) ({tmp_path / 'nowhere.pth'})" in resolved.explain()
    with pytest.raises(ValueError, match="unknown weight path.*'vision'.*eva_vit, blip2, vl, al, imagebind, llm"):
        resolve_weights(config, checkpoints, {"vision": "x"})


def test_vicuna_needs_a_user_supplied_llm(official_7b: Path, tmp_path: Path) -> None:
    checkpoints = copy_tree(official_7b, tmp_path, skip=("Video-LLaMA-2-7B-Finetuned",))
    series = checkpoints / "Video-LLaMA-Series"
    series.mkdir()
    (series / "finetune-vicuna7b-v2.pth").write_bytes(b"x")
    (series / "finetune_vicuna7b_audiobranch.pth").write_bytes(b"x")
    (checkpoints / "imagebind_huge.pth").write_bytes(b"x")
    resolved = resolve_weights(PRESETS["video-llama-vicuna-7b"], checkpoints, hf_cache=tmp_path)
    assert [item.file.role for item in resolved.missing] == ["llm"]
    assert "cannot be downloaded" in resolved.explain() and "apply_delta" in resolved.explain()
    assert "python -m videollama_demo download" not in resolved.explain()


@pytest.mark.parametrize("files, missing", [
    ({"config.json": "{}", "tokenizer.model": "", "pytorch_model.bin": ""}, []),
    ({"config.json": "{}", "tokenizer.json": "{}", "model.safetensors": ""}, []),
    ({"config.json": "{}", "tokenizer.model": "",
      "pytorch_model.bin.index.json": '{"weight_map": {"a": "s1.bin", "b": "s2.bin", "c": "s1.bin"}}',
      "s1.bin": ""}, ["s2.bin"]),
    ({"config.json": "{}", "tokenizer.model": "", "pytorch_model.bin.index.json": '{"weight_m'},
     ["pytorch_model.bin.index.json"]),
    ({"tokenizer.model": "", "pytorch_model.bin": ""}, ["config.json"]),
    ({"config.json": "{}", "pytorch_model.bin": ""}, ["tokenizer.model"]),
    ({}, ["config.json", "tokenizer.model", "pytorch_model.bin.index.json"]),
])
def test_what_an_llm_folder_lacks(tmp_path: Path, files: dict[str, str], missing: list[str]) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert llm_dir_missing(tmp_path) == missing


def test_a_truncated_checkpoint_names_the_file_and_the_fix(official_7b: Path, tmp_path: Path) -> None:
    checkpoints = copy_tree(official_7b, tmp_path)
    vl = checkpoints / "Video-LLaMA-2-7B-Finetuned" / "VL_LLaMA_2_7B_Finetuned.pth"
    vl.write_bytes(vl.read_bytes()[: vl.stat().st_size // 2])  # an interrupted copy
    with pytest.raises(CheckpointError) as error:
        load_pipeline(tiny_as("video-llama-2-7b"), checkpoints=checkpoints, device="cpu")
    message = str(error.value)
    assert str(vl) in message and "truncated" in message
    assert f"delete it and run `{DOWNLOAD_7B} --checkpoints {checkpoints}`" in message


def test_download_sizes_add_up_the_official_listings() -> None:
    # The official listings: LAVIS eva_vit_g.pth ~2.03 GB + blip2_pretrained_flant5xxl.pth ~0.45 GB, VL + AL
    # ~0.55 GB, imagebind_huge.pth 4.8 GB, the LLM's fp16 shards 13.5 GB (7B) / 26.0 GB (13B); Vicuna v0 is not
    # downloadable.
    assert download_bytes(PRESETS["video-llama-2-7b"]) / 1e9 == pytest.approx(2.03 + 0.454 + 0.55 + 4.8 + 13.5)
    assert download_bytes(PRESETS["video-llama-2-13b"]) / 1e9 == pytest.approx(2.03 + 0.454 + 0.55 + 4.8 + 26.0)
    assert download_bytes(PRESETS["video-llama-vicuna-7b"]) / 1e9 == pytest.approx(2.03 + 0.454 + 0.55 + 4.8)


def test_loading_a_model_makes_no_network_request(official_7b: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even with offline mode off: no bert-base-uncased, no hub look-up; every file is read from disk."""
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    requests: list[tuple[str, tuple]] = []
    watching = [True]

    def audit(event: str, args: tuple) -> None:
        if watching[0] and event in ("socket.connect", "socket.getaddrinfo"):
            requests.append((event, args))
    sys.addaudithook(audit)  # hooks cannot be removed: `watching` limits this one to this test
    try:
        load_pipeline(tiny_as("video-llama-2-7b"), checkpoints=official_7b, device="cpu")
    finally:
        watching[0] = False
    assert requests == []


def test_hf_home_decides_which_cache_is_searched(official_7b: Path, tmp_path: Path) -> None:
    make_hf_cache(tmp_path / "home" / "hub", REPO_7B, repo_files(official_7b))
    checkpoints = copy_tree(official_7b, tmp_path / "checkpoints", skip=("Video-LLaMA-2-7B-Finetuned",))
    script = ("from videollama_demo.hub import find_local_preset; from pathlib import Path; "
              f"print(find_local_preset(Path({str(checkpoints)!r}))[0])")
    env = os.environ | {"HF_HOME": str(tmp_path / "home")}
    env.pop("HF_HUB_CACHE", None)
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).parents[2])
    assert result.stdout.strip() == "video-llama-2-7b", result.stderr
