"""Frame sampling against the official formulas (spec §1.1-§1.2), on real ffmpeg-made videos."""

from __future__ import annotations

from pathlib import Path

import decord
import numpy as np
import pytest
from PIL import Image

from videollama_demo.media import MediaError, frame_message, frame_times, load_video_frames, uniform_indices
from videollama_demo.media.video import _times_of

CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


@pytest.mark.parametrize(("num_total", "num_frames", "expected"), [
    (1, 1, [0]), (1, 8, [0]), (1, 32, [0]),
    (5, 1, [0]), (5, 8, [0, 1, 2, 3, 4]), (5, 32, [0, 1, 2, 3, 4]),
    (8, 8, [0, 1, 2, 3, 4, 5, 6, 7]), (8, 32, [0, 1, 2, 3, 4, 5, 6, 7]),
    (9, 8, [0, 1, 2, 3, 4, 5, 6, 7]), (9, 32, [0, 1, 2, 3, 4, 5, 6, 7, 8]),
    (300, 1, [0]),
    (300, 8, [0, 37, 75, 112, 150, 187, 225, 262]),
    (301, 8, [0, 37, 75, 112, 150, 188, 225, 263]),
    (1000, 8, [0, 125, 250, 375, 500, 625, 750, 875]),
    (300, 32, [0, 9, 18, 28, 37, 46, 56, 65, 75, 84, 93, 103, 112, 121, 131, 140,
               150, 159, 168, 178, 187, 196, 206, 215, 225, 234, 243, 253, 262, 271, 281, 290]),
    (301, 32, [0, 9, 18, 28, 37, 47, 56, 65, 75, 84, 94, 103, 112, 122, 131, 141,
               150, 159, 169, 178, 188, 197, 206, 216, 225, 235, 244, 253, 263, 272, 282, 291]),
    (1000, 32, [0, 31, 62, 93, 125, 156, 187, 218, 250, 281, 312, 343, 375, 406, 437, 468,
                500, 531, 562, 593, 625, 656, 687, 718, 750, 781, 812, 843, 875, 906, 937, 968]),
])
def test_uniform_indices_table(num_total: int, num_frames: int, expected: list[int]) -> None:
    assert uniform_indices(num_total, num_frames) == expected


def test_uniform_indices_equal_the_official_numpy_expression() -> None:
    for num_frames in (1, 2, 4, 8, 16, 32):
        for num_total in range(1, 2000):
            count = min(num_frames, num_total)
            official = np.arange(0, num_total, num_total / count).astype(int).tolist()
            assert uniform_indices(num_total, num_frames) == official, (num_total, num_frames)


def test_uniform_indices_never_return_more_frames_than_asked() -> None:
    # The official float arange gives 8 values here; the model must get the 7 frames asked for.
    assert len(np.arange(0, 17, 17 / 7)) == 8
    assert uniform_indices(17, 7) == [0, 2, 4, 7, 9, 12, 14]


@pytest.mark.parametrize(("indices", "fps", "expected"), [
    ([0, 37, 75, 112, 150, 187, 225, 262], 30.0,
     "The video contains 8 frames sampled at 0.0, 1.2, 2.5, 3.7, 5.0, 6.2, 7.5, 8.7 seconds. "),
    ([0, 37, 75, 112, 150, 187, 225, 262], 29.97,
     "The video contains 8 frames sampled at 0.0, 1.2, 2.5, 3.7, 5.0, 6.2, 7.5, 8.7 seconds. "),
    ([0, 37, 75, 112, 150, 187, 225, 262], 25.0,
     "The video contains 8 frames sampled at 0.0, 1.5, 3.0, 4.5, 6.0, 7.5, 9.0, 10.5 seconds. "),
    ([0, 37, 75, 112, 150, 187, 225, 262], 24.0,
     "The video contains 8 frames sampled at 0.0, 1.5, 3.1, 4.7, 6.2, 7.8, 9.4, 10.9 seconds. "),
    ([0, 125, 250, 375, 500, 625, 750, 875], 29.97,
     "The video contains 8 frames sampled at 0.0, 4.2, 8.3, 12.5, 16.7, 20.9, 25.0, 29.2 seconds. "),
    ([0, 1, 2, 3, 4], 25.0, "The video contains 5 frames sampled at 0.0, 0.0, 0.1, 0.1, 0.2 seconds. "),
    ([0], 30.0, "The video contains 1 frames sampled at 0.0 seconds. "),
])
def test_frame_message_is_byte_exact(indices: list[int], fps: float, expected: str) -> None:
    assert frame_message(frame_times(indices, fps)) == expected


