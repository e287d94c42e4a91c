"""Every kind of file the internet sends: a correct encode or a clear MediaError, in time,
and the conversation the user already had survives (issue 8)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from tests.robustness.corpus import CASES, Case, build_case
from videollama_demo import MediaError, Pipeline, load_pipeline

TIME_LIMIT_S = 30.0
GREEDY = dict(temperature=0, max_new_tokens=6)


@pytest.fixture(scope="module")
def tiny_pipeline(tiny_checkpoints: Path) -> Pipeline:
    return load_pipeline("tiny", checkpoints=tiny_checkpoints, device="cpu")


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("corpus")


def test_the_corpus_is_big_enough() -> None:
    assert len(CASES) >= 25
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_upload(case: Case, tiny_pipeline: Pipeline, corpus_dir: Path, shared_media: dict[str, Path]) -> None:
    path = build_case(case, corpus_dir / case.name.replace(" ", "_"))
    session = tiny_pipeline.new_session()
    session.add_media(tiny_pipeline.encode(shared_media["video"]))
    "".join(session.ask("What happens?", **GREEDY))
    before = [(turn.question, turn.answer) for turn in session.turns]

    started = time.monotonic()
    try:
        encoding = session.add_media(tiny_pipeline.encode(path))
    except MediaError as err:
        elapsed = time.monotonic() - started
        assert case.outcome in ("error", "either"), f"{case.name} should encode but raised: {err}"
        message = str(err)
        if case.phrases:
            assert any(phrase in message for phrase in case.phrases), message
        assert "Traceback" not in message and "/" not in message.split("'")[0]  # a sentence, not a path dump
        assert [(turn.question, turn.answer) for turn in session.turns] == before  # nothing lost
        assert "".join(session.ask("Still there?", **GREEDY)) is not None
    else:
        elapsed = time.monotonic() - started
        assert case.outcome in ("encode", "either"), f"{case.name} should be refused, but encoded"
        assert torch.isfinite(encoding.video).all()
        assert encoding.thumbnails.shape[0] == len(encoding.frame_times) >= 1
        if case.audio is not None:
            assert encoding.uses_audio == case.audio, encoding.audio_note
        assert session.turns == []  # a new upload starts a new conversation
    assert elapsed < TIME_LIMIT_S, f"{case.name} took {elapsed:.1f} s"


def test_a_video_over_the_length_limit_is_refused_before_decoding(tiny_pipeline: Pipeline,
                                                                 shared_media: dict[str, Path]) -> None:
    session = tiny_pipeline.new_session()
    limit, tiny_pipeline.max_seconds = tiny_pipeline.max_seconds, 2.0
    try:
        with pytest.raises(MediaError, match=r"is 3\.0 s long; this server accepts videos up to 2\.0 s"):
            session.add_media(tiny_pipeline.encode(shared_media["video"]))
    finally:
        tiny_pipeline.max_seconds = limit
    assert session.media is None
