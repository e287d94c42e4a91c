"""Where the weights come from: the local checkpoints directory (DESIGN.md §4)."""

from __future__ import annotations

from pathlib import Path

from .config import PRESETS, VideoLlamaConfig
from .model.weights import OfficialPaths

# Presets tried by `--model auto`, best first.
AUTO_ORDER = ("video-llama-2-13b", "video-llama-2-7b", "video-llama-vicuna-7b")
LLM_MARKER_FILES = ("config.json",)


def official_paths(config: VideoLlamaConfig, checkpoints: Path) -> OfficialPaths:
    files = config.files
    audio = config.has_audio
    return OfficialPaths(
        eva_vit=checkpoints / files.eva_vit,
        blip2=checkpoints / files.blip2,
        vl=checkpoints / files.vl,
        al=checkpoints / files.al if audio else None,
        imagebind=checkpoints / files.imagebind if audio else None,
    )


def missing_files(config: VideoLlamaConfig, checkpoints: Path) -> list[Path]:
    """The files of `config` that are not in `checkpoints` (empty when it can run)."""
    paths = official_paths(config, checkpoints)
    wanted = [p for p in (paths.eva_vit, paths.blip2, paths.vl, paths.al, paths.imagebind) if p is not None]
    llm_dir = checkpoints / config.llm.path
    wanted += [llm_dir / name for name in LLM_MARKER_FILES]
    return [p for p in wanted if not p.is_file()]


def find_local_preset(checkpoints: Path) -> tuple[str, str | None]:
    """The best preset whose files are all present, else ("preview", why not the real model)."""
    for name in AUTO_ORDER:
        if not missing_files(PRESETS[name], checkpoints):
            return name, None
    missing = missing_files(PRESETS["video-llama-2-7b"], checkpoints)
    first = missing[0].relative_to(checkpoints) if missing else "?"
    return "preview", (f"no Video-LLaMA weights found in {checkpoints}/ "
                       f"({len(missing)} file(s) missing, e.g. {first})")
