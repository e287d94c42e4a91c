"""Long uploads: frames by seeking equal decord's, audio windows stay within the documented bound.

The files are long but tiny (64x48 at 4 fps), so the whole module runs in seconds. References are
the official readers: decord's `get_batch` for frames, the transcription of ImageBind's front end
(tests/media/test_audio.py) on torchaudio's full decode for audio.
"""

from __future__ import annotations

import logging
from pathlib import Path

import decord
import numpy as np
import pytest
import torch
import torchaudio

from tests.media.test_audio import official_front_end, official_waveform
from tests.media_factory import run_ffmpeg
from videollama_demo.config import AudioEncoderConfig
from videollama_demo.media import audio as audio_module
from videollama_demo.media import load_audio_clips, load_video_frames, uniform_indices
from videollama_demo.media.audio import EXACT_AUDIO_MAX_SECONDS, _WindowResampler
from videollama_demo.media.frame_index import SEEK_FROM_SECONDS, indexed_frame_count

CONFIG = AudioEncoderConfig()
LONG_SECONDS = 150  # above both thresholds
# Max |windowed - exact| of the normalised fbank that the audio module documents (measured: 3e-4
# for a pure tone, about 1e-5 for noise).
WINDOW_TOLERANCE = 1e-3


def make_long(path: Path, video: list[str], audio: list[str] | None, seconds: float = LONG_SECONDS,
              sound: str = "anoisesrc=color=pink:amplitude=0.2:seed=3", rate: int = 44100) -> Path:
    """testsrc2 at 64x48, 4 fps, with `video` encoder options; `sound` at `rate` with `audio` options."""
    inputs = ["-f", "lavfi", "-i", f"testsrc2=duration={seconds}:size=64x48:rate=4"]
    outputs = ["-map", "0:v", *video]
    if audio is not None:
        inputs += ["-f", "lavfi", "-i", f"{sound}:sample_rate={rate}:duration={seconds}"]
        outputs += ["-map", "1:a", *audio]
    run_ffmpeg(*inputs, *outputs, str(path))
    return path


X264_B_FRAMES = ["-c:v", "libx264", "-g", "37", "-bf", "3", "-pix_fmt", "yuv420p"]  # GOP not a divisor of anything
AAC_STEREO = ["-c:a", "aac", "-ac", "2", "-ar", "44100"]


@pytest.fixture(scope="module")
def long_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("long")


@pytest.fixture(scope="module")
def long_mp4(long_dir: Path) -> Path:
    """150 s, 600 frames with B-frames and 37-frame GOPs, AAC stereo 44.1 kHz pink noise."""
    return make_long(long_dir / "long.mp4", X264_B_FRAMES, AAC_STEREO)


def decord_frames(path: Path, num_frames: int, size: int) -> tuple[list[int], np.ndarray, float]:
    reader = decord.VideoReader(str(path), height=size, width=size)
    indices = uniform_indices(len(reader), num_frames)
    return indices, reader.get_batch(indices).asnumpy(), reader.get_avg_fps()


def assert_frames_equal_decord(path: Path, num_frames: int, size: int) -> None:
    indices, frames, fps = decord_frames(path, num_frames, size)
    sampled = load_video_frames(path, num_frames=num_frames, image_size=size)
    assert sampled.indices == indices and sampled.fps == fps
    np.testing.assert_array_equal(sampled.thumbnails, frames)  # bit-identical
    assert sampled.times == [round(i / fps, 1) for i in indices]


# -- frames ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("num_frames", "size"), [(8, 224), (32, 28), (1, 224)])
def test_long_mp4_frames_by_seeking_equal_decords(long_mp4: Path, num_frames: int, size: int,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="videollama_demo.media.video"):
        assert_frames_equal_decord(long_mp4, num_frames, size)
    assert "sampled by seeking" in caplog.text


def test_the_frame_count_and_fps_from_the_sample_table_are_decords(long_mp4: Path) -> None:
    reader = decord.VideoReader(str(long_mp4))
    assert indexed_frame_count(long_mp4) == (len(reader), reader.get_avg_fps()) == (600, 4.0)


def test_a_rotated_phone_video_is_turned_like_decord_does(long_mp4: Path, long_dir: Path) -> None:
    rotated = long_dir / "rotated.mp4"
    run_ffmpeg("-i", str(long_mp4), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(rotated))
    plain = load_video_frames(long_mp4, num_frames=2).thumbnails
    assert_frames_equal_decord(rotated, 2, 224)
    assert not np.array_equal(load_video_frames(rotated, num_frames=2).thumbnails, plain)


