"""Mutation fuzzing of the media readers (issue 8).

Valid mp4, webm, png and jpeg files are mutated (bit flips, overwritten runs, cuts, duplicated or
zeroed chunks) with a seeded generator. Each mutant goes through what an upload does before the
model: probe, frames (or the image) and the audio clips. The only acceptable outcomes are success
or a MediaError; anything else, a hang past the per-file timeout or a crashed process is a finding.

The readers run in a worker subprocess, so a decoder that crashes the process is seen as a
finding instead of killing the fuzzer; the worker is restarted and fuzzing goes on.

    python -m tests.robustness.fuzz --cases 2000 --seed 1     # a longer run than the test's
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests import media_factory as factory

PER_FILE_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Finding:
    case: str
    outcome: str  # "ok", "media_error", "exception: <type>", "timeout", "crash"
    detail: str = ""

    @property
    def acceptable(self) -> bool:
        return self.outcome in ("ok", "media_error")


def make_seeds(directory: Path) -> dict[str, bytes]:
    """The valid files every mutant starts from."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [
        factory.make_video(directory / "seed.mp4", seconds=1, size=(64, 48), audio="sine", faststart=True),
        factory.make_video(directory / "seed.webm", seconds=1, size=(64, 48), codec="libvpx-vp9",
                           audio_codec="libopus", sample_rate=48000),
        factory.make_image(directory / "seed.png", mode="RGBA", size=(48, 32)),
        factory.make_image(directory / "seed.jpg", mode="RGB", size=(48, 32)),
    ]
    return {path.suffix: path.read_bytes() for path in paths}


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One to three random edits of the kinds a damaged or malicious upload has."""
    buffer = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        kind = rng.integers(0, 5)
        at = int(rng.integers(0, max(1, len(buffer))))
        span = int(rng.integers(1, 64))
        if kind == 0:  # flip bits
            for index in rng.integers(0, len(buffer), size=span):
                buffer[index] ^= 1 << int(rng.integers(0, 8))
        elif kind == 1:  # overwrite a run with random bytes
            buffer[at:at + span] = rng.bytes(len(buffer[at:at + span]))
        elif kind == 2:  # cut the file
            del buffer[at:]
        elif kind == 3:  # duplicate a chunk
            buffer[at:at] = buffer[at:at + span * 16]
        else:  # zero a run, e.g. a box size
            buffer[at:at + span] = bytes(len(buffer[at:at + span]))
    return bytes(buffer)


def write_mutants(seeds: dict[str, bytes], count: int, seed: int, directory: Path) -> list[Path]:
    rng = np.random.default_rng(seed)
    suffixes = sorted(seeds)
    paths = []
    for number in range(count):
        suffix = suffixes[number % len(suffixes)]
        path = directory / f"mutant_{number:05d}{suffix}"
        path.write_bytes(mutate(seeds[suffix], rng))
        paths.append(path)
    return paths


def read_like_an_upload(path: str) -> str:
    """What the app does with an upload before the model; returns the outcome word."""
    from videollama_demo.config import AudioEncoderConfig
    from videollama_demo.media import MediaError, load_audio_clips, load_image, load_video_frames, probe

    try:
        info = probe(path)
        if info.kind == "image":
            load_image(path, image_size=56)
            return "ok"
        load_video_frames(path, num_frames=8, image_size=56)
        if info.has_audio:
            try:
                load_audio_clips(path, AudioEncoderConfig())
            except MediaError:
                pass  # the app answers from the frames: fine
        return "ok"
    except MediaError:
        return "media_error"


def worker() -> None:
    """Subprocess loop: one path per stdin line, one JSON outcome per stdout line."""
    for line in sys.stdin:
        path = line.strip()
        try:
            outcome, detail = read_like_an_upload(path), ""
        except Exception as err:  # noqa: BLE001 - every other exception is exactly what we look for
            outcome, detail = f"exception: {type(err).__name__}", str(err)[:300]
        print(json.dumps({"outcome": outcome, "detail": detail}), flush=True)


class WorkerPool:
    """One worker subprocess, restarted after a crash or a hang."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None

    def run(self, path: Path, timeout: float) -> Finding:
        process = self._ensure()
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(f"{path}\n")
        process.stdin.flush()
        line = _read_line(process, timeout)
        if line is None:
            crashed = process.poll() is not None
            self.close()
            return Finding(path.name, "crash" if crashed else "timeout")
        result = json.loads(line)
        return Finding(path.name, result["outcome"], result["detail"])

    def _ensure(self) -> subprocess.Popen[str]:
        if self.process is None or self.process.poll() is not None:
            self.process = subprocess.Popen(
                [sys.executable, "-c", "from tests.robustness.fuzz import worker; worker()"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                cwd=Path(__file__).resolve().parents[2])
        return self.process

    def close(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def _read_line(process: subprocess.Popen[str], timeout: float) -> str | None:
    """A line from the worker, or None if it died or said nothing in `timeout` seconds."""
    import selectors

    selector = selectors.DefaultSelector()
    assert process.stdout is not None
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if selector.select(timeout=max(0.0, deadline - time.monotonic())):
            line = process.stdout.readline()
            return line or None
    return None


def fuzz(count: int, seed: int, directory: Path, timeout: float = PER_FILE_TIMEOUT_S) -> list[Finding]:
    paths = write_mutants(make_seeds(directory / "seeds"), count, seed, directory)
    pool = WorkerPool()
    try:
        return [pool.run(path, timeout) for path in paths]
    finally:
        pool.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=PER_FILE_TIMEOUT_S, help="seconds per file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        started = time.monotonic()
        findings = fuzz(args.cases, args.seed, Path(scratch), args.timeout)
        counts = Counter(finding.outcome for finding in findings)
        print(f"{len(findings)} cases in {time.monotonic() - started:.0f} s: {dict(counts)}")
        for finding in findings:
            if not finding.acceptable:
                print(f"  {finding.case}: {finding.outcome} {finding.detail}")
    return 0 if all(finding.acceptable for finding in findings) else 1


if __name__ == "__main__":
    sys.exit(main())
