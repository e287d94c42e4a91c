"""The name of a file's bytes in the shared encode cache: Gradio's streamed digest for its uploads only,
BLAKE3 for everything else."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import blake3
import pytest

from videollama_demo.pipeline.content_digest import content_digest, file_blake3, gradio_upload_digest

HEX = "ab" * 32  # a directory name of Gradio's form (64 hex digits)


def one_shot_blake3(path: Path) -> str:
    """The reference: BLAKE3 of the bytes read whole, on one thread (no memory map)."""
    return "blake3:" + blake3.blake3(path.read_bytes()).hexdigest()


@pytest.fixture
def upload_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "gradio-uploads"
    folder.mkdir()
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(folder))
    return folder


def test_blake3_is_the_files_bytes(shared_media: dict[str, Path], tmp_path: Path) -> None:
    video = shared_media["video"]
    assert file_blake3(video) == one_shot_blake3(video)
    changed = tmp_path / "changed.mp4"
    data = bytearray(video.read_bytes())
    data[len(data) // 2] ^= 0x01
    changed.write_bytes(bytes(data))
    assert file_blake3(changed) == one_shot_blake3(changed) != file_blake3(video)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert file_blake3(empty) == one_shot_blake3(empty)


def test_a_file_changed_in_place_is_hashed_again(shared_media: dict[str, Path], tmp_path: Path) -> None:
    """Digests are remembered per file version (inode, size, mtime): a rewrite is a new version."""
    path = tmp_path / "rewritten.mp4"
    data = bytearray(shared_media["video"].read_bytes())
    path.write_bytes(data)
    before = file_blake3(path)
    assert file_blake3(path) == before  # the remembered digest
    data[-1] ^= 0xFF
    path.write_bytes(data)  # same size, same inode
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # a later write, as a clock tick shows it
    assert file_blake3(path) == one_shot_blake3(path) != before


def test_a_gradio_upload_is_named_by_its_directory_without_reading_it(upload_folder: Path) -> None:
    upload = upload_folder / HEX / "clip.mp4"
    upload.parent.mkdir()
    upload.write_bytes(b"x" * 1000)
    assert content_digest(upload) == gradio_upload_digest(upload) == f"gradio-sha256:{HEX}:1000"
    renamed = upload_folder / HEX / "same bytes, another name.mp4"
    shutil.copyfile(upload, renamed)
    assert content_digest(renamed) == content_digest(upload)


def _outside_copy(folder: Path, source: Path) -> Path:
    (folder / HEX).mkdir(parents=True)
    return Path(shutil.copyfile(source, folder / HEX / "clip.mp4"))


def _symlink_in_upload_folder(folder: Path, source: Path) -> Path:
    (folder / HEX).mkdir()
    link = folder / HEX / "clip.mp4"
    link.symlink_to(source)
    return link


def _nested_deeper(folder: Path, source: Path) -> Path:
    (folder / HEX / "sub").mkdir(parents=True)
    return Path(shutil.copyfile(source, folder / HEX / "sub" / "clip.mp4"))


def _not_a_digest_name(folder: Path, source: Path) -> Path:
    (folder / ("AB" * 32)).mkdir()  # Gradio writes lowercase hex
    return Path(shutil.copyfile(source, folder / ("AB" * 32) / "clip.mp4"))


@pytest.mark.parametrize("place", [_outside_copy, _symlink_in_upload_folder, _nested_deeper, _not_a_digest_name])
def test_a_path_gradio_did_not_upload_is_hashed(place, upload_folder: Path, tmp_path: Path,
                                               shared_media: dict[str, Path]) -> None:
    folder = tmp_path / "elsewhere" if place is _outside_copy else upload_folder
    path = place(folder, shared_media["video"])
    assert gradio_upload_digest(path) is None
    assert content_digest(path) == one_shot_blake3(shared_media["video"])
