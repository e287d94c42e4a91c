"""Where the weights come from: a checkpoints dir, the Hugging Face cache, or a download (DESIGN.md §4).

Every file a preset needs has one source (spec §7): a Hugging Face repo (the DAMO-NLP-SG releases),
an official URL (LAVIS's EVA ViT-g and BLIP-2 files, Meta's ImageBind), or the user (Vicuna v0 is
published only as a delta on LLaMA). Resolving reads the disk only. The network is touched only
when a download is asked for, and then a dead network is noticed in seconds, not after the hub's
retries (23 s per file).
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import httpx2  # huggingface-hub's HTTP client: its transfer errors are not OSErrors
import torch
from huggingface_hub import constants as hub_constants
from huggingface_hub import hf_hub_download, try_to_load_from_cache
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
from tqdm.auto import tqdm

from .config import PRESETS, VideoLlamaConfig
from .model.weights import CheckpointError, OfficialPaths

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


LAVIS = "https://storage.googleapis.com/sfr-vision-language-research/LAVIS/models/BLIP2/"
URL_FILES: dict[str, RemoteFile] = {  # by file name; the URLs the official code downloads from (spec §7.3)
    "eva_vit_g.pth": RemoteFile(LAVIS + "eva_vit_g.pth", 2_030_000_000),
    "blip2_pretrained_flant5xxl.pth": RemoteFile(LAVIS + "blip2_pretrained_flant5xxl.pth", 454_000_000),
    "imagebind_huge.pth": RemoteFile("https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth", 4_800_000_000),
}
# Hugging Face file sizes (spec §7.1), for the size of a download before it starts.
HF_APPROX_BYTES: dict[Role, int] = {"vl": 270_000_000, "al": 280_000_000, "imagebind": 4_800_000_000}
LLM_APPROX_BYTES = {4096: 13_500_000_000, 5120: 26_000_000_000}  # fp16 shards, by hidden size

# What an HF LLaMA dir must hold; the weight shards are read from the index.
LLM_FILES = ("config.json", "generation_config.json", "special_tokens_map.json", "tokenizer.model",
             "tokenizer_config.json", "pytorch_model.bin.index.json")
WEIGHT_INDEXES = ("pytorch_model.bin.index.json", "model.safetensors.index.json")
SINGLE_WEIGHT_FILES = ("pytorch_model.bin", "model.safetensors")


class DownloadError(Exception):
    """A download that cannot start or finish; the message names the file and what to do."""


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
    named: dict[Role, str] = {"eva_vit": files.eva_vit, "blip2": files.blip2, "vl": files.vl}
    if config.has_audio:
        named |= {"al": files.al, "imagebind": files.imagebind}
    named["llm"] = config.llm.path
    return [_source(role, relative, config, url_files) for role, relative in named.items()]


def _source(role: Role, relative: str, config: VideoLlamaConfig, url_files: Mapping[str, RemoteFile]) -> WeightFile:
    """Files under the repo's folder come from the repo; others from a known URL, or from the user."""
    repo = config.files.hf_repo
    if repo and relative.startswith(repo.split("/")[-1] + "/"):
        size = LLM_APPROX_BYTES.get(config.llm.hidden_size, 0) if role == "llm" else HF_APPROX_BYTES.get(role, 0)
        return WeightFile(role, relative, hf_repo=repo, approx_bytes=size)
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


def official_paths(config: VideoLlamaConfig, checkpoints: Path, overrides: PathOverrides | None = None,
                   hf_cache: str | Path | None = None) -> OfficialPaths:
    return resolve_weights(config, checkpoints, overrides, hf_cache).official_paths()


def missing_files(config: VideoLlamaConfig, checkpoints: Path, overrides: PathOverrides | None = None,
                  hf_cache: str | Path | None = None) -> list[Path]:
    """The files of `config` that were not found (empty when it can run)."""
    return [item.expected_at for item in resolve_weights(config, checkpoints, overrides, hf_cache).missing]


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
            shards = _index_shards(directory / index)
            return [index] if shards is None else [shard for shard in shards if not (directory / shard).is_file()]
    if any((directory / name).is_file() for name in SINGLE_WEIGHT_FILES):
        return []
    return [WEIGHT_INDEXES[0]]


def _index_shards(index: Path) -> list[str] | None:
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


# ---- the network --------------------------------------------------------------------------------

