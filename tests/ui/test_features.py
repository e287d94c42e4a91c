"""Beyond eight frames, through the page's API: subtitles (file, edited transcript), long-video
mode and its budget line, and questions about a span. Each answer must be the engine's own
answer for the same reading of the file, so the page really passes every option through."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from tests import media_factory as factory
from tests.ui.conftest import GREEDY, message_text, transcript
from tests.ui.test_api import UPLOAD_OUTPUTS, ask
from videollama_demo import Pipeline, Reading
from videollama_demo.media.subtitles import parse_transcript

SRT = "1\n00:00:00,200 --> 00:00:01,000\nHello there.\n\n2\n00:00:02,000 --> 00:00:02,900\nThe dog barks.\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("features")
    srt = directory / "clip.srt"
    srt.write_text(SRT)
    return {
        "srt": srt,
        "video": factory.make_video(directory / "talk.mp4", seconds=3, audio="sine"),
        # 75 s: long enough for long-video mode to cut it; tiny frames keep it fast.
        "long": factory.make_video(directory / "long.mp4", seconds=75, fps=2, size=(32, 24), audio="sine"),
    }


def upload(client: Client, path: Path, **reading) -> dict:
    shown = client.predict(handle_file(str(path)), **reading, api_name="/upload")
    return dict(zip(UPLOAD_OUTPUTS, shown, strict=True))


def engine_answer(pipeline: Pipeline, path: Path, question: str, clip_options: dict | None = None,
                  **reading_options) -> str:
    """The engine's own answer: the page's default reading (audio on, 8 frames) changed by
    `reading_options` (a `Reading`'s fields); `clip_options` go to `Pipeline.question_clip`."""
    session = pipeline.new_session()
    media = session.add_media(pipeline.encode(path, Reading(use_audio=True, num_frames=8, **reading_options)))
    clip = pipeline.question_clip(media, question, **clip_options) if clip_options else None
    reply = session.ask(question, clip=clip, **GREEDY)
    "".join(reply)
    return reply.text


def last_answer(history: list[dict]) -> str:
    """The answer's text, without the links the page puts on the times it mentions."""
    return re.sub(r"<a [^>]*>([^<]*)</a>", r"\1", message_text(history[-1]))


def test_a_subtitle_file_goes_into_the_prompt_and_the_transcript_can_be_edited(
        client: Client, preview_pipeline: Pipeline, files: dict[str, Path]) -> None:
    upload(client, files["video"])
    # An API client sends the .srt as text (the page's .srt box is for browsers).
    shown = dict(zip(UPLOAD_OUTPUTS, client.predict(files["srt"].read_text(), True, 8, False, 0,
                                                    api_name="/apply_transcript"), strict=True))
    assert "Hello there." in shown["transcript"] and "The dog barks." in shown["transcript"]
    assert "**Subtitles:** 12 of 12 words go into the prompt" in shown["seen"]
    question = "What does the person say?"
    page_answer = last_answer(ask(client, question)[-1])
    assert page_answer == engine_answer(preview_pipeline, files["video"], question,
                                        subtitles="given", cues=tuple(parse_transcript(SRT)))

    edited = shown["transcript"].replace("The dog barks.", "The cat sleeps quietly.")
    after = dict(zip(UPLOAD_OUTPUTS, client.predict(edited, True, 8, False, 0, api_name="/apply_transcript"),
                     strict=True))
    assert "cat sleeps quietly" in after["transcript"] and after["chat"] == []
    assert "**Subtitles:** 14 of 14 words" in after["seen"]
    page_answer = last_answer(ask(client, question)[-1])
    assert page_answer == engine_answer(preview_pipeline, files["video"], question,
                                        subtitles="given", cues=tuple(parse_transcript(edited)))


def test_a_transcript_without_timings_is_refused_and_the_conversation_stays(client: Client,
                                                                            files: dict[str, Path]) -> None:
    upload(client, files["video"])
    before = transcript(ask(client, "What is this?")[-1])
    with pytest.raises(AppError, match="no lines like"):
        client.predict("just some words", True, 8, False, 0, api_name="/apply_transcript")
    assert transcript(ask(client, "And then?")[-1])[:2] == before


def test_long_video_mode_shows_its_budget_then_reads_segments(client: Client, preview_pipeline: Pipeline,
                                                              files: dict[str, Path]) -> None:
    official = upload(client, files["long"])
    assert "**Long-video mode would read:**" in official["seen"] and len(official["frames"]) == 8
    segmented = upload(client, files["long"], long_video=True, segments=3)
    assert "**Long-video mode:** 3 segments, each an official 8-frame clip: 0:00–0:25, 0:25–0:50, 0:50–1:15." \
        in segmented["seen"]
    assert len(segmented["frames"]) == 24
    question = "What changes over time?"
    assert last_answer(ask(client, question)[-1]) == engine_answer(preview_pipeline, files["long"], question,
                                                                    long_video=True, segments=3)


def test_a_question_about_a_span_is_answered_from_that_span(client: Client, preview_pipeline: Pipeline,
                                                            files: dict[str, Path]) -> None:
    upload(client, files["long"])
    question = "What happens here?"
    history = ask(client, question, time_from="0:10", time_to="0:20", times_in_question=False)[-1]
    assert "(answered from frames of 0:10–0:20)" in message_text(history[0])
    assert last_answer(history) == engine_answer(preview_pipeline, files["long"], question,
                                                 {"time_range": (10.0, 20.0)})
    written = "What happens between 0:30 and 0:40?"
    history = ask(client, written, time_from="", time_to="", times_in_question=True)[-1]
    assert "(answered from frames of 0:30–0:40)" in message_text(history[-2])
    with pytest.raises(AppError, match="ends .* before it starts"):
        ask(client, question, time_from="0:20", time_to="0:10")
