"""The pure functions that turn engine state into what the page shows (videollama_demo/ui/view.py)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from videollama_demo import MediaEncoding, Turn
from videollama_demo.media import MediaInfo
from videollama_demo.ui import view


def _info(kind: str = "video", has_audio: bool = True) -> MediaInfo:
    return MediaInfo(path="/tmp/x", kind=kind, size_bytes=1000, width=320, height=240,
                     duration=6.0 if kind == "video" else None, fps=25.0 if kind == "video" else None,
                     num_frames=150 if kind == "video" else None, has_audio=has_audio,
                     video_codec="h264", audio_codec="aac" if has_audio else None,
                     audio_channels=2 if has_audio else None, audio_sample_rate=44100 if has_audio else None)


def _encoding(kind: str = "video", times: list[float] | None = None, audio: bool = True,
              audio_note: str | None = None, spans: list[tuple[float, float]] | None = None) -> MediaEncoding:
    times = [0.0] if kind == "image" else (times or [0.0, 1.5, 3.0])
    thumbnails = np.arange(len(times), dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 3), np.uint8)
    return MediaEncoding(
        kind=kind, video=torch.zeros(1, 2, 8), audio=torch.zeros(1, 2, 8) if audio else None,
        frame_indices=list(range(len(times))), frame_times=times, message="", thumbnails=thumbnails,
        audio_note=audio_note, clip_spans=spans or [], info=_info(kind, has_audio=audio or audio_note is None))


# -- chat history -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, shown", [
    ("plain words", "plain words"),
    ("<Video><ImageHere></Video> what?", "&lt;Video>&lt;ImageHere>&lt;/Video> what?"),
    ("a <b>bold</b> try", "a &lt;b>bold&lt;/b> try"),
    ("1 < 2 and `a<b` stays", "1 &lt; 2 and `a<b` stays"),
    ("```\n<div>\n```\nthen <p>", "```\n<div>\n```\nthen &lt;p>"),
    ("unclosed ```\n<x>", "unclosed ```\n<x>"),  # Markdown shows an unclosed fence verbatim too
    ("**markdown** stays", "**markdown** stays"),
])
def test_escape_markup_shows_tags_as_typed_outside_code(text: str, shown: str) -> None:
    assert view.escape_markup(text) == shown


def test_chat_messages_are_rebuilt_from_turns_in_order() -> None:
    turns = [Turn("What is it?", "A dog."), Turn("And <Video>?", "It runs", stopped=True)]
    assert view.chat_messages(turns) == [
        {"role": "user", "content": "What is it?"},
        {"role": "assistant", "content": "A dog."},
        {"role": "user", "content": "And &lt;Video>?"},
        {"role": "assistant", "content": "It runs\n\n*(stopped)*"},
    ]


def test_a_turn_being_answered_shows_the_live_text_or_only_the_question() -> None:
    turns = [Turn("First?", "Yes."), Turn("Second?")]
    assert view.chat_messages(turns, live_text="Partly")[-2:] == [
        {"role": "user", "content": "Second?"}, {"role": "assistant", "content": "Partly"}]
    assert view.chat_messages(turns)[-1] == {"role": "user", "content": "Second?"}


def test_an_answer_stopped_before_any_word_says_so() -> None:
    assert view.answer_message("", stopped=True) == {"role": "assistant", "content": "*(stopped)*"}


# -- time citations -----------------------------------------------------------------------------

def _links(shown: str) -> list[tuple[str, str]]:
    """(href, text) of each time link in a rendered answer."""
    return re.findall(r'<a class="timecode" href="([^"]*)" title="[^"]*">([^<]*)</a>', shown)


def test_a_time_in_an_answer_becomes_a_link_to_that_moment_and_the_nearest_frame() -> None:
    shown = view.answer_message("The video ends at 0:02.", media=_encoding(times=[0.0, 1.5, 3.0]))["content"]
    assert shown == ('The video ends at <a class="timecode" href="#t=2.00&amp;frame=1" '
                     'title="Play from 2.0 s; the model saw the frame at 1.5 s">0:02</a>.')


@pytest.mark.parametrize("answer, links", [
    ("[00:03] a dog runs, at 1 s it sits", [("#t=3.00&amp;frame=2", "[00:03]"), ("#t=1.00&amp;frame=1", "1 s")]),
    ("around 4.5 seconds", [("#t=4.50&amp;frame=2", "4.5 seconds")]),
    ("at 6.3 seconds, the very end", [("#t=6.00&amp;frame=2", "6.3 seconds")]),  # clamped to the 6 s clip
    ("at 10:30 and after 7 s", []),  # past the end of the clip: a clock time, not a moment of it
    ("`at 0:02` in code", []),
    ("no time here, 12 dogs", []),
])
def test_only_times_inside_the_video_become_links(answer: str, links: list[tuple[str, str]]) -> None:
    assert _links(view.answer_message(answer, media=_encoding(times=[0.0, 1.5, 3.0]))["content"]) == links


def test_text_around_the_links_is_escaped_and_a_stopped_answer_keeps_them() -> None:
    shown = view.answer_message("<b> at 0:01 `<x>`", stopped=True, media=_encoding())["content"]
    assert shown.startswith("&lt;b> at <a ") and shown.endswith("</a> `<x>`\n\n*(stopped)*")


def test_answers_about_an_image_or_no_file_have_no_links() -> None:
    for media in (_encoding(kind="image", audio=False), None):
        assert view.answer_message("at 0:01", media=media) == {"role": "assistant", "content": "at 0:01"}


def test_the_live_answer_and_finished_answers_get_links_but_questions_do_not() -> None:
    turns = [Turn("What at 0:01?", "At 0:01 a dog."), Turn("And 2 s?")]
    shown = view.chat_messages(turns, live_text="At 2 s", media=_encoding())
    assert [len(_links(message["content"])) for message in shown] == [0, 1, 0, 1]


@pytest.mark.parametrize("seconds, index", [(0.0, 0), (0.7, 0), (0.8, 1), (2.2, 1), (2.3, 2), (99.0, 2)])
def test_nearest_frame(seconds: float, index: int) -> None:
    assert view.nearest_frame([0.0, 1.5, 3.0], seconds) == index


# -- what the model saw -------------------------------------------------------------------------

def test_frame_gallery_pairs_each_thumbnail_with_its_time() -> None:
    encoding = _encoding(times=[0.0, 1.5, 12.25])
    gallery = view.frame_gallery(encoding)
    assert [caption for _, caption in gallery] == ["0.0 s", "1.5 s", "12.2 s"]
    assert [int(image[0, 0, 0]) for image, _ in gallery] == [0, 1, 2]  # the thumbnails, in order


def test_an_image_is_one_frame_captioned_as_the_image() -> None:
    gallery = view.frame_gallery(_encoding(kind="image", audio=False))
    assert [caption for _, caption in gallery] == ["the image"]


def test_audio_status_lists_the_clip_times_when_audio_is_used() -> None:
    encoding = _encoding(spans=[(0.0, 2.0), (0.5, 2.5)])
    assert view.audio_status(encoding) == "**Audio: used**, 2 clips of the sound track: 0.0–2.0 s, 0.5–2.5 s."


def test_audio_status_gives_the_reason_when_audio_is_not_used() -> None:
    note = "The file has no audio track: answering from the frames only."
    assert view.audio_status(_encoding(audio=False, audio_note=note)) == f"**Audio: not used.** {note}"
    assert view.audio_status(_encoding(kind="image", audio=False)) == "**Audio:** none (an image has no sound)."


def test_seen_summary_names_the_file_frames_and_audio() -> None:
    summary = view.seen_summary(_encoding(times=[0.0, 3.0], spans=[(0.0, 2.0)]), "clip <1>.mp4")
    assert summary.split("\n\n") == [
        "**clip &lt;1&gt;.mp4**: video, 6.0 s, 320×240, 25 fps, with a sound track.",
        "**Frames:** 2 sampled at 0.0 s, 3.0 s.",
        "**Audio: used**, 1 clip of the sound track: 0.0–2.0 s.",
    ]


# -- header -------------------------------------------------------------------------------------

PREVIEW = view.ModelFacts(name="preview", is_preview=True,
                          preview_reason="no Video-LLaMA weights found: 6 files missing.",
                          device="cpu", dtype="float32", has_audio=True)


def test_preview_banner_says_answers_are_not_about_the_video_and_why() -> None:
    banner = view.banner_html(PREVIEW)
    assert "Answers are NOT about your video" in banner
    assert "<b>Why:</b> no Video-LLaMA weights found: 6 files missing.<br>" in banner
    assert "#getting-the-weights" in banner
    assert 'id="preview-banner"' in banner and "background:#fef3c7" in banner


def test_on_spaces_the_banner_links_to_the_space_readme_section() -> None:
    banner = view.banner_html(PREVIEW, space_id="someone/video-llama")
    assert 'href="https://huggingface.co/spaces/someone/video-llama/blob/main/README.md#getting-the-weights"' in banner


def test_with_real_weights_the_header_names_the_model_and_no_preview_warning() -> None:
    facts = view.ModelFacts(name="video-llama-2-7b", is_preview=False, preview_reason=None, device="cuda:0",
                            dtype="bfloat16 / float16", has_audio=True)
    header = view.banner_html(facts)
    assert "Running <b>video-llama-2-7b</b>" in header and "cuda:0" in header and "bfloat16 / float16" in header
    assert "preview" not in header.lower() and "NOT" not in header


def test_model_facts_of_the_preview_pipeline(preview_pipeline) -> None:
    facts = view.ModelFacts.of(preview_pipeline)
    assert facts.is_preview and facts.preview_reason == preview_pipeline.preview_reason
    assert (facts.name, facts.device, facts.dtype, facts.has_audio) == ("preview", "cpu", "float32", True)
