"""The result of encoding one uploaded file: LLM-space tokens plus what the model saw.

`MediaEncoding` alone knows the order and numbering of its media blocks (`blocks`, `clip_blocks`):
the prompt builders ask it where each clip's audio and video go, and the splice checks the count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import torch

from .media import MediaInfo
from .media.subtitles import Cue, Transcript


class ClipBlocks(NamedTuple):
    """Where one official clip's blocks stand among the prompt's media blocks."""

    audio: int | None  # None without audio
    video: int


def clip_blocks(uses_audio: bool, clip: int = 0, first: int = 0) -> ClipBlocks:
    """Block numbers of clip `clip` of an encoding whose blocks start at number `first`.

    Official order: the audio block, then the video block (Video-LLaMA `demo_audiovideo.py` uploads
    the audio placeholder first); clips (long-video segments) one after the other."""
    base = first + clip * (2 if uses_audio else 1)
    return ClipBlocks(base, base + 1) if uses_audio else ClipBlocks(None, base)


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

    @property
    def num_clips(self) -> int:
        """Official clips in this encoding: 1, or the segments of long-video mode / a time range."""
        return max(len(self.segment_spans), 1)

    @property
    def frames_per_clip(self) -> int:
        return len(self.frame_times) // self.num_clips

    def clip_blocks(self, clip: int = 0, first: int = 0) -> ClipBlocks:
        return clip_blocks(self.uses_audio, clip, first)

    def blocks(self) -> list[torch.Tensor]:
        """Embedding blocks in prompt order, numbered as `clip_blocks` says: (1, queries, H) each."""
        videos = self.video.chunk(self.num_clips, dim=1)  # K x (1, video queries, H)
        audios = self.audio.chunk(self.num_clips, dim=1) if self.audio is not None else [None] * self.num_clips
        numbered: dict[int, torch.Tensor] = {}
        for clip, (audio, video) in enumerate(zip(audios, videos)):
            where = self.clip_blocks(clip)
            numbered[where.video] = video
            if audio is not None:
                numbered[where.audio] = audio
        return [numbered[number] for number in range(len(numbered))]
