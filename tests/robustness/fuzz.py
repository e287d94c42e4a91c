"""Mutation fuzzing of the media readers (issue 8).

Valid mp4, webm, png and jpeg files are mutated (bit flips, overwritten runs, cuts, duplicated or
zeroed chunks) with a seeded generator. Each mutant goes through what an upload does before the
model: probe, frames (or the image) and the audio clips. The only acceptable outcomes are success
or a MediaError. Mutants go through the app's own isolated decoder pool (media/isolation.py), so
a decoder that crashes or hangs costs a worker and comes back as a MediaError; those are counted
separately ("contained"), since each is a decoder bug the isolation is hiding from users.

    python -m tests.robustness.fuzz --cases 2000 --seed 1     # a longer run than the test's
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests import media_factory as factory
from videollama_demo.config import AudioEncoderConfig
from videollama_demo.media import MediaError
from videollama_demo.media.isolation import DecoderPool

PER_FILE_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Finding:
    case: str
    outcome: str  # "ok", "media_error", "decoder crash (contained)", "timeout (contained)", "exception: <type>"
    detail: str = ""

    @property
    def acceptable(self) -> bool:
        """The server survived and the user got an answer or a MediaError."""
        return not self.outcome.startswith("exception")


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


def classify(pool: DecoderPool, path: Path) -> Finding:
    """Decode a mutant the way the app does (in the isolated decoder pool) and name the outcome."""
    try:
        pool.decode(path, num_frames=8, image_size=56, audio=AudioEncoderConfig())
        return Finding(path.name, "ok")
    except MediaError as err:
        message = str(err)
        for marker, outcome in (("crashed the video decoder", "decoder crash (contained)"),
                                ("took too long", "timeout (contained)")):
            if marker in message:
                return Finding(path.name, outcome, message)
        return Finding(path.name, "media_error", message)
    except Exception as err:  # noqa: BLE001 - anything else is exactly what fuzzing looks for
        return Finding(path.name, f"exception: {type(err).__name__}", str(err)[:300])


def fuzz(count: int, seed: int, directory: Path, timeout: float = PER_FILE_TIMEOUT_S) -> list[Finding]:
    paths = write_mutants(make_seeds(directory / "seeds"), count, seed, directory)
    pool = DecoderPool(workers=1, timeout_s=timeout)
    try:
        return [classify(pool, path) for path in paths]
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
            if finding.outcome not in ("ok", "media_error"):
                print(f"  {finding.case}: {finding.outcome} {finding.detail}")
    return 0 if all(finding.acceptable for finding in findings) else 1


if __name__ == "__main__":
    sys.exit(main())
