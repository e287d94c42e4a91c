"""The official audio front end: the video's own audio track → clips → kaldi fbank, normalised.

ImageBind's `load_and_transform_audio_data` as Video-LLaMA calls it (`video_llama/processors/video_processor.py`,
`load_and_transform_audio_data`). The
numbers come from `AudioEncoderConfig`; the fbank window settings below are fixed by ImageBind.

Long tracks are not decoded whole: only a window around each clip is decoded and resampled
(`_clips_from_windows`), which keeps an hour-long upload fast and small (its whole track would
be 635 MB of float32 at 44.1 kHz stereo). Resampling a window is exact; what differs from the full
decode is the decoder (PyAV's FFmpeg instead of torchaudio's), by a few 1e-8 in the samples.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av
import numpy as np
import torch
import torch.nn.functional as F
import torchaudio
from torchaudio.compliance import kaldi

from ..config import AudioEncoderConfig
from .probe import MediaError, display_name, require_file

log = logging.getLogger(__name__)

FRAME_LENGTH_MS = 25
FRAME_SHIFT_MS = 10
# Tracks up to this long take the exact official path (whole track decoded, then cut). Longer ones
# decode windows; measured against the exact path the normalised fbank differs by at most 3e-4
# (a pure tone; 1e-5 for noise and speech-like sound, 0 for MP3). Tracks whose clips overlap
# (shorter than (clips + 1) x clip length, 18 s) always take the exact path: the official in-place
# DC removal couples overlapping clips.
EXACT_AUDIO_MAX_SECONDS = 120.0
# The start of the track is decoded in one pass, never by seeking: right after an MP4's AAC priming,
# a seek lands a few frames off (measured: clips starting at 2-5 s came out wrong, from 7 s on exact).
_HEAD_SECONDS = 12.0
# Decoded before each window and thrown away, so the decoder starts from a settled state: AAC
# needs the previous 1024-sample frame, Opus 80 ms, MP3 a few frames of bit reservoir.
_DECODER_PREROLL_SECONDS = 0.2
# torchaudio.functional.resample's defaults, which fix how far each output sample reaches.
_LOWPASS_FILTER_WIDTH = 6
_ROLLOFF = 0.99


@dataclass(frozen=True)
class AudioClips:
    fbank: torch.Tensor  # (num_clips, 1, num_mel_bins, target_length) float32, normalised
    clip_spans: list[tuple[float, float]]  # seconds (start, end) of the samples each clip used
    duration: float  # seconds of the audio track


def clip_start_times(duration: float, num_clips: int, clip_duration: float) -> list[Fraction]:
    """pytorchvideo 0.1.5 ConstantClipsPerVideoSampler: start_k = k * max(D - clip, 0) / num_clips.

    Divided by num_clips, not num_clips - 1, so the end of the track is never reached (a 10 s track
    gives starts 0..7 s). The subtraction is a float one, as in pytorchvideo; the rest is exact.
    """
    latest_start = Fraction(max(duration - clip_duration, 0))
    step = latest_start / num_clips
    return [step * k for k in range(num_clips)]


def load_waveform(path: str | Path, sample_rate: int = 16000) -> torch.Tensor:
    """(channels, samples) float32 at `sample_rate`, read from the video file's own audio track."""
    name = display_name(path)
    if not _has_audio_stream(require_file(path)):
        raise MediaError(f"'{name}' has no audio track.")
    try:
        waveform, source_rate = torchaudio.load(str(path))
    except Exception as err:  # torchcodec raises RuntimeError for anything it cannot decode
        log.info("torchaudio cannot read the audio of %s: %s", path, err)
        raise MediaError(f"The audio track of '{name}' could not be read.") from err
    if source_rate != sample_rate:
        waveform = torchaudio.functional.resample(waveform, orig_freq=source_rate, new_freq=sample_rate)
    return waveform


