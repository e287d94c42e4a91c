"""The OpenAI chat API on the app's own server, driven by the real `openai` client over loopback."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests import media_factory
from tests.ui.conftest import LiveApp, engine_answers, free_port
from videollama_demo import Pipeline
from videollama_demo.ui import UIOptions, build_demo, launch_demo
from videollama_demo.ui.api import ApiError, ModelGate

KEY = "test-key-7f3a"
SHORT = {"temperature": 0.0, "max_new_tokens": 12}
README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def keyed_app(preview_pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app with `--api-key`: its base URL for the OpenAI client."""
    options = UIOptions(port=free_port(), api_key=KEY, examples_dir=tmp_path_factory.mktemp("examples"))
    demo = build_demo(preview_pipeline, options)
    _, url, _ = launch_demo(demo, options, prevent_thread_lock=True, quiet=True)
    yield url.rstrip("/") + "/v1"
    demo.close()


@pytest.fixture(scope="module")
def client(keyed_app: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=keyed_app, api_key=KEY, max_retries=0, timeout=120)


def data_url(path: Path, mime: str = "video/mp4") -> str:
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def video_message(path: Path, question: str) -> dict:
    return {"role": "user", "content": [{"type": "video_url", "video_url": {"url": data_url(path)}},
                                        {"type": "text", "text": question}]}


def test_models_lists_the_loaded_preset(client: openai.OpenAI) -> None:
    assert [model.id for model in client.models.list()] == ["preview"]


def test_non_streaming_answer_is_the_engines(client: openai.OpenAI, preview_pipeline: Pipeline,
                                            shared_media: dict[str, Path]) -> None:
    question = "What happens in this video?"
    expected = engine_answers(preview_pipeline, shared_media["video"], [question], SHORT)[0]
    answer = client.chat.completions.create(model="preview", messages=[video_message(shared_media["video"], question)],
                                            temperature=0, max_tokens=12)
    assert answer.object == "chat.completion" and answer.model == "preview"
    assert answer.choices[0].message.role == "assistant" and answer.choices[0].message.content == expected
    assert answer.choices[0].finish_reason in ("stop", "length")
    assert answer.usage.completion_tokens >= 1 and answer.usage.prompt_tokens > 32  # the video's 32 tokens and more


def test_streaming_sends_openai_chunks_then_done(client: openai.OpenAI, preview_pipeline: Pipeline,
                                                 shared_media: dict[str, Path]) -> None:
    question = "Describe the picture."
    expected = engine_answers(preview_pipeline, shared_media["image"], [question], SHORT)[0]
    message = {"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": data_url(shared_media["image"], "image/png")}},
        {"type": "text", "text": question}]}
    chunks = list(client.chat.completions.create(model="preview", messages=[message], stream=True,
                                                 temperature=0, max_tokens=12))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert len(chunks) > 3 and len({chunk.id for chunk in chunks}) == 1
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks).strip() == expected


def test_a_follow_up_turn_answers_as_the_same_conversation_would(client: openai.OpenAI, preview_pipeline: Pipeline,
                                                                 shared_media: dict[str, Path]) -> None:
    first, second = "What is in the video?", "What colours do you see?"
    expected = engine_answers(preview_pipeline, shared_media["video"], [first, second], SHORT)
    messages = [video_message(shared_media["video"], first), {"role": "assistant", "content": expected[0]},
                {"role": "user", "content": second}]
    answer = client.chat.completions.create(model="preview", messages=messages, temperature=0, max_tokens=12)
    assert answer.choices[0].message.content == expected[1]


def test_a_bad_video_is_a_400_with_the_media_error(client: openai.OpenAI, tmp_path: Path) -> None:
    broken = media_factory.make_random_bytes(tmp_path / "broken.mp4")
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="preview", messages=[video_message(broken, "What is it?")])
    assert refused.value.status_code == 400
    error = refused.value.body
    assert error["code"] == "invalid_media" and "is not a video or image file that can be read" in error["message"]


