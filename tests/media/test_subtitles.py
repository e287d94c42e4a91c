"""Subtitle files and streams: SRT/VTT edge cases, encodings, embedded tracks, the frame transcript."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import media_factory as factory
from videollama_demo.media import MediaError
from videollama_demo.media.subtitles import (
    Cue,
    frame_windows,
    load_subtitle_file,
    parse_subtitles,
    parse_timestamp,
    read_embedded_subtitles,
    transcript_for_frames,
)

SRT = """1
00:00:00,500 --> 00:00:02,000
Hello <i>world</i>

2
00:00:01,500 --> 00:00:04,000 X1:10
{\\an8}The dog
appears &amp; barks.

3
00:00:05,000 --> 00:00:05,000
   
"""

VTT = """WEBVTT - a header comment

NOTE this block is ignored
00:00:09.000 --> 00:00:10.000 is not a cue here

intro
00:00.500 --> 00:02.000 align:start position:10%
<v Roger>Hello</v> <c.yellow>world</c>

01:00:01.250 --> 01:00:03.000
<00:00:01.500>Late &lt;line&gt;
"""


@pytest.mark.parametrize("text,seconds", [
    ("00:00:01,500", 1.5), ("01:02:03.250", 3723.25), ("02:03.4", 123.4), ("100:00:00,000", 360000.0),
])
def test_timestamps(text: str, seconds: float) -> None:
    assert parse_timestamp(text) == pytest.approx(seconds)


def test_srt_with_overlapping_cues_markup_and_an_empty_cue() -> None:
    assert parse_subtitles(SRT) == [
        Cue(0.5, 2.0, "Hello world"),
        Cue(1.5, 4.0, "The dog appears & barks."),
    ]


def test_vtt_with_header_note_identifiers_settings_and_voice_tags() -> None:
    assert parse_subtitles(VTT) == [Cue(0.5, 2.0, "Hello world"), Cue(3601.25, 3603.0, "Late <line>")]


def test_windows_line_endings() -> None:
    assert parse_subtitles(SRT.replace("\n", "\r\n"))[0] == Cue(0.5, 2.0, "Hello world")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "cp1252"])
def test_encodings(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "film.srt"
    path.write_bytes("1\n00:00:01,000 --> 00:00:02,000\nCafé déjà vu\n".encode(encoding))
    assert load_subtitle_file(path) == [Cue(1.0, 2.0, "Café déjà vu")]


@pytest.mark.parametrize("content,phrase", [
    (bytes(range(256)) * 8, "encoding"),
    (b"just some notes, no timings at all\n", "No subtitles were found"),
    (b"", "empty"),
])
def test_bad_subtitle_files_are_clear_errors(tmp_path: Path, content: bytes, phrase: str) -> None:
    path = tmp_path / "bad.srt"
    path.write_bytes(content)
    with pytest.raises(MediaError, match=phrase):
        load_subtitle_file(path)


@pytest.mark.parametrize("container,codec", [("mp4", "mov_text"), ("mkv", "webvtt"), ("mkv", "ass")])
def test_subtitle_stream_inside_the_video(tmp_path: Path, container: str, codec: str) -> None:
    srt = tmp_path / "in.srt"
    # mov_text cannot overlap
    srt.write_text(SRT.replace("00:00:01,500 --> 00:00:04,000", "00:00:02,500 --> 00:00:04,000"))
    video = tmp_path / f"with_subs.{container}"
    factory.run_ffmpeg("-f", "lavfi", "-i", "testsrc=duration=5:size=64x48:rate=10", "-i", str(srt),
                       "-c:v", "libx264", "-c:s", codec, str(video))
    assert read_embedded_subtitles(video) == [Cue(0.5, 2.0, "Hello world"), Cue(2.5, 4.0, "The dog appears & barks.")]


def test_a_video_without_subtitles_has_none(tmp_path: Path) -> None:
    assert read_embedded_subtitles(factory.make_video(tmp_path / "plain.mp4", seconds=1, audio=None)) == []


def test_each_frame_owns_half_the_gap_to_its_neighbours() -> None:
    assert frame_windows([0.0, 2.0, 4.0], 0.0, 6.0) == [(0.0, 1.0), (1.0, 3.0), (3.0, 6.0)]
    assert frame_windows([11.0, 13.0], 10.0, 14.0) == [(10.0, 12.0), (12.0, 14.0)]  # a time range


def test_transcript_puts_what_is_said_beside_each_frame() -> None:
    cues = [Cue(0.5, 2.0, "Hello world"), Cue(1.5, 4.0, "The dog appears."), Cue(5.0, 5.5, "Bye.")]
    transcript = transcript_for_frames(cues, [0.0, 2.0, 4.0], 6.0, word_budget=100)
    assert transcript.lines == ((0.0, "Hello world"), (2.0, "Hello world The dog appears."),
                                (4.0, "The dog appears. Bye."))
    assert transcript.cut_words == 0


def test_long_subtitles_are_cut_to_the_word_budget_fairly() -> None:
    cues = [Cue(0.0, 1.0, "short"), Cue(2.0, 3.0, " ".join(f"w{i}" for i in range(50)))]
    transcript = transcript_for_frames(cues, [0.5, 2.5], 3.0, word_budget=11)
    assert transcript.lines[0] == (0.5, "short")  # a short line is never cut for a long one
    assert transcript.lines[1][1].split() == [f"w{i}" for i in range(10)] + ["…"]
    assert (transcript.kept_words, transcript.total_words, transcript.cut_words) == (11, 51, 40)