def unreachable_reason(urls: Iterable[str], timeout: float = 3.0) -> str | None:
    """Why the servers of `urls` cannot be reached now (None when they can), found in a few seconds.

    One TCP connection per host (to the proxy when one is set), instead of the hub's five retries."""
    for host, port in sorted({_connect_target(url) for url in urls}):
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except OSError as err:
            return f"cannot reach {host}:{port} ({err.strerror or err}): is this machine offline?"
    return None


def _connect_target(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host = parts.hostname or ""
    return host, parts.port or (443 if parts.scheme == "https" else 80)


def hub_offline() -> bool:
    """True when Hugging Face downloads are off (`HF_HUB_OFFLINE=1`, or set here after a failed probe)."""
    return bool(hub_constants.HF_HUB_OFFLINE)


def go_offline(reason: str) -> None:
    """Switch the hub client to offline mode, so later look-ups (transformers' too) fail at once."""
    log.warning("Hugging Face hub: %s; switching to offline mode", reason)
    hub_constants.HF_HUB_OFFLINE = True


def hub_endpoint(endpoint: str | None = None) -> str:
    return (endpoint or hub_constants.ENDPOINT).rstrip("/")


def auto_download_blocker(endpoint: str | None = None) -> str | None:
    """Why `--model auto --download` cannot fetch the default model now (None when it can): the
    download only makes sense with a GPU to run it, and needs the network."""
    if not torch.cuda.is_available():
        return "there is no CUDA GPU to run it on"
    if hub_offline():
        return "HF_HUB_OFFLINE is set"
    files = weight_files(PRESETS[AUTO_DOWNLOAD_PRESET])
    reason = unreachable_reason([file.remote.url for file in files if file.remote] + [hub_endpoint(endpoint)])
    if reason is not None:
        go_offline(reason)
    return reason


# ---- downloading --------------------------------------------------------------------------------

def download_weights(config: VideoLlamaConfig | str, checkpoints: str | Path = DEFAULT_CHECKPOINTS,
                     overrides: PathOverrides | None = None, hf_cache: str | Path | None = None,
                     endpoint: str | None = None, token: str | None = None,
                     url_files: Mapping[str, RemoteFile] = URL_FILES) -> ResolvedWeights:
    """Download the files of `config` that are not found anywhere, into `checkpoints` (DESIGN.md §4).

    Files from the Hub go through `hf_hub_download` into plain files under `checkpoints/<repo>/`
    (it resumes its own partial downloads, reads `HF_TOKEN`); URL files are resumed from a `.part`.
    Returns the new resolution: what is still missing can only come from the user (Vicuna v0)."""
    config = VideoLlamaConfig.from_name(config) if isinstance(config, str) else config
    checkpoints = Path(checkpoints)
    resolved = resolve_weights(config, checkpoints, overrides, hf_cache)
    sources = {file.role: file for file in weight_files(config, url_files)}
    todo = [sources[item.file.role] for item in resolved.missing
            if sources[item.file.role].downloadable and not item.user_path]
    if todo:
        _require_network(todo, endpoint)
        size = sum(file.approx_bytes for file in todo) / GB
        log.info("downloading %d item(s) of %s into %s (about %.1f GB)", len(todo), config.name, checkpoints, size)
        for file in todo:
            _fetch(file, checkpoints, endpoint, token)
    return resolve_weights(config, checkpoints, overrides, hf_cache)


def _require_network(files: list[WeightFile], endpoint: str | None) -> None:
    uses_hub = any(file.hf_repo for file in files)
    if uses_hub and hub_offline():
        raise DownloadError("HF_HUB_OFFLINE is set, so nothing is downloaded from Hugging Face: unset it, "
                            "or copy the files in by hand (see the README, 'Getting the weights')")
    urls = [file.remote.url for file in files if file.remote is not None]
    reason = unreachable_reason(urls + ([hub_endpoint(endpoint)] if uses_hub else []))
    if reason is not None:
        if uses_hub:
            go_offline(reason)
        raise DownloadError(f"Cannot download the weights: {reason}")


def _fetch(file: WeightFile, checkpoints: Path, endpoint: str | None, token: str | None) -> None:
    if file.remote is not None:
        download_url(file.remote.url, checkpoints / file.relative, file.remote.approx_bytes)
        return
    local_dir = checkpoints / file.hf_repo.split("/")[-1]
    if file.role != "llm":
        _hf_download(file.hf_repo, file.in_repo, local_dir, endpoint, token)
        return
    for name in LLM_FILES:
        _hf_download(file.hf_repo, f"{file.in_repo}/{name}", local_dir, endpoint, token)
    index = checkpoints / file.relative / WEIGHT_INDEXES[0]  # the shards it lists come next
    for shard in _index_shards(index) or []:
        _hf_download(file.hf_repo, f"{file.in_repo}/{shard}", local_dir, endpoint, token)


def _hf_download(repo: str, filename: str, local_dir: Path, endpoint: str | None, token: str | None) -> Path:
    try:
        return Path(hf_hub_download(repo, filename, local_dir=local_dir, endpoint=endpoint, token=token))
    except (HfHubHTTPError, LocalEntryNotFoundError, httpx2.HTTPError, OSError) as err:
        raise DownloadError(f"Could not download {filename} from the Hugging Face repo {repo} "
                            f"({type(err).__name__}: {err}); run the same command again to resume") from err


CHUNK_BYTES = 1 << 20
CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class _Interrupted(Exception):
    """The transfer stopped early; the `.part` file keeps what arrived."""


def download_url(url: str, dest: Path, approx_bytes: int | None = None, attempts: int = 3,
                 timeout: float = 30.0) -> Path:
    """Download `url` to `dest` through `dest.part`, resuming it with HTTP Range, with a progress bar.

    A transfer that breaks off is resumed up to `attempts` times; a size that does not match what the
    server announced, or far from `approx_bytes` (an error page, a moved file), is an error naming the file."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    failure: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            _check_complete(part, _transfer(url, part, dest.name, approx_bytes, timeout), dest.name)
        except urllib.error.HTTPError as err:
            raise DownloadError(f"{dest.name}: the server answered {err.code} {err.reason} for {url}; "
                                "the file may have moved") from err
        except (_Interrupted, http.client.HTTPException, TimeoutError, urllib.error.URLError, ConnectionError) as err:
            failure = err
            log.warning("%s: transfer interrupted (%s); resuming (attempt %d of %d)",
                        dest.name, err, attempt, attempts)
            continue
        part.replace(dest)
        return dest
    have = part.stat().st_size if part.exists() else 0
    raise DownloadError(f"{dest.name}: the download from {url} broke off {attempts} times ({failure}); "
                        f"{have} bytes are kept in {part}: run the same command again to resume")


def _transfer(url: str, part: Path, name: str, approx_bytes: int | None, timeout: float) -> int | None:
    """Append the rest of `url` to `part`; the file's total size (None if the server does not say)."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Accept-Encoding": "identity"} | ({"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # nothing left to send: `part` is complete, or longer than the file
            return _after_unsatisfiable_range(err, part, offset)
        raise
    with response:
        offset, total = _resume_point(response, offset)
        _check_plausible(total, approx_bytes, name, url)
        with open(part, "ab" if offset else "wb") as out, tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=name) as bar:
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                bar.update(len(chunk))
    return total


