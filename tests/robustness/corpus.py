"""A corpus of hostile and unusual uploads, generated with ffmpeg/PIL (issue 8).

Each case says what a correct app does with it: `encode` (it must work), `error` (a MediaError
whose message contains one of `phrases`) or `either` (a decoder may or may not support it, but
the answer is a clean encode or a clean MediaError). Used by the corpus test and the fuzzer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PIL import Image

from tests import media_factory as factory

Outcome = Literal["encode", "error", "either"]


@dataclass(frozen=True)
class Case:
    name: str
    filename: str
    build: Callable[[Path], Path]
    outcome: Outcome
    phrases: tuple[str, ...] = ()  # for "error": the message must contain one of these
    audio: bool | None = None  # for "encode": whether the audio track must be used


def _video(**kwargs) -> Callable[[Path], Path]:
    return lambda path: factory.make_video(path, **kwargs)


def _ffmpeg(*args: str) -> Callable[[Path], Path]:
    def build(path: Path) -> Path:
        factory.run_ffmpeg(*args, str(path))
        return path
    return build


def _image(mode: str, **kwargs) -> Callable[[Path], Path]:
    return lambda path: factory.make_image(path, mode=mode, **kwargs)


def _truncated(path: Path) -> Path:
    source = factory.make_video(path.with_name("whole_for_truncation.mp4"), seconds=2, audio="sine")
    return factory.make_truncated_copy(source, path, keep=0.4)


def _frame_count_bomb(path: Path) -> Path:
    source = factory.make_video(path.with_name("whole_for_bomb.mp4"), seconds=1)
    return factory.make_frame_count_bomb(source, path)


def _gif(path: Path) -> Path:
    return factory.make_animated_gif(path)


def _text(path: Path) -> Path:
    return factory.make_text(path)


def _rotated(path: Path) -> Path:
    source = factory.make_video(path.with_name("unrotated.mp4"), seconds=1, audio=None)
    factory.run_ffmpeg("-i", str(source), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(path))
    return path


def _cmyk(path: Path) -> Path:
    return factory.make_image(path, mode="CMYK")


def _huge_frame_png(path: Path) -> Path:
    return factory.make_oversized_png(path)


def _pillow_only_tiff(path: Path) -> Path:
    Image.fromarray(factory.image_pattern((96, 64))).save(path, compression="tiff_lzw")
    return path


LAVFI = "-f", "lavfi", "-i"

CASES: tuple[Case, ...] = (
    Case("empty file", "empty.mp4", factory.make_empty, "error", ("empty",)),
    Case("random bytes named .mp4", "noise.mp4", factory.make_random_bytes, "error", ("not a video or image",)),
    Case("a text file named .jpg", "list.jpg", _text, "error", ("not a video or image",)),
    Case("truncated mp4", "cut.mp4", _truncated, "error", ("damaged", "incomplete", "could not be")),
    Case("audio only, no video stream", "song.m4a", lambda p: factory.make_audio_only(p, seconds=2), "error",
         ("no video", "not a video or image")),
    Case("video without an audio stream", "mute.mp4", _video(seconds=2, audio=None), "encode", audio=False),
    Case("silent audio track", "silence.mp4", _video(seconds=2, audio="silent", channels=2, sample_rate=44100),
         "encode", audio=True),
    Case("one-frame video", "one_frame.mp4", _video(seconds=0.04, fps=25, audio=None), "encode"),
    Case("zero-duration video", "zero.mp4", _ffmpeg(*LAVFI, "testsrc=size=64x48:rate=25", "-frames:v", "0",
                                                    "-c:v", "libx264"), "either"),
    Case("variable frame rate", "vfr.mp4", _ffmpeg(*LAVFI, "testsrc=duration=3:size=96x64:rate=30",
                                                   "-vf", "select='not(mod(n\\,3))+lt(n\\,20)'", "-fps_mode", "vfr",
                                                   "-c:v", "libx264", "-pix_fmt", "yuv420p"), "encode"),
    Case("rotation metadata", "rotated.mp4", _rotated, "encode"),
    Case("8K frames (7680x4320)", "8k.mp4", _ffmpeg(*LAVFI, "color=c=blue:size=7680x4320:rate=1:duration=1",
                                                    "-c:v", "libx264", "-preset", "ultrafast",
                                                    "-pix_fmt", "yuv420p"), "encode"),
    Case("an hour long", "hour.mp4", _ffmpeg(*LAVFI, "testsrc=duration=3600:size=64x48:rate=1",
                                             *LAVFI, "sine=frequency=300:duration=3600:sample_rate=8000",
                                             "-c:v", "libx264", "-preset", "ultrafast", "-g", "60",
                                             "-c:a", "aac", "-b:a", "16k", "-shortest"), "encode", audio=True),
    Case("VP9 + Opus WebM", "clip.webm", _video(seconds=2, codec="libvpx-vp9", audio_codec="libopus",
                                                sample_rate=48000), "encode", audio=True),
    Case("AV1 mp4", "clip_av1.mp4", _ffmpeg(*LAVFI, "testsrc=duration=1:size=96x64:rate=10",
                                            "-c:v", "libsvtav1", "-pix_fmt", "yuv420p"),
         "either", ("cannot decode", "could not be", "not supported", "unsupported")),
    Case("HEVC in MKV", "clip_hevc.mkv", _video(seconds=2, codec="libx265", audio_codec="libvorbis",
                                                sample_rate=44100), "encode", audio=True),
    Case("MJPEG AVI", "clip.avi", _video(seconds=2, codec="mjpeg", audio_codec="pcm_s16le"), "encode", audio=True),
    Case("animated GIF", "anim.gif", _gif, "encode"),
    Case("RGBA PNG", "rgba.png", _image("RGBA"), "encode"),
    Case("palette PNG", "palette.png", _image("P"), "encode"),
    Case("grey + alpha PNG", "la.png", _image("LA"), "encode"),
    Case("greyscale PNG", "grey.png", _image("L"), "encode"),
    Case("CMYK JPEG", "cmyk.jpg", _cmyk, "encode"),
    Case("16-bit PNG", "deep.png", _image("I;16"), "encode"),
    Case("EXIF-rotated JPEG", "phone.jpg", _image("RGB", exif_rotation=6), "encode"),
    Case("decompression-bomb PNG", "bomb.png", _huge_frame_png, "error", ("too large", "pixels")),
    Case("6-channel audio", "surround.mp4", _video(seconds=2, audio="sine", channels=6, sample_rate=48000),
         "encode", audio=True),
    Case("8 kHz audio", "phone_call.mp4", _video(seconds=2, audio="sine", channels=1, sample_rate=8000),
         "encode", audio=True),
    Case("unicode, spaces and quotes in the name", "fête d'été \"final\" 🎉.mp4", _video(seconds=2, audio="sine"),
         "encode", audio=True),
    Case("LZW TIFF image", "scan.tiff", _pillow_only_tiff, "encode"),
    Case("frame-count bomb (aborts decord)", "bomb_count.mp4", _frame_count_bomb, "error",
         ("crashed the video decoder", "could not be read", "damaged")),
)


def build_case(case: Case, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return case.build(directory / case.filename)
