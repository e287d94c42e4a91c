"""Click-to-run example media, made on the spot with ffmpeg's synthetic sources and PIL.

Nothing is fetched: a fresh clone makes its examples at the first start in about a second
(`python assets/make_examples.py` does the same ahead of time). Each file is written under a
temporary name and renamed, so an interrupted run never leaves a half-written example behind.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

log = logging.getLogger(__name__)

SIZE = "320x240"
# x264 settings that keep a few seconds of synthetic video around 150 KB.
_VIDEO_CODEC = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "28", "-pix_fmt", "yuv420p"]
_AUDIO_CODEC = ["-c:a", "aac", "-b:a", "64k"]


@dataclass(frozen=True)
class Example:
    file_name: str
    label: str
    question: str
    video: str | None = None  # ffmpeg lavfi video source (None: the file is an image drawn with PIL)
    audio: str | None = None  # ffmpeg lavfi audio source; None: the clip has no sound track


EXAMPLES = (
    Example("test_pattern_gliding_tones.mp4", "Moving test pattern, two gliding tones",
            "What do you see and hear in this video?",
            video=f"testsrc2=size={SIZE}:rate=25:duration=6",
            audio="aevalsrc=0.3*sin(2*PI*(300+100*t)*t)|0.3*sin(2*PI*(500-50*t)*t):s=44100:d=6"),
    Example("fractal_zoom_noise.mp4", "Fractal zoom with rushing noise",
            "Describe how the picture changes over time.",
            video=f"mandelbrot=size={SIZE}:rate=15,trim=duration=5",
            audio="anoisesrc=color=pink:amplitude=0.2:duration=5"),
    Example("game_of_life_silent.mp4", "Game of Life, no sound track",
            "What is moving in this video?",
            video="life=size=80x60:rate=10:mold=10:ratio=0.3:life_color=#40c0ff:death_color=#102040,"
                  "scale=320:240:flags=neighbor,trim=duration=6"),
    Example("house_drawing.jpg", "A drawing of a house (image)", "What is in this picture?"),
)


def ensure_examples(directory: Path) -> list[tuple[Path, Example]]:
    """Make the example files that are missing; return those that exist, with their example."""
    directory.mkdir(parents=True, exist_ok=True)
    ready = []
    for example in EXAMPLES:
        path = directory / example.file_name
        if not path.exists():
            try:
                _write_atomically(path, lambda target, ex=example: _make(ex, target))
            except (OSError, subprocess.CalledProcessError) as err:
                log.warning("could not make the example %s (%s); it is left out", example.file_name, err)
                continue
        ready.append((path, example))
    return ready


def _make(example: Example, target: Path) -> None:
    if example.video is None:
        draw_house(target)
    else:
        _render_clip(example, target)


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    temporary = path.with_name(f".partial-{os.getpid()}-{path.name}")  # same suffix: ffmpeg picks the format by it
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _render_clip(example: Example, target: Path) -> None:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise OSError("ffmpeg is not installed")
    inputs = ["-f", "lavfi", "-i", example.video]
    codecs = list(_VIDEO_CODEC)
    if example.audio is not None:
        inputs += ["-f", "lavfi", "-i", example.audio]
        codecs += [*_AUDIO_CODEC, "-shortest"]
    command = [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *inputs, *codecs, str(target)]
    subprocess.run(command, check=True, capture_output=True, timeout=60)


def draw_house(target: Path, width: int = 480, height: int = 320) -> None:
    """A simple landscape: sky, sun, hills, a house with a red roof and a tree."""
    sky = np.linspace([110, 170, 235], [200, 225, 250], height // 2 + 40).astype(np.uint8)  # (rows, 3)
    picture = np.zeros((height, width, 3), np.uint8)
    picture[: len(sky)] = sky[:, None, :]
    picture[len(sky):] = (86, 160, 70)
    image = Image.fromarray(picture)
    draw = ImageDraw.Draw(image)
    draw.ellipse((380, 30, 440, 90), fill=(252, 211, 77))
    draw.polygon([(0, 200), (120, 130), (260, 200)], fill=(70, 130, 60))
    draw.rectangle((170, 170, 300, 270), fill=(236, 222, 196), outline=(90, 60, 40), width=3)
    draw.polygon([(155, 172), (235, 110), (315, 172)], fill=(190, 40, 40))
    draw.rectangle((220, 215, 250, 270), fill=(110, 70, 40))
    draw.rectangle((185, 190, 210, 212), fill=(150, 200, 240), outline=(90, 60, 40), width=2)
    draw.rectangle((265, 190, 290, 212), fill=(150, 200, 240), outline=(90, 60, 40), width=2)
    draw.rectangle((372, 200, 386, 270), fill=(110, 70, 40))
    draw.ellipse((345, 140, 415, 215), fill=(40, 120, 50))
    image.save(target, format="JPEG", quality=90)
