"""The page's API through `gradio_client`, against the live app with the preview model.

Every answer is greedy, so the reference is the same conversation run through the engine alone:
the page must show exactly what the engine says, per session, whatever else is running.
"""

from __future__ import annotations

import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gradio as gr
import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from tests.ui.conftest import GREEDY, LiveApp, engine_answers, message_text, transcript
from videollama_demo.ui.actions import PageActions

UPLOAD_OUTPUTS = ("chat", "video", "image", "frames", "seen", "status", "transcript", "drop_zone")


def upload(client: Client, path: Path, **settings) -> dict:
    return dict(zip(UPLOAD_OUTPUTS, client.predict(handle_file(str(path)), **settings, api_name="/upload"),
                    strict=True))


def ask(client: Client, question: str, **sampling) -> list[list[dict]]:
    """Every streamed update of the conversation while `question` is answered."""
    job = client.submit(question, **(GREEDY | sampling), api_name="/ask")
    updates = list(job)
    error = job.exception()  # iterating a job that failed ends quietly; the error is kept here
    if error is not None:
        raise error
    return updates


def official_frame_times(num_total: int, fps: float, num_frames: int) -> list[str]:
    """Spec §1.1: frame i of n is floor(i * N / n); its time is index / fps, shown to 0.1 s."""
    return [f"{round(math.floor(i * num_total / num_frames) / fps, 1):.1f} s" for i in range(num_frames)]


def test_the_readme_client_example_streams_an_answer(live_app: LiveApp, shared_media: dict[str, Path]) -> None:
    # The exact flow the README shows.
    client = Client(live_app.url, verbose=False)
    client.predict(handle_file(str(shared_media["video"])), api_name="/upload")
    shown = ""
    pieces = []
    for history in client.submit("What happens in this video?", temperature=0, max_new_tokens=12, api_name="/ask"):
        text = history[-1]["content"][0]["text"] if history[-1]["role"] == "assistant" else ""
        pieces.append(text[len(shown):])
        shown = text
    client.close()
    assert len([piece for piece in pieces if piece]) >= 3  # streamed, not one block
    assert shown.strip()


def test_upload_ask_and_follow_up_match_the_engine(client: Client, preview_pipeline,
                                                   shared_media: dict[str, Path]) -> None:
    video = shared_media["video"]
    shown = upload(client, video)
    assert shown["chat"] == [] and shown["drop_zone"] is None
    assert shown["video"]["value"].endswith("clip.mp4") and shown["video"]["visible"] is True
    assert [item["caption"] for item in shown["frames"]] == official_frame_times(75, 25.0, 8)
    assert "**Audio: used**, 8 clips" in shown["seen"]

    questions = ["What is in the video?", "What colours do you see?"]
    first, second = engine_answers(preview_pipeline, video, questions)
    updates = ask(client, questions[0])
    texts = [message_text(history[-1]) for history in updates if history[-1]["role"] == "assistant"]
    assert len(set(texts)) >= 3 and all(later.startswith(earlier.rstrip()) for earlier, later in zip(texts, texts[1:]))
    assert transcript(updates[-1]) == [("user", questions[0]), ("assistant", first)]

    updates = ask(client, questions[1])
    assert transcript(updates[0])[-1] == ("user", questions[1])  # the question shows before the answer
    assert transcript(updates[-1]) == [("user", questions[0]), ("assistant", first),
                                       ("user", questions[1]), ("assistant", second)]


def test_stop_mid_answer_then_ask_again(client: Client, shared_media: dict[str, Path]) -> None:
    upload(client, shared_media["video"])
    job = client.submit("Describe every frame in detail.", **(GREEDY | {"max_new_tokens": 300}), api_name="/ask")
    for count, _ in enumerate(job, start=1):
        if count == 4:
            job.cancel()  # as a closed tab or Stop does: the answer ends at its next token
            break
    final = ask(client, "Say it shorter.")[-1]
    roles_and_texts = transcript(final)
    assert [role for role, _ in roles_and_texts] == ["user", "assistant", "user", "assistant"]
    assert roles_and_texts[1][1].endswith("*(stopped)*")
    assert roles_and_texts[3][1] and not roles_and_texts[3][1].endswith("*(stopped)*")


