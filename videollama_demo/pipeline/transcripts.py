"""Subtitles beside the frames: which cues, and how many of their words fit the context.

The word budget is counted one way only, with the real tokenizer: the positions left once the
prompt's media and text, a question and the answer are counted, filled with as many subtitle
words as the tokenizer says fit (a bisection on the word budget).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ..encoding import MediaEncoding
from ..media.subtitles import Cue, Transcript, frame_windows, load_subtitle_file, transcript_for_windows
from ..prompt.media_prompts import encoding_prompt, subtitle_parts
from ..prompt.parts import Text
from ..prompt.tokenizer import PromptTokenizer
from ..reading import Reading
from .long_video import QUESTION_RESERVE_TOKENS


def given_cues(reading: Reading) -> list[Cue] | None:
    """Cues the reading brings with it; None when they must come from the video (or none are wanted)."""
    if reading.subtitles == "file":
        return load_subtitle_file(reading.subtitle_file)
    if reading.subtitles == "given":
        return list(reading.cues)
    return None


def transcript_maker(encoding: MediaEncoding, cues: list[Cue]) -> Callable[[int], Transcript]:
    """word budget -> transcript: per segment, per frame of a time range's clip, or per frame."""
    if encoding.is_segmented:
        spans = list(encoding.segment_spans)
        return lambda budget: transcript_for_windows(cues, [start for start, _ in spans], spans, budget)
    if encoding.segment_spans:  # a time range: only what is said inside it
        start, end = encoding.segment_spans[0]
    else:
        start = 0.0
        end = max(encoding.info.duration or 0.0, encoding.frame_times[-1] if encoding.frame_times else 0.0)
    windows = frame_windows(encoding.frame_times, start, end)
    return lambda budget: transcript_for_windows(cues, encoding.frame_times, windows, budget)


def with_transcript(encoding: MediaEncoding, cues: list[Cue], word_budget: int | None,
                    tokenizer: PromptTokenizer, context_length: int, max_new_tokens: int) -> MediaEncoding:
    """`encoding` with the transcript the prompt will show of `cues` (per frame or per segment).

    Without a `word_budget`, as many words as fit the context, counted by `tokenizer`."""
    make = transcript_maker(encoding, cues)
    if word_budget is None:
        free = context_length - max_new_tokens - QUESTION_RESERVE_TOKENS - _prompt_positions(encoding, tokenizer)
        word_budget = _words_that_fit(make, tokenizer, free)
    return dataclasses.replace(encoding, subtitles=tuple(cues), transcript=make(word_budget))


def _prompt_positions(encoding: MediaEncoding, tokenizer: PromptTokenizer) -> int:
    """Positions of the prompt start without subtitles: its text tokens and media rows."""
    bare = dataclasses.replace(encoding, transcript=None)
    system, message = encoding_prompt(bare)
    media_rows = sum(block.shape[1] for block in encoding.blocks())
    return len(tokenizer.encode_parts((Text(system), *message))) + media_rows - len(encoding.blocks())


def _words_that_fit(make: Callable[[int], Transcript], tokenizer: PromptTokenizer, free: int) -> int:
    """The largest word budget whose subtitle lines take at most `free` positions."""
    def cost(budget: int) -> int:
        return len(tokenizer.encode_parts(subtitle_parts(make(budget).lines)))

    total = make(10**9).kept_words
    if free <= 0:
        return 0
    if cost(total) <= free:
        return total
    low, high = 0, total  # cost(low) fits, cost(high) does not
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if cost(middle) <= free else (low, middle)
    return low
