"""Take docs/screenshot.png: the app as a newcomer sees it, with an example video and an answer.

    PYTHONPATH=. python scripts/make_screenshot.py [--out docs/screenshot.png]

Starts `python app.py` (no weights here, so preview mode) on a free port, clicks the first
example in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright), sends its
question with greedy decoding, waits for the whole answer and saves the page down to the
frame strip (about 1280x1100). Needs ffmpeg and chromium (`bash scripts/setup.sh --test` installs both).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect, sync_playwright

REPO_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
# This machine has no network: keep Chromium from trying to reach its services.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WIDTH = 1280
ANSWER_TOKENS = 40
START_TIMEOUT_S = 300  # loading the preview model and warming the example cache


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_app(port: int) -> subprocess.Popen:
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    return subprocess.Popen([sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port)],
                            cwd=REPO_ROOT, env=env)


def wait_until_served(url: str, app: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if app.poll() is not None:
            raise RuntimeError(f"app.py exited with code {app.returncode} before serving")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(1)
    raise TimeoutError(f"the app did not answer at {url} within {START_TIMEOUT_S} s")


def answer_greedily(page: Page) -> None:
    """Greedy and short, so the screenshot is the same every time; then close the settings again."""
    page.get_by_text("Answer settings").click()
    for elem_id, value in (("temperature", 0), ("max-new-tokens", ANSWER_TOKENS)):
        box = page.locator(f"#{elem_id} input[type=number]")
        box.fill(str(value))
        box.press("Enter")
    page.get_by_text("Answer settings").click()


def wait_for_whole_answer(page: Page, quiet_s: float = 3.0, timeout_s: float = 120.0) -> str:
    """The answer's text once it has stopped changing for `quiet_s` seconds."""
    answer = page.locator("#chatbot [data-testid=bot]").last
    expect(answer).to_be_visible(timeout=timeout_s * 1000)
    text, since, deadline = "", time.monotonic(), time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = answer.inner_text()
        if now != text:
            text, since = now, time.monotonic()
        elif time.monotonic() - since > quiet_s:
            return text
        time.sleep(0.2)
    raise TimeoutError("the answer kept changing")


def take(url: str, out: Path) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": WIDTH, "height": 900})
        page.set_default_timeout(60_000)
        page.goto(url)
        page.locator("#chatbot").wait_for()
        page.get_by_text("Moving test pattern, two gliding tones").click()  # loads the clip and its question
        expect(page.locator("#frames-strip .thumbnail-item")).to_have_count(8, timeout=120_000)
        answer_greedily(page)
        page.locator("#question textarea").press("Enter")
        print("answer:", wait_for_whole_answer(page))
        page.evaluate("() => { document.activeElement?.blur(); window.scrollTo(0, 0); }")
        page.wait_for_timeout(500)  # let the player show its first frame
        strip = page.locator("#frames-strip").bounding_box()  # down to the frames the model saw
        height = int(strip["y"] + strip["height"]) + 2
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=True, clip={"x": 0, "y": 0, "width": WIDTH, "height": height})
        browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "screenshot.png")
    args = parser.parse_args(argv)
    port = free_port()
    app = start_app(port)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_until_served(url, app)
        take(url, args.out)
    finally:
        app.terminate()
        app.wait(timeout=30)
    print(f"{args.out} ({args.out.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
