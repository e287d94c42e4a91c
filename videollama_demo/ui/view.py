"""What the page shows, computed from the engine's state: pure functions, no Gradio calls.

The chat history is always rebuilt from `ChatSession.turns`, never read back from the page.
Everything here returns plain strings, lists and dicts, so it is tested without a browser.

Times in answers about a video ("at 0:02", "[01:23]", "2 seconds") become links
`<a class="timecode" href="#t=SECONDS&frame=INDEX">`; the page's script (blocks.py) seeks the
player there and highlights the sampled frame INDEX, the one nearest that time. Gradio's
sanitiser keeps `href` and `class` on a link but drops `data-*` attributes, hence the href.
"""

from __future__ import annotations

import html
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .. import MediaEncoding, Pipeline, SegmentBudget, Transcript, Turn, find_citations, format_cues, format_time

STOPPED_NOTE = "*(stopped)*"
WAITING_NOTE = ("*Waiting for the model: other questions are being answered. Your place in the queue shows "
                "above the conversation; the answer starts here.*")
# The README section that explains how to get the official checkpoints.
WEIGHTS_SECTION = "getting-the-weights"
# Code spans and fenced blocks are shown verbatim by Markdown, so escaping inside them would show "&lt;".
_CODE = re.compile(r"(```.*?(?:```|$)|`[^`\n]*`)", re.DOTALL)
TIMECODE_CLASS = "timecode"  # the page's script handles clicks on links of this class

ChatMessage = dict[str, str]


@dataclass(frozen=True)
class ModelFacts:
    """What the page says about the loaded model."""

    name: str
    is_preview: bool
    preview_reason: str | None
    device: str
    dtype: str
    has_audio: bool

    @classmethod
    def of(cls, pipeline: Pipeline) -> ModelFacts:
        runtime = pipeline.runtime
        dtypes = {str(runtime.encoder_dtype), str(runtime.llm_dtype)}
        return cls(
            name=pipeline.config.name, is_preview=pipeline.is_preview, preview_reason=pipeline.preview_reason,
            device=str(runtime.device), dtype=" / ".join(sorted(d.removeprefix("torch.") for d in dtypes)),
            has_audio=pipeline.config.has_audio)


# -- chat ---------------------------------------------------------------------------------------

def escape_markup(text: str) -> str:
    """Show `<Video>`, `<ImageHere>` or `<b>` as typed: Markdown would otherwise turn them into
    (invisible) HTML elements. Code spans and fenced blocks already show text verbatim."""
    pieces = _CODE.split(text)
    return "".join(piece if index % 2 else piece.replace("<", "&lt;") for index, piece in enumerate(pieces))


def nearest_frame(frame_times: Sequence[float], seconds: float) -> int:
    """The index of the sampled frame closest to `seconds` (the earlier one on a tie)."""
    return min(range(len(frame_times)), key=lambda index: abs(frame_times[index] - seconds))


def timecode_link(label: str, seconds: float, media: MediaEncoding) -> str:
    frame = nearest_frame(media.frame_times, seconds)
    title = f"Play from {seconds_label(seconds)}; the model saw the frame at {seconds_label(media.frame_times[frame])}"
    return (f'<a class="{TIMECODE_CLASS}" href="#t={seconds:.2f}&amp;frame={frame}" '
            f'title="{title}">{label}</a>')


def link_timecodes(text: str, media: MediaEncoding) -> str:
    """Escape `text` like `escape_markup`, and turn each time inside the video into a link.

    Times past the end of the video are left as text ("10:30" in a 3-second clip is a clock
    time); a time within the last half second counts as the end."""
    duration = media.info.duration if media.info.duration is not None else media.frame_times[-1]
    shown, last = [], 0
    for citation in find_citations(text, duration):
        shown += [text[last:citation.start].replace("<", "&lt;"),
                  timecode_link(citation.label(text), min(citation.seconds, duration), media)]
        last = citation.end
    return "".join(shown) + text[last:].replace("<", "&lt;")


def _show_answer(text: str, media: MediaEncoding | None) -> str:
    if media is None or media.kind != "video":
        return escape_markup(text)
    pieces = _CODE.split(text)  # a time inside code stays code
    return "".join(piece if index % 2 else link_timecodes(piece, media) for index, piece in enumerate(pieces))


