"""Prompt parts -> token ids, with the official segment semantics.

The official code (Video-LLaMA `video_llama/conversation/conversation_video.py`, `Chat.get_context_emb`)
splits the prompt string at `<ImageHere>` and tokenises each text segment on
its own with transformers 4.28's slow LlamaTokenizer: BOS on segment 0 only; inside a segment the
text is cut at special-token strings (`<s>`, `</s>`, `<unk>`), each remaining chunk is
SentencePiece-encoded on its own (so each gets SentencePiece's dummy-prefix `▁`), and the
specials become their ids. We reproduce that for template text. Media blocks are `Media` markers
in the output, and user text is always encoded as plain text: a user who types `</s>` gets the
text tokens for it, never id 2.
"""

from __future__ import annotations

import json
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import sentencepiece as spm
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from ..constants import AUDIO_PLACEHOLDER, IMAGE_PLACEHOLDER
from .parts import Media, Part, Special, Text

log = logging.getLogger(__name__)


class PromptTokenizer(Protocol):
    eos_token_id: int
    bos_token_id: int | None  # what encode_parts puts first; None when the model has no BOS
    vocab_size: int  # rows of the embedding table that encode_parts' ids index

    def encode_parts(self, parts: Sequence[Part]) -> list[int | Media]: ...
    def decode(self, ids: Sequence[int]) -> str: ...
    def token_to_id(self, token: str) -> int: ...


def _special_pattern(specials: Sequence[str]) -> re.Pattern[str]:
    # Longest first, so one special that starts another is not matched early (the tokenizer's trie).
    alternatives = sorted(specials, key=len, reverse=True)
    if not alternatives:
        return re.compile("((?!))")  # matches nothing
    return re.compile("(" + "|".join(map(re.escape, alternatives)) + ")")


def _split_template_text(part: Part, specials: re.Pattern[str]) -> Iterator[str | Special | Media]:
    """Template text is cut at special-token strings, as the official tokenizer does; a
    question or answer (`from_user`) never is."""
    if not isinstance(part, Text):
        yield part
    elif part.from_user:
        yield part.text
    else:
        for position, piece in enumerate(specials.split(part.text)):
            if position % 2:  # the pattern's group: a special-token string
                yield Special(piece)
            elif piece:
                yield piece


def _chunks(parts: Sequence[Part], specials: re.Pattern[str]) -> Iterator[str | Special | Media]:
    """Parts -> maximal runs of text between specials and media blocks, in order.

    Consecutive text parts are joined first, so SentencePiece merges across template and user
    text exactly as it does on the official prompt string.
    """
    run: list[str] = []
    for part in parts:
        for item in _split_template_text(part, specials):
            if isinstance(item, str):
                run.append(item)
                continue
            if run:
                yield "".join(run)
                run = []
            yield item
    if run:
        yield "".join(run)


class _SegmentEncoder(ABC):
    """`encode_parts` for any tokenizer that can encode a plain-text chunk and name its specials."""

    bos_token_id: int | None
    _specials: re.Pattern[str]

    def encode_parts(self, parts: Sequence[Part]) -> list[int | Media]:
        encoded: list[int | Media] = [] if self.bos_token_id is None else [self.bos_token_id]
        for item in _chunks(parts, self._specials):
            if isinstance(item, Media):
                encoded.append(item)
            elif isinstance(item, Special):
                encoded.append(self._special_id(item.token))
            else:
                encoded.extend(self._encode_text(item))
        return encoded

    @abstractmethod
    def _encode_text(self, text: str) -> list[int]:
        """A chunk of plain text (no special-token parsing) -> ids, without BOS."""

    @abstractmethod
    def _special_id(self, token: str) -> int:
        """The id of a special-token string; an error for a token the model lacks."""


