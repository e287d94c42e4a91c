"""The Gradio Blocks page: layout and event wiring only (what each event does is in actions.py).

Event chains follow the ones `gr.ChatInterface` builds: the question box is emptied at once
(queue=False), then the streaming answer runs in the queue under the shared "gpu" concurrency
limit, so encoding and answering never exceed `--concurrency` jobs on the accelerator. Stop,
Undo, New chat and a new upload cancel a running answer; the engine ends it at its next token.

API (for `gradio_client`): /upload (file + how to read it: audio, frames, long video, segments,
subtitles from the file's own stream), /ask (question + sampling + an optional time span; streams
the chat), /apply_transcript (subtitles as text: edited cues, or a whole .srt/.vtt), /regenerate,
/stop, /undo, /reset (new conversation, same file), /timeline (streams the timeline panel, then its
.vtt/.srt/.json files), /stop_timeline. The rest is private.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from gradio.utils import _parse_file_size

from .. import Pipeline
from . import api, view
from .actions import MediaView, PageActions, PageSession, hold_question, restore_question
from .examples import ensure_examples
from .hosting import guarded_app_kwargs, merged_app_kwargs, start_housekeeping
from .housekeeping import EndedSessions, Upkeep
from .limits import HostLimits, parse_size, question_chars, question_validator, subtitle_validator, transcript_validator
from .timeline import CSS as TIMELINE_CSS
from .timeline import timeline_panel

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
GPU = "gpu"  # concurrency id shared by every event that runs the model
BEAM_NOTE = ("Beam search is left out on purpose: it cannot stream, so Stop could not interrupt it "
             "(the official demo's default is 1 beam). Temperature 0 gives greedy decoding.")
SETTINGS_NOTE = ("Changing how the file is read (audio, frames, long video, subtitles) reads it again and "
                 "starts a new conversation. Off, the options below give the official Video-LLaMA prompt.")
SUBTITLE_SOURCE_NOTE = ("Subtitles come from the video's own subtitle stream (its speech when it has none), an "
                        ".srt/.vtt file, or what is said, recognized by Whisper on this server. Recognized words "
                        "can be wrong: check them in the transcript below.")
# (label, Reading.subtitles): where the subtitle lines come from.
SUBTITLE_SOURCES = [("the video's own", "embedded"), ("a file", "file"), ("from speech", "speech")]
CSS = """
#frames-strip { border: none !important; }  /* the group around it draws the frame */
#frames-strip .grid-wrap { padding-top: 36px; }  /* keep the floating label off the first thumbnails */
#frames-strip .caption-label { font-variant-numeric: tabular-nums; }
#frames-strip .thumbnail-item.cited-frame { outline: 3px solid #f59e0b; outline-offset: 2px; }
#chatbot a.timecode { color: #b45309; font-weight: 600; font-variant-numeric: tabular-nums; cursor: pointer; }
"""
# One delegated listener for the time links in answers (view.timecode_link): seek the player to
# the time and mark the sampled frame nearest it. Capture phase, so the link never navigates.
PAGE_JS = """
() => {
  document.addEventListener("click", (event) => {
    const link = event.target.closest("a.timecode");
    if (!link) return;
    event.preventDefault();
    const at = new URLSearchParams(link.hash.slice(1));
    const video = document.querySelector("#player video");
    if (video) video.currentTime = Number(at.get("t"));
    const frame = Number(at.get("frame"));
    document.querySelectorAll("#frames-strip .thumbnail-item").forEach((thumb, index) =>
      thumb.classList.toggle("cited-frame", index === frame));
  }, true);
}
"""


@dataclass(frozen=True)
class UIOptions:
    """How the page is served (the model is chosen when the pipeline is loaded)."""

    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    max_file_size: str = "500mb"
    concurrency: int = 1  # model jobs (encode or answer) at once
    queue_size: int = 32  # requests waiting beyond this are refused with "queue is full"
    examples_dir: Path = REPO_ROOT / "assets" / "generated"
    limits: HostLimits = HostLimits()  # what one request may cost (limits.py)
    upkeep: Upkeep = Upkeep()  # how long uploads and idle sessions stay (housekeeping.py)
    api_key: str | None = None  # the OpenAI-style routes (ui/api.py) then need `Authorization: Bearer KEY`
    allow_url_fetch: bool = False  # those routes may fetch http(s) media URLs


def build_demo(pipeline: Pipeline, options: UIOptions = UIOptions()) -> gr.Blocks:
    """The page around an already loaded pipeline."""
    ended_sessions = EndedSessions()  # filled by the housekeeper once the page is launched
    actions = PageActions(pipeline, options.examples_dir, ended_sessions)
    # One set of model slots for the page and the OpenAI-style API: neither can starve the other.
    gate = api.ModelGate(options.concurrency, options.queue_size)
    facts = view.ModelFacts.of(pipeline)
    with gr.Blocks(title="Video-LLaMA chat", analytics_enabled=False) as demo:
        page = gr.State(None, delete_callback=PageActions.state_deleted)
        gr.HTML(view.banner_html(facts, os.environ.get("SPACE_ID")), elem_id="model-banner")
        gr.Markdown("# Video-LLaMA: chat about a video or an image")
        question = gr.Textbox(label="Question", show_label=False, scale=5, lines=1, max_lines=6, render=False,
                              placeholder="Ask about the video or image (Enter sends)", elem_id="question")
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                upload = gr.File(label="Drop a video or an image here (or click to browse)", height=110,
                                 elem_id="media-upload")
                retry_file = gr.Button("Try this file again", visible=False, size="sm", elem_id="retry-file")
                example_set = _examples(pipeline, options, upload, question)
                player = gr.Video(label="Your video", interactive=False, visible=False, height=300,
                                  elem_id="player")
                picture = gr.Image(label="Your image", interactive=False, visible=False, type="filepath",
                                   height=300, elem_id="picture")
            with gr.Column(scale=3, min_width=400):
                status = gr.Markdown(view.conversation_status(None), elem_id="status")
                chatbot = gr.Chatbot(label="Conversation", height=420, elem_id="chatbot", buttons=["copy"],
                                     placeholder="Answers appear here, token by token.")
                with gr.Row():
                    question.render()
                    send = gr.Button("Send", variant="primary", scale=1, min_width=80, elem_id="send")
                    stop = gr.Button("Stop", variant="stop", scale=1, min_width=80, elem_id="stop")
                with gr.Row():
                    regenerate = gr.Button("Regenerate", size="sm", elem_id="regenerate")
                    undo = gr.Button("Undo", size="sm", elem_id="undo")
                    new_chat = gr.Button("New chat", size="sm", elem_id="new-chat")
                sampling, span = _answer_settings(pipeline)
                held_question = gr.Textbox(label="question", visible=False)
        # What the model got from the file, beside the settings that decide it.
        with gr.Group():
            frames = gr.Gallery(label="What the model saw: the sampled frames and their times", columns=8,
                                height=210, object_fit="contain", allow_preview=True, elem_id="frames-strip")
            with gr.Row(equal_height=False, elem_id="media-details"):
                seen = gr.Markdown("", elem_id="seen-summary", padding=True)
                with gr.Column(min_width=320):
                    reading = _media_settings(pipeline, facts)
            with gr.Accordion("Subtitles: the transcript the model gets (edit it, then Apply)", open=False):
                transcript = gr.Textbox(label="Transcript", lines=6, max_lines=20, elem_id="transcript",
                                        placeholder="00:00:01.000 --> 00:00:03.500 What is said then")
                apply_transcript = gr.Button("Apply the edited transcript", size="sm", elem_id="apply-transcript")

        media_outputs = MediaView.wire(page=page, chat=chatbot, player=player, picture=picture, frames=frames,
                                       seen=seen, status=status, transcript=transcript, drop_zone=upload)
        gpu = {"concurrency_id": GPU, "concurrency_limit": options.concurrency}
        private = {"api_visibility": "private"}
        timeline_panel(pipeline, page, [sampling[0], sampling[1], sampling[3]], player, gpu, gate.wrap,
                       ended_sessions)

        # Questions: empty the box at once, then stream the answer in the queue.
        held = gr.on([question.submit, send.click], hold_question, [question, page],
                     [question, held_question, chatbot], queue=False, **private)
        asking = held.then(gate.wrap(actions.ask), [held_question, *sampling, *span, page], [chatbot],
                           api_name="ask", show_progress="full",
                           validator=question_validator(question_chars(pipeline.config.llm.context_length)), **gpu)
        asking.failure(restore_question, [held_question, question, page], [question, chatbot], queue=False,
                       **private)
        retrying = gr.on([regenerate.click, chatbot.retry], gate.wrap(actions.retry), [*sampling, page], [chatbot],
                         api_name="regenerate", show_progress="full", **gpu)
        answers = [asking, retrying]

        stop.click(actions.stop, [page], [chatbot], cancels=answers, queue=False, api_name="stop")
        gr.on([undo.click, chatbot.undo], actions.undo, [page], [chatbot, question], cancels=answers,
              queue=False, api_name="undo")
        gr.on([new_chat.click, chatbot.clear], actions.new_chat, [page], [chatbot], cancels=answers,
              queue=False, api_name="reset")

        # Media: a new file, an example or new reading settings start a new conversation.
        # The subtitle file travels as state: an empty gr.File would be a required API argument.
        use_audio, num_frames, long_video, segments, subtitles, subtitle_file, subtitle_source = reading
        subtitle_path = gr.State(None)
        media_inputs = [upload, use_audio, num_frames, long_video, segments, subtitles, subtitle_path,
                        subtitle_source, page]
        uploading = upload.upload(gate.wrap(actions.upload), media_inputs, media_outputs, cancels=answers,
                                  api_name="upload", show_progress="full", **gpu)
        # A file the queue refused stays in the drop zone, and this button sends it again.
        uploading_again = retry_file.click(gate.wrap(actions.upload), media_inputs, media_outputs, cancels=answers,
                                           show_progress="full", **gpu, **private)
        for sent in (uploading, uploading_again):
            sent.failure(actions.file_refused, [page], [upload, chatbot, retry_file], queue=False, **private)
            sent.success(_hide, None, [retry_file], queue=False, **private)
        if example_set is not None:
            example_set.load_input_event.then(gate.wrap(actions.upload), media_inputs, media_outputs, cancels=answers,
                                              show_progress="full", **gpu, **private)
        # One event for every reading setting (a dropped or removed subtitle file changes
        # `subtitle_path`): "always_last" makes the browser send a tab's changes one after another,
        # the last one once the running read is done, so the last setting is the one read.
        gr.on([use_audio.input, num_frames.release, long_video.input, segments.release, subtitles.input,
               subtitle_source.input, subtitle_path.change],
              gate.wrap(actions.settings_changed), media_inputs[1:], media_outputs, cancels=answers,
              trigger_mode="always_last", show_progress="full",
              validator=subtitle_validator(media_inputs[1:].index(subtitle_path)), **gpu, **private)
        # Both queued: Gradio notices a State's change (and fires `subtitle_path.change`) only there.
        subtitle_file.upload(_keep_file, [subtitle_file], [subtitle_path, subtitle_source], **private)
        subtitle_file.clear(_forget, None, [subtitle_path], **private)
        apply_transcript.click(gate.wrap(actions.apply_transcript),
                               [transcript, use_audio, num_frames, long_video, segments, page], media_outputs,
                               cancels=answers, api_name="apply_transcript", show_progress="full",
                               validator=transcript_validator(), **gpu)
        demo.unload(actions.tab_closed)
    api.attach(demo, pipeline, gate, api.ApiOptions(options.api_key, options.allow_url_fetch,
                                                    _parse_file_size(options.max_file_size)))
    demo.ended_sessions = ended_sessions  # type: ignore[attr-defined]  # the housekeeper records into it
    return demo


def _keep_file(path: str | None) -> tuple[str | None, str]:
    """Keep the dropped subtitle file, and make it the source of the subtitles."""
    return path, "file"


def _forget() -> None:
    return None


def _hide() -> gr.Button:
    return gr.Button(visible=False)


def _media_settings(pipeline: Pipeline, facts: view.ModelFacts) -> list[gr.components.Component]:
    """How the file is read (audio, frames, long video, subtitles). Changing these encodes it again."""
    config = pipeline.config
    audio_info = ("Listen to the sound track when the file has one" if facts.has_audio
                  else "This model has no audio branch")
    use_audio = gr.Checkbox(value=facts.has_audio, label="Audio", info=audio_info, interactive=facts.has_audio)
    num_frames = gr.Slider(1, config.max_frame_pos, value=config.num_frames, step=1, label="Frames",
                           info="Sampled evenly over the video (official: 8)")
    gr.Markdown(SETTINGS_NOTE)
    with gr.Row():
        long_video = gr.Checkbox(False, label="Long video", elem_id="long-video",
                                 info="Read it as segments, each an official clip with its time range")
        segments = gr.Slider(0, 32, value=0, step=1, label="Segments", elem_id="segments",
                             info="0 = as many as the context holds (about one per 30 s)")
    with gr.Row():
        subtitles = gr.Checkbox(False, label="Subtitles", elem_id="use-subtitles",
                                info="Put what is said beside each frame or segment")
        subtitle_file = gr.File(label=".srt / .vtt (optional)", file_types=[".srt", ".vtt"], height=90,
                                elem_id="subtitle-file")
    subtitle_source = gr.Radio(SUBTITLE_SOURCES, value="embedded", label="Subtitles from",
                               elem_id="subtitle-source")
    gr.Markdown(SUBTITLE_SOURCE_NOTE)
    return [use_audio, num_frames, long_video, segments, subtitles, subtitle_file, subtitle_source]


def _answer_settings(pipeline: Pipeline) -> tuple[list[gr.Slider], list[gr.components.Component]]:
    """How answers are sampled, and which part of the video a question is about: per request."""
    llm = pipeline.config.llm
    with gr.Accordion("Answer settings: temperature, top-p, length", open=False):
        sliders = [
            gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Temperature", elem_id="temperature",
                      info="0 = greedy (always the most likely word); official: 1.0"),
            gr.Slider(0.05, 1.0, value=0.9, step=0.05, label="Top-p", info="official: 0.9"),
            gr.Slider(1, max(llm.max_new_tokens, min(1024, llm.context_length // 2)), value=llm.max_new_tokens,
                      step=1, label="Max new tokens", info="official: 300", elem_id="max-new-tokens"),
            gr.Slider(1.0, 2.0, value=1.0, step=0.05, label="Repetition penalty",
                      info="Above 1 discourages loops; official: 1.0 (off)"),
        ]
        gr.Markdown(BEAM_NOTE)
    with gr.Accordion("Ask about part of the video", open=False):
        with gr.Row():
            time_from = gr.Textbox("", label="From", placeholder="1:05", elem_id="time-from", min_width=80)
            time_to = gr.Textbox("", label="To", placeholder="1:30", elem_id="time-to", min_width=80)
        times_in_question = gr.Checkbox(False, label="Times written in the question pick the frames",
                                        info="\"What happens between 2:10 and 3:00?\" answers from 8 frames "
                                             "of that span (off: the official prompt)", elem_id="times-in-question")
    return sliders, [time_from, time_to, times_in_question]


def _examples(pipeline: Pipeline, options: UIOptions, upload: gr.File, question: gr.Textbox) -> gr.Examples | None:
    ready = ensure_examples(options.examples_dir)
    if not ready:
        return None
    # Encode them now, in the background, with the page's default settings: a click answers at once.
    pipeline.warm_cache([path for path, _ in ready])
    return gr.Examples(
        examples=[[str(path), example.question] for path, example in ready],
        example_labels=[example.label for _, example in ready],
        inputs=[upload, question], label="Examples: click one to load it, with a question to try",
        cache_examples=False, api_visibility="private")


def launch_demo(demo: gr.Blocks, options: UIOptions = UIOptions(), **overrides):
    """Queue (bounded), then serve. `overrides` go to `Blocks.launch` (tests: prevent_thread_lock...)."""
    demo.queue(max_size=options.queue_size, default_concurrency_limit=options.concurrency)
    # the request limit is the file limit: one file per upload request
    limits = dataclasses.replace(options.limits, queue_size=options.queue_size,
                                 request_bytes=parse_size(options.max_file_size))
    start_housekeeping(demo, options.upkeep)
    settings = dict(server_name=options.host, server_port=options.port, share=options.share,
                    max_file_size=options.max_file_size, theme=gr.themes.Soft(), css=CSS + TIMELINE_CSS, js=PAGE_JS,
                    allowed_paths=[str(options.examples_dir)],
                    app_kwargs=merged_app_kwargs(guarded_app_kwargs(demo, limits, GPU), api.app_kwargs(demo)))
    return demo.launch(**(settings | overrides))


__all__ = ["PageSession", "UIOptions", "build_demo", "launch_demo"]
