"""The app served in-process around the session's preview pipeline, and helpers to talk to it.

One server for the whole UI suite (`live_app`); each test opens its own `gradio_client.Client`,
which is one browser-tab-like session with its own state.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from gradio_client import Client

from videollama_demo import Pipeline, Reading
from videollama_demo.ui import HostLimits, UIOptions, build_demo, launch_demo

# Greedy and short: answers are deterministic and each takes about a second on a CPU.
GREEDY = {"temperature": 0.0, "top_p": 0.9, "max_new_tokens": 12, "repetition_penalty": 1.0}


@dataclass(frozen=True)
class LiveApp:
    url: str
    options: UIOptions


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def live_app(preview_pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    # Two model jobs at once, so concurrent sessions really interleave their answers token by token.
    # Many sessions from one address (127.0.0.1) stand for many users here: no per-address job cap.
    options = UIOptions(port=free_port(), concurrency=2, queue_size=16, limits=HostLimits(jobs_per_client=16),
                        examples_dir=tmp_path_factory.mktemp("examples"))
    demo = build_demo(preview_pipeline, options)
    _, url, _ = launch_demo(demo, options, prevent_thread_lock=True, quiet=True)
    yield LiveApp(url, options)
    demo.close()


@pytest.fixture
def client(live_app: LiveApp) -> Iterator[Client]:
    """A fresh session (like a new browser tab)."""
    session = Client(live_app.url, verbose=False)
    yield session
    session.close()


def message_text(message: dict) -> str:
    """The text of one chat message as the API returns it (content is a list of blocks in Gradio 6)."""
    return "".join(block["text"] for block in message["content"] if block["type"] == "text")


def transcript(history: list[dict]) -> list[tuple[str, str]]:
    return [(message["role"], message_text(message)) for message in history]


def engine_answers(pipeline: Pipeline, media: Path, questions: list[str], sampling: dict = GREEDY) -> list[str]:
    """The reference: the same questions asked through the engine alone, in a fresh session, with
    the page's default media settings (audio on, 8 frames)."""
    session = pipeline.new_session()
    session.add_media(pipeline.encode(media, Reading(use_audio=True, num_frames=8)))
    answers = []
    for question in questions:
        reply = session.ask(question, **sampling)
        for _ in reply:
            pass
        answers.append(reply.text)
    # The page escapes "<" for display; these references must not need it for a direct comparison.
    assert all("<" not in answer for answer in answers)
    return answers
