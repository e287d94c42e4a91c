"""Speech of known text, made on the spot with espeak-ng, and the word error rate to score a transcript.

A "talk" is sentences and pauses laid end to end and muxed under a tiny ffmpeg testsrc video. For
each sentence the talk records when its sound really starts and ends (the first and last sample
above a small threshold: espeak-ng pads its output with a little silence), which is what a
transcript's cue times are checked against. Shared by tests/media/test_speech.py and bench/speech.py.

    talk = make_talk(tmp_path / "talk.mp4", ["Please open the window.", 3.0, "Thank you."])
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.media_factory import run_ffmpeg

ESPEAK_WORDS_PER_MINUTE = 150  # a little slower than espeak-ng's 175: fewer misheard words
# Samples quieter than this (of full scale) count as silence when finding where speech starts.
SILENCE_LEVEL = 0.01
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")


@dataclass(frozen=True)
class SpokenSentence:
    text: str
    start: float  # seconds: first audible sample in the talk
    end: float  # seconds: last audible sample


@dataclass(frozen=True)
class Talk:
    path: Path
    sentences: tuple[SpokenSentence, ...]
    seconds: float  # the whole sound track, trailing silence included

    @property
    def text(self) -> str:
        return " ".join(sentence.text for sentence in self.sentences)


def speak(text: str, path: Path) -> Path:
    """`text` read by espeak-ng into a mono 16-bit WAV (espeak-ng's own rate, 22.05 kHz)."""
    command = ["espeak-ng", "-s", str(ESPEAK_WORDS_PER_MINUTE), "-w", str(path), text]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"espeak-ng failed ({' '.join(command)}):\n{result.stderr}")
    return path


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """(samples,) int16 and the sample rate of a mono 16-bit WAV."""
    with wave.open(str(path), "rb") as wav:
        if wav.getnchannels() != 1 or wav.getsampwidth() != 2:
            raise ValueError(f"{path} is not mono 16-bit")
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16), wav.getframerate()


def audible_span(samples: np.ndarray, rate: int) -> tuple[float, float]:
    """Seconds (first, last) of the samples above SILENCE_LEVEL."""
    loud = np.flatnonzero(np.abs(samples.astype(np.float32)) > SILENCE_LEVEL * 32768)
    if not loud.size:
        raise ValueError("no audible sample")
    return loud[0] / rate, (loud[-1] + 1) / rate


def make_talk(path: str | Path, pieces: Sequence[str | float], total_seconds: float | None = None,
              video: bool = True) -> Talk:
    """Sentences (str) and pauses (float seconds) in order, padded with silence to `total_seconds`.

    With `video`, a 64x48, 2 fps testsrc runs under the sound (an .mp4); without, the file is
    audio only (give an .m4a path). Each distinct sentence is spoken once and reused."""
    path = Path(path)
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        samples, rate, sentences = _lay_out(pieces, Path(scratch))
        track = _write_wav(Path(scratch) / "track.wav", samples, rate)
        seconds = max(total_seconds or 0.0, len(samples) / rate)
        _mux(track, path, seconds, video)
    return Talk(path, tuple(sentences), seconds)


def _lay_out(pieces: Sequence[str | float], scratch: Path) -> tuple[np.ndarray, int, list[SpokenSentence]]:
    spoken: dict[str, np.ndarray] = {}
    parts, sentences, rate, offset = [], [], 22050, 0
    for piece in pieces:
        if isinstance(piece, str):
            if piece not in spoken:
                spoken[piece], rate = read_wav(speak(piece, scratch / f"{len(spoken)}.wav"))
            part = spoken[piece]
            first, last = audible_span(part, rate)
            sentences.append(SpokenSentence(piece, offset / rate + first, offset / rate + last))
        else:
            part = np.zeros(round(piece * rate), dtype=np.int16)
        parts.append(part)
        offset += len(part)
    return np.concatenate(parts), rate, sentences


def _write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())
    return path


def _mux(track: Path, path: Path, seconds: float, video: bool) -> None:
    inputs = ["-f", "lavfi", "-i", f"testsrc=size=64x48:rate=2:duration={seconds}"] if video else []
    inputs += ["-i", str(track)]
    audio_input = "1:a" if video else "0:a"
    outputs = ["-map", "0:v", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"] if video else []
    # apad + -t: the silence after the last sentence is made by ffmpeg, not held in memory here.
    outputs += ["-map", audio_input, "-af", "apad", "-t", f"{seconds}", "-c:a", "aac", "-b:a", "48k",
                "-ar", "16000", "-ac", "1"]
    run_ffmpeg(*inputs, *outputs, str(path))


def make_chirp(path: str | Path, seconds: float = 10.0, video: bool = True) -> Path:
    """A sine sweep from 200 Hz upwards (no speech in it), under a testsrc video by default."""
    path = Path(path)
    sweep = f"aevalsrc=0.4*sin(2*PI*(200*t+100*t*t)):sample_rate=16000:duration={seconds}"
    inputs = (["-f", "lavfi", "-i", f"testsrc=size=64x48:rate=2:duration={seconds}"] if video else [])
    inputs += ["-f", "lavfi", "-i", sweep]
    maps = ["-map", "0:v", "-c:v", "libx264", "-preset", "ultrafast", "-map", "1:a"] if video else []
    run_ffmpeg(*inputs, *maps, "-c:a", "aac", str(path))
    return path


# ---- scoring ------------------------------------------------------------------------------------

def normalised_words(text: str) -> list[str]:
    """Lower case, punctuation dropped (apostrophes inside words kept: "it's" stays one word)."""
    return _WORD.findall(text.lower().replace("’", "'"))


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words, by word-level edit distance."""
    ref, hyp = normalised_words(reference), normalised_words(hypothesis)
    if not ref:
        raise ValueError("the reference has no words")
    previous = list(range(len(hyp) + 1))  # distances from the empty reference prefix
    for i, ref_word in enumerate(ref, start=1):
        current = [i]
        for j, hyp_word in enumerate(hyp, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word)))
        previous = current
    return previous[-1] / len(ref)