def test_an_open_gop_file_falls_back_to_decord(long_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    open_gop = make_long(long_dir / "open_gop.mp4", ["-c:v", "libx264", "-x264-params", "open-gop=1:keyint=20"], None)
    with caplog.at_level(logging.INFO, logger="videollama_demo.media.video"):
        assert_frames_equal_decord(open_gop, 8, 224)
    assert "frames come from decord instead of seeking (open GOP)" in caplog.text


def test_short_files_and_other_containers_are_read_by_decord(shared_media: dict[str, Path], long_dir: Path) -> None:
    webm = make_long(long_dir / "long.webm", ["-c:v", "libvpx-vp9", "-deadline", "realtime"], None, seconds=125)
    assert SEEK_FROM_SECONDS < 125
    assert indexed_frame_count(shared_media["video"]) is None  # 3 s
    assert indexed_frame_count(webm) is None  # WebM keeps no full sample table
    assert_frames_equal_decord(webm, 8, 224)


# -- audio -----------------------------------------------------------------------------------------

def assert_windows_match_the_exact_path(path: Path, caplog: pytest.LogCaptureFixture, reader: str) -> float:
    with caplog.at_level(logging.DEBUG, logger="videollama_demo.media.audio"):
        clips = load_audio_clips(path, CONFIG)
    assert f"audio decoded in 8 windows ({reader})" in caplog.text
    waveform = official_waveform(path)
    expected = official_front_end(waveform)
    error = (clips.fbank - expected).abs().max().item()
    assert error <= WINDOW_TOLERANCE, error
    assert clips.duration == waveform.shape[1] / 16000
    return error


def test_a_long_aac_track_is_read_in_windows(long_mp4: Path, caplog: pytest.LogCaptureFixture) -> None:
    error = assert_windows_match_the_exact_path(long_mp4, caplog, "_SeekingTrack")
    assert error < 1e-4  # noise: only the two FFmpeg builds' AAC decoders differ, by ~1e-8 per sample


def test_a_long_pure_tone_at_48_khz_mono(long_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    tone = make_long(long_dir / "tone.mp4", X264_B_FRAMES, ["-c:a", "aac", "-ac", "1"], sound="sine=f=440", rate=48000)
    assert_windows_match_the_exact_path(tone, caplog, "_SeekingTrack")


def test_mp3_windows_are_bit_exact(long_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Both FFmpeg builds decode MP3 to the same floats, so only resampling is left: it is exact."""
    mp3 = make_long(long_dir / "mp3.mp4", X264_B_FRAMES, ["-c:a", "libmp3lame", "-ac", "2"])
    error = assert_windows_match_the_exact_path(mp3, caplog, "_SeekingTrack")
    assert error == 0.0


def test_webm_opus_counts_samples_from_the_start(long_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """WebM stamps in milliseconds, which cannot name a sample: the sequential reader counts them."""
    webm = make_long(long_dir / "opus.webm", ["-c:v", "libvpx-vp9", "-deadline", "realtime"],
                     ["-c:a", "libopus", "-ac", "2"], rate=48000)
    assert_windows_match_the_exact_path(webm, caplog, "_SequentialTrack")


def test_tracks_up_to_the_threshold_take_the_exact_path(long_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    twenty = make_long(long_dir / "twenty.mp4", X264_B_FRAMES, AAC_STEREO, seconds=20)
    assert EXACT_AUDIO_MAX_SECONDS >= 20
    with caplog.at_level(logging.DEBUG, logger="videollama_demo.media.audio"):
        clips = load_audio_clips(twenty, CONFIG)
    assert "windows" not in caplog.text
    assert torch.equal(clips.fbank, official_front_end(official_waveform(twenty)))


def test_overlapping_clips_always_take_the_exact_path(long_dir: Path, offset_audio_video: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """Even with no length threshold: the official in-place DC removal couples overlapping clips."""
    monkeypatch.setattr(audio_module, "EXACT_AUDIO_MAX_SECONDS", 0.0)
    with caplog.at_level(logging.DEBUG, logger="videollama_demo.media.audio"):
        clips = load_audio_clips(offset_audio_video, CONFIG)  # 4 s: every clip overlaps the next
    assert "windows" not in caplog.text
    assert torch.equal(clips.fbank, official_front_end(official_waveform(offset_audio_video)))
    twenty = make_long(long_dir / "twenty_windows.mp4", X264_B_FRAMES, AAC_STEREO, seconds=20)
    assert_windows_match_the_exact_path(twenty, caplog, "_SeekingTrack")  # 20 s: the clips no longer overlap


@pytest.mark.parametrize(("source_rate", "length"), [
    (44100, 158_760_960),  # an hour of AAC at 44.1 kHz: float32 rounding makes torchaudio give one sample less
    (44100, 6_615_040), (48000, 7_200_768), (22050, 1_000_003), (8000, 1_200_001), (16000, 57_600_001),
])
def test_resampled_length_is_torchaudios(source_rate: int, length: int) -> None:
    shape_only = torch.empty(1, length, device="meta")
    expected = torchaudio.functional.resample(shape_only, source_rate, 16000).shape[1]
    assert _WindowResampler(source_rate, 16000).output_length(length) == expected


@pytest.mark.parametrize("source_rate", [44100, 48000, 22050, 8000])
def test_a_resampled_window_equals_the_resampled_track(source_rate: int) -> None:
    track = torch.randn(2, source_rate * 9, generator=torch.Generator().manual_seed(source_rate))
    whole = torchaudio.functional.resample(track, source_rate, 16000)
    resampler = _WindowResampler(source_rate, 16000)
    for first, stop in [(0, 32000), (40_001, 72_001), (whole.shape[1] - 32000, whole.shape[1])]:
        window = resampler.window(first, stop, track.shape[1])
        part = resampler(track[:, window.start:window.stop])
        cut = part[:, first - window.output_start:stop - window.output_start]
        assert torch.allclose(cut, whole[:, first:stop], rtol=0, atol=1e-6), (first, stop)
