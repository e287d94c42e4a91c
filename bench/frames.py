"""Row 1: 8 frames + the audio clips from an hour-long file, against a 10 s file.

Ours is the product's decode (`videollama_demo.media.upload.decode_upload`, what the upload worker
runs): frames by seeking the container's sample table, audio decoded only around each clip. The
naive way is the official code's: decord opens the file (scanning every packet), `get_batch` takes
the 8 frames, and torchaudio loads the whole audio track before it is cut into clips.
"""

from __future__ import annotations

from pathlib import Path

import decord

from videollama_demo.config import VideoLlamaConfig
from videollama_demo.media.audio import AudioClips, load_waveform, waveform_to_clips
from videollama_demo.media.upload import DecodedUpload, decode_upload
from videollama_demo.media.video import uniform_indices

from .context import BenchContext, run_standalone
from .media import duration_label
from .report import Row, Target, seconds
from .timing import interleaved_medians

NUM_FRAMES = 8
IMAGE_SIZE = 224
AUDIO = VideoLlamaConfig.from_name("video-llama-2-7b").audio  # the official front end (16 kHz, 8 clips of 2 s)


def ours(path: Path) -> DecodedUpload:
    return decode_upload(path, NUM_FRAMES, IMAGE_SIZE, AUDIO)


def naive(path: Path) -> tuple[object, AudioClips]:
    """The official reading: decord for the frames, the whole track for the audio."""
    reader = decord.VideoReader(str(path), height=IMAGE_SIZE, width=IMAGE_SIZE)
    frames = reader.get_batch(uniform_indices(len(reader), NUM_FRAMES)).asnumpy()  # (8, 224, 224, 3)
    clips = waveform_to_clips(load_waveform(path, AUDIO.sample_rate), AUDIO)
    return frames, clips


def run(ctx: BenchContext) -> list[Row]:
    short, long = ctx.short_video(), ctx.long_video()
    mine = interleaved_medians({"short": lambda: ours(short), "long": lambda: ours(long)}, ctx.repeats(7, 3))
    # The naive long read takes seconds: fewer repeats are enough for a stable median.
    theirs = interleaved_medians({"short": lambda: naive(short), "long": lambda: naive(long)},
                                 ctx.repeats(3, 1), warmup=0)
    long_name, short_name = duration_label(ctx.long_spec.seconds), duration_label(ctx.short_spec.seconds)
    return [Row(
        benchmark=f"1. 8 frames + audio: {long_name} file vs {short_name} file (decode_upload)",
        ours=f"{long_name}: {seconds(mine['long'])}; {short_name}: {seconds(mine['short'])}",
        reference=(f"decord + whole track: {long_name}: {seconds(theirs['long'])}; {short_name}: "
                   f"{seconds(theirs['short'])} ({theirs['long'] / theirs['short']:.0f}×)"),
        ratio=mine["long"] / mine["short"], target=Target(3.0))]


def main(argv: list[str] | None = None) -> int:
    return run_standalone(run, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    raise SystemExit(main())
