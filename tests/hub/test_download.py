"""hub/download.py: resumable downloads, offline mode and a dead network noticed at once (all offline).

The downloads run against an HTTP server on 127.0.0.1 that this file starts: it serves the LAVIS-style
URL files with HTTP Range and answers the two requests `hf_hub_download` makes (HEAD, then GET), so the
real huggingface-hub client fills a real `checkpoints/` layout. Files are the tiny model in the official
formats, under an official preset's file names.
"""

from __future__ import annotations

import hashlib
import http.server
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import constants as hub_constants

from tests.hub.layouts import COMMIT, REPO_7B, repo_files, tiny_as
from videollama_demo import load_pipeline
from videollama_demo.__main__ import main
from videollama_demo.hub.download import DownloadError, download_url, download_weights, unreachable_reason
from videollama_demo.hub.files import RemoteFile, find_local_preset

# ---- no network, and offline ------------------------------------------------------------------------

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
