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


@dataclass(frozen=True)
class _Message:
    from_user: bool  # the user's role (Human / USER / user), else the assistant's
    parts: tuple[Part, ...]  # empty where the official message string is empty or None


def _messages(state: PromptState, defuse: Callable[[str], str]) -> list[_Message]:
    """The official `conv.messages` list as parts; the last is empty while being answered."""
    messages: list[_Message] = []
    for number, (question, answer) in enumerate(state.turns):
        asked: tuple[Part, ...] = (Text(defuse(question), from_user=True),) if question else ()
        if number == 0 and state.media_message:
            # Chat.ask joins the first question onto the media message with one space.
            asked = (*state.media_message, Text(" "), *asked)
        answered = (Text(defuse(answer), from_user=True),) if answer else ()
        messages += [_Message(True, asked), _Message(False, answered)]
    return messages


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