@pytest.mark.parametrize("url, says", [
    ("data:video/mp4;base64,not*base64!", "not valid base64"),
    ("data:video/mp4,plain-text", "must be base64"),
    ("/etc/passwd", "local paths are refused"),
    ("file:///etc/passwd", "local paths are refused"),
    ("https://example.com/clip.mp4", "does not fetch URLs"),
])
def test_bad_media_urls_are_400s(client: openai.OpenAI, url: str, says: str) -> None:
    message = {"role": "user", "content": [{"type": "video_url", "video_url": {"url": url}},
                                           {"type": "text", "text": "What is it?"}]}
    with pytest.raises(openai.BadRequestError, match=says) as refused:
        client.chat.completions.create(model="preview", messages=[message])
    assert refused.value.body["type"] == "invalid_request_error"


def test_a_request_without_media_or_too_long_is_a_400(client: openai.OpenAI, shared_media: dict[str, Path]) -> None:
    with pytest.raises(openai.BadRequestError, match="one video or image"):
        client.chat.completions.create(model="preview", messages=[{"role": "user", "content": "Hi"}])
    with pytest.raises(openai.BadRequestError, match="too long for the model") as refused:
        client.chat.completions.create(model="preview",
                                       messages=[video_message(shared_media["video"], "why " * 3000)])
    assert refused.value.body["code"] == "context_length_exceeded"


def test_a_missing_or_wrong_key_is_a_401(keyed_app: str) -> None:
    for key in ("none", KEY + "x"):
        stranger = openai.OpenAI(base_url=keyed_app, api_key=key, max_retries=0)
        with pytest.raises(openai.AuthenticationError) as refused:
            stranger.models.list()
        assert refused.value.status_code == 401 and refused.value.body["code"] == "invalid_api_key"
    bare = httpx.post(f"{keyed_app}/chat/completions", json={"messages": []})
    assert bare.status_code == 401 and bare.json()["error"]["code"] == "invalid_api_key"


def test_without_a_key_the_routes_are_open(live_app: LiveApp) -> None:
    models = httpx.get(live_app.url.rstrip("/") + "/v1/models")
    assert models.status_code == 200 and models.json()["data"][0]["id"] == "preview"


def test_the_gate_refuses_with_429_when_its_queue_is_full() -> None:
    gate = ModelGate(concurrency=1, max_waiting=1)
    holding, waiting_started, release = threading.Event(), threading.Event(), threading.Event()

    def hold() -> None:
        with gate.slot():
            holding.set()
            release.wait(10)

    def wait() -> None:
        waiting_started.set()
        with gate.slot(refuse_when_full=True):
            pass

    threads = [threading.Thread(target=hold), threading.Thread(target=wait)]
    threads[0].start()
    holding.wait(5)
    threads[1].start()
    waiting_started.wait(5)
    while gate._waiting < 1:  # the second request is queued behind the first
        threading.Event().wait(0.01)
    with pytest.raises(ApiError) as refused:
        with gate.slot(refuse_when_full=True):
            pass
    assert refused.value.status == 429 and refused.value.code == "queue_full"
    release.set()
    for thread in threads:
        thread.join(10)
    with gate.slot(refuse_when_full=True):  # free again
        pass


def test_the_readme_client_example_runs_as_written(keyed_app: str, shared_media: dict[str, Path],
                                                  tmp_path: Path) -> None:
    code = _readme_block("openai import OpenAI")
    assert 'base_url="http://127.0.0.1:7860/v1"' in code and 'open("clip.mp4", "rb")' in code
    # Only the address and the key differ: this server listens on a free port and wants a key.
    code = code.replace("http://127.0.0.1:7860/v1", keyed_app).replace('api_key="none"', f'api_key="{KEY}"')
    (tmp_path / "clip.mp4").write_bytes(shared_media["video"].read_bytes())
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env=os.environ | {"OPENAI_BASE_URL": "", "OPENAI_API_KEY": ""})
    assert run.returncode == 0, run.stderr
    assert len(run.stdout.strip()) > 0


def _readme_block(marker: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    found = [block for block in blocks if marker in block]
    assert len(found) == 1, f"one README python block with {marker!r}"
    return found[0]
