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
from transformers import DynamicCache

from ..encoding import MediaEncoding
from ..model.llm import LoadedLLM
from .detokenize import StreamDecoder
from .generate import SamplingSettings, generate_tokens, prefill
from .kv_cache import KVCachePool, KVCacheState, PositionKey
from .templates import (
    Media,
    MediaPrompt,
    Part,
    PromptState,
    media_prompt,
    segments_prompt,
    style_for,
    time_range_parts,
    with_subtitles,
)
from .timecodes import find_time_range, format_time

Encoder = Callable[..., MediaEncoding]
_media_ids = itertools.count()


class ChatError(Exception):
    """A request the session cannot serve; the message tells the user what to do."""


@dataclass(eq=False)
class Turn:
    question: str
    answer: str | None = None  # None while it is being answered
    stopped: bool = False  # the user pressed Stop: `answer` is the partial text
    time_range: tuple[float, float] | None = None  # seconds the question was answered from
    clip: MediaEncoding | None = None  # the clip sampled inside `time_range`, shown with the question
    clip_id: int = -1


def encoding_prompt(encoding: MediaEncoding) -> MediaPrompt:
    """The prompt start for an encoding: the official one, plus its subtitles when it has them;
    in long-video mode one timed block per segment."""
    lines = encoding.transcript.lines if encoding.transcript is not None else ()
    if encoding.is_segmented:
        said = dict(lines)
        spans = list(encoding.segment_spans)
        duration = encoding.info.duration or spans[-1][1]
        return segments_prompt(duration, spans, len(encoding.frame_times) // len(spans), encoding.uses_audio,
                               [said.get(start, "") for start, _ in spans])
    return with_subtitles(media_prompt(encoding.kind, encoding.uses_audio, encoding.message), lines)


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


# Answers a whole prompt from scratch (keys, media blocks on the CPU, settings, stop ids) -> token ids.
# Used on ZeroGPU, where each answer runs in a GPU worker process and no KV cache outlives it.
RemoteAnswerer = Callable[[list[PositionKey], dict[tuple[int, int], torch.Tensor], SamplingSettings,
                           frozenset[int]], Iterator[int]]


def embed_positions(llm: LoadedLLM, keys: list[PositionKey],
                    blocks: dict[tuple[int, int], torch.Tensor]) -> torch.Tensor:
    """(1, len(keys), H): runs of token embeddings and media rows, spliced in the order of `keys`."""
    device, dtype = llm.device, llm.model.get_input_embeddings().weight.dtype
    pieces: list[torch.Tensor] = []
    for is_text, run in itertools.groupby(keys, key=lambda key: isinstance(key, int)):
        run = list(run)
        if is_text:
            pieces.append(llm.embed_tokens(run))  # (1, n, H)
            continue
        for block, rows in itertools.groupby(run, key=lambda key: key[:2]):
            rows = [row for _, _, row in rows]
            pieces.append(blocks[block][:, rows[0]:rows[-1] + 1])  # (1, n, H), rows are consecutive
    return torch.cat([p.to(device=device, dtype=dtype) for p in pieces], dim=1)


def answer_from_scratch(llm: LoadedLLM) -> RemoteAnswerer:
    """A RemoteAnswerer for `llm`: embed every position, prefill a fresh cache, stream token ids.

    Only plain data crosses the call (position keys, CPU tensors, settings), so it can run in
    another process; the model is reached through the closure (ZeroGPU forks its worker)."""
    def answer(keys: list[PositionKey], blocks: dict[tuple[int, int], torch.Tensor], settings: SamplingSettings,
               stop_ids: frozenset[int]) -> Iterator[int]:
        cache = DynamicCache(config=llm.model.config)
        first_logits = prefill(llm.model, embed_positions(llm, keys, blocks), cache)
        yield from generate_tokens(llm.model, cache, first_logits, settings, stop_ids)
    return answer