def waveform_to_clips(waveform: torch.Tensor, cfg: AudioEncoderConfig) -> AudioClips:
    """Cut `cfg.num_clips` clips and turn each into a normalised (1, mel, target_length) fbank."""
    rate = cfg.sample_rate
    num_samples = waveform.shape[1]
    _require_one_fbank_frame(num_samples, rate)
    if num_samples < cfg.clip_duration * rate:
        log.info("audio track of %.2f s is shorter than one %.1f s clip: every clip is the whole track",
                 num_samples / rate, cfg.clip_duration)
    # The official DC removal edits the loaded waveform; work on a copy so the caller's stays intact.
    shared = waveform.clone()
    fbanks = []
    for first, stop in clip_sample_ranges(num_samples, cfg):
        clip = shared[:, first:stop]  # a view into `shared`, not a copy
        # In place on the view, as the official code does: overlapping samples of the *later* clips
        # are shifted too, which changes their fbank (clips overlap whenever the track is < 18 s).
        clip -= clip.mean()
        fbanks.append(_normalised_fbank(clip, cfg))
    return _clips(fbanks, num_samples, cfg)


def clip_sample_ranges(num_samples: int, cfg: AudioEncoderConfig) -> list[tuple[int, int]]:
    """[first, stop) sample numbers of each clip in a track of `num_samples` at `cfg.sample_rate`."""
    rate = cfg.sample_rate
    starts = clip_start_times(num_samples / rate, cfg.num_clips, cfg.clip_duration)
    return [(int(start * rate), int((start + Fraction(cfg.clip_duration)) * rate)) for start in starts]


def load_audio_clips(path: str | Path, cfg: AudioEncoderConfig) -> AudioClips:
    """The official clips of the file's audio track; long tracks decode only a window per clip."""
    seconds = _header_seconds(path)
    exact_up_to = max(EXACT_AUDIO_MAX_SECONDS, (cfg.num_clips + 1) * cfg.clip_duration)
    if seconds is not None and seconds > exact_up_to:
        try:
            return _clips_from_windows(Path(path), cfg)
        except (_NoWindows, av.FFmpegError) as why:
            log.info("%s: decoding the whole audio track (%s)", display_name(path), why)
    return waveform_to_clips(load_waveform(path, cfg.sample_rate), cfg)


def load_audio_clips_in_spans(path: str | Path, cfg: AudioEncoderConfig,
                              spans: list[tuple[float, float]]) -> list[AudioClips]:
    """For each (start, end) seconds span: the official clips of that span alone, as if the video
    were cut there (clip times in `clip_spans` are seconds of the whole video).

    Short tracks are decoded once; long ones only around the clips (a span shorter than 18 s is
    decoded whole, because its clips overlap and the official in-place DC removal couples them).
    """
    seconds = _header_seconds(path)
    if seconds is not None and seconds > max(EXACT_AUDIO_MAX_SECONDS, (cfg.num_clips + 1) * cfg.clip_duration):
        try:
            return _span_clips_from_windows(Path(path), cfg, spans)
        except (_NoWindows, av.FFmpegError) as why:
            log.info("%s: decoding the whole audio track (%s)", display_name(path), why)
    waveform = load_waveform(path, cfg.sample_rate)
    rate = cfg.sample_rate
    bounds = [(int(start * rate), int(end * rate)) for start, end in spans]
    return [_shifted(waveform_to_clips(waveform[:, first:stop], cfg), first / rate) for first, stop in bounds]


def _shifted(clips: AudioClips, offset: float) -> AudioClips:
    spans = [(start + offset, end + offset) for start, end in clips.clip_spans]
    return AudioClips(clips.fbank, spans, clips.duration)


