"""Test media made on the spot with ffmpeg and PIL: videos, images and broken files.

Nothing here is fetched; every file is generated into a directory the caller chooses, and every
function returns the path it wrote. Any test suite may import these helpers, e.g.

    from tests.media_factory import make_video
    clip = make_video(tmp_path / "clip.mp4", seconds=2, audio="sine", channels=2)

Keep clips tiny (the defaults are 160x120, 2 s) so whole suites stay fast.
"""

from __future__ import annotations

import struct
import subprocess
import zlib
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

AudioKind = Literal["sine", "silent"]
ImageMode = Literal["RGB", "RGBA", "P", "LA", "L", "CMYK", "I;16"]

# Distinct tones per channel, so that mixing channels up would change the numbers.
_CHANNEL_TONES_HZ = (440, 660, 880, 1100, 1320, 1540)
_CHANNEL_LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}
# Where the stored pixels must be turned for an EXIF orientation to show them upright again:
# the inverse of what a viewer does (EXIF 6 = "turn 90° clockwise to view", so store 90° counter-clockwise).
_STORED_FOR_ORIENTATION = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}
_EXIF_ORIENTATION_TAG = 0x0112


def run_ffmpeg(*args: str) -> None:
    """Run ffmpeg quietly; on failure raise with ffmpeg's own message."""
    command = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg failed ({' '.join(command)}):\n{result.stderr}")


# -- videos -------------------------------------------------------------------------------------

def make_video(path: str | Path, seconds: float = 2.0, fps: float = 25, size: tuple[int, int] = (160, 120),
               audio: AudioKind | None = "sine", channels: int = 1, sample_rate: int = 16000,
               codec: str = "libx264", audio_codec: str = "aac", dc_offset: float = 0.0,
               faststart: bool = False) -> Path:
    """A testsrc video, optionally with an audio track.

    audio="sine" gives one tone per channel (440, 660, ... Hz) plus `dc_offset`; "silent" is
    digital silence; None leaves the file without an audio stream. `faststart` puts the index
    (moov) first, as web uploads usually have it.
    """
    path = Path(path)
    width, height = size
    inputs = ["-f", "lavfi", "-i", f"testsrc=duration={seconds}:size={width}x{height}:rate={fps}"]
    outputs = ["-map", "0:v", "-c:v", codec, "-pix_fmt", "yuv420p"]
    if audio is not None:
        inputs += ["-f", "lavfi", "-i", _audio_source(audio, seconds, channels, sample_rate, dc_offset)]
        outputs += ["-map", "1:a", "-c:a", audio_codec, "-ar", str(sample_rate), "-ac", str(channels)]
    if faststart:
        outputs += ["-movflags", "+faststart"]
    run_ffmpeg(*inputs, *outputs, str(path))
    return path


def make_audio_only(path: str | Path, seconds: float = 1.0, sample_rate: int = 16000) -> Path:
    """An AAC tone with no video stream (an .m4a or .mp4 path)."""
    path = Path(path)
    run_ffmpeg("-f", "lavfi", "-i", _audio_source("sine", seconds, 1, sample_rate, 0.0), "-c:a", "aac", str(path))
    return path


def _audio_source(kind: AudioKind, seconds: float, channels: int, sample_rate: int, dc_offset: float) -> str:
    if channels not in _CHANNEL_LAYOUTS:
        raise ValueError(f"channels must be one of {sorted(_CHANNEL_LAYOUTS)}, got {channels}")
    layout = _CHANNEL_LAYOUTS[channels]
    if kind == "silent":
        return f"anullsrc=channel_layout={layout}:sample_rate={sample_rate},atrim=duration={seconds}"
    if kind != "sine":
        raise ValueError(f"audio must be 'sine', 'silent' or None, got {kind!r}")
    tones = "|".join(f"{dc_offset}+0.3*sin(2*PI*{hz}*t)" for hz in _CHANNEL_TONES_HZ[:channels])
    return f"aevalsrc={tones}:channel_layout={layout}:sample_rate={sample_rate}:duration={seconds}"


# -- images -------------------------------------------------------------------------------------

