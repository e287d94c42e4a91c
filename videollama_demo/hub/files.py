"""Which file a preset needs, where it comes from, and where it is on disk: no network is touched.

Every file a preset needs has one source: a Hugging Face repo (the DAMO-NLP-SG releases, e.g.
DAMO-NLP-SG/Video-LLaMA-2-7B-Finetuned), an official URL (the LAVIS EVA ViT-g and BLIP-2 files,
Meta's ImageBind), or the user (Vicuna v0 is published only as a delta on LLaMA). A file is looked
for in a path the user gave, the checkpoints dir, the Hugging Face cache, then torch's hub cache.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import torch
from huggingface_hub import try_to_load_from_cache

from ..config import PRESETS, VideoLlamaConfig
from ..model.weights import CheckpointError, OfficialPaths

log = logging.getLogger(__name__)

Role = Literal["eva_vit", "blip2", "vl", "al", "imagebind", "llm"]
ROLES: tuple[Role, ...] = get_args(Role)
ROLE_LABELS: dict[Role, str] = {
    "eva_vit": "EVA ViT-g", "blip2": "BLIP-2 Q-Former", "vl": "video branch (VL)",
    "al": "audio branch (AL)", "imagebind": "ImageBind-Huge", "llm": "LLM",
}
PathOverrides = Mapping[str, "str | Path"]

AUTO_ORDER = ("video-llama-2-13b", "video-llama-2-7b", "video-llama-vicuna-7b")  # best first
DOWNLOADABLE_PRESETS = ("video-llama-2-7b", "video-llama-2-13b", "video-llama-vicuna-7b")
AUTO_DOWNLOAD_PRESET = "video-llama-2-7b"  # what `--model auto --download` fetches: it fits a 24 GB GPU
DEFAULT_CHECKPOINTS = Path("checkpoints")
GB = 10**9


@dataclass(frozen=True)
class RemoteFile:
    """A file behind a plain URL. `approx_bytes` (official listings) tells a real file from an error page."""

    url: str
    approx_bytes: int


# The URLs the official code downloads from, by file name. Video-LLaMA fetches the LAVIS files at every start,
# into <torch hub dir>/checkpoints: `video_llama/models/eva_vit.py` (`create_eva_vit_g`) and the `q_former_model`
# of `VideoLLAMA.__init__` (`video_llama/models/video_llama.py`, read by `Blip2Base.load_from_pretrained`).
# ImageBind-Huge is Meta's file (ImageBind `imagebind/models/imagebind_model.py`, `imagebind_huge`).
LAVIS = "https://storage.googleapis.com/sfr-vision-language-research/LAVIS/models/BLIP2/"
URL_FILES: dict[str, RemoteFile] = {
    "eva_vit_g.pth": RemoteFile(LAVIS + "eva_vit_g.pth", 2_030_000_000),
    "blip2_pretrained_flant5xxl.pth": RemoteFile(LAVIS + "blip2_pretrained_flant5xxl.pth", 454_000_000),
    "imagebind_huge.pth": RemoteFile("https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth", 4_800_000_000),
}
# The index of an HF LLaMA dir lists its weight shards; a dir with one weight file has no index.
WEIGHT_INDEXES = ("pytorch_model.bin.index.json", "model.safetensors.index.json")
SINGLE_WEIGHT_FILES = ("pytorch_model.bin", "model.safetensors")


class MissingWeightsError(CheckpointError):
    """A preset's files are not all there; the message lists them and the command that gets them."""


# ---- which file comes from where ---------------------------------------------------------------

@dataclass(frozen=True)
class WeightFile:
    role: Role
    relative: str  # its place under the checkpoints dir (a directory for the LLM)
    hf_repo: str = ""  # the Hugging Face repo it comes from, "" when it is not on the Hub
    remote: RemoteFile | None = None  # or the URL it comes from
    approx_bytes: int = 0  # its download size (0 when it is not downloadable)

    @property
    def in_repo(self) -> str:
        return self.relative.split("/", 1)[1]

    @property
    def downloadable(self) -> bool:
        return bool(self.hf_repo) or self.remote is not None


def weight_files(config: VideoLlamaConfig, url_files: Mapping[str, RemoteFile] = URL_FILES) -> list[WeightFile]:
    """The files `config` needs, each with its source."""
    files = config.files
    named: dict[Role, tuple[str, int]] = {"eva_vit": (files.eva_vit, 0), "blip2": (files.blip2, 0),
                                          "vl": (files.vl, files.vl_bytes)}
    if config.has_audio:
        named |= {"al": (files.al, files.al_bytes), "imagebind": (files.imagebind, files.imagebind_bytes)}
    named["llm"] = (config.llm.path, files.llm_bytes)
    return [_source(role, relative, size, config.files.hf_repo, url_files)
            for role, (relative, size) in named.items()]