def test_the_stop_endpoint_marks_the_running_answer_stopped(client: Client, live_app: LiveApp,
                                                            shared_media: dict[str, Path]) -> None:
    upload(client, shared_media["video"])
    job = client.submit("Describe every frame in detail.", **(GREEDY | {"max_new_tokens": 300}), api_name="/ask")
    while len(job.outputs()) < 3:
        time.sleep(0.05)
    after_stop = client.predict(api_name="/stop")
    assert message_text(after_stop[-1]).endswith("*(stopped)*")
    assert transcript(job.result()) == transcript(after_stop)  # the stream itself ended with the same history
    assert len(message_text(after_stop[-1]).split()) < 150


def test_undo_regenerate_and_reset_roll_back_the_session(client: Client, preview_pipeline,
                                                          shared_media: dict[str, Path]) -> None:
    video = shared_media["video"]
    questions = ["Who is there?", "What happens next?"]
    first, second = engine_answers(preview_pipeline, video, questions)
    upload(client, video)
    ask(client, questions[0])
    ask(client, "A question to undo.")
    history, question_back = client.predict(api_name="/undo")
    assert question_back == "A question to undo."
    assert transcript(history) == [("user", questions[0]), ("assistant", first)]
    # The undone turn is gone from the model's context too: the next answer is the engine's second one.
    assert transcript(ask(client, questions[1])[-1])[-1] == ("assistant", second)

    regenerated = client.predict(**GREEDY, api_name="/regenerate")
    assert transcript(regenerated)[-2:] == [("user", questions[1]), ("assistant", second)]
    assert len(regenerated) == 4

    assert client.predict(api_name="/reset") == []
    # A new conversation about the same file: the first question gets the first answer again.
    assert transcript(ask(client, questions[0])[-1]) == [("user", questions[0]), ("assistant", first)]


def test_a_refused_file_keeps_the_conversation(client: Client, shared_media: dict[str, Path]) -> None:
    upload(client, shared_media["video"])
    before = transcript(ask(client, "What is this?")[-1])
    with pytest.raises(AppError, match="broken.mp4' is not a video or image file that can be read"):
        upload(client, shared_media["broken"])
    after = transcript(ask(client, "Tell me more.")[-1])
    assert after[:2] == before and len(after) == 4


def test_empty_question_and_question_before_upload_do_not_call_the_model(client: Client,
                                                                          shared_media: dict[str, Path]) -> None:
    with pytest.raises(AppError, match="Upload a video or an image first"):
        ask(client, "What is this?")
    upload(client, shared_media["image"])
    start = time.monotonic()
    with pytest.raises(AppError, match="Type a question first"):
        ask(client, "   ")
    assert time.monotonic() - start < 5
    final = transcript(ask(client, "What is this?")[-1])
    assert [role for role, _ in final] == ["user", "assistant"]  # no empty turn was added


def test_what_the_user_is_told_is_one_log_line_not_a_traceback(client: Client, shared_media: dict[str, Path],
                                                                capfd: pytest.CaptureFixture[str],
                                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="videollama_demo")
    capfd.readouterr()
    with pytest.raises(AppError, match="Upload a video or an image first"):  # raised by the page's own check
        ask(client, "What is this?")
    with pytest.raises(AppError, match="is not a video or image file that can be read"):  # a MediaError
        upload(client, shared_media["broken"])
    with pytest.raises(AppError, match="Drop a video first"):  # raised by the page's own check
        client.predict("00:00:01.000 --> 00:00:02.000 hello", True, 8, False, 4, api_name="/apply_transcript")
    printed = capfd.readouterr().err
    assert "Traceback" not in printed, printed
    refusals = [record.getMessage() for record in caplog.records if record.getMessage().startswith("refused")]
    assert len(refusals) == 3 and all(record.exc_info is None for record in caplog.records), refusals


def test_settings_and_media_kinds_show_what_the_model_saw(client: Client, shared_media: dict[str, Path]) -> None:
    shown = upload(client, shared_media["other_video"], use_audio=False, num_frames=5)
    assert [item["caption"] for item in shown["frames"]] == official_frame_times(120, 30.0, 5)
    assert "**Audio: not used.** Audio is turned off" in shown["seen"]

    shown = upload(client, shared_media["mute"])
    assert "**Audio: not used.** The file has no audio track" in shown["seen"]

    shown = upload(client, shared_media["image"])
    assert [item["caption"] for item in shown["frames"]] == ["the image"]
    assert shown["image"]["visible"] is True and shown["video"]["visible"] is False
    assert "photo.png" in shown["status"]


