"""The result of encoding one uploaded file: LLM-space tokens plus what the model saw."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from .media import MediaInfo


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

    @property
    def uses_audio(self) -> bool:
        return self.audio is not None

    def blocks(self) -> list[torch.Tensor]:
        """Embedding blocks in prompt order: official order is audio first, then video (spec §1.4)."""
        return [self.audio, self.video] if self.audio is not None else [self.video]
