"""Time text, the one home for it: times written for people ("1:23", "1:23.4") and read back from
text, as citations in answers ("at 1:23", "[01:23]", "83 seconds") and time ranges in questions
("between 2:10 and 3:00")."""

from __future__ import annotations

import re
from dataclasses import dataclass

_CLOCK = r"(?:(?P<h>\d{1,2}):)?(?P<m>\d{1,3}):(?P<s>[0-5]\d)(?:\.(?P<f>\d{1,3}))?"
_SECONDS = r"(?P<n>\d+(?:\.\d+)?)\s*(?:seconds?|secs?|s)\b"
_CITATION = re.compile(rf"\[?(?<![\d:.])(?:{_CLOCK}|{_SECONDS})(?![\d:])\]?")
_CLOCK_ONLY = re.compile(rf"^{_CLOCK}$")
_RANGE = re.compile(
    r"(?:between|from)\s+(?P<a>[\d:.]+\s*(?:s|sec|secs|seconds)?)\s+(?:and|to|until|-)\s+"
    r"(?P<b>[\d:.]+\s*(?:s|sec|secs|seconds)?)", re.IGNORECASE)


@dataclass(frozen=True)
class Citation:
    start: int  # character span in the text
    end: int
    seconds: float

    def label(self, text: str) -> str:
        return text[self.start:self.end]


def _seconds_of(match: re.Match[str]) -> float:
    groups = match.groupdict()
    if groups.get("n") is not None:
        return float(groups["n"])
    fraction = float(f"0.{groups['f']}") if groups["f"] else 0.0
    return int(groups["h"] or 0) * 3600 + int(groups["m"]) * 60 + int(groups["s"]) + fraction


def find_citations(text: str, duration: float | None = None) -> list[Citation]:
    """Every time mentioned in `text`; with `duration`, only those inside the video."""
    found = []
    for match in _CITATION.finditer(text):
        seconds = _seconds_of(match)
        if duration is not None and seconds > duration + 0.5:
            continue  # "10:30" in a 2-minute clip is a clock time, not a moment of the video
        found.append(Citation(match.start(), match.end(), seconds))
    return found


def parse_time(text: str) -> float | None:
    """"2:10" / "1:02:03" / "83" / "83.5 s" -> seconds, or None."""
    text = text.strip().lower().removesuffix("seconds").removesuffix("second").removesuffix("secs")
    text = text.removesuffix("sec").removesuffix("s").strip()
    match = _CLOCK_ONLY.match(text)
    if match:
        return _seconds_of(match)
    try:
        return float(text)
    except ValueError:
        return None


def find_time_range(question: str) -> tuple[float, float] | None:
    """A span the question asks about ("between 2:10 and 3:00", "from 5 s to 12 s"), or None.
    At least one end must be written as a time (a clock or a unit of seconds)."""
    match = _RANGE.search(question)
    if not match:
        return None
    if not any(":" in end or end.strip()[-1:].isalpha() for end in (match["a"], match["b"])):
        return None  # "count from 1 to 100": bare numbers are not times until one end says so
    start, end = parse_time(match["a"]), parse_time(match["b"])
    if start is None or end is None or end <= start:
        return None
    return start, end


def format_time(seconds: float) -> str:
    """83.4 -> "1:23"; 3723 -> "1:02:03"."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def time_label(seconds: float) -> str:
    """83.4 -> "1:23.4", 130 -> "2:10", 7260 -> "2:01:00" (tenths only when not whole); the form
    `find_citations` reads back, so times the model repeats become clickable."""
    tenths = round(seconds * 10)
    whole, fraction = divmod(tenths, 10)
    return format_time(whole) + (f".{fraction}" if fraction else "")