def _source(role: Role, relative: str, repo_bytes: int, repo: str,
            url_files: Mapping[str, RemoteFile]) -> WeightFile:
    """Files under the repo's folder come from the repo; others from a known URL, or from the user."""
    if repo and relative.startswith(repo.split("/")[-1] + "/"):
        return WeightFile(role, relative, hf_repo=repo, approx_bytes=repo_bytes)
    remote = url_files.get(Path(relative).name)
    return WeightFile(role, relative, remote=remote, approx_bytes=remote.approx_bytes if remote else 0)


def download_bytes(config: VideoLlamaConfig) -> int:
    """About how many bytes a download of every file of `config` is (what is not downloadable counts 0)."""
    return sum(file.approx_bytes for file in weight_files(config))


def download_command(preset: str, checkpoints: str | Path = DEFAULT_CHECKPOINTS) -> str:
    """The exact command that fetches `preset` into `checkpoints`."""
    command = f"python -m videollama_demo download {preset}"
    return command if Path(checkpoints) == DEFAULT_CHECKPOINTS else f"{command} --checkpoints {checkpoints}"


# ---- finding the files on disk ------------------------------------------------------------------

@dataclass(frozen=True)
class MissingFile:
    file: WeightFile
    expected_at: Path  # where it should be: under the checkpoints dir, or the path the user gave
    user_path: bool  # True when the user gave that path


@dataclass(frozen=True)
class ResolvedWeights:
    """Where each file of a preset is, and what is missing."""

    config: VideoLlamaConfig
    checkpoints: Path
    found: dict[Role, Path]
    missing: tuple[MissingFile, ...]

    @property
    def complete(self) -> bool:
        return not self.missing

    def path(self, role: Role) -> Path:
        """Where the file is, or where it should be."""
        if role in self.found:
            return self.found[role]
        return next(item.expected_at for item in self.missing if item.file.role == role)

    def official_paths(self) -> OfficialPaths:
        audio = self.config.has_audio
        return OfficialPaths(eva_vit=self.path("eva_vit"), blip2=self.path("blip2"), vl=self.path("vl"),
                             al=self.path("al") if audio else None,
                             imagebind=self.path("imagebind") if audio else None)

    @property
    def llm_dir(self) -> Path:
        return self.path("llm")

    def summary(self) -> str:
        """One line: how many files are missing, the first one, and the command that gets them."""
        first = self.missing[0]
        text = (f"{len(self.missing)} file(s) of {self.config.name} are missing, e.g. the "
                f"{ROLE_LABELS[first.file.role]} at {first.expected_at}")
        return f"{text}; {self._remedy()}"

    def explain(self) -> str:
        """Every missing file, where it was looked for, and how to get it."""
        lines = [f"Preset {self.config.name!r} is missing {len(self.missing)} file(s):"]
        lines += [f"  - {_missing_line(item)}" for item in self.missing]
        remedy = self._remedy()
        return "\n".join(lines + [remedy[:1].upper() + remedy[1:]])

    def require(self) -> ResolvedWeights:
        if self.missing:
            raise MissingWeightsError(self.explain())
        return self

    def _remedy(self) -> str:
        fetchable = [item for item in self.missing if item.file.downloadable and not item.user_path]
        manual = [item for item in self.missing if item not in fetchable]
        parts = []
        if fetchable:
            size = sum(item.file.approx_bytes for item in fetchable) / GB
            parts.append(f"get them with `{download_command(self.config.name, self.checkpoints)}` "
                         f"(about {size:.1f} GB)")
        parts += [_manual_fix(item, self.config) for item in manual]
        return "; ".join(parts)


def resolve_weights(config: VideoLlamaConfig, checkpoints: str | Path = DEFAULT_CHECKPOINTS,
                    overrides: PathOverrides | None = None, hf_cache: str | Path | None = None) -> ResolvedWeights:
    """Find every file of `config`: a path the user gave wins; else the checkpoints dir, then the
    Hugging Face cache (`HF_HOME`, or `hf_cache`), then torch's hub cache, where the official code
    keeps the LAVIS files."""
    checkpoints = Path(checkpoints)
    given = checked_overrides(overrides)
    found: dict[Role, Path] = {}
    missing: list[MissingFile] = []
    for file in weight_files(config):
        if file.role in given:
            path = given[file.role]
            candidates: Iterable[Path] = [path]
        else:
            path = checkpoints / file.relative
            candidates = _candidates(file, checkpoints, hf_cache)
        located = next((c for c in candidates if _is_complete(file, c)), None)
        if located is None:
            missing.append(MissingFile(file, path, file.role in given))
        else:
            found[file.role] = located
    return ResolvedWeights(config, checkpoints, found, tuple(missing))


