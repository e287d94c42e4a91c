"""The Timeline panel: a timed description of each part of the current video, filled in as the
parts are described, each row a link into the player, with WebVTT/SRT/JSON downloads.

A row is `<a class="timeline-cue" href="#t=START&end=END&frames=I,J">`: the panel's script seeks
the player to START and outlines the sampled frames I, J (those inside the part) in the strip.
"Ask about this part" fills the From/To boxes (the time-range question path) and the question.
Gradio's sanitiser keeps `href` and `class`, hence the parameters in the href.
"""

from __future__ import annotations

import html
import logging
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import gradio as gr

from .. import MediaEncoding, Pipeline, Reading, TimelineCue, TimelinePlan, format_cues_as, format_time
from .actions import PageSession, refusal, refuse_if_session_ended, user_errors
from .housekeeping import EndedSessions

log = logging.getLogger(__name__)

ASK_QUESTION = "What happens in this part of the video?"
PREVIEW_NOTE = ("<p class='timeline-preview'><b>Preview mode: these descriptions are NOT about your video</b> "
                "(a small stand-in model writes them). The parts and their times are real.</p>")
CSS = """
#timeline .timeline-row { display: flex; gap: 12px; align-items: baseline; padding: 4px 8px; border-radius: 6px;
  cursor: pointer; }
#timeline .timeline-row:hover, #timeline .timeline-row.chosen { background: rgba(245, 158, 11, 0.15); }
#timeline a.timeline-cue { color: #b45309; font-weight: 600; font-variant-numeric: tabular-nums; white-space: nowrap; }
#timeline .timeline-text { flex: 1; }
#timeline a.timeline-ask { white-space: nowrap; font-size: 0.85em; }
#timeline .failed .timeline-text { color: #b91c1c; }
"""
# Runs once when the panel loads; its listener serves every row written later (event delegation).
PANEL_JS = """
const typeInto = (id, text) => {
  const box = document.querySelector(`#${id} textarea, #${id} input`);
  if (!box) return false;
  box.value = text;
  box.dispatchEvent(new Event("input", {bubbles: true}));
  return true;
};
const fillSpan = (from, to, question, tries) => {
  if (typeInto("time-from", from) && typeInto("time-to", to)) { typeInto("question", question); return; }
  if (tries === 0) return;
  // The "Ask about part of the video" accordion is closed: open it, then try again.
  const label = [...document.querySelectorAll("button, span")].find(
    (node) => node.textContent.trim() === "Ask about part of the video");
  if (label && tries === 10) label.click();
  setTimeout(() => fillSpan(from, to, question, tries - 1), 150);
};
element.addEventListener("click", (event) => {
  const row = event.target.closest(".timeline-row");
  if (!row) return;
  event.preventDefault();
  const at = new URLSearchParams(row.querySelector("a.timeline-cue").hash.slice(1));
  if (event.target.closest("a.timeline-ask")) {
    fillSpan(at.get("from"), at.get("to"), at.get("q"), 10);
    return;
  }
  const video = document.querySelector("#player video");
  if (video) video.currentTime = Number(at.get("t"));
  const frames = (at.get("frames") || "").split(",").filter(Boolean).map(Number);
  document.querySelectorAll("#frames-strip .thumbnail-item").forEach((thumb, index) =>
    thumb.classList.toggle("cited-frame", frames.includes(index)));
  element.querySelectorAll(".timeline-row").forEach((other) => other.classList.toggle("chosen", other === row));
}, true);
"""


# -- what is shown (pure) -----------------------------------------------------------------------

def frames_in(frame_times: Sequence[float], start: float, end: float) -> list[int]:
    """The sampled frames inside [start, end); none there: the one nearest the part's middle."""
    inside = [index for index, t in enumerate(frame_times) if start <= t < end]
    if inside or not frame_times:
        return inside
    middle = (start + end) / 2
    return [min(range(len(frame_times)), key=lambda index: abs(frame_times[index] - middle))]


def cue_row(cue: TimelineCue, frame_times: Sequence[float]) -> str:
    frames = ",".join(str(index) for index in frames_in(frame_times, cue.start, cue.end))
    span = f"from={format_time(cue.start)}&amp;to={format_time(cue.end)}&amp;q={ASK_QUESTION.replace(' ', '+')}"
    href = f"#t={cue.start:.2f}&amp;end={cue.end:.2f}&amp;frames={frames}&amp;{span}"
    failed = " failed" if cue.failed else ""
    return (f'<div class="timeline-row{failed}"><a class="timeline-cue" href="{href}" title="Play this part">'
            f'{html.escape(cue.label)}</a><span class="timeline-text">{html.escape(cue.text)}</span>'
            f'<a class="timeline-ask" href="#ask">Ask about this part</a></div>')


def timeline_html(file_name: str, plan: TimelinePlan, cues: Sequence[TimelineCue], frame_times: Sequence[float],
                  is_preview: bool, state: str) -> str:
    """The panel: whose timeline, the plan line, the rows so far, and where the run stands."""
    head = f"<p><b>Timeline of {html.escape(file_name)}</b>: {html.escape(plan.summary())}</p>"
    rows = "".join(cue_row(cue, frame_times) for cue in cues)
    return (PREVIEW_NOTE if is_preview else "") + head + rows + f"<p><i>{html.escape(state)}</i></p>"


