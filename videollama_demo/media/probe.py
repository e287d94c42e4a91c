"""Look at an uploaded file before any heavy work: is it a video or an image, and what is in it.

Only headers are read (PIL for images, PyAV for containers, decord's frame index for the count),
so a bad upload is refused at once with a sentence the user can act on.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import av
import decord
from PIL import Image, UnidentifiedImageError

from .frame_index import indexed_frame_count

log = logging.getLogger(__name__)

# PIL recognises MPEG-1 video streams by their magic bytes but cannot decode them: leave those to PyAV.
_VIDEO_FORMATS_PIL_RECOGNISES = frozenset({"MPEG"})
# EXIF orientations 5-8 turn the picture by 90 degrees, so the upright width and height swap.
_EXIF_ORIENTATION_TAG = 0x0112
_SIDEWAYS_ORIENTATIONS = frozenset({5, 6, 7, 8})


class MediaError(Exception):
    """A file we cannot use. `str(err)` is a sentence meant for the person who uploaded it."""


@dataclass(frozen=True)
class MediaInfo:
    path: str
    kind: Literal["video", "image"]
    size_bytes: int
    width: int  # upright size for images (EXIF orientation applied); coded size for videos
    height: int
    duration: float | None  # seconds (video)
    fps: float | None  # decord's average frame rate; None when the file gives no usable rate
    num_frames: int | None  # as the decoder (decord) counts them
    has_audio: bool
    video_codec: str | None
    audio_codec: str | None
    audio_channels: int | None
    audio_sample_rate: int | None


def probe(path: str | Path) -> MediaInfo:
    """Classify `path` as image or video by its content and read its headers (raises MediaError)."""
    file = require_file(path)
    info = _probe_image(file)
    return info if info is not None else _probe_video(file)


def display_name(path: str | Path) -> str:
    """The file name users recognise (upload paths are long temporary folders)."""
    return Path(path).name


def require_file(path: str | Path) -> Path:
    """`path` as a Path, or MediaError when there is no non-empty file there."""
    file = Path(path)
    if not file.exists():
        raise MediaError(f"The file '{file.name}' was not found.")
    if file.is_dir():
        raise MediaError(f"'{file.name}' is a folder, not a video or image file.")
    if not file.is_file():  # a pipe, socket or device: reading it could block forever
        raise MediaError(f"'{file.name}' is not a regular file, so it cannot be a video or image.")
    if file.stat().st_size == 0:
        raise MediaError(f"The file '{file.name}' is empty (0 bytes).")
    return file


def check_pixel_count(name: str, width: int, height: int) -> None:
    """Refuse images so large that decoding them could exhaust memory (decompression bombs).

    PIL itself only warns between 1x and 2x its limit (and refuses above); we refuse from 1x.
    """
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        raise MediaError(f"The image '{name}' is too large ({width}×{height} pixels, "
                         f"{width * height / 1e6:.0f} megapixels); the limit is {limit / 1e6:.0f} megapixels.")


def _probe_image(file: Path) -> MediaInfo | None:
    """MediaInfo for a file PIL recognises as an image; None when it is not an image at all."""
    try:
        with Image.open(file) as image:
            if image.format in _VIDEO_FORMATS_PIL_RECOGNISES:
                return None
            width, height = _upright_size(image)
            check_pixel_count(file.name, width, height)
            image.verify()  # checks structure and checksums without decoding the pixels
    except UnidentifiedImageError:
        return None
    except Image.DecompressionBombError as err:
        raise MediaError(f"The image '{file.name}' is too large to open safely.") from err
    except MediaError:
        raise
    except Exception as err:  # PIL's plugins raise many types for damaged data
        raise MediaError(f"The image '{file.name}' could not be read: the file may be damaged or cut short.") from err
    return MediaInfo(path=str(file), kind="image", size_bytes=file.stat().st_size, width=width, height=height,
                     duration=None, fps=None, num_frames=None, has_audio=False, video_codec=None,
                     audio_codec=None, audio_channels=None, audio_sample_rate=None)


def _upright_size(image: Image.Image) -> tuple[int, int]:
    width, height = image.size
    # Only EXIF already read with the header: PIL would decode a whole PNG to look further.
    if "exif" in image.info and image.getexif().get(_EXIF_ORIENTATION_TAG) in _SIDEWAYS_ORIENTATIONS:
        return height, width
    return width, height


@dataclass(frozen=True)
class _ContainerHeader:
    width: int
    height: int
    duration: float | None
    video_codec: str
    audio_codec: str | None
    audio_channels: int | None
    audio_sample_rate: int | None


def _probe_video(file: Path) -> MediaInfo:
    header = _read_container_header(file)
    num_frames, fps = _count_frames(file, header.video_codec)
    duration = header.duration
    if duration is None and fps is not None:
        duration = num_frames / fps
    return MediaInfo(path=str(file), kind="video", size_bytes=file.stat().st_size, width=header.width,
                     height=header.height, duration=duration, fps=fps, num_frames=num_frames,
                     has_audio=header.audio_codec is not None, video_codec=header.video_codec,
                     audio_codec=header.audio_codec, audio_channels=header.audio_channels,
                     audio_sample_rate=header.audio_sample_rate)


def _read_container_header(file: Path) -> _ContainerHeader:
    try:
        with av.open(str(file)) as container:
            return _header_of(container, file)
    except MediaError:
        raise
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as err:
        raise _unreadable(file) from err


def _header_of(container: av.container.InputContainer, file: Path) -> _ContainerHeader:
    if _is_still_image_format(container.format.name):
        raise _unreadable(file)  # an image PIL could not read, or a file merely named like one
    if not container.streams.video:
        raise MediaError(f"'{file.name}' has no video stream (is it an audio file?). "
                         "Please upload a video or an image.")
    video = container.streams.video[0].codec_context
    if video is None:  # the container names a codec FFmpeg does not know
        raise MediaError(f"'{file.name}' uses a video codec that is not supported. "
                         "Please upload an MP4 (H.264), WebM or MKV file, or an image.")
    audio = container.streams.audio[0].codec_context if container.streams.audio else None
    return _ContainerHeader(
        width=video.width, height=video.height, duration=_container_seconds(container),
        video_codec=video.codec.canonical_name,
        audio_codec=audio.codec.canonical_name if audio else None,
        audio_channels=audio.channels if audio else None,
        audio_sample_rate=audio.sample_rate if audio else None)


def _is_still_image_format(demuxer: str) -> bool:
    """FFmpeg's image demuxers ("image2", "png_pipe", ...); image2 also opens any file named like an image."""
    return demuxer.startswith("image2") or demuxer.endswith("_pipe")


