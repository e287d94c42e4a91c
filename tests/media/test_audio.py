"""The audio front end against an independent transcription of the official one (spec §3.1)."""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path

import pytest
import torch
import torchaudio
from torchaudio.compliance import kaldi

from videollama_demo.config import AudioEncoderConfig
from videollama_demo.media import (
    AudioClips,
    MediaError,
    clip_start_times,
    load_audio_clips,
    load_waveform,
    waveform_to_clips,
)

CONFIG = AudioEncoderConfig()
PADDED_VALUE = (0.0 + 4.268) / 9.138  # a zero fbank column after normalisation


def official_front_end(waveform: torch.Tensor, in_place: bool = True, target_length: int = 204) -> torch.Tensor:
    """ImageBind's load_and_transform_audio_data as Video-LLaMA calls it, step by step from the spec.

    8 clips of 2 s at pytorchvideo's starts k*(D-2)/8 (Fractions); each clip is a slice of the one
    waveform and loses its mean in place; kaldi fbank (channel 0), (mel, frames), zero right-pad to
    204 or cut, (1, 128, 204), then Normalize(-4.268, 9.138).
    `in_place=False` is the variant that copies each clip first (NOT the official behaviour).
    """
    waveform = waveform.clone()
    seconds = waveform.size(1) / 16000
    last_start = Fraction(max(seconds - 2.0, 0))
    clips = []
    for k in range(8):
        start = Fraction(last_start, 8) * k
        end = start + Fraction(2)
        clip = waveform[:, int(start * 16000):int(end * 16000)]
        if in_place:
            clip -= clip.mean()
        else:
            clip = clip - clip.mean()
        mel = kaldi.fbank(clip, htk_compat=True, sample_frequency=16000, use_energy=False, window_type="hanning",
                          num_mel_bins=128, dither=0.0, frame_length=25, frame_shift=10).transpose(0, 1)
        missing = target_length - mel.size(1)
        mel = torch.nn.functional.pad(mel, (0, missing)) if missing > 0 else mel[:, :target_length]
        mel = mel.unsqueeze(0)
        clips.append((mel - torch.tensor(-4.268)) / torch.tensor(9.138))
    return torch.stack(clips)


def official_waveform(path: Path) -> torch.Tensor:
    waveform, rate = torchaudio.load(str(path))
    if rate != 16000:
        waveform = torchaudio.functional.resample(waveform, orig_freq=rate, new_freq=16000)
    return waveform


@pytest.mark.parametrize(("duration", "expected"), [
    (1.0, [0] * 8),
    (2.0, [0] * 8),
    (10.0, [0, 1, 2, 3, 4, 5, 6, 7]),
    (100.0, [0, Fraction(49, 4), Fraction(49, 2), Fraction(147, 4), 49, Fraction(245, 4), Fraction(147, 2),
             Fraction(343, 4)]),
    (4.0, [0, Fraction(1, 4), Fraction(1, 2), Fraction(3, 4), 1, Fraction(5, 4), Fraction(3, 2), Fraction(7, 4)]),
])
def test_clip_start_times(duration: float, expected: list[Fraction]) -> None:
    starts = clip_start_times(duration, num_clips=8, clip_duration=2.0)
    assert starts == expected
    assert all(isinstance(start, Fraction) for start in starts)


def test_clip_start_times_with_imagebinds_own_default_of_three_clips() -> None:
    assert clip_start_times(10.0, num_clips=3, clip_duration=2.0) == [0, Fraction(8, 3), Fraction(16, 3)]


@pytest.mark.parametrize("media", ["mono_video", "stereo_video", "six_channel_video", "video_8khz",
                                   "silent_video", "short_audio_video", "offset_audio_video"])
