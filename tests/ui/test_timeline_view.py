"""What the Timeline panel shows, as pure functions: which frames a part outlines, a row's link,
and the download files (read back with the subtitle parser)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from videollama_demo import TimelineCue
from videollama_demo.media.subtitles import parse_subtitles
from videollama_demo.ui.timeline import cue_row, frames_in, write_downloads

TIMES = [0.0, 7.5, 15.0, 22.5, 30.0, 37.5, 45.0, 52.5]  # the official 8 frames of a 60 s video


@pytest.mark.parametrize(("start", "end", "frames"), [
    (0.0, 30.0, [0, 1, 2, 3]),
    (30.0, 60.0, [4, 5, 6, 7]),
    (8.0, 14.0, [1]),  # no frame inside: the one nearest the middle (11 s)
    (53.0, 60.0, [7]),
])
def test_the_frames_a_part_outlines(start: float, end: float, frames: list[int]) -> None:
    assert frames_in(TIMES, start, end) == frames


def test_a_row_escapes_the_text_and_links_its_span() -> None:
    row = cue_row(TimelineCue(1, 30.0, 60.0, "A <b>door</b> & a cat"), TIMES)
    assert "A &lt;b&gt;door&lt;/b&gt; &amp; a cat" in row
    assert 'href="#t=30.00&amp;end=60.00&amp;frames=4,5,6,7&amp;from=0:30&amp;to=1:00&amp;q=What+happens' in row
    assert ">0:30-1:00</a>" in row and "timeline-ask" in row
    assert 'class="timeline-row failed"' in cue_row(TimelineCue(0, 0.0, 30.0, "(failed)", failed=True), TIMES)


def test_the_downloads_read_back(tmp_path: Path) -> None:
    cues = [TimelineCue(0, 0.0, 30.0, "A man\n walks in."), TimelineCue(1, 30.0, 61.25, "He sits & eats.")]
    vtt, srt, js = write_downloads(cues, "talk.mp4")
    assert [Path(p).name for p in (vtt, srt, js)] == ["talk.timeline.vtt", "talk.timeline.srt", "talk.timeline.json"]
    expected = [(0.0, 30.0, "A man walks in."), (30.0, 61.25, "He sits & eats.")]
    for path in (vtt, srt):
        assert [(c.start, c.end, c.text) for c in parse_subtitles(Path(path).read_text())] == expected
    assert [item["end"] for item in json.loads(Path(js).read_text())] == [30.0, 61.25]
