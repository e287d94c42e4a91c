"""Host limits through the real server: upload size, video length, and no code path for user text."""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from tests import media_factory as factory
from tests.ui.conftest import LiveApp, free_port
from videollama_demo import Pipeline
from videollama_demo.ui import UIOptions, build_demo, launch_demo

PACKAGE = Path(__file__).resolve().parents[2] / "videollama_demo"


@pytest.fixture(scope="module")
def strict_app(preview_pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    """The app as a cautious host runs it: 60 KB uploads at most."""
    options = UIOptions(port=free_port(), max_file_size="60kb", examples_dir=tmp_path_factory.mktemp("examples"))
    demo = build_demo(preview_pipeline, options)
    _, url, _ = launch_demo(demo, options, prevent_thread_lock=True, quiet=True)
    yield LiveApp(url, options)
    demo.close()


def test_an_upload_over_the_size_limit_is_refused_with_the_limit(strict_app: LiveApp, tmp_path: Path) -> None:
    big = tmp_path / "big.mp4"
    big.write_bytes(os.urandom(100_000))  # refused by its size alone, before anything reads it
    client = Client(strict_app.url, verbose=False)
    try:
        with pytest.raises(Exception, match=r"(?i)exceeds the maximum file size|too large|60"):
            client.predict(handle_file(str(big)), api_name="/upload")
        small = factory.make_image(tmp_path / "small.png", mode="RGB")
        assert small.stat().st_size < 60_000
        shown = client.predict(handle_file(str(small)), api_name="/upload")
        assert "small.png" in shown[5]  # the status line names the file: the server still serves
    finally:
        client.close()


def test_a_video_over_the_length_limit_is_refused_on_the_page(strict_app: LiveApp, preview_pipeline: Pipeline,
                                                             tmp_path: Path) -> None:
    clip = factory.make_video(tmp_path / "four_seconds.mp4", seconds=4, size=(32, 24))
    client = Client(strict_app.url, verbose=False)
    limit, preview_pipeline.max_seconds = preview_pipeline.max_seconds, 3.0
    try:
        with pytest.raises(AppError, match=r"is 4\.0 s long; this server accepts videos up to 3\.0 s"):
            client.predict(handle_file(str(clip)), api_name="/upload")
    finally:
        preview_pipeline.max_seconds = limit
        client.close()


def test_no_module_can_execute_or_evaluate_text() -> None:
    """User text reaches the model only as tokens: the package has no eval/exec/shell/pickle-of-input path."""
    forbidden_calls = {"eval", "exec", "compile", "__import__"}
    findings = []
    for source in PACKAGE.rglob("*.py"):
        tree = ast.parse(source.read_text(), filename=str(source))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if isinstance(node.func, ast.Name) and name in forbidden_calls:  # the builtins, not re.compile
                    findings.append(f"{source.name}:{node.lineno} {name}()")
                if any(keyword.arg == "shell" and getattr(keyword.value, "value", False) is True
                       for keyword in node.keywords):
                    findings.append(f"{source.name}:{node.lineno} shell=True")
                if name == "system" and getattr(node.func, "value", None) is not None:
                    findings.append(f"{source.name}:{node.lineno} os.system")
    assert findings == []
