"""A long MP4/MOV's sample table: frame count and fps as decord counts them, without its packet scan.

decord (the official frame reader, Video-LLaMA `video_llama/processors/video_processor.py`,
`load_video`) reads every packet of a file when it opens it, which costs seconds for an hour-long
upload. MP4/MOV keep a table of every sample in their header; for a complete table its entries are
decord's frames, one per packet (tested against decord).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import av

# Videos at least this long are sampled by seeking (when their container allows); shorter ones
# open decord, whose scan of the file is cheap for them.
SEEK_FROM_SECONDS = 120.0


@dataclass(frozen=True)
class FrameIndex:
    """The video stream's sample table (decode order), which MP4/MOV keep in the file's header."""

    stream: av.video.stream.VideoStream
    entries: av.index.IndexEntries
    num_frames: int  # decord counts one frame per packet, which is one per table entry here
    fps: float

    @classmethod
    def of(cls, container: av.container.InputContainer) -> FrameIndex | None:
        """The table when it is complete and the file is long enough to be worth seeking in."""
        if "mov" not in container.format.name.split(",") or not container.streams.video:
            return None
        stream = container.streams.best("video")
        seconds = container.duration / av.time_base if container.duration else 0.0
        entries = stream.index_entries
        # A fragmented MP4 lists only part of its samples here, and then the counts differ.
        if seconds < SEEK_FROM_SECONDS or len(entries) == 0 or len(entries) != stream.frames:
            return None
        fps = float(stream.average_rate or 0)
        if not (math.isfinite(fps) and fps > 0):
            return None
        return cls(stream, entries, len(entries), fps)

    def keyframe_at_or_before(self, position: int) -> int:
        """decord's LocateKeyframe: the last keyframe whose table position is at most `position`."""
        while position > 0 and not self.entries[position].is_keyframe:
            position -= 1
        return position


def indexed_frame_count(path: str | Path) -> tuple[int, float] | None:
    """(frame count, fps) as decord reports them, read from a long MP4/MOV's sample table.

    None for short files and for containers without a complete table: ask decord then.
    """
    try:
        with av.open(str(path)) as container:
            index = FrameIndex.of(container)
    except (av.FFmpegError, OSError, ValueError):
        return None
    return (index.num_frames, index.fps) if index is not None else None
