"""Shared fixtures: the `tiny` model written in the official file formats, loaded through weights.py."""

from __future__ import annotations

import pytest
import torch

from tests.model import reference
from tests.official_format import write_official_checkpoints
from videollama_demo.config import VideoLlamaConfig
from videollama_demo.model.video_llama import VideoLlamaEncoder
from videollama_demo.model.weights import LoadReport, OfficialPaths, load_official_weights


@pytest.fixture(scope="session")
def tiny_config() -> VideoLlamaConfig:
    return VideoLlamaConfig.from_name("tiny")


@pytest.fixture(scope="session")
def official_paths(tiny_config: VideoLlamaConfig, tmp_path_factory: pytest.TempPathFactory) -> OfficialPaths:
    return write_official_checkpoints(tiny_config, tmp_path_factory.mktemp("official"), seed=0)


@pytest.fixture(scope="session")
def official(official_paths: OfficialPaths) -> dict[str, reference.State]:
    """The files' state dicts under the official names, as the official code reads them (fp32)."""
    return reference.official_files(official_paths)


@pytest.fixture(scope="session")
def loaded(tiny_config: VideoLlamaConfig, official_paths: OfficialPaths) -> tuple[VideoLlamaEncoder, LoadReport]:
    return load_official_weights(tiny_config, official_paths)


@pytest.fixture(scope="session")
def encoder(loaded: tuple[VideoLlamaEncoder, LoadReport]) -> VideoLlamaEncoder:
    return loaded[0]


@pytest.fixture
def fresh_encoder(tiny_config: VideoLlamaConfig, official_paths: OfficialPaths) -> VideoLlamaEncoder:
    """A loaded encoder of its own, for tests that move or cast it."""
    return load_official_weights(tiny_config, official_paths)[0]


@pytest.fixture(scope="session")
def pixels(tiny_config: VideoLlamaConfig) -> torch.Tensor:
    """(B=2, 3, T=3, S, S) CLIP-normalised-like frames."""
    size = tiny_config.vision.image_size
    return torch.randn((2, 3, 3, size, size), generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="session")
def fbank(tiny_config: VideoLlamaConfig) -> torch.Tensor:
    """(B=2, S=8, 1, 128, 204) normalised fbank clips whose last 6 frames are the official zero padding."""
    audio = tiny_config.audio
    assert audio is not None
    shape = (2, audio.num_clips, 1, audio.num_mel_bins, audio.target_length)
    clips = torch.randn(shape, generator=torch.Generator().manual_seed(2)) * 0.8
    clips[..., 198:] = (0.0 - audio.fbank_mean) / audio.fbank_std
    return clips