def image_pattern(size: tuple[int, int] = (160, 120)) -> np.ndarray:
    """(H, W, 3) uint8: smooth gradients with a pure red top-left quadrant (to see orientation)."""
    width, height = size
    rows, cols = np.mgrid[0:height, 0:width]
    pattern = np.stack([cols * 255 // max(width - 1, 1), rows * 255 // max(height - 1, 1),
                        (rows + cols) * 255 // max(width + height - 2, 1)], axis=-1).astype(np.uint8)
    pattern[: height // 2, : width // 2] = (255, 0, 0)
    return pattern


def make_image(path: str | Path, mode: ImageMode = "RGB", size: tuple[int, int] = (160, 120),
               exif_rotation: int | None = None) -> Path:
    """An image in `mode`, saved in the format of the path's suffix (CMYK needs .jpg, I;16 .png).

    With `exif_rotation` (3, 6 or 8) the pixels are stored turned and the EXIF orientation tag says
    how to turn them back, as phone cameras do; the upright picture is `image_pattern(size)`.
    """
    path = Path(path)
    image = _in_mode(Image.fromarray(image_pattern(size)), mode)
    if exif_rotation is None:
        image.save(path)
        return path
    if exif_rotation not in _STORED_FOR_ORIENTATION:
        raise ValueError(f"exif_rotation must be one of {sorted(_STORED_FOR_ORIENTATION)}, got {exif_rotation}")
    exif = Image.Exif()
    exif[_EXIF_ORIENTATION_TAG] = exif_rotation
    image.transpose(_STORED_FOR_ORIENTATION[exif_rotation]).save(path, exif=exif, quality=95)
    return path


def _in_mode(rgb: Image.Image, mode: ImageMode) -> Image.Image:
    width, height = rgb.size
    alpha = Image.fromarray(np.tile(np.linspace(0, 255, width, dtype=np.uint8), (height, 1)))
    if mode == "RGBA":
        return Image.merge("RGBA", (*rgb.split(), alpha))
    if mode == "LA":
        return Image.merge("LA", (rgb.convert("L"), alpha))
    if mode == "P":
        return rgb.quantize(colors=64)
    if mode == "I;16":
        grey = np.asarray(rgb.convert("L"), dtype=np.uint16) * 257  # full 16-bit range
        return Image.fromarray(grey)  # mode I;16
    return rgb.convert(mode)


def make_animated_gif(path: str | Path, colours: tuple[tuple[int, int, int], ...] = ((255, 0, 0), (0, 0, 255)),
                      size: tuple[int, int] = (64, 48)) -> Path:
    """A GIF with one flat frame per colour (the first frame is what an image loader should use)."""
    path = Path(path)
    frames = [Image.new("RGB", size, colour) for colour in colours]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return path


def make_oversized_png(path: str | Path, width: int = 12000, height: int = 12000) -> Path:
    """A valid, tiny (a few kB) black 1-bit PNG whose pixel count is a decompression bomb."""
    path = Path(path)
    row = b"\x00" + bytes((width + 7) // 8)  # filter byte + packed pixels
    compressor = zlib.compressobj(9)
    payload = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", payload)
                     + _png_chunk(b"IEND", b""))
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


# -- broken files -------------------------------------------------------------------------------

def make_empty(path: str | Path) -> Path:
    path = Path(path)
    path.write_bytes(b"")
    return path


def make_random_bytes(path: str | Path, num_bytes: int = 4096, seed: int = 0) -> Path:
    """Noise with a media-looking name (seeded, so every run tests the same bytes)."""
    path = Path(path)
    path.write_bytes(np.random.default_rng(seed).bytes(num_bytes))
    return path


def make_text(path: str | Path, text: str = "This is a shopping list, not a picture.\n") -> Path:
    path = Path(path)
    path.write_text(text)
    return path


def make_truncated_copy(source: str | Path, path: str | Path, keep: float = 0.5) -> Path:
    """The first `keep` fraction of `source`'s bytes, like an interrupted upload."""
    path = Path(path)
    data = Path(source).read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def make_undecodable_video(source: str | Path, path: str | Path) -> Path:
    """A copy of a faststart MP4 whose media data is zeroed: headers intact, no decodable frame."""
    path = Path(path)
    data = bytearray(Path(source).read_bytes())
    mdat = data.find(b"mdat")
    if mdat < 0:
        raise ValueError(f"{source} has no mdat box")
    data[mdat + 4:] = bytes(len(data) - mdat - 4)
    path.write_bytes(bytes(data))
    return path



def make_frame_count_bomb(source: str | Path, path: str | Path) -> Path:
    """A copy of an MP4 whose first `stts` entry claims 2^31 - 1 frames.

    decord 0.6.0 tries to index that many frames and aborts the whole process (std::bad_alloc):
    a real crash of a C decoder, found by fuzzing, that the app must survive.
    """
    path = Path(path)
    data = bytearray(Path(source).read_bytes())
    stts = data.find(b"stts")
    if stts < 0:
        raise ValueError(f"{source} has no stts box")
    first_count = stts + 4 + 4 + 4  # box type, version/flags, entry_count
    data[first_count:first_count + 4] = (2**31 - 1).to_bytes(4, "big")
    path.write_bytes(bytes(data))
    return path
