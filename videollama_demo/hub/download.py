"""Getting the files `files.py` finds missing: Hugging Face repos through `hf_hub_download`, plain URLs
resumed with HTTP Range, into the checkpoints dir.

The network is touched only when a download is asked for, and then a dead network is noticed in
seconds (one TCP connection per host), not after the hub's retries (23 s per file).
"""

from __future__ import annotations

import http.client
import logging
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path

import httpx2  # huggingface-hub's HTTP client: its transfer errors are not OSErrors
import torch
from huggingface_hub import constants as hub_constants
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
from tqdm.auto import tqdm

from ..config import PRESETS, VideoLlamaConfig
from .files import (
    AUTO_DOWNLOAD_PRESET,
    DEFAULT_CHECKPOINTS,
    GB,
    URL_FILES,
    WEIGHT_INDEXES,
    PathOverrides,
    RemoteFile,
    ResolvedWeights,
    WeightFile,
    index_shards,
    resolve_weights,
    weight_files,
)

log = logging.getLogger(__name__)

# What is fetched of an HF LLaMA dir before its index; the weight shards the index lists come next.
LLM_FILES = ("config.json", "generation_config.json", "special_tokens_map.json", "tokenizer.model",
             "tokenizer_config.json", "pytorch_model.bin.index.json")


class DownloadError(Exception):
    """A download that cannot start or finish; the message names the file and what to do."""


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
    """Download the files of `config` that are not found anywhere, into the `checkpoints` layout
    (`eva_vit_g.pth`, `blip2_pretrained_flant5xxl.pth`, `<repo name>/...` as in the Hugging Face repo).

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
    for shard in index_shards(index) or []:
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