def _resume_point(response: http.client.HTTPResponse, offset: int) -> tuple[int, int | None]:
    """Where the body starts in the file, and the file's total size."""
    length = response.headers.get("Content-Length")
    if response.status == 206:
        match = CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
        if match is None or int(match.group(1)) != offset:
            raise _Interrupted(f"the server resumed at the wrong place ({response.headers.get('Content-Range')})")
        return offset, None if match.group(3) == "*" else int(match.group(3))
    if offset:
        log.info("the server does not resume downloads; starting over")
    return 0, int(length) if length is not None else None


def _after_unsatisfiable_range(err: urllib.error.HTTPError, part: Path, offset: int) -> int | None:
    match = re.fullmatch(r"bytes \*/(\d+)", (err.headers.get("Content-Range") or "").strip())
    if match is not None and int(match.group(1)) == offset:
        return offset
    part.unlink()  # longer than the file on the server: not a prefix of it
    raise _Interrupted("the partial file does not fit the file on the server; starting over")


def _check_plausible(total: int | None, approx_bytes: int | None, name: str, url: str) -> None:
    if total is not None and approx_bytes and not approx_bytes / 2 <= total <= approx_bytes * 2:
        raise DownloadError(f"{name}: the server offers {total} bytes at {url}, but the file is about "
                            f"{approx_bytes} bytes: it is not the right file (an error page, or the file moved)")


def _check_complete(part: Path, total: int | None, name: str) -> None:
    size = part.stat().st_size
    if total is not None and size < total:
        raise _Interrupted(f"{size} of {total} bytes")
    if total is not None and size > total:
        part.unlink()
        raise DownloadError(f"{name}: received {size} bytes but the server announced {total}; "
                            "the partial file was removed, run the command again")
