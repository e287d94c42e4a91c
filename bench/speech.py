"""Speech -> cues (media/speech.py) with the shipped tiny.en on the CPU (int8): how fast, how right.

    python -m bench.speech [--quick] [--cache-dir DIR]

The talks are espeak-ng reading eight everyday sentences in turn, 0.4 s apart, for 1 and 10
minutes (2 with --quick), under a tiny testsrc video. Speed is seconds of audio per second of
wall time, from the 1-minute talk; the rows for whole talks give the wall time and its ratio to
the audio's length (the default time limit in media/speech.py assumes it stays below 1x). The
word error rate is scored on the 1-minute talk against the text espeak-ng read.
"""

from __future__ import annotations

import itertools
import logging
import time
from pathlib import Path

from tests.speech_factory import Talk, make_talk, read_wav, speak, word_error_rate
from videollama_demo.media.speech import (
    SHIPPED,
    load_speech_model,
    resolve_speech_model,
    transcribe,
)

from .context import BenchContext, run_standalone
from .report import Row, Target, seconds
from .timing import median_seconds

log = logging.getLogger(__name__)

SENTENCES = (
    "The weather is sunny and warm today.",
    "Please open the window in the kitchen.",
    "My sister likes to read books in the garden.",
    "We will meet at the station after lunch.",
    "The children are playing football in the park.",
    "Turn left at the next corner and walk to the bridge.",
    "I would like a cup of coffee with milk.",
    "The train to London leaves in the morning.",
)
PAUSE_S = 0.4
SHORT_TALK_S = 60.0
LONG_TALK_S = 600.0
QUICK_LONG_TALK_S = 120.0
REAL_TIME = Target(1.0)  # wall time / audio length
FASTER_THAN_REAL_TIME = Target(1.0, at_least=True)  # audio seconds per wall second
MAX_WORD_ERROR_RATE = Target(0.25, unit="%")


def sentence_seconds(folder: Path) -> dict[str, float]:
    """How long espeak-ng takes to say each sentence."""
    lengths = {}
    for number, sentence in enumerate(SENTENCES):
        samples, rate = read_wav(speak(sentence, folder / f"measure-{number}.wav"))
        lengths[sentence] = len(samples) / rate
    return lengths


def talk_pieces(lengths: dict[str, float], seconds: float) -> list[str | float]:
    """Sentences in turn with pauses, as many as fit in `seconds` (the rest is silence)."""
    pieces: list[str | float] = []
    used = 0.0
    for sentence in itertools.cycle(SENTENCES):
        if used + lengths[sentence] + PAUSE_S > seconds:
            return pieces
        pieces += [sentence, PAUSE_S]
        used += lengths[sentence] + PAUSE_S


def make_bench_talk(folder: Path, lengths: dict[str, float], seconds: float) -> Talk:
    return make_talk(folder / f"talk-{seconds:g}s.mp4", talk_pieces(lengths, seconds), total_seconds=seconds)


def run(context: BenchContext) -> list[Row]:
    folder = context.scratch_dir("speech")
    lengths = sentence_seconds(folder)
    short = make_bench_talk(folder, lengths, SHORT_TALK_S)
    long = make_bench_talk(folder, lengths, QUICK_LONG_TALK_S if context.quick else LONG_TALK_S)
    spec = resolve_speech_model(SHIPPED, device="cpu")
    started = time.perf_counter()
    load_speech_model(spec)
    load_s = time.perf_counter() - started
    short_s = median_seconds(lambda: transcribe(short.path, model=spec), repeat=context.repeats(3), warmup=0)
    long_s = median_seconds(lambda: transcribe(long.path, model=spec), repeat=1, warmup=0)
    heard = " ".join(cue.text for cue in transcribe(short.path, model=spec).cues)
    wer = word_error_rate(short.text, heard)
    log.info("heard in the 1-minute talk: %s", heard)
    return [
        Row("speech: audio seconds transcribed per second (tiny.en, CPU int8)", f"{short.seconds / short_s:.1f} s/s",
            "real time (1 s/s)", short.seconds / short_s, target=FASTER_THAN_REAL_TIME),
        _talk_row(short, short_s),
        _talk_row(long, long_s),
        Row("speech: word error rate, 1 min espeak-ng talk", f"{wer * 100:.1f}%", f"{len(short.sentences)} sentences",
            wer, unit="%", target=MAX_WORD_ERROR_RATE),
        Row("speech: load the shipped tiny.en (once per process)", seconds(load_s), "—", load_s, unit="s"),
    ]


def _talk_row(talk: Talk, wall_s: float) -> Row:
    minutes = f"{talk.seconds / 60:g} min"
    return Row(f"speech: transcribe a {minutes} talk", seconds(wall_s), f"{minutes} of audio",
               wall_s / talk.seconds, target=REAL_TIME)


if __name__ == "__main__":
    raise SystemExit(run_standalone(run, __doc__.splitlines()[0]))
