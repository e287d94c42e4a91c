"""probe(): kind by content, header facts, and a clear sentence for every bad upload."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests import media_factory as factory
from videollama_demo.media import MediaError, MediaInfo, probe


def test_video_with_stereo_audio(stereo_video: Path) -> None:
    info = probe(stereo_video)
    assert info == MediaInfo(
        path=str(stereo_video), kind="video", size_bytes=stereo_video.stat().st_size, width=160, height=120,
        duration=info.duration, fps=25.0, num_frames=75, has_audio=True, video_codec="h264", audio_codec="aac",
        audio_channels=2, audio_sample_rate=44100)
    assert info.duration == pytest.approx(3.0, abs=0.05)


def test_six_channel_audio(six_channel_video: Path) -> None:
    info = probe(six_channel_video)
    assert (info.has_audio, info.audio_channels, info.audio_sample_rate) == (True, 6, 48000)


def test_video_without_audio(silent_movie: Path) -> None:
    info = probe(silent_movie)
    assert (info.kind, info.num_frames, info.has_audio) == ("video", 50, False)
    assert (info.audio_codec, info.audio_channels, info.audio_sample_rate) == (None, None, None)


def test_short_video_frame_count(five_frame_video: Path) -> None:
    assert probe(five_frame_video).num_frames == 5


def test_image(tmp_path: Path) -> None:
    path = factory.make_image(tmp_path / "photo.jpg", size=(160, 120))
    info = probe(path)
    assert (info.kind, info.width, info.height, info.size_bytes) == ("image", 160, 120, path.stat().st_size)
    assert (info.duration, info.fps, info.num_frames, info.has_audio) == (None, None, None, False)


def test_kind_comes_from_content_not_from_the_name(tmp_path: Path, silent_movie: Path) -> None:
    picture_named_video = factory.make_image(tmp_path / "picture.png").rename(tmp_path / "picture.mp4")
    video_named_picture = shutil.copy(silent_movie, tmp_path / "movie.png")
    assert probe(picture_named_video).kind == "image"
    assert probe(video_named_picture).kind == "video"


@pytest.mark.parametrize(("name", "key_words"), [
    ("empty", "is empty"),
    ("random bytes", "is not a video or image file that can be read"),
    ("text named .jpg", "is not a video or image file that can be read"),
    ("truncated mp4", "is not a video or image file that can be read"),
    ("truncated faststart mp4", "could not be decoded"),
    ("no decodable frames", "could not be decoded"),
    ("audio only", "has no video stream"),
    ("missing", "was not found"),
])
def test_bad_files_give_a_sentence_for_the_user(bad_files: dict[str, Path], name: str, key_words: str) -> None:
    path = bad_files[name]
    with pytest.raises(MediaError) as caught:
        probe(path)
    message = str(caught.value)
    assert key_words in message
    assert path.name in message  # names the file the user picked, not a temporary folder
    assert str(path.parent) not in message
    assert message.endswith(".") and "\n" not in message
    assert not any(noise in message for noise in ("Traceback", "Errno", "DECORD", "github", "0x"))


def test_folder_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="is a folder"):
        probe(tmp_path)
