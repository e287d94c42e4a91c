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


def decode_upload(path: str | Path, num_frames: int, image_size: int, audio: AudioEncoderConfig | None,
                  on_stage: StageCallback | None = None) -> DecodedUpload:
    """Read `path` (raises MediaError). `audio=None` skips the audio track; a track that cannot be
    read is not fatal: the frames are still returned, with the reason in `audio_error`."""
    stage = on_stage or (lambda _: None)
    stage("Reading the file")
    info = probe(path)
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
