"""An upload end to end with and without subtitles from speech: the preview pipeline as the app
loads it (decoding and Whisper in the decoder worker), cold caches each time.

    python -m bench.speech_upload [--quick]

The talks are bench/speech.py's espeak-ng talks of 1 and 10 minutes (2 with --quick). "Without"
is the official reading (8 frames + audio); "with" is the same plus Reading(subtitles="speech"):
the transcription in the worker, then the word budget. The ratio is what ASR adds to an upload.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from videollama_demo import Pipeline, Reading
from videollama_demo.pipeline.encode_cache import EncodeCache
from videollama_demo.pipeline.speech_cache import TranscriptCache

from .context import BenchContext, run_standalone
from .report import Row, seconds
from .speech import LONG_TALK_S, QUICK_LONG_TALK_S, SHORT_TALK_S, make_bench_talk, sentence_seconds


@contextmanager
def cold_caches(pipe: Pipeline) -> Iterator[None]:
    """Empty encode and transcript caches for one measurement; the pipeline's own come back after."""
    kept = pipe.encode_cache, pipe.transcriber.cache
    pipe.encode_cache, pipe.transcriber.cache = EncodeCache(), TranscriptCache()
    try:
        yield
    finally:
        pipe.encode_cache, pipe.transcriber.cache = kept


def upload_seconds(pipe: Pipeline, path: Path, reading: Reading) -> float:
    with cold_caches(pipe):
        started = time.perf_counter()
        pipe.encode(path, reading)
        return time.perf_counter() - started


def run(context: BenchContext) -> list[Row]:
    pipe = context.pipeline()
    folder = context.scratch_dir("speech-upload")
    lengths = sentence_seconds(folder)
    rows = []
    for talk_s in (SHORT_TALK_S, QUICK_LONG_TALK_S if context.quick else LONG_TALK_S):
        talk = make_bench_talk(folder, lengths, talk_s)
        upload_seconds(pipe, talk.path, Reading(subtitles="speech"))  # warm: worker started, Whisper loaded
        plain = upload_seconds(pipe, talk.path, Reading())
        speech = upload_seconds(pipe, talk.path, Reading(subtitles="speech"))
        minutes = f"{talk.seconds / 60:g} min"
        rows.append(Row(f"upload of a {minutes} talk with subtitles from speech vs without (preview, CPU)",
                        f"{seconds(speech)} vs {seconds(plain)}", f"ASR adds {seconds(speech - plain)}",
                        speech / plain))
    return rows


if __name__ == "__main__":
    raise SystemExit(run_standalone(run, __doc__.splitlines()[0]))