class ChatSession:
    def __init__(self, llm: LoadedLLM, template: str, encode: Encoder, kv_pool: KVCachePool,
                 remote_answerer: RemoteAnswerer | None = None) -> None:
        self._llm = llm
        self._remote = remote_answerer  # set on ZeroGPU: every answer re-prefills in a GPU worker
        self._style = style_for(template)
        self._encode = encode
        self._pool = kv_pool
        self._kv = KVCacheState(llm.model.config)
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        # An answer starts streaming only when its first word is asked for. These counters tell it
        # whether, meanwhile, the conversation changed (new media, reset, undo) or Stop was pressed.
        self._version = 0
        self._stop_requests = 0
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
        self._system, self._media_message = encoding_prompt(encoding)
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
    def ask(self, question: str, time_range: tuple[float, float] | None = None, detect_time_range: bool = False,
            **sampling: float | int | None) -> Reply:
        """Start answering `question`; iterate the returned Reply for the streamed text.

        `time_range` (start, end) seconds answers from frames sampled inside that span (an official
        clip, with its audio when the medium uses audio), shown with this question. Without it, a span
        written in the question ("between 2:10 and 3:00") is used when `detect_time_range` is on (off by
        default: the official prompt never changes unless asked). Raises MediaError if the clip cannot be read."""
        settings = SamplingSettings(**{k: v for k, v in sampling.items() if v is not None})
        question = question.strip()
        if self.media is None:
            raise ChatError("Upload a video or an image first, then ask about it.")
        if not question:
            raise ChatError("Type a question first.")
        turn = Turn(question)
        span = self._time_range(question, time_range, detect_time_range)
        if span is not None:
            turn.time_range, turn.clip, turn.clip_id = span, self._range_clip(span), next(_media_ids)
        reply = Reply()
        reply._deltas = self._answer(turn, settings, reply, self._version, self._stop_requests)
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
        return self.ask(last.question, time_range=last.time_range, detect_time_range=False, **sampling)

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
        """Ask a running answer to end at its next token (Stop from another thread); an answer
        asked for but not started yet ends before its first word."""
        self._stop_requests += 1
        self._cancel.set()

    # -- internals -----------------------------------------------------------------------
    def _prompt_state(self, next_question: str | None = None) -> PromptState:
        visible = self.turns[self.first_visible_turn:]
        turns = tuple((t.question, t.answer) for t in visible)
        if next_question is not None:
            turns += ((next_question.strip(), None),)
        if not any(t.clip is not None for t in visible):
            return PromptState(self._system, self._media_message, turns)  # the official state
        return PromptState(self._system, self._media_message, turns, self._turn_media(visible))

    def _turn_media(self, visible: list[Turn]) -> tuple[tuple[Part, ...], ...]:
        """Each visible turn's clip as parts, its blocks numbered after the medium's and earlier clips'."""
        assert self.media is not None
        first_block = len(self.media.blocks())
        result = []
        for turn in visible:
            if turn.clip is None or turn.time_range is None:
                result.append(())
                continue
            lines = turn.clip.transcript.lines if turn.clip.transcript is not None else ()
            result.append(time_range_parts(*turn.time_range, turn.clip.uses_audio, first_block,
                                           turn.clip.message, lines))
            first_block += len(turn.clip.blocks())
        return tuple(result)

    def _visible_blocks(self) -> list[tuple[int, int, torch.Tensor]]:
        """(owner id, block number within its owner, block) in prompt numbering. The owner id (the
        medium's or a turn clip's) keeps a block's cache keys the same when older turns are dropped."""
        assert self.media is not None
        blocks = [(self._media_id, index, block) for index, block in enumerate(self.media.blocks())]
        for turn in self.turns[self.first_visible_turn:]:
            if turn.clip is not None:
                blocks += [(turn.clip_id, index, block) for index, block in enumerate(turn.clip.blocks())]
        return blocks

    def _time_range(self, question: str, given: tuple[float, float] | None, detect: bool) -> tuple[float, float] | None:
        """The span to answer from: the given one (checked), else one found in the question that
        lies in the video, else None."""
        assert self.media is not None
        duration = self.media.info.duration
        if given is None:
            found = find_time_range(question) if detect and self._encode is not None else None
            if found is None or self.media.kind != "video" or (duration is not None and found[0] >= duration):
                return None
            given = found
        start, end = float(given[0]), float(given[1])
        if self.media.kind != "video":
            raise ChatError("A time range needs a video, and this is an image.")
        if not 0 <= start < end:
            raise ChatError(f"A time range needs a start before its end (got {start:g} to {end:g} s).")
        if duration is not None and start >= duration:
            raise ChatError(f"The range starts after the video ends (it is {format_time(duration)} long).")
        return start, min(end, duration) if duration is not None else end

    def _range_clip(self, span: tuple[float, float]) -> MediaEncoding:
        """An official clip sampled inside `span`, with the medium's settings (frames, audio, subtitles)."""
        assert self.media is not None
        frames = len(self.media.frame_times) // max(len(self.media.segment_spans), 1)
        subtitles = list(self.media.subtitles) if self.media.transcript is not None else None
        return self._encode(self.media.info.path, use_audio=self.media.uses_audio, num_frames=frames,
                            time_range=span, subtitles=subtitles)

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
        self._pool.checkout(id(self), self._kv)
        decoder = StreamDecoder(self._llm.tokenizer.decode, self._style.stop_strings)
        generated: list[int] = []
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
                self._kv.drop()
            raise
        finally:
            self._finish_turn(turn, decoder, generated, reply)

    def _start_generation(self, settings: SamplingSettings, reply: Reply) -> Iterator[int]:
        keys, embed_source = self._fit_context(settings, reply)
        stop_ids = frozenset({self._llm.tokenizer.eos_token_id})
        if self._remote is not None:  # the same positions, prefilled from scratch where the GPU is
            self._kv.drop()
            reply.reused, reply.prefilled = 0, len(keys)
            blocks = {key: block.detach().to("cpu") for key, block in embed_source.items()}
            return self._remote(keys, blocks, settings, stop_ids)
        start = self._kv.reuse_prefix(keys)
        reply.reused, reply.prefilled = start, len(keys) - start
        embeds = self._embed(keys[start:], embed_source)  # (1, L - start, H)
        first_logits = prefill(self._llm.model, embeds, self._kv.cache)
        self._kv.keys.extend(keys[start:])
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

    def _prompt_keys(self, state: PromptState) -> tuple[list[PositionKey], dict[tuple[int, int], torch.Tensor]]:
        """Keys of every position of the prompt for `state`, and the media blocks they refer to."""
        numbered = self._visible_blocks()
        items = self._llm.tokenizer.encode_parts(self._style.render(state))
        keys: list[PositionKey] = []
        for item in items:
            if isinstance(item, Media):
                owner, index, block = numbered[item.index]
                keys.extend((owner, index, row) for row in range(block.shape[1]))
            else:
                keys.append(item)
        return keys, {(owner, index): block for owner, index, block in numbered}

    def _fit_context(self, settings: SamplingSettings,
                     reply: Reply) -> tuple[list[PositionKey], dict[tuple[int, int], torch.Tensor]]:
        """Drop the oldest turns until prompt + new tokens fit (never the system text or media)."""
        limit = self._llm.context_length
        dropped = 0
        while True:
            keys, blocks = self._prompt_keys(self._prompt_state())
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

    def _embed(self, keys: list[PositionKey], blocks: dict[tuple[int, int], torch.Tensor]) -> torch.Tensor:
        return embed_positions(self._llm, keys, blocks)

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
