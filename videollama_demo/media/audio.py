"""The official audio front end: the video's own audio track → clips → kaldi fbank, normalised.

Spec §1.3 and §3.1 (ImageBind's `load_and_transform_audio_data` as Video-LLaMA calls it). The
numbers come from `AudioEncoderConfig`; the fbank window settings below are fixed by ImageBind.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import torch
import torch.nn.functional as F
import torchaudio
from torchaudio.compliance import kaldi

from ..config import AudioEncoderConfig
from .probe import MediaError, display_name, require_file

log = logging.getLogger(__name__)

FRAME_LENGTH_MS = 25
FRAME_SHIFT_MS = 10


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
    duration = num_samples / rate
    _require_one_fbank_frame(num_samples, rate)
    if duration < cfg.clip_duration:
        log.info("audio track of %.2f s is shorter than one %.1f s clip: every clip is the whole track",
                 duration, cfg.clip_duration)
    # The official DC removal edits the loaded waveform; work on a copy so the caller's stays intact.
    shared = waveform.clone()
    fbanks, spans = [], []
    for start in clip_start_times(duration, cfg.num_clips, cfg.clip_duration):
        first, stop = int(start * rate), int((start + Fraction(cfg.clip_duration)) * rate)
        clip = shared[:, first:stop]  # a view into `shared`, not a copy
        # In place on the view, as the official code does: overlapping samples of the *later* clips
        # are shifted too, which changes their fbank (clips overlap whenever the track is < 18 s).
        clip -= clip.mean()
        fbanks.append(_normalised_fbank(clip, cfg))
        spans.append((first / rate, min(stop, num_samples) / rate))
    return AudioClips(fbank=torch.stack(fbanks), clip_spans=spans, duration=duration)  # (N, 1, mel, target)


def load_audio_clips(path: str | Path, cfg: AudioEncoderConfig) -> AudioClips:
    return waveform_to_clips(load_waveform(path, cfg.sample_rate), cfg)


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
