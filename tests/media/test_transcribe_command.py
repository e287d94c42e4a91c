"""`python -m videollama_demo transcribe FILE` run as a user runs it: a real espeak-ng talk in,
the recognized cues out in each format; bad input gives one line and status 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.speech_factory import Talk, make_talk, word_error_rate
from videollama_demo.media.subtitles import parse_subtitles

REPO = Path(__file__).resolve().parents[2]
FIRST = "Please open the window in the kitchen."
SECOND = "My sister likes to read books in the garden."


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "videollama_demo", "transcribe", *args], capture_output=True,
                          text=True, timeout=300, cwd=REPO, env=env)


@pytest.fixture(scope="module")
def talk(tmp_path_factory: pytest.TempPathFactory) -> Talk:
    return make_talk(tmp_path_factory.mktemp("cli") / "talk.mp4", [0.5, FIRST, 3.0, SECOND, 0.5])


def test_srt_on_stdout_is_the_speech_with_its_times(talk: Talk) -> None:
    result = run_cli(str(talk.path))
    assert result.returncode == 0, result.stderr
    cues = parse_subtitles(result.stdout)
    assert word_error_rate(talk.text, " ".join(cue.text for cue in cues)) <= 0.25, result.stdout
    second = next(cue for cue in cues if "garden" in cue.text.lower())
    assert abs(second.start - talk.sentences[1].start) <= 1.0 and abs(second.end - talk.sentences[1].end) <= 1.0


def test_json_and_vtt(talk: Talk) -> None:
    as_json = run_cli(str(talk.path), "--format", "json", "--asr-language", "en")
    assert as_json.returncode == 0, as_json.stderr
    records = json.loads(as_json.stdout)
    assert {"start", "end", "text"} <= set(records[0]) and "window" in records[0]["text"].lower()
    as_vtt = run_cli(str(talk.path), "--format", "vtt")
    assert as_vtt.stdout.startswith("WEBVTT") and "kitchen" in as_vtt.stdout.lower()


def test_a_broken_file_and_a_missing_model_are_one_line_each(tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 100)
    result = run_cli(str(broken))
    assert result.returncode == 1 and result.stderr.startswith("error: ") and result.stdout == ""
    missing = run_cli(str(broken), "--asr-model", "large-v3")
    assert missing.returncode == 1 and "not on disk" in missing.stderr and "Traceback" not in missing.stderr
