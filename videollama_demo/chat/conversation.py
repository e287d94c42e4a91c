"""One browser session's conversation: its medium, its turns and its KV cache.

`ChatSession.ask` streams an answer as text deltas. Settings that change answers (temperature,
frames, audio) are arguments of the session's calls, never written to the shared model.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from ..encoding import MediaEncoding
from ..model.llm import LoadedLLM
from .detokenize import StreamDecoder
from .generate import SamplingSettings, generate_tokens, prefill
from .kv_cache import KVCachePool, KVCacheState, PositionKey
from .templates import Media, PromptState, media_prompt, style_for

Encoder = Callable[..., MediaEncoding]
_media_ids = itertools.count()


class ChatError(Exception):
    """A request the session cannot serve; the message tells the user what to do."""


@dataclass(eq=False)
class Turn:
    question: str
    answer: str | None = None  # None while it is being answered
    stopped: bool = False  # the user pressed Stop: `answer` is the partial text


class Reply:
    """Iterate for text deltas. After the loop: `text` is the official post-processed answer,
    `stopped` says whether it was cut short, `notices` holds what the user should be told."""

    def __init__(self) -> None:
        self.notices: list[str] = []
        self.text = ""
        self.stopped = False
        self.prefilled = 0  # prompt positions computed for this answer
        self.reused = 0  # prompt positions taken from the kept KV cache
        self._deltas: Iterator[str] = iter(())

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        return next(self._deltas)

    def close(self) -> None:
        self._deltas.close()  # type: ignore[attr-defined]


class ChatSession:
    def __init__(self, llm: LoadedLLM, template: str, encode: Encoder, kv_pool: KVCachePool) -> None:
        self._llm = llm
        self._style = style_for(template)
        self._encode = encode
        self._pool = kv_pool
        self._kv = KVCacheState(llm.model.config)
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self.media: MediaEncoding | None = None
        self._media_id = -1
        self._system = ""
        self._media_message: tuple = ()
        self.turns: list[Turn] = []
        self.first_visible_turn = 0  # turns before this one no longer fit the context

    # -- media ---------------------------------------------------------------------------
    def add_media(self, media: str | Path | MediaEncoding, use_audio: bool = True,
                  num_frames: int | None = None) -> MediaEncoding:
        """Encode a file (or take an encoding) and start a new conversation about it."""
        encoding = media if isinstance(media, MediaEncoding) else self._encode(
            media, use_audio=use_audio, num_frames=num_frames)
        with self._exclusive():
            self._start_conversation(encoding)
        return encoding

    def _start_conversation(self, encoding: MediaEncoding) -> None:
        self.media = encoding
        self._media_id = next(_media_ids)
        self._system, self._media_message = media_prompt(
            encoding.kind, encoding.uses_audio, encoding.message)
        self._clear_turns()

    def reset(self) -> None:
        """Forget the medium and every turn."""
        with self._exclusive():
            self.media = None
            self._clear_turns()

    def _clear_turns(self) -> None:
        self.turns = []
        self.first_visible_turn = 0
        self._kv.drop()

    # -- turns ---------------------------------------------------------------------------
    def ask(self, question: str, **sampling: float | int | None) -> Reply:
        """Start answering `question`; iterate the returned Reply for the streamed text."""
        settings = SamplingSettings(**{k: v for k, v in sampling.items() if v is not None})
        question = question.strip()
        if self.media is None:
            raise ChatError("Upload a video or an image first, then ask about it.")
        if not question:
            raise ChatError("Type a question first.")
        reply = Reply()
        reply._deltas = self._answer(question, settings, reply)
        return reply

    def undo(self) -> Turn | None:
        """Remove the last turn (question and answer) from the conversation."""
        with self._exclusive():
            return self.turns.pop() if self.turns else None

    def retry(self, **sampling: float | int | None) -> Reply:
        """Answer the last question again, as if it had just been asked."""
        last = self.undo()
        if last is None:
            raise ChatError("There is no question to answer again yet.")
        return self.ask(last.question, **sampling)

    def prompt_text(self, next_question: str | None = None) -> str:
        """The prompt string the model sees (with default settings: the official one).

        With `next_question`, the prompt it would see for that question, answered next."""
        return self._style.prompt_text(self._style.render(self._prompt_state(next_question)))

    def prompt_embeddings(self, next_question: str | None = None) -> torch.Tensor:
        """(1, L, H) the LLM input for the prompt above: token embeddings with media spliced in."""
        if self.media is None:
            raise ChatError("Upload a video or an image first, then ask about it.")
        keys, blocks = self._prompt_keys(self._prompt_state(next_question))
        return self._embed(keys, blocks)

    def cancel(self) -> None:
        """Ask a running answer to end at its next token (Stop from another thread)."""
        self._cancel.set()

    # -- internals -----------------------------------------------------------------------
    def _prompt_state(self, next_question: str | None = None) -> PromptState:
        turns = tuple((t.question, t.answer) for t in self.turns[self.first_visible_turn:])
        if next_question is not None:
            turns += ((next_question.strip(), None),)
        return PromptState(self._system, self._media_message, turns)

    def _answer(self, question: str, settings: SamplingSettings, reply: Reply) -> Iterator[str]:
        if not self._lock.acquire(blocking=False):
            raise ChatError("An answer is still being written: wait for it or press Stop.")
        self._cancel.clear()
        turn = Turn(question)
        self.turns.append(turn)
        self._pool.checkout(id(self), self._kv)
        decoder = StreamDecoder(self._llm.tokenizer.decode, self._style.stop_strings)
        generated: list[int] = []
        try:
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
                self._kv.drop()
            raise
        finally:
            self._finish_turn(turn, decoder, generated, reply)

    def _start_generation(self, settings: SamplingSettings, reply: Reply) -> Iterator[int]:
        keys, embed_source = self._fit_context(settings, reply)
        start = self._kv.reuse_prefix(keys)
        reply.reused, reply.prefilled = start, len(keys) - start
        embeds = self._embed(keys[start:], embed_source)  # (1, L - start, H)
        first_logits = prefill(self._llm.model, embeds, self._kv.cache)
        self._kv.keys.extend(keys[start:])
        stop_ids = frozenset({self._llm.tokenizer.eos_token_id})
        return generate_tokens(self._llm.model, self._kv.cache, first_logits, settings, stop_ids)

    def _finish_turn(self, turn: Turn, decoder: StreamDecoder, generated: list[int], reply: Reply) -> None:
        if turn in self.turns:
            turn.stopped = turn.stopped or self._cancel.is_set()
            turn.answer = self._style.postprocess(decoder.text)
            reply.text, reply.stopped = turn.answer, turn.stopped
            if self._kv.cache is not None:
                self._kv.sync_keys(generated)
        self._pool.release(id(self))
        self._lock.release()

    def _prompt_keys(self, state: PromptState) -> tuple[list[PositionKey], list[torch.Tensor]]:
        """Keys of every position of the prompt for `state`, and the media blocks they refer to."""
        assert self.media is not None
        blocks = self.media.blocks()
        items = self._llm.tokenizer.encode_parts(self._style.render(state))
        keys: list[PositionKey] = []
        for item in items:
            if isinstance(item, Media):
                rows = blocks[item.index].shape[1]
                keys.extend((self._media_id, item.index, row) for row in range(rows))
            else:
                keys.append(item)
        return keys, blocks

    def _fit_context(self, settings: SamplingSettings, reply: Reply) -> tuple[list[PositionKey], list[torch.Tensor]]:
        """Drop the oldest turns until prompt + new tokens fit (never the system text or media)."""
        limit = self._llm.context_length
        dropped = 0
        while True:
            keys, blocks = self._prompt_keys(self._prompt_state())
            if len(keys) + settings.max_new_tokens <= limit:
                break
            if self.first_visible_turn >= len(self.turns) - 1:
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

    def _embed(self, keys: list[PositionKey], blocks: list[torch.Tensor]) -> torch.Tensor:
        """Embeddings for `keys` in order: runs of token embeddings and media rows, spliced."""
        device, dtype = self._llm.device, self._llm.model.get_input_embeddings().weight.dtype
        pieces: list[torch.Tensor] = []
        for is_text, run in itertools.groupby(keys, key=lambda key: isinstance(key, int)):
            run = list(run)
            if is_text:
                pieces.append(self._llm.embed_tokens(run))  # (1, n, H)
                continue
            for block, rows in itertools.groupby(run, key=lambda key: key[1]):
                rows = [row for _, _, row in rows]
                pieces.append(blocks[block][:, rows[0]:rows[-1] + 1])  # (1, n, H), rows are consecutive
        return torch.cat([p.to(device=device, dtype=dtype) for p in pieces], dim=1)

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Wait for a running answer to stop (it ends at its next token) before changing state."""
        self._cancel.set()
        if not self._lock.acquire(timeout=60):
            raise ChatError("The previous answer did not stop in time; try again.")
        try:
            yield
        finally:
            self._cancel.clear()
            self._lock.release()