def test_two_sessions_at_once_never_see_each_other(live_app: LiveApp, preview_pipeline,
                                                   shared_media: dict[str, Path]) -> None:
    plans = {"video": "What is moving here?", "other_video": "Which colours appear?"}
    longer = GREEDY | {"max_new_tokens": 24}  # long enough for the two answers to overlap
    alone = {name: engine_answers(preview_pipeline, shared_media[name], [question], longer)[0]
             for name, question in plans.items()}
    assert alone["video"] != alone["other_video"]  # otherwise a mix-up could go unnoticed

    def converse(name: str) -> tuple[list[tuple[str, str]], float, float]:
        session = Client(live_app.url, verbose=False)
        try:
            upload(session, shared_media[name])
            job = session.submit(plans[name], **longer, api_name="/ask")
            updates = [(time.monotonic(), history) for history in job]
            return transcript(updates[-1][1]), updates[0][0], updates[-1][0]
        finally:
            session.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(plans, pool.map(converse, plans)))
    for name, question in plans.items():
        assert results[name][0] == [("user", question), ("assistant", alone[name])]
    (_, start_a, end_a), (_, start_b, end_b) = results.values()
    assert start_a < end_b and start_b < end_a  # the two answers really streamed at the same time


def test_the_same_file_again_comes_from_the_cache(client: Client, shared_media: dict[str, Path]) -> None:
    first = upload(client, shared_media["other_video"], num_frames=3)
    again = upload(client, shared_media["other_video"], num_frames=3)
    assert "From cache" not in first["seen"] or "From cache" in again["seen"]  # another test may have been first
    assert "From cache" in again["seen"]
    assert again["frames"] == first["frames"] or [f["caption"] for f in again["frames"]] == \
        [f["caption"] for f in first["frames"]]


def call_raw(url: str, api_name: str, data: list) -> list[tuple[str, str]]:
    """One call through Gradio's HTTP API with exactly this JSON (gradio_client would upload a local
    path itself, so it cannot send a server path): the (event, data) lines of the answer stream."""
    started = httpx.post(f"{url}gradio_api/call/{api_name}", json={"data": data}, timeout=30)
    started.raise_for_status()
    lines = []
    with httpx.stream("GET", f"{url}gradio_api/call/{api_name}/{started.json()['event_id']}", timeout=60) as stream:
        for line in stream.iter_lines():
            if line.startswith(("event:", "data:")):
                lines.append(tuple(part.strip() for part in line.split(":", 1)))
    return lines


@pytest.mark.parametrize("server_path", ["/etc/passwd", "../app.py", "app.py", str(Path(__file__).resolve())])
def test_a_server_path_instead_of_an_upload_is_refused(live_app: LiveApp, server_path: str) -> None:
    """A client may send any JSON where a browser sends an upload: no file of the server is read."""
    forged = {"path": server_path, "meta": {"_type": "gradio.FileData"}, "orig_name": "clip.mp4"}
    answer = call_raw(live_app.url, "upload", [forged, True, 8, False, 0, False, None])
    assert ("event", "error") in answer and ("event", "complete") not in answer
    assert not any("root:" in text or "import" in text for _, text in answer)


@pytest.mark.parametrize("server_path", ["/etc/passwd", "../app.py", "/tmp/../etc/hostname"])
def test_the_page_itself_reads_only_uploads_and_examples(preview_pipeline, tmp_path: Path, server_path: str) -> None:
    """Defence in depth: even if Gradio let a path through, the page refuses it before any read."""
    examples = tmp_path / "examples"
    actions = PageActions(preview_pipeline, examples)
    with pytest.raises(gr.Error, match="did not come from an upload on this page"):
        actions.uploaded_file(server_path)
    examples.mkdir()
    (examples / "ok.jpg").write_bytes(b"x")
    assert actions.uploaded_file(str(examples / "ok.jpg")) == str((examples / "ok.jpg").resolve())