def checked_overrides(overrides: PathOverrides | None) -> dict[Role, Path]:
    """User-given paths by role; an unknown role is an error that lists the known ones."""
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(ROLES))
    if unknown:
        raise ValueError(f"unknown weight path(s) {unknown}; the known ones are: {', '.join(ROLES)}")
    return {role: Path(path).expanduser() for role, path in overrides.items() if path}  # type: ignore[misc]


def find_local_preset(checkpoints: Path, overrides: PathOverrides | None = None,
                      hf_cache: str | Path | None = None) -> tuple[str, str | None]:
    """The best preset whose files are all found, else ("preview", why not the real model, with the fix)."""
    for name in AUTO_ORDER:
        if resolve_weights(PRESETS[name], checkpoints, overrides, hf_cache).complete:
            return name, None
    resolved = resolve_weights(PRESETS[AUTO_DOWNLOAD_PRESET], checkpoints, overrides, hf_cache)
    log.info("%s", resolved.explain())
    return "preview", f"no Video-LLaMA weights found: {resolved.summary()}"


def llm_dir_missing(directory: Path) -> list[str]:
    """The files an HF LLaMA dir lacks (empty when complete): config, tokenizer and every weight shard."""
    missing = [] if (directory / "config.json").is_file() else ["config.json"]
    if not any((directory / name).is_file() for name in ("tokenizer.model", "tokenizer.json")):
        missing.append("tokenizer.model")
    return missing + _missing_shards(directory)


def _missing_shards(directory: Path) -> list[str]:
    for index in WEIGHT_INDEXES:
        if (directory / index).is_file():
            shards = index_shards(directory / index)
            return [index] if shards is None else [shard for shard in shards if not (directory / shard).is_file()]
    if any((directory / name).is_file() for name in SINGLE_WEIGHT_FILES):
        return []
    return [WEIGHT_INDEXES[0]]


def index_shards(index: Path) -> list[str] | None:
    """The shard files an index names; None when the index is unreadable (a broken download)."""
    try:
        return sorted(set(json.loads(index.read_text())["weight_map"].values()))
    except (ValueError, KeyError, AttributeError):
        return None


def _candidates(file: WeightFile, checkpoints: Path, hf_cache: str | Path | None) -> Iterator[Path]:
    yield checkpoints / file.relative
    if file.hf_repo:
        cached = _hf_cached(file, hf_cache)
        if cached is not None:
            yield cached
    if file.remote is not None:
        yield Path(torch.hub.get_dir()) / "checkpoints" / Path(file.relative).name


def _hf_cached(file: WeightFile, hf_cache: str | Path | None) -> Path | None:
    """The file's path in a Hugging Face cache snapshot (for the LLM: its folder), read from disk only."""
    probe = f"{file.in_repo}/config.json" if file.role == "llm" else file.in_repo
    cached = try_to_load_from_cache(file.hf_repo, probe, cache_dir=hf_cache)
    if not isinstance(cached, str):
        return None
    return Path(cached).parent if file.role == "llm" else Path(cached)


def _is_complete(file: WeightFile, path: Path) -> bool:
    if file.role == "llm" and path.suffix != ".gguf":
        return path.is_dir() and not llm_dir_missing(path)
    return path.is_file()


def _missing_line(item: MissingFile) -> str:
    label = ROLE_LABELS[item.file.role]
    if item.user_path:
        return f"{label}: the path given for it, {item.expected_at}, does not exist or is incomplete"
    if item.file.hf_repo:
        where = f"from the Hugging Face repo {item.file.hf_repo}"
    else:
        where = f"from {item.file.remote.url}" if item.file.remote else "not downloadable"
    detail = ""
    if item.file.role == "llm" and item.expected_at.is_dir():
        detail = f" (it lacks {', '.join(llm_dir_missing(item.expected_at)[:3])})"
    return f"{label}: {item.expected_at}{detail} [{where}]"


def _manual_fix(item: MissingFile, config: VideoLlamaConfig) -> str:
    label = ROLE_LABELS[item.file.role]
    if item.user_path:
        return f"fix the path given for the {label} ({item.expected_at})"
    if item.file.role == "llm" and config.llm.template == "vicuna":
        return (f"the Vicuna-7B v0 LLM cannot be downloaded: build it from LLaMA-7B and lmsys/vicuna-7b-delta-v0 "
                f"with FastChat's apply_delta (the official README_Vicuna.md), then put it at {item.expected_at} "
                "or pass its folder as the LLM path")
    return f"copy the {label} to {item.expected_at} or pass its path"