def _reference_frames(path: Path, indices: list[int], size: int) -> tuple[np.ndarray, np.ndarray]:
    """The official path written out: decord resize-on-decode, ToTensorVideo, NormalizeVideo."""
    frames = decord.VideoReader(str(path), height=size, width=size).get_batch(indices).asnumpy()
    scaled = frames.astype(np.float32) / np.float32(255.0)
    normalised = (scaled - CLIP_MEAN) / CLIP_STD  # (T, H, W, 3)
    return frames, normalised.transpose(3, 0, 1, 2)  # (3, T, H, W)


def test_frames_match_the_official_reader(stereo_video: Path) -> None:
    sampled = load_video_frames(stereo_video, num_frames=8, image_size=224)
    assert sampled.indices == [0, 9, 18, 28, 37, 46, 56, 65]  # 75 frames
    frames, pixels = _reference_frames(stereo_video, sampled.indices, 224)
    assert sampled.pixels.shape == (3, 8, 224, 224)
    assert np.abs(sampled.pixels.numpy() - pixels).max() <= 1e-6
    assert sampled.thumbnails.dtype == np.uint8 and sampled.thumbnails.shape == (8, 224, 224, 3)
    np.testing.assert_array_equal(sampled.thumbnails, frames)
    assert sampled.fps == 25.0
    assert sampled.times == [0.0, 0.4, 0.7, 1.1, 1.5, 1.8, 2.2, 2.6]
    assert sampled.message == "The video contains 8 frames sampled at 0.0, 0.4, 0.7, 1.1, 1.5, 1.8, 2.2, 2.6 seconds. "


def test_frames_are_squashed_not_cropped(stereo_video: Path) -> None:
    full = decord.VideoReader(str(stereo_video)).get_batch([0]).asnumpy()[0]  # (120, 160, 3)
    ours = load_video_frames(stereo_video, num_frames=1, image_size=224).thumbnails[0].astype(float)
    squashed = np.asarray(Image.fromarray(full).resize((224, 224), Image.Resampling.BILINEAR), dtype=float)
    centre = full[:, 20:140]  # the 120x120 centre crop a CLIP-style pipeline would take
    cropped = np.asarray(Image.fromarray(centre).resize((224, 224), Image.Resampling.BILINEAR), dtype=float)
    error_vs_squash, error_vs_crop = np.abs(ours - squashed).mean(), np.abs(ours - cropped).mean()
    assert error_vs_squash < 10 < error_vs_crop, (error_vs_squash, error_vs_crop)


def test_short_video_gives_fewer_frames(five_frame_video: Path) -> None:
    sampled = load_video_frames(five_frame_video, num_frames=8, image_size=224)
    assert sampled.indices == [0, 1, 2, 3, 4]
    assert sampled.pixels.shape == (3, 5, 224, 224)
    assert sampled.thumbnails.shape == (5, 224, 224, 3)
    assert sampled.message == "The video contains 5 frames sampled at 0.0, 0.0, 0.1, 0.1, 0.2 seconds. "


def test_32_frames_at_a_small_size(stereo_video: Path) -> None:
    sampled = load_video_frames(stereo_video, num_frames=32, image_size=28)
    assert sampled.indices == [0, 2, 4, 7, 9, 11, 14, 16, 18, 21, 23, 25, 28, 30, 32, 35,
                               37, 39, 42, 44, 46, 49, 51, 53, 56, 58, 60, 63, 65, 67, 70, 72]
    _, pixels = _reference_frames(stereo_video, sampled.indices, 28)
    assert sampled.pixels.shape == (3, 32, 28, 28)
    assert np.abs(sampled.pixels.numpy() - pixels).max() <= 1e-6


@pytest.mark.parametrize("num_frames", [0, -1, 33])
def test_frame_count_outside_1_to_32_is_refused(stereo_video: Path, num_frames: int) -> None:
    with pytest.raises(MediaError, match="between 1 and 32"):
        load_video_frames(stereo_video, num_frames=num_frames)


@pytest.mark.parametrize("bad_fps", [0.0, float("nan"), float("inf")])
def test_unusable_fps_falls_back_to_frame_timestamps(stereo_video: Path, bad_fps: float) -> None:
    reader = decord.VideoReader(str(stereo_video))
    times, fps = _times_of(reader, [0, 10, 20, 74], bad_fps)
    assert fps is None
    assert times == [0.0, 0.4, 0.8, 3.0]  # presentation times of frames 0, 10, 20, 74 at 25 fps


@pytest.mark.parametrize("name", ["no decodable frames", "truncated faststart mp4", "random bytes", "missing"])
def test_bad_videos_raise_media_error(bad_files: dict[str, Path], name: str) -> None:
    with pytest.raises(MediaError) as caught:
        load_video_frames(bad_files[name])
    message = str(caught.value)
    assert bad_files[name].name in message
    assert "Traceback" not in message and "DECORDError" not in message
