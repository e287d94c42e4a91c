"""Where the weights come from: checkpoints dir, Hugging Face cache, resumable downloads (all offline).

The downloads run against an HTTP server on 127.0.0.1 that this file starts: it serves the LAVIS-style
URL files with HTTP Range and answers the two requests `hf_hub_download` makes (HEAD, then GET), so the
real huggingface-hub client fills a real `checkpoints/` layout. Files are the tiny model in the official
formats, under an official preset's file names.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants as hub_constants

from tests.official_format import write_official_checkpoints
from tests.tiny_llama import write_tiny_llama_dir
from videollama_demo import load_pipeline
from videollama_demo.__main__ import main
from videollama_demo.config import PRESETS, VideoLlamaConfig
from videollama_demo.hub import (
    DownloadError,
    MissingWeightsError,
    RemoteFile,
    download_bytes,
    download_url,
    download_weights,
    find_local_preset,
    llm_dir_missing,
    resolve_weights,
    unreachable_reason,
)
from videollama_demo.model.weights import CheckpointError

REPO_7B = "DAMO-NLP-SG/Video-LLaMA-2-7B-Finetuned"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
DOWNLOAD_7B = "python -m videollama_demo download video-llama-2-7b"


def tiny_as(preset: str) -> VideoLlamaConfig:
    """The tiny model under an official preset's name and file names: the real layout, small files."""
    official = PRESETS[preset]
    return dataclasses.replace(PRESETS["tiny"], name=preset, files=official.files,
                               llm=dataclasses.replace(PRESETS["tiny"].llm, path=official.llm.path))


