"""The page in a real browser: headless Debian Chromium driven by Playwright, against the live app.

What only a browser shows: the preview banner, a file dropped on the drop zone, the streamed
answer growing on screen, Stop/Undo/New chat as buttons, and the JavaScript that turns a time
in an answer into a jump of the video player and a highlighted frame.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.speech_factory import Talk, make_talk
from tests.ui.conftest import GREEDY, LiveApp, engine_answers
from tests.ui.test_api import official_frame_times

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
# Headless and quiet: this machine has no network, so Chromium's background requests are turned off.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 30_000  # answers are short, but the 2-core machine may be busy with other tests
ANSWERS = "#chatbot [data-testid=bot]"
# The greedy preview model answers this with a time inside the 3 s clip ("The video ends at 0:02.").
TIME_QUESTION = "At what time does the video end? Answer like 0:02."


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, live_app: LiveApp) -> Iterator[Page]:
    """A fresh tab on the page (its own session)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(WAIT_MS)
    tab.goto(live_app.url)
    expect(tab.locator("#question textarea")).to_be_visible()
    yield tab
    context.close()


def drop_file(page: Page, path: Path) -> None:
    """What dropping a file on the drop zone (or picking it in the file dialog) does."""
    page.set_input_files("#media-upload input[type=file]", str(path))


def set_sampling(page: Page, temperature: float, max_new_tokens: int) -> None:
    """Type into the number boxes of the Answer settings sliders, as a person would."""
    if not page.locator("#temperature").is_visible():
        page.get_by_text("Answer settings").click()  # the accordion starts closed
    for elem_id, value in (("temperature", temperature), ("max-new-tokens", max_new_tokens)):
        box = page.locator(f"#{elem_id} input[type=number]")
        for _ in range(3):  # a value typed while the accordion is still opening can be lost: type it again
            box.fill(str(value))
            box.press("Enter")
            try:
                expect(box).to_have_value(str(value), timeout=2000)
                break
            except AssertionError:
                continue
        expect(box).to_have_value(str(value))


def ask(page: Page, question: str) -> None:
    page.locator("#question textarea").fill(question)
    page.locator("#question textarea").press("Enter")


def watch_answers(page: Page) -> None:
    """Record every text the last answer bubble shows, from now on (read back with `seen_answers`)."""
    page.evaluate("""() => {
        window.seenAnswers = [];
        const record = () => {
            const answers = document.querySelectorAll("#chatbot [data-testid=bot]");
            const text = answers.length ? answers[answers.length - 1].innerText.trim() : "";
            if (text && text !== window.seenAnswers.at(-1)) window.seenAnswers.push(text);
        };
        new MutationObserver(record).observe(document.querySelector("#chatbot"),
                                             {subtree: true, childList: true, characterData: true});
    }""")


def seen_answers(page: Page) -> list[str]:
    return page.evaluate("() => window.seenAnswers")


def upload_video(page: Page, video: Path) -> None:
    drop_file(page, video)
    # The first encoding may wait for the server's warm-up of the example files (2 cores).
    expect(page.locator("#frames-strip .thumbnail-item")).to_have_count(8, timeout=3 * WAIT_MS)


