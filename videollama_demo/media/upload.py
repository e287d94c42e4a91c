"""Everything read from one upload before the model: probe, frames (or the image), audio clips."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import AudioEncoderConfig
from .audio import AudioClips, load_audio_clips, load_audio_clips_in_spans
from .image import load_image
from .probe import MediaError, MediaInfo, probe
from .speech import NO_AUDIO_NOTE, SpeechModelSpec, SpeechTranscript, clock, default_time_limit, transcribe
from .subtitles import Cue, read_embedded_subtitles
from .video import FrameSampling, SampledFrames, load_sampled_frames, load_video_frames

log = logging.getLogger(__name__)

StageCallback = Callable[[str], None]
TimeLimitCallback = Callable[[float], None]  # seconds this job may take, once the file is probed
# Loading the speech model in a fresh worker, on top of the transcription's own limit.
MODEL_LOAD_ALLOWANCE_S = 60.0


@dataclass(frozen=True)
class DecodedUpload:
    info: MediaInfo
    frames: SampledFrames
    audio: AudioClips | None  # None when not asked for, absent, or unreadable
    audio_error: str | None = None  # the MediaError sentence when the track could not be read
    # With a FrameSampling: seconds (start, end) of each segment; its frames are `frames` in runs of
    # `frames_per_segment`, its audio clips `audio` in runs of the config's clip count.
    segment_spans: tuple[tuple[float, float], ...] | None = None
    subtitles: tuple[Cue, ...] = ()  # the container's own text subtitles, when asked for


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
                  on_stage: StageCallback | None = None, max_seconds: float | None = None,
                  sampling: FrameSampling | None = None, read_subtitles: bool = False) -> DecodedUpload:
    """Read `path` (raises MediaError). `audio=None` skips the audio track; a track that cannot be
    read is not fatal: the frames are still returned, with the reason in `audio_error`. A video
    longer than `max_seconds` is refused before any frame is decoded.

    `sampling` (segments of a long video, or a time range) replaces the official frame sampling,
    and the audio clips are then taken per segment. `read_subtitles` also reads the container's
    own text subtitle stream."""
    stage = on_stage or (lambda _: None)
    stage("Reading the file")
    info = probe(path)
    check_duration(info, max_seconds)
    stage("Decoding frames")
    if info.kind == "image":
        return DecodedUpload(info, load_image(info.path, image_size=image_size), None)
    subtitles = tuple(read_embedded_subtitles(info.path)) if read_subtitles else ()
    if sampling is None:
        frames, spans = load_video_frames(info.path, num_frames=num_frames, image_size=image_size), None
    else:
        frames = load_sampled_frames(info.path, sampling, image_size=image_size)
        spans = tuple(sampling.spans(frames.total_frames or 0, frames.fps or float("nan")))
        if sampling.span is None and len(spans) == 1:
            spans = None  # one segment of the whole video is the official clip: same frames, official audio
    if audio is None or not info.has_audio:
        return DecodedUpload(info, frames, None, segment_spans=spans, subtitles=subtitles)
    stage("Reading the audio track")
    try:
        clips = load_audio_clips(info.path, audio) if spans is None else _clips_in(info.path, audio, spans)
        return DecodedUpload(info, frames, clips, segment_spans=spans, subtitles=subtitles)
    except MediaError as err:
        log.info("audio not used for %s: %s", info.path, err)
        return DecodedUpload(info, frames, None, audio_error=str(err), segment_spans=spans, subtitles=subtitles)


def _clips_in(path: str, audio: AudioEncoderConfig, spans: tuple[tuple[float, float], ...]) -> AudioClips:
    """Every segment's official clips, one after the other."""
    per_segment = load_audio_clips_in_spans(path, audio, list(spans))
    return AudioClips(fbank=torch.cat([clips.fbank for clips in per_segment]),  # (K * clips, 1, mel, L)
                      clip_spans=[span for clips in per_segment for span in clips.clip_spans],
                      duration=spans[-1][1] - spans[0][0])


def transcribe_upload(path: str | Path, model: SpeechModelSpec, language: str | None = None,
                      on_stage: StageCallback | None = None, on_time_limit: TimeLimitCallback | None = None,
                      max_seconds: float | None = None) -> SpeechTranscript:
    """The speech in an uploaded video, with progress as stage text ("Transcribing speech: 0:42 of 3:10").

    The file is probed first (refused past `max_seconds`, like `decode_upload`); `on_time_limit`
    then hears how long the job may take: the transcription's own limit, proportional to the
    length, plus loading the model. An image or a video without sound gives no cues and a note."""
    stage = on_stage or (lambda _: None)
    stage("Reading the file")
    info = probe(path)
    check_duration(info, max_seconds)
    if info.kind != "video" or not info.has_audio:
        return SpeechTranscript([], None, NO_AUDIO_NOTE, 0.0)
    limit = default_time_limit(info.duration or 0.0)
    if on_time_limit is not None:
        on_time_limit(limit + MODEL_LOAD_ALLOWANCE_S)
    total = clock(info.duration or 0.0)
    stage(f"Transcribing speech: 0:00 of {total}")
    return transcribe(info.path, model, language, time_limit_s=limit,
                      on_progress=lambda done, whole: stage(f"Transcribing speech: {clock(done)} of {clock(whole)}"))
