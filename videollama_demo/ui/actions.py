"""What each button and upload does: calls into the engine's public API, returns what to show.

One `PageSession` per browser tab lives in `gr.State`; it owns that tab's `ChatSession`. The
model (`Pipeline`) is shared; settings that change answers travel as arguments of each call.
Engine errors (`MediaError`, `ChatError`) become `gr.Error` with the engine's own sentence, and
the conversation is left as it was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from .. import (
    ChatError,
    ChatSession,
    Cue,
    EngineError,
    MediaEncoding,
    MediaError,
    Pipeline,
    Reading,
    Reply,
    SegmentBudget,
    parse_time,
    parse_transcript,
)
from . import view
from .housekeeping import EndedSessions

log = logging.getLogger(__name__)

NOT_UPLOADED = "That file did not come from an upload on this page. Please drop the file here again."
LONG_VIDEO_HINT_SECONDS = 60.0  # from this length the page shows what long-video mode would read
READS_REMEMBERED = 10_000  # tabs remembered between an upload's start and its failure handler
SESSION_ENDED = ("Your session ended after a long time without activity, and the server let go of its file and "
                 "conversation. Drop the file again to go on.")
UPLOAD_FIRST = "Upload a video or an image first (drop it on the left, or click an example), then ask about it."
# How long a new question, Stop or Undo waits for this tab's previous answer to end (it ends at
# its next token once stopped, so this is only reached if the model itself hangs).
ANSWER_WAIT_SECONDS = 30.0
ChatUpdate = list[view.ChatMessage]


@dataclass(eq=False)
class PageSession:
    """One browser tab: its conversation and the file the conversation is about."""

    chat: ChatSession
    source: str | None = None  # the uploaded file, read again when Audio or Frames change
    file_name: str | None = None
    answering: threading.Lock = field(default_factory=threading.Lock)  # held while an answer streams
    switching: threading.Lock = field(default_factory=threading.Lock)  # held while the file or reading changes

    def close(self) -> None:
        """Stop any answer and free the KV cache and media, without blocking the caller."""
        self.chat.cancel()
        threading.Thread(target=_free, args=(self.chat,), name="free-chat-session", daemon=True).start()


def _free(chat: ChatSession) -> None:
    try:
        chat.reset()  # waits for a running answer to stop at its next token
    except ChatError as err:
        log.warning("a closed tab's conversation could not be freed: %s", err)


@dataclass(frozen=True)
class MediaView:
    """Everything the page shows about the current file, in the order of the outputs.

    The drop zone is emptied after each upload, so the next file can be dropped at once; the
    file being talked about shows in the player (or the picture) instead."""

    page: PageSession | None
    chat: ChatUpdate
    player: Any
    picture: Any
    frames: list
    seen: str
    status: str
    transcript: str
    drop_zone: None = None

    def as_outputs(self) -> tuple:
        return tuple(getattr(self, f.name) for f in dataclasses.fields(self))

    @classmethod
    def unchanged(cls) -> tuple:
        """The outputs that leave everything the page shows as it is."""
        return tuple(gr.skip() for _ in dataclasses.fields(cls))

    @classmethod
    def wire(cls, **components: Any) -> list[Any]:
        """The page's output components in the order `as_outputs` fills them, named like the fields,
        so the wiring in blocks.py cannot silently disagree with this class."""
        names = [f.name for f in dataclasses.fields(cls)]
        if sorted(components) != sorted(names):
            raise ValueError(f"MediaView outputs are {names}, got {sorted(components)}")
        return [components[name] for name in names]


@dataclass(frozen=True)
class Sampling:
    temperature: float
    top_p: float
    max_new_tokens: int
    repetition_penalty: float

    def as_kwargs(self) -> dict[str, float | int]:
        return {"temperature": float(self.temperature), "top_p": float(self.top_p),
                "max_new_tokens": int(self.max_new_tokens), "repetition_penalty": float(self.repetition_penalty)}


class PageActions:
    """The event handlers of the page, around one loaded pipeline."""

    def __init__(self, pipeline: Pipeline, examples_dir: Path | None = None,
                 ended_sessions: EndedSessions | None = None) -> None:
        self.pipeline = pipeline
        self.examples_dir = examples_dir
        self.ended_sessions = ended_sessions if ended_sessions is not None else EndedSessions()
        # Tabs whose upload handler started (and has not been answered by file_refused): a failed
        # upload that never started was refused by the queue, and its file is kept for a retry.
        self._reads_started: OrderedDict[str, None] = OrderedDict()
        self._reads_lock = threading.Lock()
        self._pages: weakref.WeakValueDictionary[str, PageSession] = weakref.WeakValueDictionary()

    # -- media ------------------------------------------------------------------------------
    def upload(self, path: str | None, use_audio: bool, num_frames: int, long_video: bool, segments: int,
               subtitles: bool, subtitle_file: str | None, subtitle_source: str, page: PageSession | None,
               request: gr.Request, progress: gr.Progress = gr.Progress()) -> tuple:
        """Encode a new file and start a new conversation about it."""
        session = request.session_hash if request is not None else None
        if session:
            self._note_read_started(session)  # a failure from here on is the file's, not the queue's
        if not path:
            raise refusal("Drop a video or an image file first.")
        path = self.uploaded_file(path)
        reading = self._reading(use_audio, num_frames, long_video, segments, subtitles, subtitle_file,
                                subtitle_source)
        page = page or self._new_page(request)
        restarted = bool(page.chat.turns)
        shown = self._start_conversation(page, path, reading, progress)
        if session:
            self._forget_read_started(session)
        if restarted:
            gr.Info(f"New file: a new conversation about {page.file_name} starts.")
        return shown

    def uploaded_file(self, path: str) -> str:
        """`path` if it lies in Gradio's upload cache or the examples folder, else a refusal.

        A client of the API can send any path (`/etc/passwd`, `../app.py`) where a browser sends
        an upload; Gradio hands it to us as is, so nothing else on the server may be read."""
        real = Path(path).resolve()
        roots = [Path(gr.utils.get_upload_folder()).resolve()]
        if self.examples_dir is not None:
            roots.append(self.examples_dir.resolve())
        if not any(real.is_relative_to(root) for root in roots):
            log.warning("refused a file outside the upload folder: %r", path)
            raise refusal(NOT_UPLOADED)
        return str(real)

    def settings_changed(self, use_audio: bool, num_frames: int, long_video: bool, segments: int,
                         subtitles: bool, subtitle_file: str | None, subtitle_source: str,
                         page: PageSession | None, request: gr.Request | None = None,
                         progress: gr.Progress = gr.Progress()) -> tuple:
        """A reading setting changed (audio, frames, long video, subtitles): read the current video
        again (an image has one frame, no sound, no subtitles)."""
        refuse_if_session_ended(page, request, self.ended_sessions)
        if page is None or page.source is None or page.chat.media is None or page.chat.media.kind == "image":
            return MediaView.unchanged()
        reading = self._reading(use_audio, num_frames, long_video, segments, subtitles, subtitle_file,
                                subtitle_source)
        shown = self._start_conversation(page, page.source, reading, progress, only_if_current=True)
        if shown is None:  # a new file landed while the old one was read again: that file stays
            return MediaView.unchanged()
        gr.Info(f"New settings: {page.file_name} was read again and the conversation starts over.")
        return shown

    def apply_transcript(self, text: str, use_audio: bool, num_frames: int, long_video: bool, segments: int,
                         page: PageSession | None, request: gr.Request | None = None,
                         progress: gr.Progress = gr.Progress()) -> tuple:
        """The user edited (or wrote) the transcript: the model gets these cues from now on."""
        refuse_if_session_ended(page, request, self.ended_sessions)
        if page is None or page.source is None or page.chat.media is None or page.chat.media.kind == "image":
            raise refusal("Drop a video first: a transcript goes with a video.")
        with user_errors("reading the transcript"):
            cues = parse_transcript(text or "")
        if not cues:
            raise refusal("The transcript has no lines like '00:00:01.000 --> 00:00:03.000 what is said'.")
        reading = self._reading(use_audio, num_frames, long_video, segments, False, None)
        shown = self._start_conversation(page, page.source, reading, progress, cues)
        gr.Info("The edited transcript is used from now on; the conversation starts over.")
        return shown

    def _reading(self, use_audio: bool, num_frames: int, long_video: bool, segments: int, subtitles: bool,
                 subtitle_file: str | None, subtitle_source: str = "embedded") -> Reading:
        """The page's settings as a Reading. Subtitles come from the source chosen: speech, the
        dropped file (while there is one; otherwise the video's own), or the video's own stream."""
        reading = Reading(use_audio=bool(use_audio), num_frames=int(num_frames), long_video=bool(long_video),
                          segments=int(segments) if long_video and segments else None)
        if not subtitles:
            return reading
        if subtitle_source == "speech":
            return reading.replace(subtitles="speech")
        if subtitle_file and subtitle_source != "embedded":
            return reading.replace(subtitles="file", subtitle_file=self.uploaded_file(subtitle_file))
        return reading.replace(subtitles="embedded")

    def _start_conversation(self, page: PageSession, path: str, reading: Reading, progress: gr.Progress,
                            cues: list[Cue] | None = None, only_if_current: bool = False) -> tuple | None:
        """Read `path` and start a conversation about it. With `only_if_current` (new settings for
        the file already shown) nothing changes, and None is returned, when another file took its
        place while this one was read: the page's events for a new file and for new settings are
        separate, so the later one can finish first."""
        name = Path(path).name
        if cues is not None:
            reading = reading.replace(subtitles="given", subtitle_file=None, cues=tuple(cues))
        with user_errors(f"reading {name}"):
            encoding = self.pipeline.encode(path, reading, on_stage=_progress_stages(progress))
            progress((1, 1), desc="Starting the conversation")
            with page.switching:
                if only_if_current and page.source != path:
                    return None
                page.chat.add_media(encoding)  # stops an answer still running in this tab
                page.source, page.file_name = path, name
        return self._media_view(page, encoding, self._plan(encoding, reading)).as_outputs()

    def _plan(self, encoding: MediaEncoding, reading: Reading) -> SegmentBudget | None:
        """What long-video mode would do with this video, shown before the user turns it on."""
        duration = encoding.info.duration
        if encoding.kind != "video" or reading.long_video or duration is None or duration < LONG_VIDEO_HINT_SECONDS:
            return None
        try:
            return self.pipeline.plan_long_video(duration, use_audio=reading.use_audio,
                                                 subtitles=reading.with_subtitles, num_frames=reading.num_frames)
        except Exception as err:  # a hint: it must never stand in the way of the upload itself
            log.warning("no long-video plan for %s: %s", encoding.info.path, err)
            return None

    def _media_view(self, page: PageSession, encoding: MediaEncoding, plan: SegmentBudget | None = None) -> MediaView:
        is_video = encoding.kind == "video"
        return MediaView(
            page=page, chat=[],
            player=gr.Video(value=page.source if is_video else None, visible=is_video),
            picture=gr.Image(value=None if is_video else page.source, visible=not is_video),
            frames=view.frame_gallery(encoding),
            seen=view.seen_summary(encoding, page.file_name or "", plan),
            status=view.conversation_status(page.file_name, encoding.kind),
            transcript=view.transcript_text(encoding))

    def _require_page(self, page: PageSession | None, request: gr.Request | None) -> PageSession:
        refuse_if_session_ended(page, request, self.ended_sessions)
        if page is None or page.chat.media is None:
            raise refusal(UPLOAD_FIRST)
        return page

    def _new_page(self, request: gr.Request) -> PageSession:
        page = PageSession(self.pipeline.new_session())
        if request is not None and request.session_hash:
            self._pages[request.session_hash] = page
        return page

    # -- answers ----------------------------------------------------------------------------
    def ask(self, question: str, temperature: float, top_p: float, max_new_tokens: int,
            repetition_penalty: float, time_from: str, time_to: str, times_in_question: bool,
            page: PageSession | None, request: gr.Request | None = None) -> Iterator[ChatUpdate]:
        """Stream the answer to `question`: the whole visible conversation after each new piece.

        With `time_from`/`time_to` (or, when `times_in_question`, a span written in the question),
        the answer comes from frames sampled inside that part of the video."""
        page = self._require_page(page, request)
        sampling = Sampling(temperature, top_p, max_new_tokens, repetition_penalty).as_kwargs()
        span = time_span(time_from, time_to)
        with _answering(page):
            yield from self._stream(page, lambda: self._ask(page, question or "", span, bool(times_in_question),
                                                            sampling), question or "")

    def _ask(self, page: PageSession, question: str, span: tuple[float, float] | None, detect: bool,
             sampling: dict[str, float | int]) -> Reply:
        """Encode the part of the video the question is about (if any), then start the answer."""
        assert page.chat.media is not None
        clip = self.pipeline.question_clip(page.chat.media, question, span, detect) if question.strip() else None
        return page.chat.ask(question, clip=clip, **sampling)

    def retry(self, temperature: float, top_p: float, max_new_tokens: int, repetition_penalty: float,
              page: PageSession | None, request: gr.Request | None = None) -> Iterator[ChatUpdate]:
        """Answer the last question again (it is removed with its answer first)."""
        page = self._require_page(page, request)
        sampling = Sampling(temperature, top_p, max_new_tokens, repetition_penalty).as_kwargs()
        with _answering(page):
            question = page.chat.turns[-1].question if page.chat.turns else ""
            yield from self._stream(page, lambda: page.chat.retry(**sampling), question)

    def _stream(self, page: PageSession, start: Callable[[], Reply], question: str) -> Iterator[ChatUpdate]:
        with user_errors("answering"):
            reply = start()
        yield view.chat_messages(page.chat.turns, media=page.chat.media) + [view.user_message(question)]
        text, notices_shown = "", 0
        try:
            for delta in reply:
                text += delta
                notices_shown = _show_new_notices(reply, notices_shown)
                yield view.chat_messages(page.chat.turns, media=page.chat.media, live_text=text)
        except Exception as err:
            # the session took back a turn it could not answer
            yield view.chat_messages(page.chat.turns, media=page.chat.media)
            raise as_user_error(err, "answering") from err
        finally:
            reply.close()  # Stop or a closed tab: the engine ends at its next token
        _show_new_notices(reply, notices_shown)
        yield view.chat_messages(page.chat.turns, media=page.chat.media)

    def stop(self, page: PageSession | None) -> ChatUpdate:
        """Stop this tab's answer at its next token; show the conversation with the answer marked stopped."""
        if page is None:
            return []
        page.chat.cancel()
        return _settled_chat(page)

    def file_refused(self, page: PageSession | None, request: gr.Request | None = None) -> tuple[Any, Any, Any]:
        """After a failed upload: (drop zone, conversation, "Try this file again" button).

        A file the handler read and refused leaves an empty drop zone. A file the queue refused
        (the server busy, too many requests from this address) was never read: it stays in the
        drop zone, and the button sends it again. The conversation shows as it is (a read that
        started stopped a running answer; it shows as stopped)."""
        session = request.session_hash if request is not None else None
        never_read = bool(session) and not self._forget_read_started(session)
        chat = gr.skip() if page is None else _settled_chat(page)
        if never_read:
            return gr.skip(), chat, gr.Button(visible=True)
        return None, chat, gr.Button(visible=False)

    def _note_read_started(self, session: str) -> None:
        with self._reads_lock:
            self._reads_started[session] = None
            self._reads_started.move_to_end(session)
            while len(self._reads_started) > READS_REMEMBERED:
                self._reads_started.popitem(last=False)

    def _forget_read_started(self, session: str) -> bool:
        """Whether this tab's last upload handler started; forgets it."""
        with self._reads_lock:
            return self._reads_started.pop(session, "never") is None

    # -- conversation -----------------------------------------------------------------------
    def undo(self, page: PageSession | None) -> tuple[ChatUpdate, Any]:
        """Remove the last question and its answer; the question goes back into the text box."""
        if page is None:
            return [], gr.skip()
        page.chat.cancel()
        with _answering(page), user_errors("undoing"):  # a running answer has sent its last update
            turn = page.chat.undo()
        return view.chat_messages(page.chat.turns, media=page.chat.media), (turn.question if turn else gr.skip())

    def new_chat(self, page: PageSession | None) -> ChatUpdate:
        """Forget every question and answer; keep the file (no new encoding)."""
        if page is not None and page.chat.media is not None:
            page.chat.cancel()
            # Wait until a running answer has ended and sent its last update, so that update cannot
            # land on the page after this empty conversation.
            with _answering(page), user_errors("starting a new conversation"):
                page.chat.add_media(page.chat.media)
        return []

    # -- tabs that go away ------------------------------------------------------------------
    def tab_closed(self, request: gr.Request) -> None:
        page = self._pages.pop(request.session_hash, None) if request.session_hash else None
        if page is not None:
            page.close()

    @staticmethod
    def state_deleted(page: PageSession | None) -> None:
        if page is not None:
            page.close()


def time_span(time_from: str | None, time_to: str | None) -> tuple[float, float] | None:
    """The span typed in the From/To boxes ("2:10", "130", "2:10.5"), None when both are empty."""
    start_text, end_text = (time_from or "").strip(), (time_to or "").strip()
    if not start_text and not end_text:
        return None
    start, end = parse_time(start_text or "0"), parse_time(end_text)
    if start is None or end is None:
        raise refusal("Write the span as m:ss or seconds, e.g. From 1:05 To 1:30 (or leave both empty).")
    if end <= start:
        raise refusal(f"The span ends ({end_text}) before it starts ({start_text or '0'}).")
    return start, end


def hold_question(question: str, page: PageSession | None) -> tuple[str, str, Any]:
    """Empty the text box at once and keep the question for the answer that follows. The question
    shows in the conversation at once, marked as waiting, while it waits for the model (when a file
    is there to ask about and no answer of this tab is running: otherwise the answer says why)."""
    if not question.strip() or page is None or page.chat.media is None or page.answering.locked():
        return "", question, gr.skip()
    shown = view.chat_messages(page.chat.turns, media=page.chat.media)
    return "", question, shown + [view.user_message(question), view.waiting_message()]


def restore_question(held: str, in_box: str, page: PageSession | None) -> tuple[str, Any]:
    """The answer failed before it started: give the question back, unless something new was
    typed, and take the waiting question out of the conversation."""
    return (in_box if in_box else held), (gr.skip() if page is None else _settled_chat(page))


def _settled_chat(page: PageSession) -> ChatUpdate:
    """The conversation once this tab's answer (if any) has ended."""
    with _answering(page):
        return view.chat_messages(page.chat.turns, media=page.chat.media)




@contextlib.contextmanager
def _answering(page: PageSession) -> Iterator[None]:
    """One answer at a time per tab: wait for the previous one (a Stop ends it at its next token)."""
    if not page.answering.acquire(timeout=ANSWER_WAIT_SECONDS):
        raise refusal("The previous answer is still being written; press Stop and try again.")
    try:
        yield
    finally:
        page.answering.release()


@contextlib.contextmanager
def user_errors(doing: str) -> Iterator[None]:
    """Run engine calls; what fails comes out as a `gr.Error` the user can read."""
    try:
        yield
    except gr.Error:
        raise
    except Exception as err:
        raise as_user_error(err, doing) from err


def refuse_if_session_ended(page: PageSession | None, request: gr.Request | None, ended: EndedSessions) -> None:
    """A tab without state whose session the housekeeper ended (idle too long) is told so, rather
    than to upload a first file."""
    if page is None and request is not None and request.session_hash in ended:
        raise refusal(SESSION_ENDED)


def refusal(message: str, doing: str | None = None) -> gr.Error:
    """A `gr.Error` for something the user asked that cannot be done: one log line, no traceback
    (Gradio prints one for every error unless told not to; it shows with -v, debug logging)."""
    log.info("refused%s: %s", f" while {doing}" if doing else "", message)
    return gr.Error(message, print_exception=log.isEnabledFor(logging.DEBUG))


def as_user_error(err: Exception, doing: str) -> gr.Error:
    """The engine's own sentence for errors meant for users; anything unexpected is logged and explained."""
    if isinstance(err, gr.Error):
        return err
    if isinstance(err, (MediaError, ChatError, EngineError, ValueError)):  # ValueError: a setting out of range
        # one log line for what the user is told; the traceback only with -v (debug logging)
        return refusal(str(err), doing)
    log.error("unexpected failure while %s", doing, exc_info=err)
    return gr.Error(f"Something went wrong while {doing} ({type(err).__name__}). "
                    "The conversation is unchanged; please try again.")


def _show_new_notices(reply: Reply, shown: int) -> int:
    for notice in reply.notices[shown:]:
        gr.Warning(notice)
    return len(reply.notices)


def _progress_stages(progress: gr.Progress) -> Callable[[str], None]:
    """Feed the engine's stage names (decoding, audio, encoding) to the progress bar."""
    steps = iter(range(1, 1000))

    def on_stage(stage: str) -> None:
        progress((next(steps), None), desc=stage)

    return on_stage
