"""Official frame sampling: uniform indices, decord resize-on-decode to S×S, CLIP normalisation.

Video-LLaMA `video_llama/processors/video_processor.py`, `load_video` and `AlproVideoEvalProcessor`.
The frames the model sees are also returned as uint8 thumbnails, so the UI can show exactly what
was sampled.

Long MP4/MOV files skip decord: its reader reads every packet of the file when it opens, which
costs seconds for an hour-long upload. They are read by seeking through the container's own
sample table instead, and give the same bytes: the same decoder output, counted the way decord
counts frames, through the same ffmpeg filters decord builds (tested against decord).
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import decord
import numpy as np
import torch

from ..constants import CLIP_MEAN, CLIP_STD
from .frame_index import FrameIndex
from .probe import MediaError, display_name, require_file

log = logging.getLogger(__name__)

# The official frame-position table has 32 rows, so no model can take more frames than this.
MAX_FRAMES = 32
# decord turns a rotated video upright with these ffmpeg filters (its theta is the negated
# display-matrix angle, i.e. 360 minus the rotation PyAV reports).
_DECORD_TRANSPOSES = {0: (), 90: ("2",), 180: ("1", "1"), 270: ("1",)}


@dataclass(frozen=True)
class SampledFrames:
    pixels: torch.Tensor  # (3, T, S, S) float32, CLIP-normalised (official layout C, T, H, W)
    thumbnails: np.ndarray  # (T, S, S, 3) uint8: exactly the decoded frames
    indices: list[int]
    times: list[float]  # seconds, rounded to 0.1 as in the official message
    message: str  # the official "The video contains ..." text; "" for an image
    fps: float | None
    total_frames: int | None = None  # frames in the whole video, as decord counts them


# Frame positions to read, given the video's frame count and fps (NaN when the file has none).
IndexPicker = Callable[[int, float], list[int]]


@dataclass(frozen=True)
class FrameSampling:
    """Which frames to read beyond the official default (which this class's defaults are).

    The span (the whole video, or `span` seconds) is cut into `segments` equal runs of frames,
    and each run is sampled exactly as the official code samples a whole clip of that many frames:
    `uniform_indices(run length, frames_per_segment)`, offset to the run's first frame.
    """

    frames_per_segment: int = 8
    segments: int = 1
    span: tuple[float, float] | None = None  # seconds [start, end], both inclusive
    # "auto": one segment per `segment_seconds` of the span, at most `segments` (chosen in the worker,
    # which is the first to know the frame count).
    segment_seconds: float | None = None

    def frame_ranges(self, num_total: int, fps: float) -> list[tuple[int, int]]:
        """[first, stop) frame positions of each segment (fewer segments than asked if frames run out)."""
        first, stop = 0, num_total
        if self.span is not None:
            if not (math.isfinite(fps) and fps > 0):
                raise MediaError("This video has no usable frame rate, so a time range cannot be found in it.")
            start, end = self.span
            first = max(0, math.ceil(start * fps - 1e-6))
            stop = min(num_total, math.floor(end * fps + 1e-6) + 1)
            if stop <= first:
                raise MediaError(f"No frame lies between {start:g} s and {end:g} s: "
                                 f"the video is {num_total / fps:.1f} s long.")
        length = stop - first
        wanted = self.segments
        if self.segment_seconds is not None and math.isfinite(fps) and fps > 0:
            wanted = auto_segment_count(length / fps, self.segment_seconds, self.segments)
        # Every segment gets a full official clip; a span shorter than one clip is one shorter clip.
        count = max(1, min(wanted, length // self.frames_per_segment))
        return [(first + length * k // count, first + length * (k + 1) // count) for k in range(count)]

    def indices(self, num_total: int, fps: float) -> list[int]:
        return [first + i for first, stop in self.frame_ranges(num_total, fps)
                for i in uniform_indices(stop - first, self.frames_per_segment)]

    def spans(self, num_total: int, fps: float) -> list[tuple[float, float]]:
        """Seconds [start, end) of each segment."""
        if not (math.isfinite(fps) and fps > 0):
            raise MediaError("This video has no usable frame rate, so it cannot be cut into timed parts.")
        spans = [(first / fps, stop / fps) for first, stop in self.frame_ranges(num_total, fps)]
        if self.span is not None:  # the asked span's own ends, not those of its first and last frames
            spans[0] = (self.span[0], spans[0][1])
            spans[-1] = (spans[-1][0], min(self.span[1], num_total / fps))
        return spans


def auto_segment_count(seconds: float, segment_seconds: float, max_segments: int) -> int:
    """Long-video mode's choice: one segment per `segment_seconds` of video, 1 to `max_segments`."""
    return max(1, min(max_segments, math.ceil(seconds / segment_seconds - 1e-9)))


def uniform_indices(num_total: int, num_frames: int) -> list[int]:
    """Official "uniform" sampling: frame i is floor(i * step) with step = vlen / n, n = min(num_frames, vlen).

    The official code builds these with a float `np.arange(0, vlen, step)`, which for some n that are
    not 8 (e.g. 7 frames of a 17-frame video) yields one index too many. Multiplying i by the same
    float step gives the same values and always exactly n of them.
    """
    count = min(num_frames, num_total)
    step = num_total / count
    return [math.floor(i * step) for i in range(count)]


def frame_times(indices: list[int], fps: float) -> list[float]:
    return [round(index / fps, 1) for index in indices]


def frame_message(times: list[float]) -> str:
    """The official text placed before the video tokens (note the trailing space)."""
    seconds = ", ".join(str(t) for t in times)
    return f"The video contains {len(times)} frames sampled at {seconds} seconds. "


def clip_normalise(frames: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W, 3) → float32 (3, T, H, W): /255, then (x - mean) / std with the CLIP constants."""
    pixels = torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 255.0  # (3, T, H, W)
    mean = torch.tensor(CLIP_MEAN, dtype=pixels.dtype).view(3, 1, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=pixels.dtype).view(3, 1, 1, 1)
    return (pixels - mean) / std


def load_video_frames(path: str | Path, num_frames: int = 8, image_size: int = 224) -> SampledFrames:
    """Sample `num_frames` frames (fewer if the video is shorter) exactly as the official demo does."""
    if not 1 <= num_frames <= MAX_FRAMES:
        raise MediaError(f"The number of frames must be between 1 and {MAX_FRAMES}, not {num_frames}.")
    return load_sampled_frames(path, FrameSampling(frames_per_segment=num_frames), image_size)


def load_sampled_frames(path: str | Path, sampling: FrameSampling, image_size: int = 224) -> SampledFrames:
    """The frames `sampling` picks (the official ones for `FrameSampling(n)`), read like decord reads them."""
    if not 1 <= sampling.frames_per_segment <= MAX_FRAMES:
        raise MediaError(f"The number of frames must be between 1 and {MAX_FRAMES}, not {sampling.frames_per_segment}.")
    file = require_file(path)
    sampled = _sample_by_seeking(file, sampling.indices, image_size)
    return sampled if sampled is not None else _sample_with_decord(file, sampling.indices, image_size)


def _sample_with_decord(file: Path, pick: IndexPicker, image_size: int) -> SampledFrames:
    reader = _open_reader(file, image_size)
    indices = pick(len(reader), float(reader.get_avg_fps()))
    try:
        frames = reader.get_batch(indices).asnumpy()  # (T, S, S, 3) uint8; resized by decord's scaler
    except (decord.DECORDError, RuntimeError) as err:
        raise MediaError(f"Frames of the video '{file.name}' could not be decoded: the file may be damaged.") from err
    times, fps = _times_of(reader, indices, float(reader.get_avg_fps()))
    return SampledFrames(pixels=clip_normalise(frames), thumbnails=frames, indices=indices, times=times,
                         message=frame_message(times), fps=fps, total_frames=len(reader))


def _sample_by_seeking(file: Path, pick: IndexPicker, image_size: int) -> SampledFrames | None:
    """decord's frames for a long MP4/MOV without its packet scan; None when decord must do it."""
    try:
        with av.open(str(file)) as container:
            index = FrameIndex.of(container)
            if index is None:
                return None
            indices = pick(index.num_frames, index.fps)
            frames = _SeekingReader(container, index, image_size).frames_at(indices)  # (T, S, S, 3)
    except (_NotSeekable, av.FFmpegError, OSError, ValueError) as why:
        log.info("%s: frames come from decord instead of seeking (%s)", file.name, why)
        return None
    log.debug("%s: %d frames sampled by seeking", file.name, len(indices))
    times = frame_times(indices, index.fps)
    return SampledFrames(pixels=clip_normalise(frames), thumbnails=frames, indices=indices, times=times,
                         message=frame_message(times), fps=index.fps, total_frames=index.num_frames)


def _open_reader(path: Path, image_size: int) -> decord.VideoReader:
    name = display_name(path)
    try:
        # The official reader: decord's ffmpeg scaler squashes every frame straight to S×S (no crop).
        reader = decord.VideoReader(str(path), height=image_size, width=image_size)
    except (decord.DECORDError, RuntimeError) as err:
        log.info("decord cannot open %s: %s", path, err)
        raise MediaError(f"The video '{name}' could not be decoded: the file may be damaged or cut short, "
                         "or its codec is not supported.") from err
    if len(reader) == 0:
        raise MediaError(f"The video '{name}' has no frames that can be decoded.")
    return reader


def _times_of(reader: decord.VideoReader, indices: list[int], fps: float) -> tuple[list[float], float | None]:
    """Times of the sampled frames and the fps they came from (None when the file has no usable fps).

    The official code divides by `get_avg_fps()` and would fail on 0 or NaN. We then use each frame's
    own presentation time instead, rounded the same way, which is what the message means to say.
    """
    if math.isfinite(fps) and fps > 0:
        return frame_times(indices, fps), fps
    starts = reader.get_frame_timestamp(indices)[:, 0]  # (T,) seconds
    return [round(float(start), 1) for start in starts], None


class _NotSeekable(Exception):
    """This file's frames cannot be matched to decord's by seeking; decord reads it instead."""


class _SeekingReader:
    """Frames by decord's count: frame i is the output number i - k after decoding from keyframe k.

    That holds when the frames before keyframe k in the table are exactly those shown before it (a
    closed GOP). Every decoded frame is checked against the packets read, so a file where it does
    not hold (open GOPs, dropped frames) raises _NotSeekable instead of giving other frames.
    """

    def __init__(self, container: av.container.InputContainer, index: FrameIndex, image_size: int) -> None:
        self._container = container
        self._index = index
        self._stream = index.stream
        self._image_size = image_size
        self._scaler: av.filter.Graph | None = None

    def frames_at(self, indices: list[int]) -> np.ndarray:
        """(T, S, S, 3) uint8 for frame positions `indices`, as decord's get_batch gives them."""
        found: dict[int, np.ndarray] = {}
        outputs: Generator[av.VideoFrame, None, None] | None = None
        position = 0  # decord position of the next frame `outputs` yields
        try:
            for target in sorted(set(indices)):
                key = self._index.keyframe_at_or_before(target)
                if outputs is None or key > position:  # seek rather than decode every frame up to the target
                    if outputs is not None:
                        outputs.close()
                    outputs, position = self._decode_from(key), key
                while position < target:
                    self._next(outputs, target)
                    position += 1
                found[target] = self._scaled(self._next(outputs, target))
                position += 1
        finally:
            if outputs is not None:
                outputs.close()  # before the container closes
        return np.stack([found[i] for i in indices])

    @staticmethod
    def _next(outputs: Iterator[av.VideoFrame], target: int) -> av.VideoFrame:
        frame = next(outputs, None)
        if frame is None:
            raise _NotSeekable(f"the file ended before frame {target}")
        return frame

    def _decode_from(self, key: int) -> Generator[av.VideoFrame, None, None]:
        """Decoded frames in display order from keyframe `key`, each checked against the packets."""
        key_dts = self._index.entries[key].timestamp
        # ffmpeg lands on the last keyframe shown at or before this time: `key` or an earlier one.
        self._container.seek(key_dts, stream=self._stream, backward=True)
        self._stream.codec_context.flush_buffers()
        key_pts: int | None = None
        pending: list[int] = []  # presentation times of the packets read but not yet decoded, sorted
        for packet in self._container.demux(self._stream):
            if packet.dts is not None and packet.dts < key_dts:
                continue  # before our keyframe: not needed
            if key_pts is None:
                key_pts = _keyframe_pts(packet, key_dts)
            _record_packet(packet, pending, key_pts)
            for frame in packet.decode():
                # Display order: the next frame out must be the earliest packet not yet shown;
                # anything else means the decoder dropped a frame.
                if not pending or frame.pts != pending.pop(0):
                    raise _NotSeekable("decoded frames do not follow the sample table")
                yield frame

    def _scaled(self, frame: av.VideoFrame) -> np.ndarray:
        if self._scaler is None:
            self._scaler = _decord_filters(self._stream, frame.rotation, self._image_size)
        self._scaler.push(frame)
        return self._scaler.pull().to_ndarray()  # (S, S, 3) uint8


def _keyframe_pts(packet: av.Packet, key_dts: int) -> int:
    if packet.dts != key_dts or not packet.is_keyframe or packet.pts is None:
        raise _NotSeekable("the seek did not reach the keyframe")
    return packet.pts


def _record_packet(packet: av.Packet, pending: list[int], key_pts: int) -> None:
    if packet.pts is None:
        if packet.size:
            raise _NotSeekable("a packet has no presentation time")
        return  # the empty packet that flushes the decoder at the end
    if packet.pts < key_pts:
        # Shown before the keyframe yet stored after it: an open GOP, whose frames decord counts
        # in the previous group, so counting outputs from this keyframe would be off.
        raise _NotSeekable("open GOP")
    bisect.insort(pending, packet.pts)


def _decord_filters(stream: av.video.stream.VideoStream, rotation: int, size: int) -> av.filter.Graph:
    """decord's graph: upright (transpose), "scale=S:S" with libavfilter's bilinear default, rgb24.

    The flags are spelled out because newer ffmpeg made bicubic the default of the scale filter.
    """
    transposes = _DECORD_TRANSPOSES.get(int(rotation) % 360)
    if transposes is None:
        raise _NotSeekable(f"rotation by {rotation} degrees")
    steps = [("transpose", t) for t in transposes] + [("scale", f"{size}:{size}:flags=bilinear"), ("format", "rgb24")]
    graph = av.filter.Graph()
    node = graph.add_buffer(template=stream)
    for name, argument in steps:
        step = graph.add(name, argument)
        node.link_to(step)
        node = step
    node.link_to(graph.add("buffersink"))
    graph.configure()
    return graph
