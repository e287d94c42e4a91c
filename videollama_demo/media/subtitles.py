"""Subtitles: SRT/WebVTT files uploaded next to a video, or a text subtitle stream inside it.

No speech recogniser is available offline, so subtitles are how speech reaches the model. Cues
are plain text with their times; markup (<i>, <c.yellow>, {\\an8}, ...) is removed.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path

import av

from .probe import MediaError, display_name, require_file

MAX_SUBTITLE_BYTES = 5_000_000
TEXT_SUBTITLE_CODECS = {"mov_text", "webvtt", "subrip", "srt", "ass", "ssa", "text"}


@dataclass(frozen=True)
class Cue:
    start: float  # seconds
    end: float
    text: str


_TIMING = re.compile(
    r"(?P<start>(?:\d+:)?\d{1,2}:\d{2}[.,]\d{1,3})\s*-->\s*(?P<end>(?:\d+:)?\d{1,2}:\d{2}[.,]\d{1,3})")
_TAG = re.compile(r"<[^>]*>")  # <i>, </b>, <font ...>, <c.yellow>, <v Roger>, <00:01.000>
_ASS_OVERRIDE = re.compile(r"\{[^}]*\}")  # {\an8}, {\i1}


def parse_timestamp(text: str) -> float:
    """"01:02:03,456" / "02:03.4" -> seconds."""
    *fields, seconds = text.replace(",", ".").split(":")
    hours, minutes = ([0] * (2 - len(fields)) + [int(f) for f in fields])
    return hours * 3600 + minutes * 60 + float(seconds)


def clean_text(text: str) -> str:
    """Markup and line breaks out, entities decoded, whitespace collapsed."""
    text = _ASS_OVERRIDE.sub("", _TAG.sub("", text)).replace("\\N", " ").replace("\\n", " ")
    return " ".join(html.unescape(text).split())


def parse_subtitles(text: str) -> list[Cue]:
    """SRT or WebVTT text -> cues sorted by start time (cue numbers, settings, NOTE blocks ignored)."""
    cues = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n")):
        lines = block.strip("\n").split("\n")
        for number, line in enumerate(lines):
            timing = _TIMING.search(line)
            if timing:
                start, end = parse_timestamp(timing["start"]), parse_timestamp(timing["end"])
                words = clean_text(" ".join(lines[number + 1:]))
                if words and end >= start:
                    cues.append(Cue(start, end, words))
                break
    return sorted(cues, key=lambda cue: (cue.start, cue.end))


def decode_subtitle_bytes(data: bytes, name: str) -> str:
    """UTF-8 (with or without BOM), UTF-16 with a BOM, or Windows-1252 text; anything else is refused."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    if b"\x00" not in data:
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            text = ""
        printable = sum(ch.isprintable() or ch.isspace() for ch in text)
        if text and printable >= 0.98 * len(text):
            return text
    raise MediaError(f"The subtitle file '{name}' is not text in an encoding we can read. "
                     "Please save it as UTF-8 and upload it again.")


def load_subtitle_file(path: str | Path) -> list[Cue]:
    file = require_file(path)
    name = display_name(file)
    if file.stat().st_size > MAX_SUBTITLE_BYTES:
        raise MediaError(f"The subtitle file '{name}' is too large (over {MAX_SUBTITLE_BYTES // 1_000_000} MB).")
    cues = parse_subtitles(decode_subtitle_bytes(file.read_bytes(), name))
    if not cues:
        raise MediaError(f"No subtitles were found in '{name}': is it an .srt or .vtt file?")
    return cues


def read_embedded_subtitles(path: str | Path) -> list[Cue]:
    """Cues of the first text subtitle stream in the container ([] when it has none)."""
    try:
        with av.open(str(require_file(path))) as container:
            streams = [s for s in container.streams.subtitles
                       if s.codec_context is not None and s.codec_context.name in TEXT_SUBTITLE_CODECS]
            if not streams:
                return []
            return sorted(_stream_cues(container, streams[0]), key=lambda cue: (cue.start, cue.end))
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as err:
        raise MediaError(f"The subtitles inside '{display_name(path)}' could not be read.") from err


def _stream_cues(container: av.container.InputContainer, stream: av.stream.Stream) -> list[Cue]:
    cues = []
    for packet in container.demux(stream):
        if packet.pts is None:
            continue
        start = float(packet.pts * stream.time_base)
        end = start + float((packet.duration or 0) * stream.time_base)
        for subtitle in packet.decode():
            text = clean_text(bytes(getattr(subtitle, "dialogue", b"")).decode("utf-8", "replace"))
            if text:
                cues.append(Cue(start, end, text))
    return cues