def test_preview_banner_and_the_frames_of_a_dropped_video(page: Page, shared_media: dict[str, Path]) -> None:
    banner = page.locator("#preview-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("the real Video-LLaMA weights are not loaded")

    upload_video(page, shared_media["video"])
    expect(page.locator("#frames-strip .caption-label")).to_have_text(official_frame_times(75, 25.0, 8))
    expect(page.locator("#player video")).to_be_visible()
    expect(page.locator("#status")).to_contain_text("Talking about clip.mp4")
    expect(page.locator("#seen-summary")).to_contain_text("Audio: used")


def test_a_question_sent_with_enter_streams_the_engines_answer(page: Page, preview_pipeline,
                                                                shared_media: dict[str, Path]) -> None:
    question = "What is in the video?"
    sampling = GREEDY | {"max_new_tokens": 20}
    expected = engine_answers(preview_pipeline, shared_media["video"], [question], sampling)[0]
    upload_video(page, shared_media["video"])
    set_sampling(page, temperature=0, max_new_tokens=20)
    watch_answers(page)
    ask(page, question)
    expect(page.locator("#chatbot [data-testid=user]")).to_have_text([question])
    expect(page.locator(ANSWERS)).to_have_text([expected])
    # (the answer's place may first say the question waits for the model)
    partial = [text for text in seen_answers(page) if text != expected and not text.startswith("Waiting for the model")]
    assert len(partial) >= 2, seen_answers(page)  # it grew on screen, not in one piece
    assert all(expected.startswith(text) for text in partial)
    expect(page.locator("#question textarea")).to_have_value("")


def test_stop_undo_and_new_chat(page: Page, shared_media: dict[str, Path]) -> None:
    upload_video(page, shared_media["video"])
    set_sampling(page, temperature=0, max_new_tokens=300)
    watch_answers(page)
    ask(page, "Describe every frame in detail.")
    page.wait_for_function("() => window.seenAnswers.length >= 3")  # a few words are on screen
    page.locator("#stop").click()
    last_answer = page.locator(ANSWERS).last
    expect(last_answer).to_contain_text("(stopped)")
    stopped_text = last_answer.inner_text()
    assert len(stopped_text.split()) < 150  # far from the 300 tokens it was allowed
    page.wait_for_timeout(1500)
    assert last_answer.inner_text() == stopped_text  # nothing more arrives after Stop

    page.locator("#undo").click()
    expect(page.locator("#chatbot [data-testid=user]")).to_have_count(0)
    expect(page.locator("#question textarea")).to_have_value("Describe every frame in detail.")

    set_sampling(page, temperature=0, max_new_tokens=8)
    ask(page, "What colours do you see?")
    expect(page.locator(ANSWERS)).to_have_count(1)
    expect(page.locator(ANSWERS)).not_to_contain_text("(stopped)")
    page.locator("#new-chat").click()
    expect(page.locator("#chatbot [data-testid=user]")).to_have_count(0)
    expect(page.locator(ANSWERS)).to_have_count(0)


def test_a_dropped_image_shows_the_picture(page: Page, shared_media: dict[str, Path]) -> None:
    drop_file(page, shared_media["image"])
    picture = page.locator("#picture img")
    expect(picture).to_be_visible()
    expect(picture).to_have_attribute("src", re.compile(r"photo\.png$"))
    assert page.evaluate("() => document.querySelector('#picture img').naturalWidth") > 0  # it really loaded
    expect(page.locator("#frames-strip .caption-label")).to_have_text(["the image"])
    expect(page.locator("#player")).to_be_hidden()


def test_a_time_in_an_answer_seeks_the_player_and_marks_the_nearest_frame(
        page: Page, preview_pipeline, shared_media: dict[str, Path]) -> None:
    sampling = GREEDY | {"max_new_tokens": 20}
    expected = engine_answers(preview_pipeline, shared_media["video"], [TIME_QUESTION], sampling)[0]
    upload_video(page, shared_media["video"])
    set_sampling(page, temperature=0, max_new_tokens=20)
    ask(page, TIME_QUESTION)
    expect(page.locator(ANSWERS)).to_have_text([expected])

    link = page.locator(f"{ANSWERS} a.timecode").first
    expect(link).to_be_visible()  # precondition: the model's answer mentions a time in the clip
    minutes, seconds = link.inner_text().strip("[]").split(":")
    cited = int(minutes) * 60 + int(seconds)
    assert link.inner_text() in expected

    link.click()
    page.wait_for_function(f"() => Math.abs(document.querySelector('#player video').currentTime - {cited}) < 0.05")
    assert "#t=" not in page.url  # the click was handled by the page, not followed as a link
    labels = page.locator("#frames-strip .caption-label").all_inner_texts()
    captions = [float(text.removesuffix(" s")) for text in labels]
    marked = page.locator("#frames-strip .thumbnail-item.cited-frame")
    expect(marked).to_have_count(1)
    marked_time = float(marked.inner_text().removesuffix(" s"))
    # The nearest frame; captions are rounded to 0.1 s, so a tie may go either way by 0.05 s.
    assert abs(marked_time - cited) <= min(abs(time - cited) for time in captions) + 0.05


def test_a_broken_file_shows_an_error_and_the_conversation_stays(page: Page, preview_pipeline,
                                                                 shared_media: dict[str, Path]) -> None:
    question = "What colours do you see?"
    answer = engine_answers(preview_pipeline, shared_media["video"], [question], GREEDY | {"max_new_tokens": 8})[0]
    upload_video(page, shared_media["video"])
    set_sampling(page, temperature=0, max_new_tokens=8)
    ask(page, question)
    expect(page.locator(ANSWERS)).to_have_text([answer])  # the whole answer is on screen
    drop_file(page, shared_media["broken"])
    expect(page.get_by_text("broken.mp4' is not a video or image file that can be read").first).to_be_visible()
    expect(page.locator("#chatbot [data-testid=user]")).to_have_text(["What colours do you see?"])
    assert page.locator(ANSWERS).last.inner_text() == answer
    expect(page.locator("#status")).to_contain_text("Talking about clip.mp4")  # still the same file


def test_a_subtitle_file_fills_the_transcript_the_model_gets(page: Page, shared_media: dict[str, Path],
                                                            tmp_path: Path) -> None:
    srt = tmp_path / "clip.srt"
    srt.write_text("1\n00:00:00,500 --> 00:00:02,000\nHello from the test pattern.\n")
    upload_video(page, shared_media["video"])
    page.locator("#use-subtitles input[type=checkbox]").check()
    page.set_input_files("#subtitle-file input[type=file]", str(srt))
    expect(page.locator("#seen-summary")).to_contain_text("Subtitles:", timeout=3 * WAIT_MS)
    page.get_by_text("Subtitles: the transcript the model gets").click()  # the accordion starts closed
    # Ticking Subtitles first reads the video (no stream: its speech); the dropped file then wins.
    expect(page.locator("#transcript textarea")).to_have_value(
        "00:00:00.500 --> 00:00:02.000 Hello from the test pattern.", timeout=3 * WAIT_MS)


# ---- subtitles from speech ----------------------------------------------------------------------

SPOKEN_FIRST = "Please open the window in the kitchen."
SPOKEN_SECOND = "My sister likes to read books in the garden."


@pytest.fixture(scope="module")
def spoken_talk(tmp_path_factory: pytest.TempPathFactory) -> Talk:
    return make_talk(tmp_path_factory.mktemp("browser_talk") / "talk.mp4", [1.0, SPOKEN_FIRST, 4.0, SPOKEN_SECOND, 1.0])


def test_from_speech_fills_the_transcript_and_the_frame_captions(page: Page, spoken_talk: Talk) -> None:
    upload_video(page, spoken_talk.path)
    page.locator("#subtitle-source").get_by_text("from speech").click()
    expect(page.locator("#frames-strip .thumbnail-item")).to_have_count(8, timeout=3 * WAIT_MS)
    page.locator("#use-subtitles input[type=checkbox]").check()
    expect(page.locator("#seen-summary")).to_contain_text("Subtitles:", timeout=6 * WAIT_MS)

    page.get_by_text("Subtitles: the transcript the model gets").click()  # the accordion starts closed
    box = page.locator("#transcript textarea")
    expect(box).to_have_value(re.compile(r"^00:00:0\d\.\d{3} --> .*window.*kitchen", re.IGNORECASE | re.DOTALL))
    expect(box).to_have_value(re.compile(r"garden", re.IGNORECASE))
    captions = page.locator("#frames-strip .caption-label")
    expect(captions.filter(has_text=re.compile(r"window|kitchen", re.IGNORECASE)).first).to_be_visible()
    expect(captions.filter(has_text=re.compile(r"garden", re.IGNORECASE)).first).to_be_visible()
