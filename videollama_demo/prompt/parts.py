"""A prompt as structure: template text, special tokens, user text and media blocks.

Media blocks and template special tokens are parts, never strings found in text, so a question
that contains `</s>` or `<ImageHere>` stays text (the tokenizer never makes it special).
"""

from __future__ import annotations

from dataclasses import dataclass


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