def format_cues(cues: list[Cue]) -> str:
    """Cues as editable text, one per line: "00:01:02.500 --> 00:01:04.000 What is said".

    `parse_transcript` reads it back, so a user can correct or write the transcript before asking."""
    return "\n".join(f"{_stamp(cue.start)} --> {_stamp(cue.end)} {cue.text}" for cue in cues)


def _stamp(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


_LINE_CUE = re.compile(rf"^\s*{_TIMING.pattern}[ \t]+(?P<text>\S.*)$")


def parse_transcript(text: str) -> list[Cue]:
    """An edited transcript -> cues. The one-line form `format_cues` writes, where a line without
    a timing continues the cue above it; SRT or WebVTT text is accepted too."""
    cues: list[Cue] = []
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if not any(_LINE_CUE.match(line) for line in lines):
        return parse_subtitles(text)
    for line in lines:
        match = _LINE_CUE.match(line)
        if match:
            start, end = parse_timestamp(match["start"]), parse_timestamp(match["end"])
            if end >= start:
                cues.append(Cue(start, end, clean_text(match["text"])))
        elif cues and line.strip():
            cues[-1] = Cue(cues[-1].start, cues[-1].end, clean_text(cues[-1].text + " " + line))
    return sorted((cue for cue in cues if cue.text), key=lambda cue: (cue.start, cue.end))


@dataclass(frozen=True)
class Transcript:
    """The subtitle text given to the model: one line per sampled frame (or segment) with speech near it."""

    lines: tuple[tuple[float, str], ...]  # (frame or segment time in seconds, what is said around it)
    kept_words: int
    total_words: int
    # (time, the words left out) for every line the word budget shortened, for the UI to show.
    cut: tuple[tuple[float, str], ...] = ()

    @property
    def cut_words(self) -> int:
        return self.total_words - self.kept_words


def frame_windows(frame_times: list[float], start: float, end: float) -> list[tuple[float, float]]:
    """Each sampled frame owns the time from halfway after its predecessor to halfway to its
    successor, inside [start, end] (the whole video, or a time range's span)."""
    bounds = [start] + [(a + b) / 2 for a, b in zip(frame_times, frame_times[1:])] + [end]
    return list(zip(bounds[:-1], bounds[1:]))


def transcript_for_frames(cues: list[Cue], frame_times: list[float], duration: float,
                          word_budget: int) -> Transcript:
    """What is said around each sampled frame, trimmed to `word_budget` words shared evenly."""
    windows = frame_windows(frame_times, 0.0, max(duration, frame_times[-1]))
    return transcript_for_windows(cues, frame_times, windows, word_budget)


def transcript_for_windows(cues: list[Cue], labels: list[float], windows: list[tuple[float, float]],
                           word_budget: int) -> Transcript:
    """What is said in each [start, end) window (labelled by a time), trimmed to `word_budget` words
    shared evenly: used per frame of a clip, and per segment of a long video."""
    per_window = []
    for start, end in windows:
        near = [cue.text for cue in cues if cue.start < end and cue.end >= start]
        per_window.append(" ".join(dict.fromkeys(near)).split())  # a cue spanning windows is said in each
    total = sum(len(words) for words in per_window)
    share = _fair_shares([len(words) for words in per_window], max(word_budget, 0))
    lines = tuple((time, " ".join(words[:keep]) + (" …" if keep < len(words) else ""))
                  for time, words, keep in zip(labels, per_window, share) if keep)
    cut = tuple((time, " ".join(words[keep:])) for time, words, keep in zip(labels, per_window, share)
                if keep < len(words))
    return Transcript(lines, sum(share), total, cut)
def _fair_shares(sizes: list[int], budget: int) -> list[int]:
    """Split `budget` across `sizes` so that no one gets more than it has and small ones get all theirs."""
    shares = [0] * len(sizes)
    remaining, open_ = budget, [i for i, size in enumerate(sizes) if size]
    while open_ and remaining > 0:
        each = max(1, remaining // len(open_))
        for i in list(open_):
            take = min(each, sizes[i] - shares[i], remaining)
            shares[i] += take
            remaining -= take
            if shares[i] == sizes[i]:
                open_.remove(i)
            if remaining == 0:
                break
    return shares
