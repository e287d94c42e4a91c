"""The result of encoding one uploaded file: LLM-space tokens plus what the model saw."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from .media import MediaInfo
from .media.subtitles import Cue, Transcript


@dataclass(frozen=True)
class MediaEncoding:
    kind: Literal["video", "image"]
    video: torch.Tensor  # (1, video queries, llm hidden): the video (or image) tokens
    audio: torch.Tensor | None  # (1, audio queries, llm hidden), or None when audio is not used
    frame_indices: list[int]
    frame_times: list[float]  # seconds of each sampled frame
    message: str  # the official "The video contains ..." text ("" for an image)
    thumbnails: np.ndarray  # (T, S, S, 3) uint8: exactly the frames the model saw
    audio_note: str | None  # why audio was not used, in words; None when it was
    clip_spans: list[tuple[float, float]]  # seconds of each audio clip used ([] without audio)
    info: MediaInfo
    from_cache: bool = False
    # Long-video mode / a time range: seconds (start, end) of each segment, each an official clip whose
    # tokens are consecutive runs of `video` (and `audio`). () for the official single clip.
    segment_spans: tuple[tuple[float, float], ...] = ()
    subtitles: tuple[Cue, ...] = ()  # the cues used (the user may edit them and encode again)
    transcript: Transcript | None = None  # what the prompt shows of them: kept / cut words, cut text
    notes: tuple[str, ...] = ()  # what the user should know (no subtitle stream, fewer segments after OOM)

    @property
    def uses_audio(self) -> bool:
        return self.audio is not None

    @property
    def is_segmented(self) -> bool:
        """True in long-video mode with more than one segment (the prompt then has one block per segment)."""
        return len(self.segment_spans) > 1

    def blocks(self) -> list[torch.Tensor]:
        """Embedding blocks in prompt order: official order is audio first, then video (spec §1.4);
        segments one after the other."""
        count = max(len(self.segment_spans), 1)
        videos = self.video.chunk(count, dim=1)  # K x (1, video queries, H)
        if self.audio is None:
            return list(videos)
        return [block for pair in zip(self.audio.chunk(count, dim=1), videos) for block in pair]
