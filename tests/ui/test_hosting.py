"""The server on a public host, tried through the real server (its own process) on loopback:
huge texts, cut-off and oversized uploads, REST-only sessions, and one address flooding the queue.
Other client addresses are 127.0.0.2 and 127.0.0.3 (a client socket may bind any 127.x on Linux)."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.media_factory import make_video
from tests.ui.hosted_server import HostedServer, client_from, start_server

KEEP_SECONDS = 2
SESSION_TTL = 10
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostedServer]:
    hosted = start_server(tmp_path_factory.mktemp("hosted"), "--keep-uploads", str(KEEP_SECONDS),
                          "--session-ttl", str(SESSION_TTL), "--max-jobs-per-client", "2", "--concurrency", "1",
                          "--max-file-size", "5mb")
    yield hosted
    hosted.stop()


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("media") / "clip.mp4", seconds=2.0)


def upload_file(http: httpx.Client, server: HostedServer, path: Path) -> str:
    response = http.post(server.url + "gradio_api/upload", files=[("files", (path.name, path.read_bytes()))])
    response.raise_for_status()
    return response.json()[0]


def call(http: httpx.Client, server: HostedServer, api: str, data: list, session: str) -> httpx.Response:
    return http.post(server.url + f"gradio_api/call/{api}", json={"data": data, "session_hash": session})


def result(http: httpx.Client, server: HostedServer, api: str, event_id: str) -> tuple[str, str]:
    """("complete" or "error", the last data line) of a REST call, read from its event stream."""
    kind, data = "", ""
    with http.stream("GET", server.url + f"gradio_api/call/{api}/{event_id}", timeout=300) as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data = line.split(":", 1)[1].strip()
                if kind in ("complete", "error"):
                    break
    return kind, data


def rest_upload(http: httpx.Client, server: HostedServer, video: Path, session: str) -> str:
    stored = upload_file(http, server, video)
    started = call(http, server, "upload", [{"path": stored, "meta": {"_type": "gradio.FileData"}},
                                            True, 8, False, 0, False, "embedded"], session)
    started.raise_for_status()
    kind, data = result(http, server, "upload", started.json()["event_id"])
    assert kind == "complete", data
    return stored


def ask_data(question: str, max_new_tokens: int = 8) -> list:
    return [question, 0.0, 0.9, max_new_tokens, 1.0, "", "", False]


def wait_until(condition, timeout: float, step: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def test_a_50_mb_question_is_refused_at_once_without_memory(server: HostedServer) -> None:
    question = "why " * (50 * 2**20 // 4)
    body = json.dumps({"data": ask_data(question), "session_hash": "huge"}).encode()
    before = server.rss_bytes()
    started = time.monotonic()
    with client_from("127.0.0.1", timeout=30) as http:
        response = http.post(server.url + "gradio_api/call/ask", content=body,
                             headers={"content-type": "application/json"})
    elapsed = time.monotonic() - started
    assert response.status_code == 413
    assert "Shorten the text" in response.json()["detail"]
    assert elapsed < 1.0
    assert server.rss_bytes() - before < 100 * 2**20


def test_a_question_longer_than_any_context_is_refused_before_the_queue(server: HostedServer) -> None:
    with client_from("127.0.0.1") as http:
        started = time.monotonic()
        response = call(http, server, "ask", ask_data("why " * 100_000), "long-question")
        elapsed = time.monotonic() - started
    # refused by the event's validator, before the job joins the queue or anything is tokenized
    assert response.status_code == 422, response.text
    assert "400,000 characters" in response.text and "Shorten it" in response.text
    assert elapsed < 2.0


def test_oversized_and_multi_file_uploads_are_refused_and_leave_nothing(server: HostedServer, video: Path) -> None:
    with client_from("127.0.0.1") as http:
        too_big = http.post(server.url + "gradio_api/upload", files=[("files", ("big.mp4", b"\0" * (6 * 2**20)))])
        assert too_big.status_code == 413
        assert "largest this server accepts is 5 MB" in too_big.json()["detail"]
        files = [("files", ("a.mp4", video.read_bytes())), ("files", ("b.mp4", video.read_bytes()))]
        with pytest.raises(httpx.HTTPError):
            http.post(server.url + "gradio_api/upload", files=files).raise_for_status()
    assert wait_until(lambda: not server.leftovers(), timeout=KEEP_SECONDS * 4 + 5), server.leftovers()


def test_a_cut_off_multipart_upload_leaves_nothing_after_the_sweep(server: HostedServer) -> None:
    boundary = "cutoffboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"cut.mp4\"\r\n"
            f"Content-Type: video/mp4\r\n\r\n").encode()
    host, port = server.url.removeprefix("http://").strip("/").split(":")
    with socket.create_connection((host, int(port))) as raw:
        raw.sendall((f"POST /gradio_api/upload HTTP/1.1\r\nHost: {host}\r\n"
                     f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                     f"Content-Length: {4 * 2**20}\r\n\r\n").encode() + head)
        raw.sendall(b"\1" * (2 * 2**20))  # half of what was announced, then the connection is cut
        time.sleep(1.0)
    assert wait_until(lambda: not server.leftovers(), timeout=KEEP_SECONDS * 4 + 5), server.leftovers()
    assert server.process.poll() is None


def test_a_rest_only_session_keeps_its_upload_then_expires_and_it_is_swept(server: HostedServer,
                                                                           video: Path) -> None:
    session = uuid.uuid4().hex
    with client_from("127.0.0.1") as http:
        stored = Path(rest_upload(http, server, video, session))
        asked = call(http, server, "ask", ask_data("What is it?"), session)
        kind, _ = result(http, server, "ask", asked.json()["event_id"])
        assert kind == "complete"
    # Older than the keep time but held by a live session: kept.
    time.sleep(KEEP_SECONDS * 2 + 1)
    assert stored.exists()
    # No request for the session's TTL (a REST client never opens a heartbeat): the session ends,
    # its conversation is freed and its upload and thumbnails are swept.
    assert wait_until(lambda: not stored.exists(), timeout=SESSION_TTL + KEEP_SECONDS * 4 + 10)
    assert "ended 1 session(s) idle" in server.log()
    assert wait_until(lambda: not server.leftovers(), timeout=KEEP_SECONDS * 4 + 5), server.leftovers()
    # The client comes back: it is told its session ended, not to upload a first file.
    with client_from("127.0.0.1") as http:
        asked = call(http, server, "ask", ask_data("And now?"), session)
        kind, data = result(http, server, "ask", asked.json()["event_id"])
    assert kind == "error" and "Your session ended" in data, data
    with client_from("127.0.0.1") as http:  # a session that never existed is told to upload
        asked = call(http, server, "ask", ask_data("And now?"), uuid.uuid4().hex)
        kind, data = result(http, server, "ask", asked.json()["event_id"])
    assert kind == "error" and "Upload a video or an image first" in data, data


def test_one_address_queueing_ten_jobs_does_not_block_another(server: HostedServer, video: Path) -> None:
    hog_session, other_session = uuid.uuid4().hex, uuid.uuid4().hex
    with client_from("127.0.0.2") as hog, client_from("127.0.0.3") as other:
        rest_upload(hog, server, video, hog_session)
        answers = [call(hog, server, "ask", ask_data(f"Question {n}: describe it.", 120), hog_session)
                   for n in range(10)]
        accepted = [response for response in answers if response.status_code == 200]
        refused = [response for response in answers if response.status_code == 429]
        assert len(accepted) == 2 and len(refused) == 8, [response.status_code for response in answers]
        assert "already have 2 requests waiting or running" in refused[0].json()["detail"]
        # The other address is served while the first one's jobs are still queued or running.
        rest_upload(other, server, video, other_session)
        started = call(other, server, "ask", ask_data("What is it?"), other_session)
        assert started.status_code == 200, started.text
        kind, data = result(other, server, "ask", started.json()["event_id"])
        assert kind == "complete", data
        for response in accepted:
            assert result(hog, server, "ask", response.json()["event_id"])[0] == "complete"


def test_a_file_the_queue_refuses_stays_in_the_drop_zone_and_can_be_sent_again(server: HostedServer,
                                                                              video: Path) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    sessions = [uuid.uuid4().hex, uuid.uuid4().hex]
    with client_from("127.0.0.1") as http, playwright.sync_playwright() as driver, ThreadPoolExecutor(2) as pool:
        for session in sessions:
            rest_upload(http, server, video, session)
        # This address's two jobs: one answer running, one waiting (the server runs one at a time).
        jobs = [call(http, server, "ask", ask_data("Describe every frame in detail.", 300), session)
                for session in sessions]
        assert [job.status_code for job in jobs] == [200, 200]
        answers = [pool.submit(result, http, server, "ask", job.json()["event_id"]) for job in jobs]
        browser = driver.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        try:
            tab = browser.new_page()
            tab.goto(server.url, wait_until="domcontentloaded")
            tab.locator("#media-upload input[type=file]").set_input_files(str(video))
            expect = playwright.expect
            # The third job of the address is refused before the queue; the file is not lost.
            expect(tab.get_by_text("already have 2 requests waiting or running")).to_be_visible(timeout=30_000)
            expect(tab.locator("#media-upload")).to_contain_text(video.stem)  # the file is still listed there
            expect(tab.locator("#retry-file")).to_be_visible()
            for answer in answers:  # the address's answers end
                kind, data = answer.result()
                assert kind == "complete", data
            tab.locator("#retry-file").click()
            expect(tab.locator("#status")).to_contain_text(video.name, timeout=60_000)  # read: the chat is about it
            expect(tab.locator("#retry-file")).to_be_hidden()
        finally:
            browser.close()
