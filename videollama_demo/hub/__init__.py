"""Where the weights come from: `files.py` finds a preset's files on disk (no network), `download.py` fetches
the missing ones."""

from .download import DownloadError, auto_download_blocker, download_url, download_weights, unreachable_reason
from .files import (
    AUTO_DOWNLOAD_PRESET,
    DOWNLOADABLE_PRESETS,
    GB,
    ROLE_LABELS,
    ROLES,
    MissingWeightsError,
    PathOverrides,
    RemoteFile,
    ResolvedWeights,
    download_bytes,
    download_command,
    find_local_preset,
    llm_dir_missing,
    resolve_weights,
)

__all__ = [
    "AUTO_DOWNLOAD_PRESET", "DOWNLOADABLE_PRESETS", "GB", "ROLES", "ROLE_LABELS", "DownloadError",
    "MissingWeightsError", "PathOverrides", "RemoteFile", "ResolvedWeights", "auto_download_blocker",
    "download_bytes", "download_command", "download_url", "download_weights", "find_local_preset",
    "llm_dir_missing", "resolve_weights", "unreachable_reason",
]
