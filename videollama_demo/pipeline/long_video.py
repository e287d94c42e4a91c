"""Long-video mode: how many segments a video is cut into, and what that costs.

Each segment is encoded on its own exactly as an official clip (8 frames → 32 video tokens, and 8
audio clips → 8 audio tokens with audio on), so the frame-position table's 32 rows are never
exceeded however long the video is. The number of segments K is limited by the LLM's context
(official: 2000 positions including the 300 new tokens): every segment costs its media tokens
plus the text that introduces it. Planning is pure arithmetic, so it is tested for any length.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from ..config import VideoLlamaConfig
from ..media.video import auto_segment_count
from ..model.video_llama import VideoLlamaEncoder

# One official clip per this many seconds when the context allows (a 10 min video: 20 segments).
SEGMENT_SECONDS = 30.0
# Positions kept free for the question and a few follow-up turns.
QUESTION_RESERVE_TOKENS = 200
# Text of the long-video prompt, counted generously for LLaMA's tokenizer (each digit is a token):
HEAD_TEXT_TOKENS = 40  # "The video is 1:02:03 long. It is shown in 24 parts, in order, ..."
PART_TEXT_TOKENS = 30  # "Part 12 (1:02:03 to 1:06:51): <Video></Video>\n"
AUDIO_PART_TEXT_TOKENS = 10  # "you hear , and see "
# A single clip's official text ("The video contains 8 frames sampled at ..." or the audio message).
CLIP_TEXT_TOKENS = 110
# Subtitles: tokens per word (LLaMA gives ~1.3-1.6 for English) and per line ("\n[1:02:03.4] ").
TOKENS_PER_WORD = 2
TOKENS_PER_SUBTITLE_LINE = 10
# With subtitles on, this share of the free context goes to their words, the rest to segments.
SUBTITLE_SHARE = 0.35


@dataclass(frozen=True)
class SegmentBudget:
    """What long-video mode will do with a video, before it runs (all counts are per the whole prompt)."""

    duration: float  # seconds
    segments: int  # K
    frames_per_segment: int
    video_tokens: int  # K x video queries
    audio_tokens: int  # K x audio queries (0 with audio off)
    text_tokens: int  # estimate of the prompt's own text, subtitles excluded
    subtitle_words: int  # word budget of the subtitles (0 without subtitles)
    context_length: int
    max_new_tokens: int
    max_segments: int  # the most the context holds
    reason: str  # why K is what it is, in words
    estimated_seconds: float | None = None  # encoding time on this device (None: not measured)
    estimated_memory_bytes: int | None = None  # encoder activations at once, on this device

    @property
    def frames(self) -> int:
        return self.segments * self.frames_per_segment

    @property
    def prompt_tokens(self) -> int:
        """Positions the first prompt needs at most (subtitle words at their budget)."""
        words = self.subtitle_words * TOKENS_PER_WORD + (self.segments * TOKENS_PER_SUBTITLE_LINE
                                                          if self.subtitle_words else 0)
        return self.video_tokens + self.audio_tokens + self.text_tokens + words

    @property
    def fits(self) -> bool:
        return self.prompt_tokens + QUESTION_RESERVE_TOKENS + self.max_new_tokens <= self.context_length

    def summary(self) -> str:
        """One line for people: frames, tokens, time and memory."""
        cost = []
        if self.estimated_seconds is not None:
            cost.append(f"about {self.estimated_seconds:.0f} s to encode")
        if self.estimated_memory_bytes is not None:
            cost.append(f"about {self.estimated_memory_bytes / 2**30:.1f} GiB for the encoders")
        tokens = self.video_tokens + self.audio_tokens
        return (f"{self.segments} segment(s) x {self.frames_per_segment} frames = {self.frames} frames, "
                f"{tokens} media tokens, ~{self.prompt_tokens} of {self.context_length - self.max_new_tokens} "
                f"prompt positions" + (f"; {', '.join(cost)}" if cost else "") + f". {self.reason}")


def tokens_per_segment(video_queries: int, audio_queries: int) -> int:
    """Media tokens plus the text introducing one segment."""
    audio_text = AUDIO_PART_TEXT_TOKENS if audio_queries else 0
    return video_queries + audio_queries + PART_TEXT_TOKENS + audio_text


def max_segments(context_length: int, max_new_tokens: int, video_queries: int, audio_queries: int,
                 subtitles: bool = False) -> int:
    """The most segments whose prompt leaves room for a question and the answer (at least 1)."""
    free = context_length - max_new_tokens - QUESTION_RESERVE_TOKENS - HEAD_TEXT_TOKENS
    if subtitles:
        free = int(free * (1 - SUBTITLE_SHARE))
    return max(1, free // tokens_per_segment(video_queries, audio_queries))


def subtitle_word_budget(context_length: int, max_new_tokens: int, media_tokens: int, text_tokens: int,
                         lines: int) -> int:
    """Words of subtitles that fit beside the media, leaving room for the question and the answer."""
    free = (context_length - max_new_tokens - QUESTION_RESERVE_TOKENS - media_tokens - text_tokens
            - lines * TOKENS_PER_SUBTITLE_LINE)
    return max(0, free // TOKENS_PER_WORD)


def plan_segments(duration: float, *, context_length: int, max_new_tokens: int, video_queries: int = 32,
                  audio_queries: int = 0, frames_per_segment: int = 8, total_frames: int | None = None,
                  requested: int | None = None, subtitles: bool = False,
                  segment_seconds: float = SEGMENT_SECONDS) -> SegmentBudget:
    """Choose K for a video of `duration` seconds: `requested` when given (capped by the context),
    else one segment per `segment_seconds`. A video with fewer than 2 x 8 frames is one segment."""
    limit = max_segments(context_length, max_new_tokens, video_queries, audio_queries, subtitles)
    by_frames = max(1, total_frames // frames_per_segment) if total_frames is not None else limit
    if requested is not None:
        if requested < 1:
            raise ValueError(f"the number of segments must be at least 1, got {requested}")
        segments = min(requested, limit, by_frames)
        reason = (f"{requested} segments were asked for" if segments == requested else
                  f"{requested} segments were asked for; {segments} fit "
                  + ("the context" if segments == limit else "the video's frames"))
    else:
        segments = min(auto_segment_count(duration, segment_seconds, limit), by_frames)
        wanted = auto_segment_count(duration, segment_seconds, 10**9)
        reason = (f"One segment per {segment_seconds:.0f} s of video." if segments == wanted else
                  f"{wanted} segments would cover every {segment_seconds:.0f} s; the "
                  + ("context holds" if segments == limit else "video's frames allow") + f" {segments}.")
    text = HEAD_TEXT_TOKENS + segments * (PART_TEXT_TOKENS + (AUDIO_PART_TEXT_TOKENS if audio_queries else 0))
    media = segments * (video_queries + audio_queries)
    words = subtitle_word_budget(context_length, max_new_tokens, media, text, segments) if subtitles else 0
    return SegmentBudget(duration=duration, segments=segments, frames_per_segment=frames_per_segment,
                         video_tokens=segments * video_queries, audio_tokens=segments * audio_queries,
                         text_tokens=text, subtitle_words=words, context_length=context_length,
                         max_new_tokens=max_new_tokens, max_segments=limit, reason=reason)


def vision_activation_bytes(frames: int, tokens: int, width: int, mlp_dim: int, heads: int, dtype_bytes: int) -> int:
    """Peak activations of one ViT block over `frames` frames at once (inference keeps one block's):
    the residual stream, the MLP's hidden layer and one attention matrix per head."""
    per_frame = tokens * (3 * width + mlp_dim) + heads * tokens * tokens
    return frames * per_frame * dtype_bytes


class EncodeCostMeter:
    """(seconds, bytes) to encode one segment on this device, measured once per shape on a blank
    clip. Memory is measured on CUDA; elsewhere it is the ViT's activations, computed."""

    def __init__(self, encoder: VideoLlamaEncoder, config: VideoLlamaConfig, device: torch.device,
                 encoder_dtype: torch.dtype) -> None:
        self.encoder, self.config, self.device, self.encoder_dtype = encoder, config, device, encoder_dtype
        self._costs: dict[tuple[int, bool], tuple[float, int]] = {}

    def segment_cost(self, num_frames: int, with_audio: bool) -> tuple[float, int]:
        key = (num_frames, with_audio)
        if key not in self._costs:
            self._costs[key] = self._measure(num_frames, with_audio)
        return self._costs[key]

    def _measure(self, num_frames: int, with_audio: bool) -> tuple[float, int]:
        size = self.config.vision.image_size
        on_cuda = self.device.type == "cuda"
        if on_cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
            before = torch.cuda.memory_allocated(self.device)
        started = time.perf_counter()
        self.encoder.encode_video(torch.zeros(1, 3, num_frames, size, size, device=self.device))
        audio = self.config.audio
        if with_audio and audio is not None:
            fbank = torch.zeros(1, audio.num_clips, 1, audio.num_mel_bins, audio.target_length, device=self.device)
            self.encoder.encode_audio(fbank)
        if on_cuda:
            torch.cuda.synchronize(self.device)
            memory = torch.cuda.max_memory_allocated(self.device) - before
        else:
            vision = self.config.vision
            tokens = (size // vision.patch_size) ** 2 + 1
            dtype_bytes = 2 if self.encoder_dtype in (torch.float16, torch.bfloat16) else 4
            memory = vision_activation_bytes(num_frames, tokens, vision.width, vision.mlp_dim, vision.num_heads,
                                             dtype_bytes)
        return time.perf_counter() - started, memory