def user_message(question: str, time_range: tuple[float, float] | None = None) -> ChatMessage:
    """A question as typed (markup shown as text); a question about a span says which frames it got."""
    shown = escape_markup(question)
    if time_range is not None:
        shown = f"{shown}\n\n*(answered from frames of {format_time(time_range[0])}–{format_time(time_range[1])})*"
    return {"role": "user", "content": shown}


def waiting_message() -> ChatMessage:
    """Where the answer will be, while the question waits in the queue."""
    return {"role": "assistant", "content": WAITING_NOTE}


def answer_message(answer: str, stopped: bool = False, media: MediaEncoding | None = None) -> ChatMessage:
    """An answer as shown; about a video (`media`), the times it mentions are links."""
    shown = _show_answer(answer, media)
    if stopped:
        shown = f"{shown}\n\n{STOPPED_NOTE}" if shown.strip() else STOPPED_NOTE
    return {"role": "assistant", "content": shown}


def chat_messages(turns: Sequence[Turn], live_text: str = "", media: MediaEncoding | None = None) -> list[ChatMessage]:
    """The visible conversation. A turn still being answered (answer None) shows `live_text`.
    `media` is the file the conversation is about: times in answers about a video become links."""
    messages: list[ChatMessage] = []
    for turn in turns:
        messages.append(user_message(turn.question, turn.time_range))
        if turn.answer is None:
            if live_text:
                messages.append(answer_message(live_text, media=media))
        else:
            messages.append(answer_message(turn.answer, turn.stopped, media))
    return messages


# -- what the model saw -------------------------------------------------------------------------

def seconds_label(seconds: float) -> str:
    return f"{seconds:.1f} s"


CAPTION_CHARACTERS = 80  # the words beside a thumbnail; the whole line is in the transcript box


def frame_gallery(encoding: MediaEncoding) -> list[tuple[np.ndarray, str]]:
    """Every frame the model saw, with its time in the video as the caption, and with subtitles on,
    the words the prompt puts beside it ("2.5 s: the dog barks")."""
    if encoding.kind == "image":
        return [(encoding.thumbnails[0], "the image")]
    said = frame_words(encoding)
    return [(thumb, seconds_label(t) + (f": {textwrap.shorten(words, CAPTION_CHARACTERS, placeholder=' …')}"
                                        if words else ""))
            for thumb, t, words in zip(encoding.thumbnails, encoding.frame_times, said, strict=True)]


def frame_words(encoding: MediaEncoding) -> list[str]:
    """The subtitle words the prompt gives each frame: a line goes to the first frame at or after
    its time (its own frame per frame, the first frame of its segment in long-video mode)."""
    words = [""] * len(encoding.frame_times)
    if encoding.transcript is None:
        return words
    for at, text in encoding.transcript.lines:
        index = next((i for i, t in enumerate(encoding.frame_times) if t >= at - 1e-6), None)
        if index is not None:
            words[index] = f"{words[index]} {text}".strip()
    return words


def audio_status(encoding: MediaEncoding) -> str:
    """Whether the model heard the sound and, if not, why (the official code said nothing)."""
    if encoding.kind == "image":
        return "**Audio:** none (an image has no sound)."
    if not encoding.uses_audio:
        return f"**Audio: not used.** {encoding.audio_note or ''}".rstrip()
    spans = ", ".join(f"{start:.1f}–{end:.1f} s" for start, end in encoding.clip_spans)
    count = len(encoding.clip_spans)
    return f"**Audio: used**, {count} clip{'' if count == 1 else 's'} of the sound track: {spans}."


def media_facts(encoding: MediaEncoding, file_name: str) -> str:
    """One line about the file itself: kind, length, size, frame rate, sound track."""
    info = encoding.info
    facts = [f"{info.width}×{info.height}"]
    if encoding.kind == "video":
        if info.duration is not None:
            facts.insert(0, seconds_label(info.duration))
        if info.fps:
            facts.append(f"{info.fps:g} fps")
        facts.append("with a sound track" if info.has_audio else "no sound track")
    return f"**{html.escape(file_name)}**: {encoding.kind}, {', '.join(facts)}."


