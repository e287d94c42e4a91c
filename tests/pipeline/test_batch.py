"""Batch runs with real files and the preview model: rows, the report, resuming, bad files."""

from __future__ import annotations

import html
import json
import re
import time
from pathlib import Path

import pytest

from tests import media_factory
from videollama_demo import Pipeline
from videollama_demo.__main__ import main
from videollama_demo.pipeline.batch import (
    MODEL_VARY_REFUSED,
    BatchRunner,
    ResultStore,
    RunOptions,
    Setting,
    digest_of,
    expand_videos,
    parse_vary,
    pending_jobs,
    plan_jobs,
    read_questions,
)
from videollama_demo.pipeline.report import write_report

SHORT = RunOptions(temperature=0.0, max_new_tokens=8)
ROW_FIELDS = {"video", "digest", "question", "setting", "answer", "frame_times", "audio_used", "audio_note",
              "seconds", "tokens", "model", "preview", "error"}


def run_batch(pipeline: Pipeline, videos: list[Path], questions: Path, out: Path,
              vary: list[str] = ()) -> ResultStore:
    """What `python -m videollama_demo batch` does, around the already loaded preview pipeline."""
    out.mkdir(parents=True, exist_ok=True)
    store = ResultStore(out / "results.jsonl")
    digests = {video: digest_of(video) for video in videos}
    jobs = plan_jobs(videos, read_questions(questions), parse_vary(vary))
    BatchRunner(pipeline, store, out, SHORT, digests).run(pending_jobs(jobs, store, digests))
    write_report(store.rows, out)
    return store


@pytest.fixture(scope="module")
def three_videos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("batch_videos")
    return [media_factory.make_video(folder / "a.mp4", seconds=2),
            media_factory.make_video(folder / "b.mp4", seconds=3, audio=None),
            media_factory.make_video(folder / "c <&>.mp4", seconds=2, size=(128, 96))]


