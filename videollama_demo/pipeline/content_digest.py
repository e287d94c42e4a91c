"""What names a file's bytes in the shared encode cache, with no extra pass over them where possible.

The encode cache is shared by every visitor, so the name must be collision-resistant: a weak one
would let one visitor's upload come back with another's encoding. Two sources, never mixed:

- A file Gradio received through its upload route already has one. Gradio hashes the bytes while
  they stream in: SHA-256 of a secret per-installation seed followed by the bytes (Gradio
  `gradio/route_utils.py`, `GradioUploadFile.sha`; the seed is `gradio/utils.py` `get_hash_seed`),
  then moves the file to `<upload folder>/<that hex digest>/<file name>`. We read that directory
  name: free, and the same bytes under another name land in the same directory.
- Any other file (a path given to the Python API, a bundled example, a file under a symlink) is
  hashed with BLAKE3 on all cores, memory-mapped: about 4x faster than SHA-256 here.

The two are prefixed differently ("gradio-sha256:", "blake3:"), so one can never stand for the other.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

import blake3

_UPLOAD_DIGEST = re.compile(r"[0-9a-f]{64}")

# Digests of files already hashed, by what identifies one version of a file on disk. An example
# clicked again, or a file read again because Audio or Frames changed, is then not hashed again.
# Any write changes the size or the modification time.
_DIGESTS: OrderedDict[tuple[int, int, int, int], str] = OrderedDict()
_DIGESTS_KEPT = 1024
_DIGESTS_LOCK = threading.Lock()


def gradio_upload_folder() -> Path:
    """Where Gradio puts uploads: the same rule as Gradio's `gradio/utils.py` `get_upload_folder`
    (read here, not imported: the pipeline does not load Gradio)."""
    folder = os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio"
    return Path(folder).resolve()


def content_digest(path: str | Path) -> str:
    """A collision-resistant name of the file's bytes: Gradio's streamed digest for its uploads,
    else BLAKE3. Raises OSError if the file cannot be read."""
    return gradio_upload_digest(path) or file_blake3(path)


def gradio_upload_digest(path: str | Path, upload_folder: Path | None = None) -> str | None:
    """The digest Gradio computed while `path` was uploaded, or None if `path` is not a file in a
    digest-named directory directly inside Gradio's upload folder (symlinks resolved first, so a
    link placed there cannot borrow a digest). The size goes into the name too: a cheap second
    check that the bytes on disk are the ones Gradio streamed."""
    real = Path(path).resolve()
    folder = upload_folder or gradio_upload_folder()
    if real.parent.parent != folder or not _UPLOAD_DIGEST.fullmatch(real.parent.name):
        return None
    if not real.is_file():
        return None
    return f"gradio-sha256:{real.parent.name}:{real.stat().st_size}"


def file_blake3(path: str | Path) -> str:
    """BLAKE3 of the file's bytes, memory-mapped and on every core; remembered for the same unchanged
    file (same device, inode, size and modification time)."""
    with open(path, "rb") as file:
        stat = os.fstat(file.fileno())
    version = _version(stat)
    with _DIGESTS_LOCK:
        if version in _DIGESTS:
            _DIGESTS.move_to_end(version)
            return _DIGESTS[version]
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    if stat.st_size:  # an empty file cannot be mapped
        hasher.update_mmap(os.fspath(path))
    digest = f"blake3:{hasher.hexdigest()}"
    if _version(os.stat(path)) != version:
        return digest  # changed while hashed: not worth remembering
    with _DIGESTS_LOCK:
        _DIGESTS[version] = digest
        while len(_DIGESTS) > _DIGESTS_KEPT:
            _DIGESTS.popitem(last=False)
    return digest


def _version(stat: os.stat_result) -> tuple[int, int, int, int]:
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns


def remembered_digest(path: str | Path) -> str | None:
    """The BLAKE3 digest already computed for this version of the file, or None."""
    with _DIGESTS_LOCK:
        return _DIGESTS.get(_version(os.stat(path)))


def forget_digests() -> None:
    """Drop the remembered digests (benchmarks time a first upload with this)."""
    with _DIGESTS_LOCK:
        _DIGESTS.clear()