def seen_summary(encoding: MediaEncoding, file_name: str, plan: SegmentBudget | None = None) -> str:
    """The text under the frame strip: the file, the frames the model got, the audio, and the
    options beyond the official clip (segments, subtitles) with what they cost or cut."""
    if encoding.kind == "image":
        frames = "**Frames:** the image itself, as one frame."
    else:
        times = ", ".join(seconds_label(t) for t in encoding.frame_times)
        frames = f"**Frames:** {len(encoding.frame_times)} sampled at {times}."
    parts = [media_facts(encoding, file_name), frames, audio_status(encoding)]
    if encoding.is_segmented:
        spans = ", ".join(f"{format_time(a)}–{format_time(b)}" for a, b in encoding.segment_spans)
        parts.append(f"**Long-video mode:** {len(encoding.segment_spans)} segments, each an official "
                     f"{len(encoding.frame_times) // len(encoding.segment_spans)}-frame clip: {spans}.")
    elif plan is not None:
        parts.append(f"**Long-video mode would read:** {html.escape(plan.summary())}")
    if encoding.transcript is not None:
        parts.append(subtitle_status(encoding.transcript))
    parts += [f"*{html.escape(note)}*" for note in encoding.notes]
    if encoding.from_cache:
        parts.append("*From cache: this file was encoded before with these settings, so it was not encoded again.*")
    return "\n\n".join(parts)


def subtitle_status(transcript: Transcript) -> str:
    """How much of the subtitles the model gets, and what the word budget left out."""
    line = (f"**Subtitles:** {transcript.kept_words} of {transcript.total_words} words go into the prompt, "
            f"beside the {len(transcript.lines)} frame(s) or segment(s) they are spoken near.")
    if transcript.cut_words:
        cut = "; ".join(f"[{format_time(at)}] {html.escape(words)}" for at, words in transcript.cut[:6])
        more = " ..." if len(transcript.cut) > 6 else ""
        line += f" Cut to fit the context ({transcript.cut_words} words): {cut}{more}"
    return line


def transcript_text(encoding: MediaEncoding) -> str:
    """The cues in the editable transcript box (empty when subtitles are not used)."""
    return format_cues(list(encoding.subtitles)) if encoding.subtitles else ""


def conversation_status(file_name: str | None, kind: str | None = None) -> str:
    if file_name is None:
        return "Drop a video or an image on the left (or click an example below), then ask about it."
    return f"Talking about **{html.escape(file_name)}** ({kind}). Type a question below and press Enter."


# -- header -------------------------------------------------------------------------------------

def weights_help(space_id: str | None) -> str:
    """Where to read how to get the weights: the Space's README on Spaces, else the local README."""
    if space_id:
        url = f"https://huggingface.co/spaces/{space_id}/blob/main/README.md#{WEIGHTS_SECTION}"
        return f'<a href="{html.escape(url)}" target="_blank">Getting the weights</a> in the README'
    return f'"Getting the weights" in README.md (<code>README.md#{WEIGHTS_SECTION}</code>)'


def banner_html(facts: ModelFacts, space_id: str | None = None) -> str:
    """The preview warning (coloured, top of the page), or one line naming the model that runs."""
    if not facts.is_preview:
        return (f'<div style="padding:8px 14px;border-radius:8px;background:#ecfdf5;border:1px solid #059669;'
                f'color:#064e3b">Running <b>{html.escape(facts.name)}</b> with the official Video-LLaMA '
                f'weights on <b>{html.escape(facts.device)}</b> ({html.escape(facts.dtype)}).</div>')
    reason = html.escape((facts.preview_reason or "the preview model was chosen").rstrip("."))
    return (
        '<div id="preview-banner" role="alert" style="padding:12px 16px;border-radius:8px;background:#fef3c7;'
        'border:2px solid #d97706;color:#78350f;font-size:15px;line-height:1.45">'
        '<b>Preview mode: the real Video-LLaMA weights are not loaded. Answers are NOT about your video.</b><br>'
        'A small stand-in chat model answers, fed by encoders with random weights. '
        'What the page shows about your file (the sampled frames, their times, the audio) is real.<br>'
        f'<b>Why:</b> {reason}.<br>'
        f'<b>To run the real model:</b> see {weights_help(space_id)}, then restart the app.</div>')
