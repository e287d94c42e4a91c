"""One browser session's conversation: its medium, its turns, and the answers streamed from an engine.

`ChatSession.ask` streams an answer as text deltas. Settings that change answers (temperature,
frames, audio) are arguments of the session's calls, never written to the shared model. The
session knows text, token ids and embeddings, never files: whoever handles a question about a
part of the video encodes that clip and passes it in (`ask(question, clip=...)`).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import torch

from ..encoding import MediaEncoding
from ..engines.base import Engine, GenerationRequest, PositionKey, SamplingSettings
from ..prompt.media_prompts import clip_parts, encoding_prompt
from ..prompt.parts import Part, PromptState
from ..prompt.templates import style_for
from ..prompt.tokenizer import PromptTokenizer
from .detokenize import StreamDecoder
from .splice import Block, embed_positions, splice_keys

_media_ids = itertools.count()
Blocks = dict[Block, torch.Tensor]
_conversation_ids = itertools.count()


class ChatError(Exception):
    """A request the session cannot serve; the message tells the user what to do."""


class TextModel(Protocol):
    """What a conversation needs of the LLM: its tokenizer, its token embeddings, its context."""

    tokenizer: PromptTokenizer
    context_length: int
    device: torch.device
    dtype: torch.dtype

    def embed_tokens(self, ids: list[int]) -> torch.Tensor: ...


@dataclass(eq=False)
class Turn:
    question: str
    answer: str | None = None  # None while it is being answered
    stopped: bool = False  # the user pressed Stop: `answer` is the partial text
    clip: MediaEncoding | None = None  # a part of the video sampled for this question, shown with it
    clip_id: int = -1

    @property
    def time_range(self) -> tuple[float, float] | None:
        """Seconds the question was answered from (None: the whole medium)."""
        return self.clip.segment_spans[0] if self.clip is not None else None


class Reply:
    """Iterate for text deltas. After the loop: `text` is the official post-processed answer,
    `stopped` says whether it was cut short, `notices` holds what the user should be told."""

    def __init__(self) -> None:
        self.notices: list[str] = []
        self.text = ""
        self.stopped = False
        self.prefilled = 0  # prompt positions computed for this answer
        self.reused = 0  # prompt positions taken from a kept KV cache
        self.generated = 0  # token ids the model wrote (the stop token not counted)
        self._deltas: Iterator[str] = iter(())

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        return next(self._deltas)

    def close(self) -> None:
        self._deltas.close()  # type: ignore[attr-defined]


class ChatSession:
    def __init__(self, text_model: TextModel, template: str, engine: Engine) -> None:
        self._text = text_model
        self._style = style_for(template)
        self._engine = engine
        self._id = ("conversation", next(_conversation_ids))  # the engine keeps its cache under this
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        # An answer starts streaming only when its first word is asked for. These counters tell it
        # whether, meanwhile, the conversation changed (new media, reset, undo) or Stop was pressed.
        self._version = 0
        self._stop_requests = 0
        self.media: MediaEncoding | None = None
        self._media_id = -1
        self._system = ""
        self._media_message: tuple[Part, ...] = ()
        self.turns: list[Turn] = []
        self.first_visible_turn = 0  # turns before this one no longer fit the context

    # -- media ---------------------------------------------------------------------------
    def add_media(self, encoding: MediaEncoding) -> MediaEncoding:
        """Start a new conversation about `encoding` (from `Pipeline.encode`)."""
        with self._exclusive():
            self.media = encoding
            self._media_id = next(_media_ids)
            self._system, self._media_message = encoding_prompt(encoding)
            self._clear_turns()
        return encoding

    def reset(self) -> None:
        """Forget the medium and every turn, and what the engine keeps for them."""
        with self._exclusive():
            self.media = None
            self._clear_turns()

    def _clear_turns(self) -> None:
        self.turns = []
        self.first_visible_turn = 0
        self._engine.forget(self._id)

    # -- turns ---------------------------------------------------------------------------
    def ask(self, question: str, clip: MediaEncoding | None = None, **sampling: float | int | None) -> Reply:
        """Start answering `question`; iterate the returned Reply for the streamed text.

        `clip` (an encoding of a part of the video, `Pipeline.question_clip`) is shown with this
        question and answered from."""
        settings = SamplingSettings(**{k: v for k, v in sampling.items() if v is not None})
        question = question.strip()
        if self.media is None:
            raise ChatError("Upload a video or an image first, then ask about it.")
        if not question:
            raise ChatError("Type a question first.")
        turn = Turn(question, clip=clip, clip_id=next(_media_ids) if clip is not None else -1)
        reply = Reply()
        reply._deltas = self._answer(turn, settings, reply, self._version, self._stop_requests)
        return reply

    def add_answered_turn(self, question: str, answer: str) -> None:
        """Add a turn answered elsewhere: a stateless client (the OpenAI-style API) sends the whole
        conversation each time, and its earlier turns are replayed as they were, not answered again."""
        if self.media is None:
            raise ChatError("Upload a video or an image first, then ask about it.")
        with self._exclusive():
            self.turns.append(Turn(question.strip(), answer=answer))

    def undo(self) -> Turn | None:
        """Remove the last turn (question and answer) from the conversation."""
        with self._exclusive():
            return self.turns.pop() if self.turns else None

    def retry(self, **sampling: float | int | None) -> Reply:
        """Answer the last question again (from the same part of the video), as if just asked."""
        last = self.undo()
        if last is None:
            raise ChatError("There is no question to answer again yet.")
        return self.ask(last.question, clip=last.clip, **sampling)

    def prompt_text(self, next_question: str | None = None) -> str:
        """The prompt string the model sees (with default settings: the official one).

        With `next_question`, the prompt it would see for that question, answered next."""
        return self._style.prompt_text(self._style.render(self._prompt_state(self.turns, next_question)))

    def prompt_embeddings(self, next_question: str | None = None) -> torch.Tensor:
        """(L, H) the LLM input for the prompt above: token embeddings with media spliced in.
        Exactly what an engine is sent."""
        if self.media is None:
            raise ChatError("Upload a video or an image first, then ask about it.")
        return self._embed(*self._prompt_keys(self.turns, next_question))

    def cancel(self) -> None:
        """Ask a running answer to end at its next token (Stop from another thread); an answer
        asked for but not started yet ends before its first word."""
        self._stop_requests += 1
        self._cancel.set()

    # -- internals -----------------------------------------------------------------------
    def _prompt_state(self, turns: list[Turn], next_question: str | None = None) -> PromptState:
        visible = turns[self.first_visible_turn:]
        asked = tuple((t.question, t.answer) for t in visible)
        if next_question is not None:
            asked += ((next_question.strip(), None),)
        if not any(t.clip is not None for t in visible):
            return PromptState(self._system, self._media_message, asked)  # the official state
        return PromptState(self._system, self._media_message, asked, self._turn_media(visible))

    def _turn_media(self, visible: list[Turn]) -> tuple[tuple[Part, ...], ...]:
        """Each visible turn's clip as parts, its blocks numbered after the medium's and earlier clips'."""
        assert self.media is not None
        first_block = len(self.media.blocks())
        result = []
        for turn in visible:
            if turn.clip is None:
                result.append(())
                continue
            result.append(clip_parts(turn.clip, first_block))
            first_block += len(turn.clip.blocks())
        return tuple(result)

    def _visible_blocks(self, turns: list[Turn]) -> list[tuple[int, int, torch.Tensor]]:
        """(owner id, block number within its owner, block) in prompt numbering. The owner id (the
        medium's or a turn clip's) keeps a block's keys the same when older turns are dropped."""
        assert self.media is not None
        blocks = [(self._media_id, index, block) for index, block in enumerate(self.media.blocks())]
        for turn in turns[self.first_visible_turn:]:
            if turn.clip is not None:
                blocks += [(turn.clip_id, index, block) for index, block in enumerate(turn.clip.blocks())]
        return blocks

    def _prompt_keys(self, turns: list[Turn], next_question: str | None = None) -> tuple[list[PositionKey], Blocks]:
        items = self._text.tokenizer.encode_parts(self._style.render(self._prompt_state(turns, next_question)))
        return splice_keys(items, self._visible_blocks(turns))

    def _embed(self, keys: list[PositionKey], blocks: Blocks) -> torch.Tensor:
        return embed_positions(self._text.embed_tokens, keys, blocks, self._text.dtype, self._text.device)

    def _answer(self, turn: Turn, settings: SamplingSettings, reply: Reply, version: int,
                stop_requests: int) -> Iterator[str]:
        if not self._lock.acquire(blocking=False):
            raise ChatError("An answer is still being written: wait for it or press Stop.")
        if version != self._version:  # New chat, a new file or Undo came before the first word
            reply.stopped = True
            self._lock.release()
            return
        self._cancel.clear()
        if stop_requests != self._stop_requests:
            self._cancel.set()  # Stop came before the first word: the question stays, unanswered
        self.turns.append(turn)
        decoder = StreamDecoder(self._text.tokenizer.decode, self._style.stop_strings)
        generated: list[int] = []
        tokens: Iterator[int] | None = None
        try:
            if self._cancel.is_set():
                return
            tokens = self._start_generation(settings, reply)
            for token in tokens:
                generated.append(token)
                delta = decoder.push(token)
                if delta:
                    yield delta
                if decoder.stopped or self._cancel.is_set():
                    break
            tail = decoder.finish()
            if tail:
                yield tail
        except GeneratorExit:
            turn.stopped = reply.stopped = True
            raise
        except BaseException:
            if not generated:
                self.turns.remove(turn)  # nothing was said: the conversation is as before
            else:
                turn.stopped = reply.stopped = True  # cut short (an engine that failed mid-answer)
            raise
        finally:
            if tokens is not None:
                tokens.close()  # type: ignore[attr-defined]  # ends the engine's request (Stop)
            reply.generated = len(generated)
            self._finish_turn(turn, decoder, reply)

    def _start_generation(self, settings: SamplingSettings, reply: Reply) -> Iterator[int]:
        keys, blocks = self._fit_context(settings, reply)
        request = GenerationRequest(
            embeds=self._embed(keys, blocks), keys=tuple(keys), settings=settings,
            stop_ids=frozenset({self._text.tokenizer.eos_token_id}), conversation=self._id)
        tokens = self._engine.generate(request)
        return _with_stats(tokens, request, reply)

    def _finish_turn(self, turn: Turn, decoder: StreamDecoder, reply: Reply) -> None:
        if turn in self.turns:
            turn.stopped = turn.stopped or self._cancel.is_set()
            turn.answer = self._style.postprocess(decoder.text)
            reply.text, reply.stopped = turn.answer, turn.stopped
        self._lock.release()

    def _fit_context(self, settings: SamplingSettings, reply: Reply) -> tuple[list[PositionKey], Blocks]:
        """Drop the oldest turns until prompt + new tokens fit (never the system text or media)."""
        limit = self._text.context_length
        dropped = 0
        while True:
            keys, blocks = self._prompt_keys(self.turns)
            if len(keys) + settings.max_new_tokens <= limit:
                break
            if self.first_visible_turn >= len(self.turns) - 1:
                self.first_visible_turn -= dropped  # a refused question leaves the conversation as it was
                raise ChatError(
                    f"This question is too long for the model: the prompt needs {len(keys)} positions "
                    f"plus {settings.max_new_tokens} for the answer, and the context holds {limit}. "
                    "Shorten the question or lower 'max new tokens'.")
            self.first_visible_turn += 1
            dropped += 1
        if dropped:
            reply.notices.append(
                f"The conversation no longer fits the model's context ({limit} positions): "
                f"the {dropped} oldest turn(s) were left out of what the model sees.")
        return keys, blocks

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Wait for a running answer to stop (it ends at its next token) before changing state."""
        self._cancel.set()
        if not self._lock.acquire(timeout=60):
            raise ChatError("The previous answer did not stop in time; try again.")
        self._version += 1
        try:
            yield
        finally:
            self._cancel.clear()
            self._lock.release()


def _with_stats(tokens: Iterator[int], request: GenerationRequest, reply: Reply) -> Iterator[int]:
    """The engine's tokens; once the first arrives, the reply says what was prefilled and reused."""
    try:
        for token in tokens:
            reply.prefilled = request.stats.get("prefilled", 0)
            reply.reused = request.stats.get("reused", 0)
            yield token
    finally:
        tokens.close()  # type: ignore[attr-defined]
        reply.prefilled = request.stats.get("prefilled", reply.prefilled)
        reply.reused = request.stats.get("reused", reply.reused)
