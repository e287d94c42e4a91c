"""The fixture the hub tests share: a complete checkpoints dir in the 7B layout, tiny files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hub.layouts import tiny_as
from tests.official_format import write_official_checkpoints
from tests.tiny_llama import write_tiny_llama_dir


@pytest.fixture(scope="module")
def official_7b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete checkpoints/ dir in the 7B layout (eva_vit_g.pth, ..., Video-LLaMA-2-7B-Finetuned/...)."""
    directory = tmp_path_factory.mktemp("official_7b")
    config = tiny_as("video-llama-2-7b")
    write_official_checkpoints(config, directory)
    write_tiny_llama_dir(directory / config.llm.path)
    return directory