def progress_text(done: int, total: int) -> str:
    return f"{done} of {total} part(s) described; more appear as they are ready (Stop keeps these)."


def write_downloads(cues: Sequence[TimelineCue], file_name: str) -> list[str]:
    """The cues as .vtt, .srt and .json files in a fresh folder inside Gradio's upload folder, so
    that the housekeeper deletes them with the uploads (Gradio serves copies it makes of them)."""
    uploads = Path(gr.utils.get_upload_folder())
    uploads.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="timeline-", dir=uploads))
    stem = Path(file_name).stem or "timeline"
    plain = [cue.as_cue() for cue in cues]
    paths = []
    for fmt in ("vtt", "srt", "json"):
        path = folder / f"{stem}.timeline.{fmt}"
        path.write_text(format_cues_as(plain, fmt), encoding="utf-8")
        paths.append(str(path))
    return paths


# -- what the buttons do ------------------------------------------------------------------------

class TimelineActions:
    def __init__(self, pipeline: Pipeline, ended_sessions: EndedSessions | None = None) -> None:
        self.pipeline = pipeline
        self.ended_sessions = ended_sessions if ended_sessions is not None else EndedSessions()
        self._stops: weakref.WeakKeyDictionary[PageSession, threading.Event] = weakref.WeakKeyDictionary()

    def make(self, temperature: float, top_p: float, repetition_penalty: float,
             page: PageSession | None, request: gr.Request | None = None
             ) -> Iterator[tuple[str, list[str] | None, Any]]:
        """Describe each part of the tab's video; yield (panel, downloads, player) after each new
        cue. At the end the player gets the timeline as its captions (WebVTT)."""
        media = page.chat.media if page is not None else None
        refuse_if_session_ended(page, request, self.ended_sessions)
        if page is None or media is None or page.source is None:
            raise refusal("Drop a video first: the timeline describes each part of it.")
        source, name = page.source, page.file_name or Path(page.source).name
        with user_errors(f"planning the timeline of {name}"):
            plan = self.pipeline.plan_timeline(source, reading=part_reading(media))
        stop = self._stops[page] = threading.Event()

        def shown(cues: list[TimelineCue], state: str) -> str:
            return timeline_html(name, plan, cues, media.frame_times, self.pipeline.is_preview, state)

        yield shown([], progress_text(0, len(plan.spans))), None, gr.skip()
        cues: list[TimelineCue] = []
        for cue in self.pipeline.timeline(source, part_reading(media), plan=plan, cancel=stop,
                                          temperature=temperature, top_p=top_p,
                                          repetition_penalty=repetition_penalty):
            cues.append(cue)
            if page.source != source:
                stop.set()  # a new file was dropped: this timeline is about the old one
            yield shown(cues, progress_text(len(cues), len(plan.spans))), None, gr.skip()
        ended = ("Done." if len(cues) == len(plan.spans) else
                 f"Stopped after {len(cues)} of {len(plan.spans)} part(s).")
        downloads = write_downloads(cues, name) if cues else None
        captioned = gr.Video(value=source, subtitles=downloads[0]) if downloads and page.source == source else gr.skip()
        yield shown(cues, ended), downloads, captioned

    def stop(self, page: PageSession | None) -> None:
        """End the tab's timeline after the part being described; the rows shown stay."""
        event = self._stops.get(page) if page is not None else None
        if event is not None:
            event.set()


def part_reading(media: MediaEncoding) -> Reading:
    """Each part is read like the conversation's file: with its audio if used, and the same
    subtitles beside it when they are on (8 frames per part, the official clip)."""
    reading = Reading(use_audio=media.uses_audio)
    if media.transcript is not None:
        return reading.replace(subtitles="given", cues=tuple(media.subtitles))
    return reading


def timeline_panel(pipeline: Pipeline, page: gr.State, sampling: Sequence[gr.components.Component],
                   player: gr.Video, gpu: dict,
                   hold_model_slot: Callable[[Callable], Callable] = lambda handler: handler,
                   ended_sessions: EndedSessions | None = None) -> None:
    """The Timeline accordion and its events. `sampling`: temperature, top-p, repetition penalty.
    `hold_model_slot` wraps the model work so it shares the page's and the API's model slots;
    `player` gets the finished timeline as captions."""
    actions = TimelineActions(pipeline, ended_sessions)
    with gr.Accordion("Timeline: what happens in each part of the video", open=True, elem_id="timeline-panel"):
        with gr.Row():
            make = gr.Button("Timeline", variant="secondary", elem_id="timeline-button", scale=0, min_width=140)
            stop = gr.Button("Stop the timeline", elem_id="timeline-stop", scale=0, min_width=140)
        shown = gr.HTML("<p>Press <b>Timeline</b> to describe each ~30 s part of the video; "
                        "click a part to play it.</p>", elem_id="timeline", js_on_load=PANEL_JS)
        files = gr.File(label="Download the timeline: WebVTT, SRT, JSON", file_count="multiple",
                        interactive=False, elem_id="timeline-files")
    make.click(hold_model_slot(actions.make), [*sampling, page], [shown, files, player], api_name="timeline",
               show_progress="minimal", **gpu)
    stop.click(actions.stop, [page], None, queue=False, api_name="stop_timeline")