def _span_clips_from_windows(path: Path, cfg: AudioEncoderConfig,
                             spans: list[tuple[float, float]]) -> list[AudioClips]:
    rate, overlapping = cfg.sample_rate, (cfg.num_clips + 1) * cfg.clip_duration * cfg.sample_rate
    with _open_track(path, head_seconds=max(_HEAD_SECONDS, cfg.clip_duration + 1.0)) as track:
        resampler = _WindowResampler(track.sample_rate, rate)
        num_samples = resampler.output_length(track.length)
        bounds = [(int(start * rate), min(int(end * rate), num_samples)) for start, end in spans]
        # Output sample ranges to read per span: the whole span when its clips overlap, else each clip.
        wanted = [[(first, stop)] if stop - first < overlapping else
                  [(first + a, first + b) for a, b in clip_sample_ranges(stop - first, cfg)]
                  for first, stop in bounds]
        windows = [resampler.window(a, b, track.length) for ranges in wanted for a, b in ranges]
        decoded = iter(zip(windows, track.read([(w.start, w.stop) for w in windows])))
    result = []
    for (first, stop), ranges in zip(bounds, wanted):
        pieces = []
        for a, b in ranges:
            window, samples = next(decoded)
            pieces.append(resampler(torch.from_numpy(samples))[:, a - window.output_start:b - window.output_start])
        if stop - first < overlapping:
            result.append(_shifted(waveform_to_clips(pieces[0], cfg), first / rate))
        else:  # the clips lie apart, so each one's own DC removal is exactly the official in-place step
            fbanks = [_normalised_fbank(clip - clip.mean(), cfg) for clip in pieces]
            result.append(_shifted(_clips(fbanks, stop - first, cfg), first / rate))
    return result


def _clips(fbanks: list[torch.Tensor], num_samples: int, cfg: AudioEncoderConfig) -> AudioClips:
    rate = cfg.sample_rate
    spans = [(first / rate, min(stop, num_samples) / rate) for first, stop in clip_sample_ranges(num_samples, cfg)]
    return AudioClips(fbank=torch.stack(fbanks), clip_spans=spans, duration=num_samples / rate)  # (N, 1, mel, target)


def _has_audio_stream(path: Path) -> bool:
    try:
        with av.open(str(path)) as container:
            return bool(container.streams.audio)
    except (av.FFmpegError, OSError, ValueError) as err:
        raise MediaError(f"The audio track of '{display_name(path)}' could not be read: "
                         "the file could not be opened.") from err


def _require_one_fbank_frame(num_samples: int, rate: int) -> None:
    window = int(rate * FRAME_LENGTH_MS * 0.001)  # kaldi's own window-size formula
    if num_samples < window:
        raise MediaError(f"The audio track is too short to use ({num_samples / rate * 1000:.0f} ms; "
                         f"at least {FRAME_LENGTH_MS} ms is needed).")


def _normalised_fbank(clip: torch.Tensor, cfg: AudioEncoderConfig) -> torch.Tensor:
    mel = kaldi.fbank(clip, htk_compat=True, sample_frequency=cfg.sample_rate, use_energy=False,
                      window_type="hanning", num_mel_bins=cfg.num_mel_bins, dither=0.0,
                      frame_length=FRAME_LENGTH_MS, frame_shift=FRAME_SHIFT_MS)  # (frames, mel), channel 0
    mel = mel.transpose(0, 1)  # (mel, frames)
    gap = cfg.target_length - mel.shape[1]
    mel = F.pad(mel, (0, gap)) if gap > 0 else mel[:, :cfg.target_length]  # right-pad with zeros or cut
    return ((mel - cfg.fbank_mean) / cfg.fbank_std).unsqueeze(0)  # (1, mel, target_length)


# -- long tracks: decode a window around each clip ------------------------------------------------

class _NoWindows(Exception):
    """This track cannot be read window by window; the whole track is decoded instead."""


