"""Prompt styles: the official Vicuna "###" and LLaMA-2 "[INST]" templates, and ChatML.

A prompt is a list of parts, so media blocks and template special tokens are structure, never
strings found in text. `style.prompt_text(style.render(state))` equals the official
`conv.get_prompt()` byte for byte with default settings (spec §5.1, §5.2).

User text is never markup: it is a `Text(..., from_user=True)` part, the tokenizer never turns it
into special tokens, and each style defuses, in user text only, the strings that would forge a
role in its template. Benign questions are left untouched, so default prompts stay official.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol

from ..constants import (
    AUDIO_VIDEO_MESSAGE,
    IMAGE_MESSAGE,
    IMAGE_PLACEHOLDER,
    VIDEO_MESSAGE_PREFIX,
    VISUAL_SYSTEM_PROMPT,
)
from .timecodes import format_time


@dataclass(frozen=True)
class Text:
    text: str
    # True for text the template did not write (a question, an earlier answer): never markup.
    from_user: bool = False


@dataclass(frozen=True)
class Special:
    token: str  # a template-inserted special token string, e.g. "</s>", "<|im_start|>"


@dataclass(frozen=True)
class Media:
    index: int  # the index-th media embedding block, in prompt order


Part = Text | Special | Media


@dataclass(frozen=True)
class PromptState:
    """What a conversation holds, independent of the template."""

    system: str
    media_message: tuple[Part, ...]  # the first user message before the question
    turns: tuple[tuple[str, str | None], ...]  # (question, answer); None = being answered now
    # Media shown with a question (a time range's clip), per turn; () or a short tuple = none.
    turn_media: tuple[tuple[Part, ...], ...] = ()


@dataclass(frozen=True)
class _Message:
    from_user: bool  # the user's role (Human / USER / user), else the assistant's
    parts: tuple[Part, ...]  # empty where the official message string is empty or None


def _messages(state: PromptState, defuse: Callable[[str], str]) -> list[_Message]:
    """The official `conv.messages` list as parts; the last is empty while being answered."""
    messages: list[_Message] = []
    for number, (question, answer) in enumerate(state.turns):
        asked: tuple[Part, ...] = (Text(defuse(question), from_user=True),) if question else ()
        turn_media = state.turn_media[number] if number < len(state.turn_media) else ()
        if turn_media:
            asked = (*_defused(turn_media, defuse), Text(" "), *asked)
        if number == 0 and state.media_message:
            # Chat.ask joins the first question onto the media message with one space.
            asked = (*_defused(state.media_message, defuse), Text(" "), *asked)
        answered = (Text(defuse(answer), from_user=True),) if answer else ()
        messages += [_Message(True, asked), _Message(False, answered)]
    return messages


def _defused(parts: tuple[Part, ...], defuse: Callable[[str], str]) -> tuple[Part, ...]:
    """User text inside a media message (subtitles) is defused like a question; the rest is template."""
    return tuple(Text(defuse(p.text), from_user=True) if isinstance(p, Text) and p.from_user else p
                 for p in parts)


def _compact(parts: list[Part]) -> list[Part]:
    return [part for part in parts if not (isinstance(part, Text) and not part.text)]


def _space_out(match: re.Match[str]) -> str:
    """'###' -> '# # #': visible to the reader, no longer the marker."""
    return " ".join(match.group())


def _break_after_first(match: re.Match[str]) -> str:
    """'[INST]' -> '[ INST]': visible to the reader, no longer the marker."""
    return match.group()[0] + " " + match.group()[1:]


class PromptStyle(Protocol):
    stop_strings: tuple[str, ...]

    def render(self, state: PromptState) -> list[Part]: ...
    def postprocess(self, raw_answer: str) -> str: ...
    def defuse(self, user_text: str) -> str: ...
    def prompt_text(self, parts: list[Part]) -> str: ...


class _TextRendering:
    def prompt_text(self, parts: list[Part]) -> str:
        """The prompt as one string, media blocks shown as the official placeholder."""
        return "".join(_part_text(part) for part in parts)


def _part_text(part: Part) -> str:
    if isinstance(part, Media):
        return IMAGE_PLACEHOLDER
    return part.token if isinstance(part, Special) else part.text


class VicunaStyle(_TextRendering):
    """`default_conversation`: "###" separators, roles Human / Assistant (spec §5.1)."""

    roles = ("Human", "Assistant")
    sep = "###"
    stop_strings = ("###",)
    _marker = re.compile(r"#{3,}")

    def render(self, state: PromptState) -> list[Part]:
        parts: list[Part] = [Text(state.system), Text(self.sep)]
        for message in _messages(state, self.defuse):
            role = self.roles[0] if message.from_user else self.roles[1]
            if message.parts:
                parts += [Text(role + ": "), *message.parts, Text(self.sep)]
            else:
                parts.append(Text(role + ":"))  # official: no space after an empty role
        return _compact(parts)

    def defuse(self, user_text: str) -> str:
        return self._marker.sub(_space_out, user_text)

    def postprocess(self, raw_answer: str) -> str:
        return raw_answer.split("###")[0].split("Assistant:")[-1].strip()


class Llama2Style(_TextRendering):
    """`conv_llava_llama_2`: [INST] wrapping, <<SYS>> block in the first message (spec §5.1)."""

    stop_strings: tuple[str, ...] = ()  # LLaMA-2 ends on EOS, which the generator stops on
    _marker = re.compile(r"\[/?INST\]|<</?SYS>>")

    def render(self, state: PromptState) -> list[Part]:
        parts: list[Part] = []
        for number, message in enumerate(_messages(state, self.defuse)):
            if not message.parts:
                continue  # official: an empty or pending message adds nothing
            if not message.from_user:
                parts += [Text(" "), *message.parts, Text(" "), Special("</s>")]
                continue
            body = message.parts
            if number == 0:
                body = (Text("<<SYS>>\n"), Text(state.system), Text("\n<</SYS>>\n\n"), *body)
            # get_prompt puts "<s>" before every user message, then lstrips the first one away
            # (the tokenizer adds BOS itself).
            opening = [Special("<s>")] if parts else []
            parts += [*opening, Text("[INST] "), *body, Text(" [/INST]")]
        return _compact(parts)

    def defuse(self, user_text: str) -> str:
        return self._marker.sub(_break_after_first, user_text)

    def postprocess(self, raw_answer: str) -> str:
        return raw_answer.split("</s>")[0].split("ASSISTANT:")[-1].strip()


SMOLLM2_DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


class ChatMLStyle(_TextRendering):
    """`<|im_start|>role\\n...<|im_end|>\\n` turns (the preview LLM, SmolLM2-135M-Instruct).

    An empty system prompt means none was given, so the model's own default system line is used,
    as its chat template does.
    """

    start, end = "<|im_start|>", "<|im_end|>"
    stop_strings = ("<|im_end|>", "<|endoftext|>")
    _marker = re.compile(r"<\|im_(?:start|end)\|>")

    def __init__(self, default_system: str = SMOLLM2_DEFAULT_SYSTEM) -> None:
        self.default_system = default_system

    def render(self, state: PromptState) -> list[Part]:
        parts = self._turn("system", (Text(state.system or self.default_system),))
        for message in _messages(state, self.defuse):
            if message.parts:
                parts += self._turn("user" if message.from_user else "assistant", message.parts)
        if state.turns and state.turns[-1][1] is None:
            parts += [Special(self.start), Text("assistant\n")]
        return _compact(parts)

    def _turn(self, role: str, body: tuple[Part, ...]) -> list[Part]:
        return [Special(self.start), Text(role + "\n"), *body, Special(self.end), Text("\n")]

    def defuse(self, user_text: str) -> str:
        return self._marker.sub(_break_after_first, user_text)

    def postprocess(self, raw_answer: str) -> str:
        return raw_answer.split(self.end)[0].strip()


TemplateName = Literal["llama2", "vicuna", "chatml"]
_STYLES: dict[str, type] = {"llama2": Llama2Style, "vicuna": VicunaStyle, "chatml": ChatMLStyle}


def style_for(name: TemplateName) -> PromptStyle:
    if name not in _STYLES:
        raise ValueError(f"Unknown prompt template {name!r}; choose one of {sorted(_STYLES)}.")
    return _STYLES[name]()


# -- the official first user message and system prompt of each media path (spec §5.2) -----------

class MediaPrompt(NamedTuple):
    system: str
    message: tuple[Part, ...]


def _with_media(template: str) -> tuple[Part, ...]:
    """Official message text -> parts: each placeholder becomes the next media block."""
    pieces = template.split(IMAGE_PLACEHOLDER)
    parts: list[Part] = [Text(pieces[0])]
    for index, piece in enumerate(pieces[1:]):
        parts += [Media(index), Text(piece)]
    return tuple(_compact(parts))


def image_prompt() -> MediaPrompt:
    """Both demos: the visual system sentence, "<Image><ImageHere></Image> "."""
    return MediaPrompt(VISUAL_SYSTEM_PROMPT, _with_media(IMAGE_MESSAGE))


def video_prompt(frames_message: str, system: str = "") -> MediaPrompt:
    """Video without audio. `demo_audiovideo.py` (the default) has no system prompt;
    `demo_video.py` passes `VISUAL_SYSTEM_PROMPT`. `frames_message` is the official
    "The video contains 8 frames sampled at ... seconds. " text."""
    return MediaPrompt(system, _with_media(VIDEO_MESSAGE_PREFIX + frames_message))


def audio_video_prompt() -> MediaPrompt:
    """Video with its audio: block 0 is the audio, block 1 the video; no frames message."""
    return MediaPrompt("", _with_media(AUDIO_VIDEO_MESSAGE))


def media_prompt(kind: Literal["video", "image"], uses_audio: bool, frames_message: str,
                 video_system: str = "") -> MediaPrompt:
    """The official prompt start for an uploaded medium (see the three functions above)."""
    if kind == "image":
        return image_prompt()
    if uses_audio:
        return audio_video_prompt()
    return video_prompt(frames_message, system=video_system)


# -- beyond the official prompts: subtitles, long-video segments, time ranges --------------------
# None of these is used unless asked for; with them off every prompt above is unchanged.

SUBTITLES_INTRO = "Subtitles, what is said near the sampled frames:"


def time_label(seconds: float) -> str:
    """83.4 -> "1:23.4", 130 -> "2:10", 7260 -> "2:01:00" (tenths only when not whole); the form
    `timecodes.find_citations` reads back, so times the model repeats become clickable."""
    tenths = round(seconds * 10)
    whole, fraction = divmod(tenths, 10)
    return format_time(whole) + (f".{fraction}" if fraction else "")


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
    blocks = 2 if uses_audio else 1
    for number, (start, end) in enumerate(spans):
        parts.append(Text(f"Part {number + 1} ({time_label(start)} to {time_label(end)}): "))
        parts += _clip_parts(number * blocks, uses_audio)
        said = subtitles[number] if subtitles else ""
        if said:
            parts += [Text(" Subtitles: "), Text(said, from_user=True)]
        parts.append(Text("\n"))
    return MediaPrompt(system, tuple(_compact(parts)))


def time_range_parts(start: float, end: float, uses_audio: bool, first_block: int, frames_message: str,
                     subtitle_lines: tuple[tuple[float, str], ...] = ()) -> tuple[Part, ...]:
    """The clip of a time range, shown with the question that asked about it:

    "The part of the video from 2:10 to 3:00: <Video><ImageHere></Video> The video contains 8 frames
    sampled at 130.0, ... seconds. " (with audio: "you hear <ImageHere>, and see <Video>...</Video>. ")."""
    parts: list[Part] = [Text(f"The part of the video from {time_label(start)} to {time_label(end)}: ")]
    parts += _clip_parts(first_block, uses_audio)
    parts.append(Text((". " if uses_audio else " ") + frames_message))
    if subtitle_lines:
        parts += subtitle_parts(subtitle_lines)
    return tuple(_compact(parts))


def _clip_parts(first_block: int, uses_audio: bool) -> list[Part]:
    video = [Text("<Video>"), Media(first_block + int(uses_audio)), Text("</Video>")]
    return [Text("you hear "), Media(first_block), Text(", and see "), *video] if uses_audio else video
