"""Test-wide settings and shared fixtures.

Offline hubs; the `gpu` marker that only a CUDA machine runs; the preview pipeline (real SmolLM2
GGUF, loaded once per session); tiny official-format checkpoints; a few generated media files.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from tests import media_factory  # noqa: E402
from tests.official_format import write_official_checkpoints  # noqa: E402
from tests.tiny_llama import write_tiny_llama_dir  # noqa: E402
from videollama_demo.config import VideoLlamaConfig  # noqa: E402

torch.set_num_threads(max(1, os.cpu_count() or 1))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    no_gpu = pytest.mark.skip(reason="needs a CUDA GPU; run `pytest -m gpu` on a GPU machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(no_gpu)


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoints/ dir for the `tiny` preset: every file in its official format."""
    directory = tmp_path_factory.mktemp("checkpoints")
    config = VideoLlamaConfig.from_name("tiny")
    write_official_checkpoints(config, directory)
    write_tiny_llama_dir(directory / config.llm.path)
    return directory


@pytest.fixture(scope="session")
def preview_pipeline(tmp_path_factory: pytest.TempPathFactory):
    """`--model auto` with no weights: the preview (seeded encoders + the real SmolLM2 GGUF)."""
    from videollama_demo import load_pipeline

    return load_pipeline("auto", checkpoints=tmp_path_factory.mktemp("no_weights"), device="cpu")


@pytest.fixture(scope="session")
def shared_media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small real files: a 3 s clip with stereo sound, one without sound, an image, a broken file."""
    directory = tmp_path_factory.mktemp("shared_media")
    return {
        "video": media_factory.make_video(directory / "clip.mp4", seconds=3, audio="sine", channels=2,
                                          sample_rate=44100),
        "mute": media_factory.make_video(directory / "mute.mp4", seconds=2, audio=None),
        "image": media_factory.make_image(directory / "photo.png", mode="RGBA"),
        "broken": media_factory.make_random_bytes(directory / "broken.mp4"),
        "other_video": media_factory.make_video(directory / "other.mp4", seconds=4, fps=30, size=(128, 96),
                                                audio="sine", channels=1, sample_rate=16000),
    }
