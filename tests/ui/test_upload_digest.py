"""Uploads through the real server are named by the digest Gradio computed while they streamed in, and
the same bytes uploaded again under another name, from another session, are served from the cache."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import gradio
import httpx
from gradio_client import Client

from tests.pipeline.test_encode_cache import copy_with_one_byte_changed
from tests.ui.conftest import LiveApp
from tests.ui.test_api import upload
from videollama_demo.pipeline.content_digest import content_digest


def post_upload(url: str, path: Path, name: str) -> Path:
    """Gradio's upload route, as the browser calls it: the path the server stored the file at."""
    with path.open("rb") as file:
        answer = httpx.post(f"{url}gradio_api/upload", files={"files": (name, file, "video/mp4")}, timeout=30)
    answer.raise_for_status()
    return Path(answer.json()[0])


def test_an_upload_is_named_by_gradios_seeded_sha256(live_app: LiveApp, shared_media: dict[str, Path]) -> None:
    """Pins what the shortcut relies on: Gradio's directory name is SHA-256(seed + bytes)."""
    data = shared_media["video"].read_bytes()
    seed = (Path(gradio.__file__).parent / "hash_seed.txt").read_text().strip()
    expected = hashlib.sha256(seed.encode() + data).hexdigest()
    first = post_upload(live_app.url, shared_media["video"], "clip.mp4")
    renamed = post_upload(live_app.url, shared_media["video"], "holiday.mp4")
    assert first.parent.name == renamed.parent.name == expected and first.name != renamed.name
    assert content_digest(first) == content_digest(renamed) == f"gradio-sha256:{expected}:{len(data)}"


def test_the_same_bytes_under_a_new_name_come_from_the_cache(live_app: LiveApp, shared_media: dict[str, Path],
                                                             tmp_path: Path) -> None:
    # Bytes no other test uploads and a frame count of their own: the first upload is a miss.
    original = copy_with_one_byte_changed(shared_media["video"], tmp_path / "lecture.mp4")
    renamed = Path(shutil.copyfile(original, tmp_path / "lecture (copy).mp4"))
    first_tab, second_tab = Client(live_app.url, verbose=False), Client(live_app.url, verbose=False)
    try:
        first = upload(first_tab, original, num_frames=7)
        again = upload(second_tab, renamed, num_frames=7)
    finally:
        first_tab.close()
        second_tab.close()
    assert "From cache" not in first["seen"]
    assert "From cache" in again["seen"]
    assert [f["caption"] for f in again["frames"]] == [f["caption"] for f in first["frames"]]
