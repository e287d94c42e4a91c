"""A timeline of a video (dense captioning): one timed description per part, in order.

The video is cut like long-video mode cuts it (one part per ~30 s), but each part is its own
question: the part is encoded as one official clip (8 frames of its span and its own audio, via
`Reading(time_range=...)`), put in a fresh conversation, and asked one fixed instruction. The
prompts are therefore exactly the official single-clip prompts (Video-LLaMA
`video_llama/conversation/conversation_video.py`, `Chat.upload_video` then `Chat.ask`), and the
parts are independent: they run `engine.parallel_requests` at a time (1 on the local engine).

Cues come out in order as they are ready, and together cover 0 to the video's end with no gap or
overlap. Stop (a `threading.Event`, or closing the generator) keeps the cues already given.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..chat.conversation import ChatSession
from ..encoding import MediaEncoding
from ..engines.base import Engine
from ..media import MediaError
from ..media.probe import probe
from ..media.subtitles import Cue
from ..media.video import auto_segment_count
from ..prompt.timecodes import format_time
from ..reading import Reading
from .long_video import SEGMENT_SECONDS, SegmentBudget

log = logging.getLogger(__name__)

INSTRUCTION = "Describe what happens in this part of the video in one or two sentences."
# Each part is its own prompt, so the context does not bound the count as in long-video mode;
# this cap keeps an hour-long video to a bounded number of answers (its parts then grow longer).
DEFAULT_MAX_SEGMENTS = 40
DEFAULT_MAX_NEW_TOKENS = 80  # one or two sentences, with room to finish the second
NO_TEXT = "(The model gave no description of this part.)"


@dataclass(frozen=True)
class TimelineCue:
    """One part's description. `failed`: the text says why the part could not be described."""

    index: int
    start: float  # seconds
    end: float
    text: str
    failed: bool = False

    @property
    def label(self) -> str:
        return f"{format_time(self.start)}-{format_time(self.end)}"

    def as_cue(self) -> Cue:
        return Cue(self.start, self.end, self.text)


@dataclass(frozen=True)
class TimelinePlan:
    """The parts a timeline will describe, decided from the file's header before anything runs."""

    path: str
    duration: float
    spans: tuple[tuple[float, float], ...]  # consecutive: each ends where the next starts
    reason: str
    parallel: int  # parts answered at once
    encode_seconds: float | None = None  # to encode one part on this device (measured on a blank clip)

    def summary(self) -> str:
        """One line for people, shown before a long run."""
        parts = len(self.spans)
        each = self.duration / parts
        cost = (f"; encoding about {self.encode_seconds:.1f} s per part on this device"
                if self.encode_seconds is not None else "")
        return (f"Timeline of {format_time(self.duration)}: {parts} part(s) of about {each:.0f} s, each an "
                f"official clip with one answer, {self.parallel} at a time{cost}. {self.reason}")


class TimelineSource(Protocol):
    """What a timeline needs of the pipeline (the `Pipeline` class is one)."""

    engine: Engine

    def encode(self, path: str | Path, reading: Reading | None = None) -> MediaEncoding: ...

    def new_session(self) -> ChatSession: ...

    def plan_long_video(self, path_or_duration: str | Path | float, use_audio: bool = True,
                        segments: int | None = None) -> SegmentBudget: ...


def split_evenly(duration: float, parts: int) -> tuple[tuple[float, float], ...]:
    """`parts` consecutive spans covering [0, duration]; the last ends exactly at `duration`."""
    bounds = [duration * k / parts for k in range(parts)] + [duration]
    return tuple(zip(bounds[:-1], bounds[1:]))


