"""Session-wide test media, generated once with ffmpeg/PIL (tests/media_factory.py) and shared.

Each fixture writes its file on first use only, so a test run makes just the files it needs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import media_factory as factory


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


# -- videos: 160x120 testsrc, 25 fps unless the name says otherwise --------------------------------

@pytest.fixture(scope="session")
def stereo_video(media_dir: Path) -> Path:
    """3 s, 75 frames, AAC stereo at 44.1 kHz (the usual phone/web upload shape)."""
    return factory.make_video(media_dir / "stereo_44k.mp4", seconds=3, audio="sine", channels=2, sample_rate=44100)


@pytest.fixture(scope="session")
def mono_video(media_dir: Path) -> Path:
    return factory.make_video(media_dir / "mono_16k.mp4", seconds=3, audio="sine", channels=1, sample_rate=16000)


@pytest.fixture(scope="session")
def six_channel_video(media_dir: Path) -> Path:
    return factory.make_video(media_dir / "surround_48k.mp4", seconds=2.5, audio="sine", channels=6, sample_rate=48000)


@pytest.fixture(scope="session")
def video_8khz(media_dir: Path) -> Path:
    return factory.make_video(media_dir / "mono_8k.mp4", seconds=2.5, audio="sine", channels=1, sample_rate=8000)


@pytest.fixture(scope="session")
def silent_video(media_dir: Path) -> Path:
    return factory.make_video(media_dir / "silent.mp4", seconds=2.5, audio="silent", channels=2, sample_rate=44100)


@pytest.fixture(scope="session")
def short_audio_video(media_dir: Path) -> Path:
    """1.5 s: shorter than one 2 s clip, so every clip is the whole track."""
    return factory.make_video(media_dir / "short.mp4", seconds=1.5, audio="sine", channels=1, sample_rate=16000)


@pytest.fixture(scope="session")
def offset_audio_video(media_dir: Path) -> Path:
    """4 s with a DC offset: the 8 clips overlap and each clip's mean is far from zero."""
    return factory.make_video(media_dir / "offset_4s.mp4", seconds=4, audio="sine", channels=2,
                              sample_rate=16000, dc_offset=0.3)


@pytest.fixture(scope="session")
def silent_movie(media_dir: Path) -> Path:
    """No audio stream at all."""
    return factory.make_video(media_dir / "no_audio.mp4", seconds=2, audio=None)


@pytest.fixture(scope="session")
def five_frame_video(media_dir: Path) -> Path:
    return factory.make_video(media_dir / "five_frames.mp4", seconds=0.2, fps=25, audio=None)


@pytest.fixture(scope="session")
def faststart_video(media_dir: Path) -> Path:
    return factory.make_video(media_dir / "faststart.mp4", seconds=2, audio="sine", faststart=True)


# -- broken files ----------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def bad_files(media_dir: Path, stereo_video: Path, faststart_video: Path) -> dict[str, Path]:
    """Every kind of bad upload, by a short name."""
    bad = media_dir / "bad"
    bad.mkdir()
    return {
        "empty": factory.make_empty(bad / "empty.mp4"),
        "random bytes": factory.make_random_bytes(bad / "noise.mp4"),
        "text named .jpg": factory.make_text(bad / "notes.jpg"),
        "truncated mp4": factory.make_truncated_copy(stereo_video, bad / "cut.mp4", keep=0.5),
        "truncated faststart mp4": factory.make_truncated_copy(faststart_video, bad / "cut_faststart.mp4", keep=0.5),
        "no decodable frames": factory.make_undecodable_video(faststart_video, bad / "zeroed.mp4"),
        "audio only": factory.make_audio_only(bad / "voice.m4a"),
        "missing": bad / "does_not_exist.mp4",
    }
