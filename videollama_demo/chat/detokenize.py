"""Token ids in, visible text deltas out, one token at a time.

Three things make this more than `decode([token])`:
- SentencePiece drops the leading space of the first piece it decodes, so "▁dog" alone decodes to
  "dog". We decode a short window that starts one emission back and emit only what the newest
  tokens add (the prefix/read offsets of text-generation-inference), which keeps the cost per
  token constant instead of re-decoding the whole answer.
- Byte-fallback characters (emoji, CJK) arrive as several tokens, each an incomplete UTF-8
  sequence that decodes to U+FFFD. Text is held back until the character is complete.
- A stop string ("###") may arrive split over tokens ("##", "#"). Any tail that could still
  become a stop string is held back until it is decided, and a stop string is never shown.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

_INCOMPLETE = "\ufffd"  # what a decoder gives for a partial UTF-8 sequence


class StreamDecoder:
    """Push token ids, get text deltas. `stopped` turns true when a stop string appears: the
    caller then ends generation. `finish()` flushes what was held back. `text` is everything
    shown so far."""

    def __init__(self, decode: Callable[[Sequence[int]], str], stop_strings: tuple[str, ...] = ()) -> None:
        self._decode = decode
        self._stop_strings = tuple(s for s in stop_strings if s)
        self._ids: list[int] = []
        self._prefix_offset = 0  # window start: the tokens before the last emission (context only)
        self._read_offset = 0  # tokens before this one have been turned into text
        self._held = ""  # decoded text that could be the start of a stop string
        self.text = ""
        self.stopped = False

    def push(self, token_id: int) -> str:
        """Add one generated token; return the text it makes visible (possibly "")."""
        if self.stopped:
            return ""
        self._ids.append(token_id)
        return self._release(self._decoded_delta(flush=False), final=False)

    def finish(self) -> str:
        """No more tokens: return the rest of the text, without any stop string."""
        if self.stopped:
            return ""
        return self._release(self._decoded_delta(flush=True), final=True)

    def _decoded_delta(self, flush: bool) -> str:
        """Text that the tokens since the read offset add, once it is complete."""
        before = self._decode(self._ids[self._prefix_offset:self._read_offset])
        after = self._decode(self._ids[self._prefix_offset:])
        if not flush and (len(after) <= len(before) or after.endswith(_INCOMPLETE)):
            return ""  # nothing visible yet, or a character still missing bytes: wait
        self._prefix_offset, self._read_offset = self._read_offset, len(self._ids)
        return after[len(before):]

    def _release(self, new_text: str, final: bool) -> str:
        pending = self._held + new_text
        stop_at = self._first_stop(pending)
        if stop_at is not None:
            self.stopped = True
            visible, self._held = pending[:stop_at], ""
        elif final:
            visible, self._held = pending, ""
        else:
            keep = self._undecided_tail(pending)
            visible, self._held = pending[:len(pending) - keep], pending[len(pending) - keep:]
        self.text += visible
        return visible

    def _first_stop(self, pending: str) -> int | None:
        # Only `pending` can hold a stop string: emitted text never ends with the start of one.
        found = [i for i in (pending.find(s) for s in self._stop_strings) if i >= 0]
        return min(found) if found else None

    def _undecided_tail(self, pending: str) -> int:
        """Length of the longest tail of `pending` that begins some stop string."""
        longest = max((len(s) - 1 for s in self._stop_strings), default=0)
        for size in range(min(longest, len(pending)), 0, -1):
            if any(stop.startswith(pending[-size:]) for stop in self._stop_strings):
                return size
        return 0