def _unreadable(file: Path) -> MediaError:
    return MediaError(f"'{file.name}' is not a video or image file that can be read: it may be damaged, "
                      "incomplete, or in an unsupported format.")


def _container_seconds(container: av.container.InputContainer) -> float | None:
    if container.duration is not None:
        return container.duration / av.time_base
    stream = container.streams.video[0]
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return None


def _count_frames(file: Path, codec: str) -> tuple[int, float | None]:
    """Frame count and average fps as decord (the official frame reader) sees them.

    For a long MP4/MOV they are read from its sample table (equal to decord's, tested): opening it
    with decord would scan every packet of the file, 60 ms for an hour of small video."""
    indexed = indexed_frame_count(file)
    if indexed is not None:
        return indexed
    try:
        reader = decord.VideoReader(str(file))
        num_frames, fps = len(reader), float(reader.get_avg_fps())
    except (decord.DECORDError, RuntimeError) as err:
        log.info("decord cannot read %s: %s", file, err)
        raise MediaError(f"The video '{file.name}' ({codec}) could not be decoded: the file may be damaged "
                         "or cut short, or its codec is not supported.") from err
    if num_frames == 0:
        raise MediaError(f"The video '{file.name}' has no frames that can be decoded.")
    return num_frames, fps if math.isfinite(fps) and fps > 0 else None
