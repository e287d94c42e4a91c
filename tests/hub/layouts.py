"""The official `checkpoints/` layout and the Hugging Face cache layout, filled with the tiny model's files."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

from videollama_demo.config import PRESETS, VideoLlamaConfig

REPO_7B = "DAMO-NLP-SG/Video-LLaMA-2-7B-Finetuned"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
DOWNLOAD_7B = "python -m videollama_demo download video-llama-2-7b"


def tiny_as(preset: str) -> VideoLlamaConfig:
    """The tiny model under an official preset's name and file names: the real layout, small files."""
    official = PRESETS[preset]
    return dataclasses.replace(PRESETS["tiny"], name=preset, files=official.files,
                               llm=dataclasses.replace(PRESETS["tiny"].llm, path=official.llm.path))


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
