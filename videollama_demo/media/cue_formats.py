"""Cues written out as SubRip (.srt), WebVTT (.vtt) or JSON: what `transcribe FILE --format` prints.

`subtitles.parse_subtitles` reads the SRT and WebVTT back; JSON is a list of
{"start": seconds, "end": seconds, "text": ...} objects for scripts.
"""

from __future__ import annotations

import html
import json
from typing import Literal, get_args

from .subtitles import Cue

CueFormat = Literal["srt", "vtt", "json"]
CUE_FORMATS: tuple[str, ...] = get_args(CueFormat)


def format_cues_as(cues: list[Cue], fmt: CueFormat) -> str:
    if fmt == "srt":
        return cues_to_srt(cues)
    if fmt == "vtt":
        return cues_to_vtt(cues)
    if fmt == "json":
        return cues_to_json(cues)
    raise ValueError(f"fmt must be one of {', '.join(CUE_FORMATS)}, got {fmt!r}")


def cues_to_srt(cues: list[Cue]) -> str:
    blocks = [f"{number}\n{timestamp(cue.start, ',')} --> {timestamp(cue.end, ',')}\n{_one_line(cue.text)}\n"
              for number, cue in enumerate(cues, start=1)]
    return "\n".join(blocks)


def cues_to_vtt(cues: list[Cue]) -> str:
    # "&", "<" and ">" are markup in WebVTT cue text, so they are written as entities.
    blocks = [f"{timestamp(cue.start, '.')} --> {timestamp(cue.end, '.')}\n"
              f"{html.escape(_one_line(cue.text), quote=False)}\n" for cue in cues]
    return "\n".join(["WEBVTT\n", *blocks])


def cues_to_json(cues: list[Cue]) -> str:
    items = [{"start": round(cue.start, 3), "end": round(cue.end, 3), "text": cue.text} for cue in cues]
    return json.dumps(items, ensure_ascii=False, indent=2)


def timestamp(seconds: float, decimal_mark: str) -> str:
    """62.5 -> "00:01:02,500" (SRT, `decimal_mark` ",") or "00:01:02.500" (WebVTT, ".")."""
    millis = round(max(seconds, 0.0) * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}{decimal_mark}{rest % 1000:03d}"


def _one_line(text: str) -> str:
    # A blank line ends a cue in both formats, so the text must not contain one.
    return " ".join(text.split())