def write_questions(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_three_videos_two_questions_give_six_rows_a_report_and_a_rerun_does_no_model_work(
        preview_pipeline: Pipeline, three_videos: list[Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    questions = write_questions(tmp_path / "q.txt", ["What happens in the video?", "# a comment", "",
                                                     "What <b>colour</b> is it?"])
    out = tmp_path / "out"
    store = run_batch(preview_pipeline, three_videos, questions, out)

    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and rows == store.rows
    assert all(ROW_FIELDS <= row.keys() for row in rows)
    assert all(row["error"] is None and row["answer"] and row["tokens"] >= 1 for row in rows)
    assert all(row["model"] == "preview" and row["preview"] is True and len(row["frame_times"]) == 8 for row in rows)
    assert {(Path(r["video"]).name, r["question"]) for r in rows} == {
        (v.name, q) for v in three_videos for q in ("What happens in the video?", "What <b>colour</b> is it?")}
    by_name = {Path(r["video"]).name: r for r in rows}
    assert by_name["a.mp4"]["audio_used"] is True and by_name["a.mp4"]["audio_note"] is None
    assert by_name["b.mp4"]["audio_used"] is False and "no audio track" in by_name["b.mp4"]["audio_note"]
    digest = by_name["a.mp4"]["digest"]
    assert digest == digest_of(three_videos[0]) and digest.startswith("blake3:") and len(digest) == 7 + 64

    page = (out / "report.html").read_text()
    assert "Preview model: these answers are NOT about the videos." in page
    assert page.count("<h2>") == 3 and "c &lt;&amp;&gt;.mp4" in page and "What &lt;b&gt;colour&lt;/b&gt; is it?" in page
    assert page.count("data:image/jpeg;base64,") == 3  # one strip of frames per video, inside the page
    assert not re.search(r"(src|href)=['\"](?!data:)", page)  # nothing outside the file
    assert all(html.escape(row["answer"], quote=True) in page for row in rows)  # side by side, escaped

    # The same command again: everything is done, so the model is not even loaded.
    capsys.readouterr()
    started = time.perf_counter()
    status = main(["batch", *map(str, three_videos), "--questions", str(questions), "--out", str(out),
                   "--model", "preview", "--device", "cpu"])
    err = capsys.readouterr().err
    assert status == 0 and time.perf_counter() - started < 30  # loading the model alone takes longer
    assert "6 already in" in err and "[preview]" not in err  # the preview line is printed after loading
    assert (out / "results.jsonl").read_text().count("\n") == 6


def test_a_corrupt_file_is_one_error_row_and_the_run_goes_on(preview_pipeline: Pipeline, three_videos: list[Path],
                                                             tmp_path: Path) -> None:
    broken = media_factory.make_random_bytes(tmp_path / "broken.mp4")
    truncated = media_factory.make_truncated_copy(three_videos[0], tmp_path / "truncated.mp4", keep=0.02)
    questions = write_questions(tmp_path / "q.txt", ["What happens?"])
    store = run_batch(preview_pipeline, [broken, truncated, three_videos[0]], questions, tmp_path / "out")

    errors = [row for row in store.rows if row["error"]]
    assert {Path(row["video"]).name for row in errors} == {"broken.mp4", "truncated.mp4"}
    assert all(row["question"] is None and row["error"].startswith(("'broken.mp4'", "'truncated.mp4'"))
               for row in errors)  # the MediaError sentence names the file
    answered = [row for row in store.rows if row["answer"]]
    assert [Path(row["video"]).name for row in answered] == ["a.mp4"]
    assert "broken.mp4" in (tmp_path / "out" / "report.html").read_text()
    # The refused files count as done: a rerun has nothing left.
    again = plan_jobs([broken, truncated, three_videos[0]], read_questions(questions), [Setting()])
    assert pending_jobs(again, store, {v: digest_of(v) for v in [broken, truncated, three_videos[0]]}) == []


def test_vary_audio_answers_each_question_under_both_settings(preview_pipeline: Pipeline, three_videos: list[Path],
                                                             tmp_path: Path) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"question": "What do you hear?"}) + "\n"
                         + json.dumps({"question": "Only for b", "video": "b.mp4"}) + "\n")
    store = run_batch(preview_pipeline, three_videos[:1], questions, tmp_path / "out", vary=["audio=on,off"])
    assert [(row["question"], row["setting"]["audio"], row["audio_used"]) for row in store.rows] == [
        ("What do you hear?", True, True), ("What do you hear?", False, False)]
    page = (tmp_path / "out" / "report.html").read_text()
    assert "<th>audio=on frames=default</th><th>audio=off frames=default</th>" in page


def test_a_line_cut_by_a_crash_is_done_again_and_appending_goes_on(tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    done = {"video": "a.mp4", "digest": "d", "question": "q1", "setting": {"audio": True, "frames": None}}
    results.write_text(json.dumps(done) + "\n" + json.dumps(done | {"question": "q2"})[:30])
    store = ResultStore(results)
    assert [row["question"] for row in store.rows] == ["q1"]
    store.append(done | {"question": "q2"})
    assert [json.loads(line)["question"] for line in results.read_text().splitlines()[::2]] == ["q1", "q2"]
    assert [row["question"] for row in ResultStore(results).rows] == ["q1", "q2"]


def test_vary_parsing_and_its_refusals(tmp_path: Path) -> None:
    assert parse_vary(["audio=on,off", "frames=8,16"]) == [
        Setting(True, 8), Setting(True, 16), Setting(False, 8), Setting(False, 16)]
    assert parse_vary([]) == [Setting()]
    with pytest.raises(ValueError, match="one process holds one model") as refused:
        parse_vary(["model=video-llama-2-7b,preview"])
    assert str(refused.value) == MODEL_VARY_REFUSED
    with pytest.raises(ValueError, match="KEY one of audio, frames"):
        parse_vary(["speed=1,2"])
    with pytest.raises(ValueError, match="audio must be on or off"):
        parse_vary(["audio=maybe"])


def test_folders_expand_to_their_media_and_skip_the_output_folder(three_videos: list[Path], tmp_path: Path) -> None:
    folder = three_videos[0].parent
    out = folder / "out"
    (out / "frames").mkdir(parents=True, exist_ok=True)
    media_factory.make_image(out / "frames" / "strip.jpg")
    (folder / "notes.txt").write_text("not media")
    assert expand_videos([folder], skip=out) == sorted(three_videos)
