"""Prompt styles: the official Vicuna "###" and LLaMA-2 "[INST]" templates, and ChatML.

`style.prompt_text(style.render(state))` equals the official `conv.get_prompt()` byte for byte with
default settings (Video-LLaMA `video_llama/conversation/conversation_video.py`: `default_conversation`
for Vicuna, `conv_llava_llama_2` for LLaMA-2-Chat).

User text is never markup: it is a `Text(..., from_user=True)` part, the tokenizer never turns it
into special tokens, and each style defuses, in user text only, the strings that would forge a
role in its template. Benign questions are left untouched, so default prompts stay official.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from ..constants import IMAGE_PLACEHOLDER
from .parts import Media, Part, PromptState, Special, Text


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
    """`default_conversation`: "###" separators, roles Human / Assistant."""

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
    """`conv_llava_llama_2`: [INST] wrapping, <<SYS>> block in the first message."""

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
