"""Official frame sampling: uniform indices, decord resize-on-decode to S×S, CLIP normalisation.

Spec §1.1-§1.2. The frames the model sees are also returned as uint8 thumbnails, so the UI can
show exactly what was sampled.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import decord
import numpy as np
import torch

from ..constants import CLIP_MEAN, CLIP_STD
from .probe import MediaError, display_name, require_file

log = logging.getLogger(__name__)

# The official frame-position table has 32 rows, so no model can take more frames than this.
MAX_FRAMES = 32


@dataclass(frozen=True)
class SampledFrames:
    pixels: torch.Tensor  # (3, T, S, S) float32, CLIP-normalised (official layout C, T, H, W)
    thumbnails: np.ndarray  # (T, S, S, 3) uint8: exactly the decoded frames
    indices: list[int]
    times: list[float]  # seconds, rounded to 0.1 as in the official message
    message: str  # the official "The video contains ..." text; "" for an image
    fps: float | None


def uniform_indices(num_total: int, num_frames: int) -> list[int]:
    """Official "uniform" sampling: frame i is floor(i * step) with step = vlen / n, n = min(num_frames, vlen).

    The official code builds these with a float `np.arange(0, vlen, step)`, which for some n that are
    not 8 (e.g. 7 frames of a 17-frame video) yields one index too many. Multiplying i by the same
    float step gives the same values and always exactly n of them.
    """
    count = min(num_frames, num_total)
    step = num_total / count
    return [math.floor(i * step) for i in range(count)]


def frame_times(indices: list[int], fps: float) -> list[float]:
    return [round(index / fps, 1) for index in indices]


def frame_message(times: list[float]) -> str:
    """The official text placed before the video tokens (note the trailing space)."""
    seconds = ", ".join(str(t) for t in times)
    return f"The video contains {len(times)} frames sampled at {seconds} seconds. "


def clip_normalise(frames: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W, 3) → float32 (3, T, H, W): /255, then (x - mean) / std with the CLIP constants."""
    pixels = torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 255.0  # (3, T, H, W)
    mean = torch.tensor(CLIP_MEAN, dtype=pixels.dtype).view(3, 1, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=pixels.dtype).view(3, 1, 1, 1)
    return (pixels - mean) / std


def load_video_frames(path: str | Path, num_frames: int = 8, image_size: int = 224) -> SampledFrames:
    """Sample `num_frames` frames (fewer if the video is shorter) exactly as the official demo does."""
    if not 1 <= num_frames <= MAX_FRAMES:
        raise MediaError(f"The number of frames must be between 1 and {MAX_FRAMES}, not {num_frames}.")
    name = display_name(path)
    reader = _open_reader(require_file(path), image_size)
    indices = uniform_indices(len(reader), num_frames)
    try:
        frames = reader.get_batch(indices).asnumpy()  # (T, S, S, 3) uint8; resized by decord's scaler
    except (decord.DECORDError, RuntimeError) as err:
        raise MediaError(f"Frames of the video '{name}' could not be decoded: the file may be damaged.") from err
    times, fps = _times_of(reader, indices, float(reader.get_avg_fps()))
    return SampledFrames(pixels=clip_normalise(frames), thumbnails=frames, indices=indices, times=times,
                         message=frame_message(times), fps=fps)


def _open_reader(path: Path, image_size: int) -> decord.VideoReader:
    name = display_name(path)
    try:
        # The official reader: decord's ffmpeg scaler squashes every frame straight to S×S (no crop).
        reader = decord.VideoReader(str(path), height=image_size, width=image_size)
    except (decord.DECORDError, RuntimeError) as err:
        log.info("decord cannot open %s: %s", path, err)
        raise MediaError(f"The video '{name}' could not be decoded: the file may be damaged or cut short, "
                         "or its codec is not supported.") from err
    if len(reader) == 0:
        raise MediaError(f"The video '{name}' has no frames that can be decoded.")
    return reader


def _times_of(reader: decord.VideoReader, indices: list[int], fps: float) -> tuple[list[float], float | None]:
    """Times of the sampled frames and the fps they came from (None when the file has no usable fps).

    The official code divides by `get_avg_fps()` and would fail on 0 or NaN. We then use each frame's
    own presentation time instead, rounded the same way, which is what the message means to say.
    """
    if math.isfinite(fps) and fps > 0:
        return frame_times(indices, fps), fps
    starts = reader.get_frame_timestamp(indices)[:, 0]  # (T,) seconds
    return [round(float(start), 1) for start in starts], None
