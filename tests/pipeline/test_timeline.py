"""The timeline (dense captioning): parts planned from the file's length, each described by the real
preview model from its own official clip, in order, covering the video; Stop keeps what is done."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests import media_factory
from videollama_demo import MediaError, Pipeline, Reading
from videollama_demo.media.cue_formats import format_cues_as
from videollama_demo.media.subtitles import parse_subtitles
from videollama_demo.pipeline.timeline import INSTRUCTION, split_evenly

GREEDY = dict(temperature=0, max_new_tokens=8)


@pytest.fixture(scope="module")
def two_minutes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Small and at 10 fps, so decoding costs little; the length is what the timeline is about.
    return media_factory.make_video(tmp_path_factory.mktemp("timeline") / "two_minutes.mp4", seconds=120, fps=10,
                                    size=(96, 72), audio="sine")


def test_split_evenly_covers_the_video_without_gaps() -> None:
    assert split_evenly(120.0, 4) == ((0.0, 30.0), (30.0, 60.0), (60.0, 90.0), (90.0, 120.0))
    spans = split_evenly(100.0, 3)
    assert spans[0][0] == 0.0 and spans[-1][1] == 100.0
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))


def test_plan_one_part_per_30_seconds_bounded_by_max_segments(preview_pipeline: Pipeline, two_minutes: Path,
                                                              tmp_path: Path) -> None:
    plan = preview_pipeline.plan_timeline(two_minutes)
    assert len(plan.spans) == 4 and plan.parallel == 1  # the local engine answers one at a time
    assert "4 part(s) of about 30 s" in plan.summary() and "s per part on this device" in plan.summary()
    assert len(preview_pipeline.plan_timeline(two_minutes, max_segments=3).spans) == 3
    ten = media_factory.make_video(tmp_path / "ten.mp4", seconds=600, fps=1, size=(64, 48), audio=None)
    assert len(preview_pipeline.plan_timeline(ten).spans) == 20
    with pytest.raises(ValueError, match="at least 1"):
        preview_pipeline.plan_timeline(two_minutes, max_segments=0)


def test_two_minutes_give_ordered_cues_covering_the_video_and_valid_webvtt(preview_pipeline: Pipeline,
                                                                           two_minutes: Path) -> None:
    cues = list(preview_pipeline.timeline(two_minutes, **GREEDY))
    assert len(cues) >= 4
    assert cues[0].start == 0.0 and cues[-1].end == pytest.approx(120.0, abs=0.1)
    assert all(a.end == b.start for a, b in zip(cues, cues[1:]))  # in order, no gap, no overlap
    assert all(cue.text.strip() and not cue.failed for cue in cues)

    # Each part's text is the model's answer to the instruction about that part's own clip.
    session = preview_pipeline.new_session()
    session.add_media(preview_pipeline.encode(two_minutes, Reading(time_range=(cues[1].start, cues[1].end))))
    reply = session.ask(INSTRUCTION, **GREEDY)
    assert "".join(reply) and reply.text == cues[1].text

    back = parse_subtitles(format_cues_as([cue.as_cue() for cue in cues], "vtt"))
    assert [(c.start, c.end, c.text) for c in back] == [
        (round(c.start, 3), round(c.end, 3), " ".join(c.text.split())) for c in cues]


def test_stop_in_the_middle_keeps_the_cues_done_so_far(preview_pipeline: Pipeline, two_minutes: Path) -> None:
    cancel = threading.Event()
    kept = []
    for cue in preview_pipeline.timeline(two_minutes, cancel=cancel, **GREEDY):
        kept.append(cue)
        cancel.set()  # Stop pressed once the first part is on screen
    assert [cue.index for cue in kept] == [0]
    assert kept[0].text.strip()

    # Closing the iterator is the other Stop; the engine is free afterwards.
    cues = preview_pipeline.timeline(two_minutes, max_segments=2, **GREEDY)
    first = next(cues)
    cues.close()
    assert first.index == 0
    assert next(iter(preview_pipeline.timeline(two_minutes, max_segments=2, **GREEDY))).text == first.text


def test_a_short_video_is_one_cue_and_an_image_a_clear_message(preview_pipeline: Pipeline,
                                                               shared_media: dict[str, Path]) -> None:
    (cue,) = preview_pipeline.timeline(shared_media["video"], **GREEDY)  # 3 s: one part, read officially
    assert (cue.start, cue.end) == (0.0, pytest.approx(3.0, abs=0.1)) and cue.text.strip()
    with pytest.raises(MediaError, match="needs a video, and this is an image"):
        preview_pipeline.plan_timeline(shared_media["image"])
    with pytest.raises(MediaError):
        preview_pipeline.plan_timeline(shared_media["broken"])


def test_a_part_that_cannot_be_read_says_so_and_the_others_go_on(preview_pipeline: Pipeline, two_minutes: Path,
                                                                 tmp_path: Path) -> None:
    # The header (moov first) still says 2 minutes, but the bytes of the last part are gone.
    whole = media_factory.make_video(tmp_path / "whole.mp4", seconds=120, fps=10, size=(96, 72), audio=None,
                                     faststart=True)
    cut = tmp_path / "cut.mp4"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    cues = list(preview_pipeline.timeline(cut, Reading(use_audio=False), **GREEDY))
    assert len(cues) == 4 and cues[-1].end == pytest.approx(120.0, abs=0.1)
    assert not cues[0].failed and cues[0].text.strip()
    assert cues[-1].failed and cues[-1].text.startswith("(This part could not be described:")


def test_the_timeline_command_prints_webvtt_and_a_progress_bar(two_minutes: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    from videollama_demo.__main__ import main

    args = ["timeline", str(two_minutes), "--checkpoints", str(tmp_path), "--device", "cpu", "--format", "vtt",
            "--max-segments", "2", "--max-new-tokens", "6", "--temperature", "0"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    cues = parse_subtitles(out)
    assert [(c.start, c.end) for c in cues] == [(0.0, 60.0), (60.0, 120.0)] and all(c.text for c in cues)
    assert "[preview]" in err and "[plan] Timeline of 2:00: 2 part(s)" in err and "2/2" in err
    assert main(["timeline", str(tmp_path / "missing.mp4"), "--checkpoints", str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith("error: ")
