"""How to read a file: the one request type for frames, audio, segments, a time range and subtitles.

The defaults are the official reading (8 frames of the whole video, the audio track when there is
one). The page, the CLI, the API and the encode cache all speak this type.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from .media.subtitles import Cue

# Where subtitle lines come from: none (official), the video's own text stream (its speech when it
# has none), a .srt/.vtt file, cues given by the caller (e.g. the user's edit of the transcript), or
# the speech in the sound track (recognized by Whisper; the model and language are the pipeline's).
SubtitleSource = Literal["off", "embedded", "file", "given", "speech"]
SUBTITLE_SOURCES: tuple[SubtitleSource, ...] = get_args(SubtitleSource)


@dataclass(frozen=True)
class Reading:
    use_audio: bool = True
    num_frames: int | None = None  # per clip; None = the preset's (official: 8)
    long_video: bool = False  # K official clips, each introduced by its time range
    segments: int | None = None  # with long_video: K; None = one per ~30 s, as many as the context holds
    time_range: tuple[float, float] | None = None  # one official clip sampled inside (start, end) seconds
    subtitles: SubtitleSource = "off"
    subtitle_file: str | None = None  # with subtitles="file"
    cues: tuple[Cue, ...] = ()  # with subtitles="given"
    word_budget: int | None = None  # subtitle words kept; None = what fits the context

    def __post_init__(self) -> None:
        if self.subtitles not in SUBTITLE_SOURCES:
            raise ValueError(f"subtitles must be one of {SUBTITLE_SOURCES}, not {self.subtitles!r}")
        if (self.subtitles == "file") != (self.subtitle_file is not None):
            raise ValueError('a subtitle file goes with subtitles="file", and only with it')
        if self.cues and self.subtitles != "given":
            raise ValueError('cues go with subtitles="given"')
        if self.segments is not None and (not self.long_video or self.segments < 1):
            raise ValueError("segments is a whole number from 1, and only with long_video")
        if self.time_range is not None and self.long_video:
            raise ValueError("a time range is one clip: it does not go with long_video")

    @property
    def with_subtitles(self) -> bool:
        return self.subtitles != "off"

    def replace(self, **changes: Any) -> Reading:
        return dataclasses.replace(self, **changes)

    @classmethod
    def with_subtitle_file(cls, path: str | Path, **options: Any) -> Reading:
        return cls(subtitles="file", subtitle_file=str(path), **options)

    @classmethod
    def with_cues(cls, cues: list[Cue] | tuple[Cue, ...], **options: Any) -> Reading:
        return cls(subtitles="given", cues=tuple(cues), **options)