@pytest.fixture(scope="module")
def official_7b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete checkpoints/ dir in the 7B layout (eva_vit_g.pth, ..., Video-LLaMA-2-7B-Finetuned/...)."""
    directory = tmp_path_factory.mktemp("official_7b")
    config = tiny_as("video-llama-2-7b")
    write_official_checkpoints(config, directory)
    write_tiny_llama_dir(directory / config.llm.path)
    return directory


def repo_files(source: Path) -> dict[str, Path]:
    """Path inside the 7B repo -> file, for every file of the repo folder."""
    folder = source / "Video-LLaMA-2-7B-Finetuned"
    return {path.relative_to(folder).as_posix(): path for path in sorted(folder.rglob("*")) if path.is_file()}


def make_hf_cache(cache: Path, repo: str, files: dict[str, Path]) -> Path:
    """A Hugging Face cache as the hub writes it: blobs by sha256, snapshot symlinks, refs/main."""
    repo_dir = cache / f"models--{repo.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / COMMIT
    for name, source in files.items():
        data = source.read_bytes()
        blob = repo_dir / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(COMMIT)
    return snapshot


def copy_tree(source: Path, target: Path, skip: tuple[str, ...] = ()) -> Path:
    for path in source.rglob("*"):
        if path.is_file() and not any(part in skip for part in path.relative_to(source).parts):
            destination = target / path.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(path.read_bytes())
    return target


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
    # spec §7.1/§7.3: LAVIS ~2.03 + 0.45 GB, VL + AL ~0.55 GB, ImageBind 4.8 GB, LLM 13.5 / 26.0 GB
    assert download_bytes(PRESETS["video-llama-2-7b"]) / 1e9 == pytest.approx(2.03 + 0.454 + 0.55 + 4.8 + 13.5)
    assert download_bytes(PRESETS["video-llama-2-13b"]) / 1e9 == pytest.approx(2.03 + 0.454 + 0.55 + 4.8 + 26.0)
    assert download_bytes(PRESETS["video-llama-vicuna-7b"]) / 1e9 == pytest.approx(2.03 + 0.454 + 0.55 + 4.8)


# ---- no network, and offline ------------------------------------------------------------------------

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


def test_hf_hub_offline_stops_a_download_at_once(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(DownloadError, match="HF_HUB_OFFLINE is set"):
        download_weights("video-llama-2-7b", tmp_path, hf_cache=tmp_path)
    assert time.monotonic() - started < 1.0


def test_no_network_is_noticed_in_a_second_and_the_hub_goes_offline(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    closed_port = _free_port()
    started = time.monotonic()
    with pytest.raises(DownloadError, match=f"cannot reach 127.0.0.1:{closed_port}"):
        download_weights("video-llama-2-7b", tmp_path, hf_cache=tmp_path, endpoint=f"http://127.0.0.1:{closed_port}",
                         url_files={})
    assert time.monotonic() - started < 2.0
    assert hub_constants.HF_HUB_OFFLINE  # later hub look-ups (transformers' too) fail at once


def test_the_connection_check_goes_to_the_proxy_when_one_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    port = _free_port()
    monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert f"cannot reach 127.0.0.1:{port}" in unreachable_reason(["https://huggingface.co"])


def test_the_download_command_says_why_it_cannot_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["download", "video-llama-2-7b", "--checkpoints", str(tmp_path)]) == 1
    assert "HF_HUB_OFFLINE is set" in capsys.readouterr().err


def test_hf_home_decides_which_cache_is_searched(official_7b: Path, tmp_path: Path) -> None:
    make_hf_cache(tmp_path / "home" / "hub", REPO_7B, repo_files(official_7b))
    checkpoints = copy_tree(official_7b, tmp_path / "checkpoints", skip=("Video-LLaMA-2-7B-Finetuned",))
    script = ("from videollama_demo.hub import find_local_preset; from pathlib import Path; "
              f"print(find_local_preset(Path({str(checkpoints)!r}))[0])")
    env = os.environ | {"HF_HOME": str(tmp_path / "home")}
    env.pop("HF_HUB_CACHE", None)
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).parents[1])
    assert result.stdout.strip() == "video-llama-2-7b", result.stderr


# ---- downloading from a local server ----------------------------------------------------------------

class FileServer:
    """Serves bytes at paths with HTTP Range; can cut transfers short or ignore Range; logs each request."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cuts: dict[str, list[int]] = {}  # path -> bytes to send before hanging up, one per request
        self.ignore_range = False
        self.requests: list[tuple[str, str, str | None]] = []
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                server.respond(self, body=False)

            def do_GET(self) -> None:
                server.respond(self, body=True)

            def log_message(self, *args: object) -> None:
                pass
        return Handler

    def respond(self, handler: http.server.BaseHTTPRequestHandler, body: bool) -> None:
        path, asked = handler.path.split("?")[0], handler.headers.get("Range")
        self.requests.append((handler.command, path, asked))
        data = self.files.get(path)
        if data is None:
            handler.send_response(404)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        start = int(match.group(1)) if (match := re.fullmatch(r"bytes=(\d+)-", asked or "")) else 0
        if self.ignore_range:
            start = 0
        if start >= len(data) and start:
            handler.send_response(416)
            handler.send_header("Content-Range", f"bytes */{len(data)}")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        handler.send_response(206 if start else 200)
        if start:
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        handler.send_header("Content-Length", str(len(data) - start))
        handler.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        handler.send_header("X-Repo-Commit", COMMIT)
        handler.end_headers()
        if body:
            cuts = self.cuts.get(path)
            handler.wfile.write(data[start:start + cuts.pop(0)] if cuts else data[start:])