def test_matches_the_official_front_end(media: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(media)
    clips = load_audio_clips(path, CONFIG)
    expected = official_front_end(official_waveform(path))
    assert clips.fbank.shape == (8, 1, 128, 204) and clips.fbank.dtype == torch.float32
    assert (clips.fbank - expected).abs().max().item() <= 1e-5


@pytest.mark.parametrize(("media", "channels", "seconds"), [
    ("mono_video", 1, 3.0), ("stereo_video", 2, 3.0), ("six_channel_video", 6, 2.5), ("video_8khz", 1, 2.5),
])
def test_waveform_is_the_files_own_track_at_16_khz(media: str, channels: int, seconds: float,
                                                   request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(media)
    waveform = load_waveform(path)
    assert waveform.dtype == torch.float32 and waveform.shape[0] == channels
    assert abs(waveform.shape[1] / 16000 - seconds) < 0.2  # AAC adds up to ~0.15 s of padding
    assert torch.equal(waveform, official_waveform(path))


def test_in_place_dc_removal_on_overlapping_clips_matters(offset_audio_video: Path) -> None:
    waveform = official_waveform(offset_audio_video)  # 4 s: clips start every 0.25 s and overlap
    ours = load_audio_clips(offset_audio_video, CONFIG).fbank
    official = official_front_end(waveform, in_place=True)
    copied = official_front_end(waveform, in_place=False)
    assert (ours - official).abs().max().item() <= 1e-5
    assert (ours - copied).abs().max().item() > 0.5  # later clips inherit a step from earlier DC removal
    assert torch.equal(ours[0], copied[0])  # the first clip has nothing shifted before it


def test_padding_columns_and_spans_for_a_ten_second_track() -> None:
    tone = torch.sin(torch.arange(160000) * (2 * torch.pi * 440 / 16000)).unsqueeze(0)  # (1, 10 s)
    clips = waveform_to_clips(tone, CONFIG)
    assert clips.duration == 10.0
    assert clips.clip_spans == [(float(k), float(k + 2)) for k in range(8)]
    assert torch.allclose(clips.fbank[..., 198:], torch.full((8, 1, 128, 6), PADDED_VALUE))
    assert (clips.fbank - official_front_end(tone)).abs().max().item() <= 1e-5


def test_short_track_uses_the_whole_track_for_every_clip() -> None:
    ramp = torch.linspace(-0.5, 0.5, 24000).unsqueeze(0)  # (1, 1.5 s)
    clips = waveform_to_clips(ramp, CONFIG)
    assert clips.clip_spans == [(0.0, 1.5)] * 8
    assert (clips.fbank - official_front_end(ramp)).abs().max().item() <= 1e-5


def test_longer_fbank_is_cut_to_the_target_length() -> None:
    tone = torch.sin(torch.arange(64000) * 0.3).unsqueeze(0)
    config = dataclasses.replace(CONFIG, target_length=100)
    clips = waveform_to_clips(tone, config)
    assert clips.fbank.shape == (8, 1, 128, 100)
    assert (clips.fbank - official_front_end(tone, target_length=100)).abs().max().item() <= 1e-5


def test_the_callers_waveform_is_left_untouched() -> None:
    waveform = torch.full((2, 48000), 0.25)
    before = waveform.clone()
    waveform_to_clips(waveform, CONFIG)
    assert torch.equal(waveform, before)


def test_one_fbank_window_is_the_minimum() -> None:
    clips = waveform_to_clips(torch.randn(1, 400, generator=torch.Generator().manual_seed(0)), CONFIG)
    assert isinstance(clips, AudioClips) and clips.fbank.shape == (8, 1, 128, 204)
    with pytest.raises(MediaError, match="too short"):
        waveform_to_clips(torch.zeros(1, 399), CONFIG)
    with pytest.raises(MediaError, match="too short"):
        waveform_to_clips(torch.zeros(2, 0), CONFIG)


def test_video_without_audio_stream(silent_movie: Path) -> None:
    for read in (load_waveform, lambda path: load_audio_clips(path, CONFIG)):
        with pytest.raises(MediaError, match="has no audio track"):
            read(silent_movie)


@pytest.mark.parametrize(("name", "phrase"), [("random bytes", "could not be read"), ("missing", "not found"),
                                              ("empty", "empty")])
def test_unreadable_files(bad_files: dict[str, Path], name: str, phrase: str) -> None:
    with pytest.raises(MediaError, match=phrase):
        load_waveform(bad_files[name])
