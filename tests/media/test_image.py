"""Images as 1-frame videos (spec §1.2): every PIL mode, EXIF orientation, broken files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests import media_factory as factory
from videollama_demo.media import MediaError, load_image, probe

CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


def _reference_pixels(rgb: Image.Image, size: int) -> np.ndarray:
    """Official Blip2ImageEvalProcessor written out: Resize((S,S), bicubic) on PIL, ToTensor, Normalize."""
    resized = np.asarray(rgb.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32) / np.float32(255.0)
    normalised = (resized - CLIP_MEAN) / CLIP_STD  # (S, S, 3)
    return normalised.transpose(2, 0, 1)[:, None]  # (3, 1, S, S)


@pytest.mark.parametrize(("mode", "suffix"), [
    ("RGB", ".png"), ("RGBA", ".png"), ("P", ".png"), ("LA", ".png"), ("L", ".png"), ("CMYK", ".jpg"),
])
def test_every_mode_matches_the_official_pil_path(tmp_path: Path, mode: str, suffix: str) -> None:
    path = factory.make_image(tmp_path / f"picture{suffix}", mode=mode)
    with Image.open(path) as stored:
        assert stored.mode == mode  # the file really is in the mode under test
        expected = _reference_pixels(stored.convert("RGB"), 224)
    loaded = load_image(path, image_size=224)
    assert loaded.pixels.shape == (3, 1, 224, 224)
    assert np.abs(loaded.pixels.numpy() - expected).max() <= 1e-6
    assert loaded.thumbnails.dtype == np.uint8 and loaded.thumbnails.shape == (1, 224, 224, 3)
    assert (loaded.indices, loaded.times, loaded.message, loaded.fps) == ([0], [0.0], "", None)


def test_16_bit_png_keeps_its_high_byte(tmp_path: Path) -> None:
    path = factory.make_image(tmp_path / "deep.png", mode="I;16")
    with Image.open(path) as stored:
        assert stored.mode == "I;16"
        high_byte = (np.asarray(stored, dtype=np.uint16) // 256).astype(np.uint8)
        naive = stored.convert("RGB")  # what the official convert("RGB") does: clips at 255
    assert np.asarray(naive).min() == 255  # every grey above 0 saturates: a white picture
    expected = _reference_pixels(Image.fromarray(high_byte).convert("RGB"), 224)
    loaded = load_image(path)
    assert np.abs(loaded.pixels.numpy() - expected).max() <= 1e-6
    assert loaded.thumbnails.min() < 50 and loaded.thumbnails.max() > 200


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_rotated_photo_comes_out_upright(tmp_path: Path, orientation: int) -> None:
    path = factory.make_image(tmp_path / f"phone_{orientation}.jpg", size=(160, 120), exif_rotation=orientation)
    info = probe(path)
    assert (info.kind, info.width, info.height) == ("image", 160, 120)
    thumbnail = load_image(path, image_size=224).thumbnails[0].astype(int)
    top_left, bottom_right = thumbnail[:100, :100].mean(axis=(0, 1)), thumbnail[124:, 124:].mean(axis=(0, 1))
    assert top_left[0] > 240 and top_left[1:].max() < 15  # the red quadrant is top-left, as drawn
    assert bottom_right[1] > 100  # and the opposite corner is the light gradient, not red


def test_animated_gif_uses_its_first_frame(tmp_path: Path) -> None:
    path = factory.make_animated_gif(tmp_path / "wave.gif", colours=((255, 0, 0), (0, 0, 255)))
    assert probe(path).kind == "image"
    thumbnail = load_image(path, image_size=32).thumbnails[0]
    assert thumbnail.shape == (32, 32, 3)
    assert thumbnail.reshape(-1, 3).mean(axis=0).tolist() == [255.0, 0.0, 0.0]


def test_small_image_size(tmp_path: Path) -> None:
    path = factory.make_image(tmp_path / "small.png")
    with Image.open(path) as stored:
        expected = _reference_pixels(stored.convert("RGB"), 28)
    assert np.abs(load_image(path, image_size=28).pixels.numpy() - expected).max() <= 1e-6


@pytest.mark.parametrize(("keep", "suffix"), [(0.5, ".jpg"), (0.9, ".jpg"), (0.5, ".png"), (0.9, ".png")])
def test_truncated_image_raises_media_error(tmp_path: Path, keep: float, suffix: str) -> None:
    whole = factory.make_image(tmp_path / f"whole{suffix}", size=(320, 240))
    cut = factory.make_truncated_copy(whole, tmp_path / f"cut{suffix}", keep=keep)
    with pytest.raises(MediaError, match="could not be read: the file may be damaged or cut short"):
        load_image(cut)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # PIL warns before we refuse
@pytest.mark.parametrize(("side", "phrase"), [(12000, "12000×12000 pixels"), (20000, "too large to open safely")])
def test_decompression_bomb_is_refused(tmp_path: Path, side: int, phrase: str) -> None:
    path = factory.make_oversized_png(tmp_path / "bomb.png", width=side, height=side)
    assert path.stat().st_size < 100_000  # a small file that would decode to gigabytes
    for read in (probe, load_image):
        with pytest.raises(MediaError, match=phrase):
            read(path)


def test_text_file_is_not_an_image(tmp_path: Path) -> None:
    path = factory.make_text(tmp_path / "holiday.jpg")
    with pytest.raises(MediaError, match="could not be read"):
        load_image(path)