def _header_seconds(path: str | Path) -> float | None:
    """The audio track's length as the header states it; None when unknown or unreadable."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return None
            stream = container.streams.best("audio")
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            return container.duration / av.time_base if container.duration else None
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError):
        return None  # the exact path reports the problem in words


def _clips_from_windows(path: Path, cfg: AudioEncoderConfig) -> AudioClips:
    """The official clips of a long track (whose clips never overlap), decoding only their windows."""
    with _open_track(path, head_seconds=max(_HEAD_SECONDS, cfg.clip_duration + 1.0)) as track:
        resampler = _WindowResampler(track.sample_rate, cfg.sample_rate)
        num_samples = resampler.output_length(track.length)
        if num_samples < (cfg.num_clips + 1) * cfg.clip_duration * cfg.sample_rate:
            raise _NoWindows("the track is shorter than its header says, and its clips overlap")
        ranges = clip_sample_ranges(num_samples, cfg)
        windows = [resampler.window(first, stop, track.length) for first, stop in ranges]
        decoded = track.read([(window.start, window.stop) for window in windows])  # each (C, n) at the source rate
        log.debug("%s: audio decoded in %d windows (%s)", path.name, len(windows), type(track).__name__)
    fbanks = []
    for (first, stop), window, samples in zip(ranges, windows, decoded):
        resampled = resampler(torch.from_numpy(samples))
        clip = resampled[:, first - window.output_start:stop - window.output_start]
        # The clips of a track this long do not overlap, so this is exactly the official in-place step.
        fbanks.append(_normalised_fbank(clip - clip.mean(), cfg))
    return _clips(fbanks, num_samples, cfg)


@dataclass(frozen=True)
class _Window:
    start: int  # source samples [start, stop) to decode
    stop: int
    output_start: int  # the output sample number that resampling the window starts at


@dataclass(frozen=True)
class _WindowResampler:
    """torchaudio's sinc resampler seen block by block, so that a window gives the track's own numbers.

    With rates reduced by their gcd to `orig` -> `new`, output j comes from block b = j // new, i.e.
    from samples [b*orig - width, (b+1)*orig + width) of the zero-padded track. A window that starts
    on a block boundary with `width` samples to spare resamples to exactly the same outputs.
    """

    source_rate: int
    target_rate: int

    @property
    def _orig_new(self) -> tuple[int, int]:
        gcd = math.gcd(self.source_rate, self.target_rate)
        return self.source_rate // gcd, self.target_rate // gcd

    def output_length(self, length: int) -> int:
        if self.source_rate == self.target_rate:
            return length
        orig, new = self._orig_new
        # torchaudio's own expression, float32 rounding included: for an hour at 44.1 kHz it gives one
        # sample less than the true ceiling, and the clip start times depend on this count.
        return int(torch.ceil(torch.as_tensor(new * length / orig)))

    def window(self, first: int, stop: int, length: int) -> _Window:
        """What to decode for outputs [first, stop) of a track of `length` source samples."""
        orig, new = self._orig_new
        width = math.ceil(_LOWPASS_FILTER_WIDTH * orig / (min(orig, new) * _ROLLOFF))  # as torchaudio
        first_block = max(first // new - math.ceil(width / orig), 0)
        end = min(((stop - 1) // new + 1) * orig + width, length)
        return _Window(start=first_block * orig, stop=end, output_start=first_block * new)

    def __call__(self, samples: torch.Tensor) -> torch.Tensor:
        return torchaudio.functional.resample(samples, orig_freq=self.source_rate, new_freq=self.target_rate)


class _Track(Protocol):
    """Sample ranges of an audio track, numbered from the first sample a full decode gives (as in
    torchaudio.load). A context manager: leaving it closes the file."""

    sample_rate: int
    length: int  # samples in the full decode

    def read(self, windows: list[tuple[int, int]]) -> list[np.ndarray]: ...

    def __enter__(self) -> _Track: ...

    def __exit__(self, *exc: object) -> None: ...


def _open_track(path: Path, head_seconds: float) -> _Track:
    container = av.open(str(path))
    stream = container.streams.best("audio")
    if stream is not None and stream.time_base == Fraction(1, stream.sample_rate):
        return _SeekingTrack(container, stream, head_seconds)
    container.close()
    # Other time bases (WebM's milliseconds) cannot name a sample exactly: count from the start.
    return _SequentialTrack(path)


class _SeekingTrack:
    """Time stamps count samples (MP4, MOV): seek to each window, and to the end for the length."""

    def __init__(self, container: av.container.InputContainer, stream: av.audio.stream.AudioStream,
                 head_seconds: float) -> None:
        self._container, self._stream = container, stream
        self.sample_rate = stream.sample_rate
        self._preroll = int(_DECODER_PREROLL_SECONDS * self.sample_rate)
        # The first window is decoded before any seek: a decoder only drops the codec's priming
        # samples when it starts at the beginning (after a seek to 0 it returns them).
        self._first_pts: int | None = None
        self._head = _gather(self._timed_frames(), [(0, int(head_seconds * self.sample_rate))])[0]
        self.length = self._measure_length()

    def read(self, windows: list[tuple[int, int]]) -> list[np.ndarray]:
        return [self._read_one(start, stop) for start, stop in windows]

    def __enter__(self) -> _SeekingTrack:
        return self

    def __exit__(self, *exc: object) -> None:
        self._container.close()

    def _read_one(self, start: int, stop: int) -> np.ndarray:
        if stop <= self._head.shape[1]:
            return self._head[:, start:stop]
        if start - self._preroll <= 0:
            raise _NoWindows("a window near the start is longer than the decoded head")
        self._seek(start - self._preroll)
        return _gather(self._timed_frames(), [(start, stop)])[0]

    def _measure_length(self) -> int:
        header_seconds = float(self._stream.duration * self._stream.time_base) if self._stream.duration else 0.0
        self._seek(max(int((header_seconds - 5.0) * self.sample_rate), 0))
        end = None
        for offset, samples in self._timed_frames():
            end = offset + samples.shape[1]
        if end is None:
            raise _NoWindows("no audio after seeking to the end")
        return end

    def _seek(self, sample: int) -> None:
        assert self._first_pts is not None
        self._container.seek(self._first_pts + sample, stream=self._stream, backward=True)
        self._stream.codec_context.flush_buffers()

    def _timed_frames(self) -> Iterator[tuple[int, np.ndarray]]:
        """(sample number, (C, n) samples) of each decoded frame, from its time stamp."""
        for frame in self._container.decode(self._stream):
            if frame.pts is None:
                raise _NoWindows("a frame has no time stamp")
            if self._first_pts is None:
                self._first_pts = frame.pts
            yield frame.pts - self._first_pts, _float_samples(frame)


class _SequentialTrack:
    """Time stamps do not count samples: decode from the start, once to count and once to read."""

    def __init__(self, path: Path) -> None:
        self._path = path
        with av.open(str(path)) as container:
            stream = container.streams.best("audio")
            self.sample_rate = stream.sample_rate
            self.length = sum(frame.samples for frame in container.decode(stream))

    def read(self, windows: list[tuple[int, int]]) -> list[np.ndarray]:
        with av.open(str(self._path)) as container:
            return _gather(self._counted_frames(container), windows)

    def __enter__(self) -> _SequentialTrack:
        return self

    def __exit__(self, *exc: object) -> None:
        return None  # every pass opens and closes the file itself

    @staticmethod
    def _counted_frames(container: av.container.InputContainer) -> Iterator[tuple[int, np.ndarray]]:
        position = 0
        for frame in container.decode(container.streams.best("audio")):
            yield position, _float_samples(frame)
            position += frame.samples


def _float_samples(frame: av.AudioFrame) -> np.ndarray:
    """(C, n) float32, as torchaudio.load gives them; only float formats (AAC, MP3, Opus, Vorbis)."""
    if frame.format.name not in ("fltp", "flt"):
        raise _NoWindows(f"samples in {frame.format.name}")
    samples = frame.to_ndarray()
    if not frame.format.is_planar:
        samples = samples.reshape(-1, len(frame.layout.channels)).T  # interleaved (1, n*C) -> (C, n)
    return samples


def _gather(frames: Iterator[tuple[int, np.ndarray]], windows: list[tuple[int, int]]) -> list[np.ndarray]:
    """The samples [start, stop) of every window, from consecutive decoded frames."""
    kept: list[list[np.ndarray]] = [[] for _ in windows]
    first_needed, end = min(start for start, _ in windows), max(stop for _, stop in windows)
    position = None  # where the next frame must start
    for offset, samples in frames:
        if position is None and offset > first_needed:
            raise _NoWindows("decoding started after the window")
        if position is not None and offset != position:
            raise _NoWindows("the decoded frames do not follow each other")
        position = offset + samples.shape[1]
        for (start, stop), parts in zip(windows, kept):
            low, high = max(start - offset, 0), min(stop - offset, samples.shape[1])
            if low < high:
                parts.append(samples[:, low:high])
        if position >= end:
            return [np.ascontiguousarray(np.concatenate(parts, axis=1)) for parts in kept]
    raise _NoWindows("the track ended before the last window")