def plan_timeline(source: TimelineSource, path: str | Path, max_segments: int = DEFAULT_MAX_SEGMENTS,
                  frames_per_segment: int = 8, use_audio: bool = True) -> TimelinePlan:
    """One part per ~30 s (the long-video rule), at most `max_segments`, at least 8 frames each.
    Raises MediaError for a file that is not a video of known length."""
    if max_segments < 1:
        raise ValueError(f"max_segments must be at least 1, got {max_segments}")
    info = probe(path)
    if info.kind != "video":
        raise MediaError("A timeline needs a video, and this is an image: ask about it in the chat instead.")
    if info.duration is None or info.duration <= 0:
        raise MediaError("A timeline needs a video whose length is known, and this one's is not.")
    wanted = auto_segment_count(info.duration, SEGMENT_SECONDS, 10**9)
    by_frames = max(1, (info.num_frames or frames_per_segment) // frames_per_segment)
    parts = min(wanted, max_segments, by_frames)
    reason = _reason(wanted, parts, max_segments)
    budget = source.plan_long_video(info.duration, use_audio=use_audio and info.has_audio, segments=1)
    return TimelinePlan(path=str(path), duration=info.duration, spans=split_evenly(info.duration, parts),
                        reason=reason, parallel=max(1, source.engine.parallel_requests),
                        encode_seconds=budget.estimated_seconds)


def _reason(wanted: int, parts: int, max_segments: int) -> str:
    if parts == wanted:
        return f"One part per {SEGMENT_SECONDS:.0f} s of video." if parts > 1 else "The video is one part."
    if parts == max_segments:
        return f"{wanted} parts would cover every {SEGMENT_SECONDS:.0f} s; at most {max_segments} were asked for."
    return f"The video has frames for {parts} part(s) of 8 frames."


def part_reading(plan: TimelinePlan, span: tuple[float, float], base: Reading) -> Reading:
    """How one part is read: the base reading's audio, frames and subtitles, over the part's span.
    A one-part timeline reads the whole video the official way (the page's own upload, cached)."""
    whole = base.replace(long_video=False, segments=None, time_range=None)
    return whole if len(plan.spans) == 1 else whole.replace(time_range=span)


class _Stop:
    """Set by the caller's `cancel` or by the generator's end; read by the parts between tokens."""

    def __init__(self, cancel: threading.Event | None) -> None:
        self.cancel, self.ended = cancel, threading.Event()

    def is_set(self) -> bool:
        return self.ended.is_set() or (self.cancel is not None and self.cancel.is_set())


def describe_part(source: TimelineSource, plan: TimelinePlan, index: int, base: Reading,
                  stopped: _Stop, sampling: dict[str, float | int]) -> TimelineCue | None:
    """Encode part `index`, ask the instruction in a fresh session, and return its cue; a part that
    fails is a cue saying why. None: stopped before the answer was complete."""
    start, end = plan.spans[index]
    session = source.new_session()
    try:
        session.add_media(source.encode(plan.path, part_reading(plan, (start, end), base)))
        reply = session.ask(INSTRUCTION, **sampling)
        for _ in reply:
            if stopped.is_set():
                reply.close()  # the engine ends the request at its next token
                return None
        text = reply.text.strip() or NO_TEXT
        return TimelineCue(index, start, end, text)
    except Exception as err:  # one failed part must not end the others (a server hiccup, a bad span)
        if stopped.is_set():
            return None
        log.warning("timeline part %d (%s-%s) of %s failed: %s", index, start, end, plan.path, err)
        return TimelineCue(index, start, end, f"(This part could not be described: {err})", failed=True)
    finally:
        session.reset()  # frees what the engine kept for this conversation


def run_timeline(source: TimelineSource, plan: TimelinePlan, base: Reading | None = None,
                 cancel: threading.Event | None = None, **sampling: float | int) -> Iterator[TimelineCue]:
    """Yield the plan's cues in order, each once it is ready. `plan.parallel` parts run at once.

    Setting `cancel` (or closing this generator) stops the parts in flight at their next token;
    the cues already yielded stand."""
    base = base or Reading()
    sampling = {"max_new_tokens": DEFAULT_MAX_NEW_TOKENS} | sampling
    stopped = _Stop(cancel)
    pending: deque[Future[TimelineCue | None]] = deque()
    indices = iter(range(len(plan.spans)))
    with ThreadPoolExecutor(plan.parallel, thread_name_prefix="timeline") as pool:
        try:
            while True:
                while len(pending) < plan.parallel and (index := next(indices, None)) is not None:
                    pending.append(pool.submit(describe_part, source, plan, index, base, stopped, sampling))
                if not pending:
                    return
                cue = pending.popleft().result()
                if cue is None or stopped.is_set():
                    return
                yield cue
        finally:
            stopped.ended.set()  # the generator ended or was closed: the parts in flight stop
            pool.shutdown(wait=True, cancel_futures=True)

