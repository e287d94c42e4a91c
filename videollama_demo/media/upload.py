"""Everything read from one upload before the model: probe, frames (or the image), audio clips."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..config import AudioEncoderConfig
from .audio import AudioClips, load_audio_clips
from .image import load_image
from .probe import MediaError, MediaInfo, probe
from .video import SampledFrames, load_video_frames

log = logging.getLogger(__name__)

StageCallback = Callable[[str], None]


@dataclass(frozen=True)
class DecodedUpload:
    info: MediaInfo
    frames: SampledFrames
    audio: AudioClips | None  # None when not asked for, absent, or unreadable
    audio_error: str | None = None  # the MediaError sentence when the track could not be read


def check_duration(info: MediaInfo, max_seconds: float | None) -> None:
    """MediaError when the video is longer than this server accepts (the host sets the limit)."""
    if max_seconds is None or info.duration is None or info.duration <= max_seconds:
        return
    raise MediaError(f"'{Path(info.path).name}' is {format_duration(info.duration)} long; this server "
                     f"accepts videos up to {format_duration(max_seconds)}. Please cut it shorter.")


def format_duration(seconds: float) -> str:
    """83 -> "1 min 23 s", 7260 -> "2 h 1 min": how long a file is, for people."""
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{seconds:.1f} s"


def decode_upload(path: str | Path, num_frames: int, image_size: int, audio: AudioEncoderConfig | None,
                  on_stage: StageCallback | None = None, max_seconds: float | None = None) -> DecodedUpload:
    """Read `path` (raises MediaError). `audio=None` skips the audio track; a track that cannot be
    read is not fatal: the frames are still returned, with the reason in `audio_error`. A video
    longer than `max_seconds` is refused before any frame is decoded."""
    stage = on_stage or (lambda _: None)
    stage("Reading the file")
    info = probe(path)
    check_duration(info, max_seconds)
    stage("Decoding frames")
    if info.kind == "image":
        return DecodedUpload(info, load_image(info.path, image_size=image_size), None)
    frames = load_video_frames(info.path, num_frames=num_frames, image_size=image_size)
    if audio is None or not info.has_audio:
        return DecodedUpload(info, frames, None)
    stage("Reading the audio track")
    try:
        return DecodedUpload(info, frames, load_audio_clips(info.path, audio))
    except MediaError as err:
        log.info("audio not used for %s: %s", info.path, err)
        return DecodedUpload(info, frames, None, audio_error=str(err))
