"""The Timeline panel in a real browser: rows appear for each part, a click seeks the player and
outlines that part's frames, "Ask about this part" fills the time-range boxes, downloads are offered."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests import media_factory
from tests.ui.test_browser import ANSWERS, WAIT_MS, browser, page, set_sampling, upload_video  # noqa: F401
from videollama_demo.ui.timeline import ASK_QUESTION

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def one_minute(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return media_factory.make_video(tmp_path_factory.mktemp("timeline_ui") / "minute.mp4", seconds=60, fps=10,
                                    size=(96, 72), audio="sine", faststart=True)


def test_a_timeline_row_seeks_the_player_and_asks_about_its_part(page: Page, one_minute: Path) -> None:  # noqa: F811
    upload_video(page, one_minute)
    set_sampling(page, temperature=0, max_new_tokens=8)
    page.locator("#timeline-button").click()
    rows = page.locator("#timeline .timeline-row")
    expect(rows).to_have_count(2, timeout=6 * WAIT_MS)  # 0:00-0:30 and 0:30-1:00
    expect(page.locator("#timeline")).to_contain_text("Done.", timeout=2 * WAIT_MS)
    expect(page.locator("#timeline")).to_contain_text("NOT about your video")  # preview mode says so
    expect(rows.locator("a.timeline-cue")).to_have_text(["0:00-0:30", "0:30-1:00"])
    assert all(text.strip() for text in rows.locator(".timeline-text").all_inner_texts())
    # The player now carries the timeline as its captions: a WebVTT track the browser parsed into the cues.
    expect(page.locator("#player video track")).to_have_count(1)
    page.wait_for_function("() => { const v = document.querySelector('#player video');"
                           " return v.textTracks.length === 1 && v.textTracks[0].cues"
                           " && v.textTracks[0].cues.length === 2; }", timeout=WAIT_MS)
    assert page.evaluate("document.querySelector('#player video').textTracks[0].cues[1].startTime") == 30

    rows.nth(1).locator(".timeline-text").click()  # anywhere on the row
    page.wait_for_function("() => Math.abs(document.querySelector('#player video').currentTime - 30) < 0.05")
    assert "#t=" not in page.url
    marked = page.locator("#frames-strip .thumbnail-item.cited-frame")
    expect(marked).to_have_count(4)  # the official 8 frames of 60 s: 4 lie in the second half
    assert all(float(text.removesuffix(" s")) >= 30 for text in marked.all_inner_texts())

    for fmt in ("vtt", "srt", "json"):
        expect(page.locator(f"#timeline-files a[href$='minute.timeline.{fmt}']")).to_have_count(1)

    rows.nth(1).locator("a.timeline-ask").click()
    expect(page.locator("#time-from textarea, #time-from input").first).to_have_value("0:30")
    expect(page.locator("#time-to textarea, #time-to input").first).to_have_value("1:00")
    expect(page.locator("#question textarea")).to_have_value(ASK_QUESTION)
    page.locator("#send").click()
    expect(page.locator("#chatbot [data-testid=user]")).to_contain_text("answered from frames of 0:30")
    expect(page.locator(ANSWERS)).to_have_count(1)
