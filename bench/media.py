"""Synthetic videos made with ffmpeg at run time: a short and a long file, the same codec and size.

Small in bytes on purpose (160x120 at 5 fps, mono AAC at 16 kHz), so that ffmpeg writes the hour
in seconds; what the benchmarks compare is how the cost grows with the duration, not the pixels.
Files are kept in the cache directory under a name that holds every setting, so a second run
reuses them, and are written under a temporary name first so an interrupted run leaves no half file.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CACHE = Path(__file__).resolve().parent / ".cache"
SHORT_SECONDS = 10.0
LONG_SECONDS = 3600.0
# --quick: still past the 120 s from which the product seeks instead of scanning, so the same
# code paths run, only on a smaller file.
QUICK_LONG_SECONDS = 150.0


@dataclass(frozen=True)
class VideoSpec:
    seconds: float
    width: int = 160
    height: int = 120
    fps: int = 5
    sample_rate: int = 16000
    # A keyframe every 10 s, as x264's default (250 frames) gives at 25 fps. At our 5 fps the
    # default would be one per 50 s, far sparser than any camera or encoder writes.
    keyframe_seconds: int = 10
    # None: whatever x264 ultrafast gives (tiny for a test pattern). A number: constant bitrate (x264
    # pads with filler data), so that a file has the bytes a real recording of that length has.
    video_kbps: int | None = None
    audio_kbps: int = 32
    channels: int = 1

    @property
    def file_name(self) -> str:
        rate = "" if self.video_kbps is None else f"_cbr{self.video_kbps}k_a{self.audio_kbps}k{self.channels}ch"
        return (f"testsrc_{self.width}x{self.height}_{self.fps}fps_gop{self.keyframe_seconds}s_aac{self.sample_rate}"
                f"{rate}_{self.seconds:g}s.mp4")


def cache_dir(root: Path | None = None) -> Path:
    """The cache directory, created with a `.gitignore` of `*` so git never sees what is in it."""
    directory = root or DEFAULT_CACHE
    directory.mkdir(parents=True, exist_ok=True)
    ignore = directory / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# made by bench/media.py: generated media and scratch files\n*\n")
    return directory


def synthetic_video(spec: VideoSpec, root: Path | None = None) -> Path:
    """The file for `spec` in the cache, made with ffmpeg if it is not there yet."""
    target = cache_dir(root) / "media" / spec.file_name
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".partial-{os.getpid()}-{target.name}")  # same suffix: ffmpeg picks mp4 by it
    try:
        _render(spec, partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _render(spec: VideoSpec, path: Path) -> None:
    video = f"testsrc=duration={spec.seconds}:size={spec.width}x{spec.height}:rate={spec.fps}"
    audio = f"sine=frequency=440:sample_rate={spec.sample_rate}:duration={spec.seconds}"
    command = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
               "-f", "lavfi", "-i", video, "-f", "lavfi", "-i", audio,
               "-map", "0:v", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
               "-g", str(spec.keyframe_seconds * spec.fps), *_constant_rate(spec),
               "-map", "1:a", "-c:a", "aac", "-b:a", f"{spec.audio_kbps}k", "-ac", str(spec.channels), str(path)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg could not make {path.name}:\n{result.stderr}")


def _constant_rate(spec: VideoSpec) -> list[str]:
    if spec.video_kbps is None:
        return []
    rate = f"{spec.video_kbps}k"
    return ["-b:v", rate, "-minrate", rate, "-maxrate", rate, "-bufsize", f"{2 * spec.video_kbps}k",
            "-x264-params", "nal-hrd=cbr:force-cfr=1"]


def duration_label(seconds: float) -> str:
    """3600 -> "60 min", 150 -> "150 s": how the table names a file."""
    return f"{seconds / 60:g} min" if seconds >= 600 else f"{seconds:g} s"
