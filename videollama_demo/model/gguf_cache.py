"""A GGUF LLM parsed once per installation, not once per start.

transformers reads a GGUF's metadata anew for the config, the weights and twice for the tokenizer,
and each read walks the 49k-entry vocabulary arrays of SmolLM2's file: most of the preview's start.
The first load therefore saves what it built as a plain HF directory (fp32 safetensors, the values
the GGUF dequantizes to, and tokenizer.json) under the user's cache; later starts load that
directory, memory-mapped, without touching the GGUF. The directory is named after a BLAKE3 of the
GGUF and the transformers version, and is written under a temporary name first, so a changed file,
an upgrade or an interrupted save never serves stale weights.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import tempfile
from pathlib import Path

import blake3
import torch
import transformers
from safetensors.torch import save_model
from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

CACHE_ENV = "VIDEOLLAMA_CACHE"
_DONE = "converted-from-gguf.txt"  # written last: its presence means the directory is complete


def cache_root() -> Path:
    """$VIDEOLLAMA_CACHE, else $XDG_CACHE_HOME/videollama-demo, else ~/.cache/videollama-demo."""
    given = os.environ.get(CACHE_ENV)
    if given:
        return Path(given)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "videollama-demo"


def converted_dir(gguf: Path, dtype: torch.dtype, root: Path | None = None) -> Path:
    """Where the HF directory converted from `gguf` and kept in `dtype` lives (it may not exist yet)."""
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    hasher.update_mmap(os.fspath(gguf))
    dtype_name = str(dtype).removeprefix("torch.")
    name = f"{gguf.stem}-{hasher.hexdigest()[:16]}-{dtype_name}-transformers{transformers.__version__}"
    return (root or cache_root()) / "gguf" / name


def is_complete(directory: Path) -> bool:
    return (directory / _DONE).is_file()


def _save_model(model: PreTrainedModel, directory: Path) -> None:
    """config.json and model.safetensors. Not `save_pretrained`: it refuses a model marked as loaded
    from a GGUF (a quantization it cannot write back), while the weights are already plain fp32
    (or the asked dtype) tensors. `save_model` writes tied tensors (SmolLM2's embeddings) once."""
    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.save_pretrained(directory)
    save_model(model, str(directory / "model.safetensors"), metadata={"format": "pt"})


def save_converted(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, gguf: Path, target: Path) -> bool:
    """Save a model and tokenizer loaded from `gguf` as `target`; False (logged) if it cannot be written."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            _save_model(model, partial)
            tokenizer.save_pretrained(partial)
            (partial / _DONE).write_text(f"{gguf}\n")
            os.replace(partial, target)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    except OSError as err:
        log.warning("could not keep the converted %s in %s (%s); the next start parses it again", gguf.name,
                    target.parent, err)
        return False
    log.info("kept %s as %s: later starts load it without parsing the GGUF", gguf.name, target)
    return True
