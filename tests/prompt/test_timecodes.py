"""Times in answers and questions: citation and range parsing tables."""

from __future__ import annotations

import pytest

from videollama_demo.prompt.timecodes import find_citations, find_time_range, format_time, parse_time


@pytest.mark.parametrize("text,expected", [
    ("The dog appears at 1:23.", [("1:23", 83.0)]),
    ("See [01:45] and (0:07).", [("[01:45]", 105.0), ("0:07", 7.0)]),
    ("At 83 seconds it barks, 2.5s later it sits.", [("83 seconds", 83.0), ("2.5s", 2.5)]),
    ("From 1:02:03 on.", [("1:02:03", 3723.0)]),
    ("At 0:05.5 exactly.", [("0:05.5", 5.5)]),
    ("A 3:1 ratio, version 1.2.3, 42 dogs, 1:5.", []),
    ("It is 12 sec long and 4 secs later.", [("12 sec", 12.0), ("4 secs", 4.0)]),
])
def test_citations(text: str, expected: list[tuple[str, float]]) -> None:
    assert [(c.label(text), c.seconds) for c in find_citations(text)] == expected


def test_citations_past_the_end_of_the_video_are_clock_times() -> None:
    text = "We met at 10:30 and at 0:12 the dog ran."
    assert [c.label(text) for c in find_citations(text, duration=60)] == ["0:12"]


@pytest.mark.parametrize("question,expected", [
    ("What happens between 2:10 and 3:00?", (130.0, 180.0)),
    ("from 5 s to 12 s", (5.0, 12.0)),
    ("From 1:00 until 1:30, who talks?", (60.0, 90.0)),
    ("between 0:05.5 and 7 seconds", (5.5, 7.0)),
    ("between 5 and 3", None),
    ("Count from 1 to 100, separated by commas.", None),
    ("from 10 to 20 seconds", (10.0, 20.0)),
    ("Is the price between 3.5 and 7?", None),
    ("What happens at the end?", None),
])
def test_time_ranges(question: str, expected: tuple[float, float] | None) -> None:
    assert find_time_range(question) == expected


@pytest.mark.parametrize("text,seconds", [("2:10", 130.0), ("83", 83.0), ("83.5 s", 83.5), ("1:02:03", 3723.0),
                                          ("soon", None)])
def test_parse_time(text: str, seconds: float | None) -> None:
    assert parse_time(text) == seconds


def test_format_time() -> None:
    assert (format_time(83.4), format_time(3723), format_time(0)) == ("1:23", "1:02:03", "0:00")
