"""An image as a 1-frame video: PIL → RGB → bicubic S×S (no crop) → CLIP normalisation
(Video-LLaMA `video_llama/processors/blip_processors.py`, `Blip2ImageEvalProcessor`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .probe import MediaError, check_pixel_count, display_name, require_file
from .video import SampledFrames, clip_normalise

# Single-channel modes with more than 8 bits. PIL's convert("RGB") clips their values at 255, which
# turns a normal 16-bit photo white; we keep the high byte instead, as PIL does for 16-bit RGB.
_WIDE_GREY_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})


def load_image(path: str | Path, image_size: int = 224) -> SampledFrames:
    """Pixels (3, 1, S, S), thumbnails (1, S, S, 3); no frame times and no message, as officially."""
    rgb = _read_rgb(path).resize((image_size, image_size), Image.Resampling.BICUBIC)
    frames = np.array(rgb, dtype=np.uint8)[None]  # (1, S, S, 3), a writable copy
    return SampledFrames(pixels=clip_normalise(frames), thumbnails=frames, indices=[0], times=[0.0],
                         message="", fps=None)


def _read_rgb(path: str | Path) -> Image.Image:
    name = display_name(path)
    try:
        with Image.open(require_file(path)) as image:
            check_pixel_count(name, *image.size)
            # Deviation from the official code: phone photos store "rotate me" in EXIF; honour it
            # so the model sees them upright. A no-op for images without an orientation tag.
            upright = ImageOps.exif_transpose(image)
            return _to_8bit(upright).convert("RGB")
    except MediaError:
        raise
    except Image.DecompressionBombError as err:
        raise MediaError(f"The image '{name}' is too large to open safely.") from err
    except Exception as err:  # PIL's plugins raise many types for damaged or unsupported data
        raise MediaError(f"The image '{name}' could not be read: the file may be damaged or cut short, "
                         "or its format is not supported.") from err


def _to_8bit(image: Image.Image) -> Image.Image:
    if image.mode not in _WIDE_GREY_MODES:
        return image
    wide = np.asarray(image, dtype=np.uint16)  # (H, W) values 0..65535
    return Image.fromarray((wide >> 8).astype(np.uint8))  # mode "L"