class SentencePieceLlamaTokenizer(_SegmentEncoder):
    """The official LLaMA / Vicuna tokenizer (a `tokenizer.model`) with 4.28 slow semantics."""

    def __init__(self, processor: spm.SentencePieceProcessor, add_bos: bool = True) -> None:
        self._sp = processor
        self.vocab_size = processor.vocab_size()
        self.eos_token_id = processor.eos_id()
        self.bos_token_id = processor.bos_id() if add_bos else None
        ids = (processor.unk_id(), processor.bos_id(), processor.eos_id())
        self._special_ids = {processor.id_to_piece(i): i for i in ids if i >= 0}
        # Registered as the official code does (ids 32000, 32001 for LLaMA-2). encode_parts never
        # emits them: media blocks are Media markers, and they have no embedding rows.
        self._added_ids = {IMAGE_PLACEHOLDER: self.vocab_size, AUDIO_PLACEHOLDER: self.vocab_size + 1}
        self._id_to_special = {i: t for t, i in (self._special_ids | self._added_ids).items()}
        self._specials = _special_pattern(list(self._special_ids))

    @classmethod
    def from_dir(cls, directory: str | Path) -> SentencePieceLlamaTokenizer:
        """Read `tokenizer.model` (and `add_bos_token` from `tokenizer_config.json`) of an HF dir."""
        directory = Path(directory)
        model_file = directory / "tokenizer.model"
        if not model_file.is_file():
            raise FileNotFoundError(f"No tokenizer.model in {directory}: is it an HF LLaMA dir?")
        config_file = directory / "tokenizer_config.json"
        config = json.loads(config_file.read_text()) if config_file.is_file() else {}
        processor = spm.SentencePieceProcessor(model_file=str(model_file))
        return cls(processor, add_bos=config.get("add_bos_token", True))

    def _encode_text(self, text: str) -> list[int]:
        return self._sp.encode(text)

    def _special_id(self, token: str) -> int:
        if token not in self._special_ids:
            raise ValueError(f"The prompt uses the special token {token!r}, which this LLaMA "
                             f"tokenizer does not have ({sorted(self._special_ids)}): wrong template?")
        return self._special_ids[token]

    def token_to_id(self, token: str) -> int:
        if token in self._added_ids:
            return self._added_ids[token]
        token_id = self._sp.piece_to_id(token)
        if token_id == self._sp.unk_id() and token != self._sp.id_to_piece(token_id):
            raise KeyError(f"{token!r} is not a token of this tokenizer")
        return token_id

    def decode(self, ids: Sequence[int]) -> str:
        """Special tokens are kept as their strings, as the official `Chat.answer` decodes them
        (`tokenizer.decode(output_token, add_special_tokens=False)`)."""
        text: list[str] = []
        run: list[int] = []
        for token_id in ids:
            if token_id in self._id_to_special:
                text += [self._sp.decode(run), self._id_to_special[token_id]]
                run = []
            else:
                run.append(token_id)
        return "".join(text) + self._sp.decode(run)


class HFPromptTokenizer(_SegmentEncoder):
    """A transformers tokenizer (e.g. the preview's GGUF SmolLM2 one) behind `PromptTokenizer`."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer
        self.vocab_size = len(tokenizer)
        self.eos_token_id = tokenizer.eos_token_id
        added = tokenizer.encode("", add_special_tokens=True)
        self.bos_token_id = added[0] if added and added[0] == tokenizer.bos_token_id else None
        special = [t.content for t in tokenizer.added_tokens_decoder.values() if t.special]
        self._special_tokens = set(special) | set(tokenizer.all_special_tokens)
        self._specials = _special_pattern(sorted(self._special_tokens))

    def _encode_text(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True)

    def _special_id(self, token: str) -> int:
        if token not in self._special_tokens:
            raise ValueError(f"The prompt uses the special token {token!r}, which this tokenizer "
                             "does not have: is the prompt template right for this model?")
        return self.tokenizer.convert_tokens_to_ids(token)

    def token_to_id(self, token: str) -> int:
        token_id = self.tokenizer.convert_tokens_to_ids(token)
        unknown = token_id == self.tokenizer.unk_token_id and token != self.tokenizer.unk_token
        if token_id is None or unknown:
            raise KeyError(f"{token!r} is not a token of this tokenizer")
        return token_id

    def decode(self, ids: Sequence[int]) -> str:
        # No space clean-up: streamed deltas must add up to the decoded whole.
        return self.tokenizer.decode(list(ids), skip_special_tokens=False,
                                     clean_up_tokenization_spaces=False)


def load_prompt_tokenizer(path: Path, gguf_file: str | None = None) -> PromptTokenizer:
    """The tokenizer of an HF LLaMA dir (official semantics) or of a GGUF file in `path`."""
    path = Path(path)
    if gguf_file is not None:
        log.info("loading the tokenizer of %s", path / gguf_file)
        return HFPromptTokenizer(AutoTokenizer.from_pretrained(path, gguf_file=gguf_file))
    if (path / "tokenizer.model").is_file():
        log.info("loading the SentencePiece tokenizer of %s", path)
        return SentencePieceLlamaTokenizer.from_dir(path)
    if (path / "tokenizer.json").is_file():
        log.info("loading the tokenizer.json of %s", path)
        return HFPromptTokenizer(AutoTokenizer.from_pretrained(path))
    raise FileNotFoundError(f"No tokenizer found in {path}: expected tokenizer.model "
                            "(an official LLaMA dir), tokenizer.json, or a GGUF file.")
