"""The first user message of each media path, and the options beyond it (subtitles, long-video
segments, a time range's clip).

The official messages come from Video-LLaMA `video_llama/conversation/conversation_video.py`
(`Chat.upload_img`, `Chat.upload_video`, `Chat.upload_video_without_audio`) and the system
prompts from `demo_video.py` / `demo_audiovideo.py`. Every `Media` part is numbered by the
encoding's own `clip_blocks`, so the prompt and `MediaEncoding.blocks()` cannot disagree.
None of the options is used unless asked for; with them off every prompt is the official one.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from ..constants import (
    AUDIO_VIDEO_MESSAGE,
    IMAGE_MESSAGE,
    IMAGE_PLACEHOLDER,
    VIDEO_MESSAGE_PREFIX,
    VISUAL_SYSTEM_PROMPT,
)
from ..encoding import MediaEncoding, clip_blocks
from .parts import Media, Part, Text
from .timecodes import time_label

SUBTITLES_INTRO = "Subtitles, what is said near the sampled frames:"


class MediaPrompt(NamedTuple):
    system: str
    message: tuple[Part, ...]


def _compact(parts: list[Part]) -> tuple[Part, ...]:
    return tuple(part for part in parts if not (isinstance(part, Text) and not part.text))


def _with_media(template: str, block_numbers: list[int]) -> tuple[Part, ...]:
    """Official message text -> parts: the i-th placeholder becomes block `block_numbers[i]`."""
    pieces = template.split(IMAGE_PLACEHOLDER)
    if len(pieces) - 1 != len(block_numbers):
        raise ValueError(f"the message has {len(pieces) - 1} media placeholders for {len(block_numbers)} blocks")
    parts: list[Part] = [Text(pieces[0])]
    for number, piece in zip(block_numbers, pieces[1:]):
        parts += [Media(number), Text(piece)]
    return _compact(parts)


def image_prompt() -> MediaPrompt:
    """Both demos: the visual system sentence, "<Image><ImageHere></Image> "."""
    return MediaPrompt(VISUAL_SYSTEM_PROMPT, _with_media(IMAGE_MESSAGE, [clip_blocks(False).video]))


def video_prompt(frames_message: str, system: str = "") -> MediaPrompt:
    """Video without audio. `demo_audiovideo.py` (the default) has no system prompt;
    `demo_video.py` passes `VISUAL_SYSTEM_PROMPT`. `frames_message` is the official
    "The video contains 8 frames sampled at ... seconds. " text."""
    return MediaPrompt(system, _with_media(VIDEO_MESSAGE_PREFIX + frames_message, [clip_blocks(False).video]))


def audio_video_prompt() -> MediaPrompt:
    """Video with its audio: the audio placeholder comes first; no frames message."""
    blocks = clip_blocks(True)
    return MediaPrompt("", _with_media(AUDIO_VIDEO_MESSAGE, [blocks.audio, blocks.video]))


def media_prompt(kind: Literal["video", "image"], uses_audio: bool, frames_message: str,
                 video_system: str = "") -> MediaPrompt:
    """The official prompt start for an uploaded medium (see the three functions above)."""
    if kind == "image":
        return image_prompt()
    if uses_audio:
        return audio_video_prompt()
    return video_prompt(frames_message, system=video_system)


def encoding_prompt(encoding: MediaEncoding) -> MediaPrompt:
    """The prompt start for an encoding: the official one, plus its subtitles when it has them;
    in long-video mode one timed block per segment."""
    lines = encoding.transcript.lines if encoding.transcript is not None else ()
    if encoding.is_segmented:
        said = dict(lines)
        spans = list(encoding.segment_spans)
        duration = encoding.info.duration or spans[-1][1]
        return segments_prompt(duration, spans, encoding.frames_per_clip, encoding.uses_audio,
                               [said.get(start, "") for start, _ in spans])
    return with_subtitles(media_prompt(encoding.kind, encoding.uses_audio, encoding.message), lines)


def subtitle_parts(lines: tuple[tuple[float, str], ...], intro: str = SUBTITLES_INTRO) -> tuple[Part, ...]:
    """"<intro>\n[0:01.5] what is said\n...\n": one line per time; the said text is user text."""
    parts: list[Part] = [Text(intro)]
    for time, said in lines:
        parts += [Text(f"\n[{time_label(time)}] "), Text(said, from_user=True)]
    return (*parts, Text("\n"))


def with_subtitles(prompt: MediaPrompt, lines: tuple[tuple[float, str], ...]) -> MediaPrompt:
    """The official message, then the subtitles block (nothing added when no line has words)."""
    if not lines:
        return prompt
    last = prompt.message[-1] if prompt.message else None
    gap = () if isinstance(last, Text) and last.text.endswith((" ", "\n")) else (Text(" "),)
    return MediaPrompt(prompt.system, (*prompt.message, *gap, *subtitle_parts(lines)))


def segments_prompt(duration: float, spans: list[tuple[float, float]], frames_per_segment: int,
                    uses_audio: bool, subtitles: list[str] | None = None, system: str = "") -> MediaPrompt:
    """A long video as K parts, each an official clip introduced by its time range:

    "The video is 10:00 long. It is shown in 4 parts, in order, each as 8 frames sampled evenly.\n
    Part 1 (0:00 to 2:30): <Video><ImageHere></Video> Subtitles: ...\n..." With audio each part is
    "you hear <ImageHere>, and see <Video><ImageHere></Video>" (audio block first, as official).
    `subtitles[k]` is what is said in part k ("" for nothing)."""
    sound = " with its sound" if uses_audio else ""
    parts: list[Part] = [Text(f"The video is {time_label(duration)} long. It is shown in {len(spans)} parts, "
                              f"in order, each as {frames_per_segment} frames sampled evenly{sound}.\n")]
    for number, (start, end) in enumerate(spans):
        parts.append(Text(f"Part {number + 1} ({time_label(start)} to {time_label(end)}): "))
        parts += _clip_parts(uses_audio, number)
        said = subtitles[number] if subtitles else ""
        if said:
            parts += [Text(" Subtitles: "), Text(said, from_user=True)]
        parts.append(Text("\n"))
    return MediaPrompt(system, _compact(parts))


def time_range_parts(start: float, end: float, uses_audio: bool, first_block: int, frames_message: str,
                     subtitle_lines: tuple[tuple[float, str], ...] = ()) -> tuple[Part, ...]:
    """The clip of a time range, shown with the question that asked about it:

    "The part of the video from 2:10 to 3:00: <Video><ImageHere></Video> The video contains 8 frames
    sampled at 130.0, ... seconds. " (with audio: "you hear <ImageHere>, and see <Video>...</Video>. ")."""
    parts: list[Part] = [Text(f"The part of the video from {time_label(start)} to {time_label(end)}: ")]
    parts += _clip_parts(uses_audio, 0, first_block)
    parts.append(Text((". " if uses_audio else " ") + frames_message))
    if subtitle_lines:
        parts += subtitle_parts(subtitle_lines)
    return _compact(parts)


def clip_parts(clip: MediaEncoding, first_block: int) -> tuple[Part, ...]:
    """A time range's clip (an encoding with one segment span), its blocks numbered from `first_block`."""
    start, end = clip.segment_spans[0]
    lines = clip.transcript.lines if clip.transcript is not None else ()
    return time_range_parts(start, end, clip.uses_audio, first_block, clip.message, lines)


def _clip_parts(uses_audio: bool, clip: int, first_block: int = 0) -> list[Part]:
    blocks = clip_blocks(uses_audio, clip, first_block)
    video = [Text("<Video>"), Media(blocks.video), Text("</Video>")]
    return [Text("you hear "), Media(blocks.audio), Text(", and see "), *video] if uses_audio else video