@pytest.fixture
def server() -> Iterator[FileServer]:
    files = FileServer()
    thread = threading.Thread(target=files.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield files
    files.httpd.shutdown()
    files.httpd.server_close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


PAYLOAD = bytes(range(256)) * 4096  # 1 MiB with a pattern: a misplaced byte shows


def test_an_interrupted_transfer_is_resumed_where_it_stopped(server: FileServer, tmp_path: Path) -> None:
    server.files["/eva_vit_g.pth"] = PAYLOAD
    server.cuts["/eva_vit_g.pth"] = [300_000]
    dest = download_url(server.url + "/eva_vit_g.pth", tmp_path / "eva_vit_g.pth", approx_bytes=len(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("GET", "/eva_vit_g.pth", None), ("GET", "/eva_vit_g.pth", "bytes=300000-")]
    assert not (tmp_path / "eva_vit_g.pth.part").exists()


def test_a_part_file_left_by_an_earlier_run_is_resumed(server: FileServer, tmp_path: Path) -> None:
    server.files["/blip2.pth"] = PAYLOAD
    (tmp_path / "blip2.pth.part").write_bytes(PAYLOAD[:123_456])
    assert download_url(server.url + "/blip2.pth", tmp_path / "blip2.pth").read_bytes() == PAYLOAD
    assert server.requests == [("GET", "/blip2.pth", "bytes=123456-")]


def test_a_complete_part_file_is_finished_without_a_transfer(server: FileServer, tmp_path: Path) -> None:
    server.files["/f.pth"] = PAYLOAD
    (tmp_path / "f.pth.part").write_bytes(PAYLOAD)  # the last run stopped just before renaming it
    assert download_url(server.url + "/f.pth", tmp_path / "f.pth").read_bytes() == PAYLOAD


def test_a_server_that_ignores_range_restarts_the_file(server: FileServer, tmp_path: Path) -> None:
    server.files["/f.pth"] = PAYLOAD
    server.ignore_range = True
    (tmp_path / "f.pth.part").write_bytes(b"stale bytes of an older file")
    assert download_url(server.url + "/f.pth", tmp_path / "f.pth").read_bytes() == PAYLOAD


def test_a_transfer_that_keeps_breaking_is_an_error_that_keeps_the_part(server: FileServer, tmp_path: Path) -> None:
    server.files["/eva_vit_g.pth"] = PAYLOAD
    server.cuts["/eva_vit_g.pth"] = [1000, 1000, 1000]
    with pytest.raises(DownloadError) as error:
        download_url(server.url + "/eva_vit_g.pth", tmp_path / "eva_vit_g.pth", attempts=3)
    assert "eva_vit_g.pth" in str(error.value) and "run the same command again to resume" in str(error.value)
    assert (tmp_path / "eva_vit_g.pth.part").read_bytes() == PAYLOAD[:3000]
    assert not (tmp_path / "eva_vit_g.pth").exists()
    assert download_url(server.url + "/eva_vit_g.pth", tmp_path / "eva_vit_g.pth").read_bytes() == PAYLOAD
    assert server.requests[-1] == ("GET", "/eva_vit_g.pth", "bytes=3000-")


def test_a_file_of_the_wrong_size_is_refused(server: FileServer, tmp_path: Path) -> None:
    server.files["/eva_vit_g.pth"] = b"<html>Access denied</html>"
    with pytest.raises(DownloadError, match=r"eva_vit_g.pth: the server offers 26 bytes .* about 2030000000 bytes"):
        download_url(server.url + "/eva_vit_g.pth", tmp_path / "eva_vit_g.pth", approx_bytes=2_030_000_000)
    assert not (tmp_path / "eva_vit_g.pth").exists()


def test_a_missing_url_is_an_error_naming_the_file(server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="blip2_pretrained_flant5xxl.pth: the server answered 404"):
        download_url(server.url + "/gone.pth", tmp_path / "blip2_pretrained_flant5xxl.pth")


def test_a_preset_downloads_into_the_checkpoints_layout(server: FileServer, official_7b: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Hub files through hf_hub_download (HEAD + GET on our server), LAVIS files by URL; then it loads."""
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    for name, path in repo_files(official_7b).items():
        server.files[f"/{REPO_7B}/resolve/main/{name}"] = path.read_bytes()
    lavis = {}
    for name in ("eva_vit_g.pth", "blip2_pretrained_flant5xxl.pth"):
        server.files[f"/lavis/{name}"] = (official_7b / name).read_bytes()
        lavis[name] = RemoteFile(f"{server.url}/lavis/{name}", (official_7b / name).stat().st_size)
    checkpoints = tmp_path / "checkpoints"
    config = tiny_as("video-llama-2-7b")

    resolved = download_weights(config, checkpoints, hf_cache=tmp_path, endpoint=server.url, url_files=lavis)
    assert resolved.complete
    for name, path in repo_files(official_7b).items():
        assert (checkpoints / "Video-LLaMA-2-7B-Finetuned" / name).read_bytes() == path.read_bytes()
    assert find_local_preset(checkpoints, hf_cache=tmp_path) == ("video-llama-2-7b", None)
    assert load_pipeline(config, checkpoints=checkpoints, device="cpu").config.name == "video-llama-2-7b"
    fetched = sorted(path for method, path, _ in server.requests if method == "GET")
    assert len(fetched) == len(set(fetched)) == len(server.files)  # each file once

    server.requests.clear()
    download_weights(config, checkpoints, hf_cache=tmp_path, endpoint=server.url, url_files=lavis)
    assert server.requests == []  # everything is there: nothing is asked for
