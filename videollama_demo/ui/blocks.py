"""The Gradio Blocks page: layout and event wiring only (what each event does is in actions.py).

Event chains follow the ones `gr.ChatInterface` builds: the question box is emptied at once
(queue=False), then the streaming answer runs in the queue under the shared "gpu" concurrency
limit, so encoding and answering never exceed `--concurrency` jobs on the accelerator. Stop,
Undo, New chat and a new upload cancel a running answer; the engine ends it at its next token.

API (for `gradio_client`): /upload (file, audio, frames), /ask (question + sampling, streams the
chat), /regenerate, /stop, /undo, /reset (new conversation, same file). The rest is private.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from ..pipeline import Pipeline
from . import view
from .actions import PageActions, PageSession, hold_question, restore_question
from .examples import ensure_examples

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
GPU = "gpu"  # concurrency id shared by every event that runs the model
BEAM_NOTE = ("Beam search is left out on purpose: it cannot stream, so Stop could not interrupt it "
             "(the official demo's default is 1 beam). Temperature 0 gives greedy decoding.")
SETTINGS_NOTE = "Changing **Audio** or **Frames** reads the file again and starts a new conversation."
CSS = """
#frames-strip .caption-label { font-variant-numeric: tabular-nums; }
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


def build_demo(pipeline: Pipeline, options: UIOptions = UIOptions()) -> gr.Blocks:
    """The page around an already loaded pipeline."""
    actions = PageActions(pipeline, options.examples_dir)
    facts = view.ModelFacts.of(pipeline)
    with gr.Blocks(title="Video-LLaMA chat", analytics_enabled=False) as demo:
        page = gr.State(None, delete_callback=PageActions.state_deleted)
        gr.HTML(view.banner_html(facts, os.environ.get("SPACE_ID")), elem_id="model-banner")
        gr.Markdown("# Video-LLaMA: chat about a video or an image")
        question = gr.Textbox(label="Question", show_label=False, scale=5, lines=1, max_lines=6, render=False,
                              placeholder="Ask about the video or image (Enter sends)", elem_id="question")
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                upload = gr.File(label="Drop a video or an image here (or click to browse)", height=130,
                                 elem_id="media-upload")
                example_set = _examples(pipeline, options, upload, question)
                player = gr.Video(label="Your video", interactive=False, visible=False, elem_id="player")
                picture = gr.Image(label="Your image", interactive=False, visible=False, type="filepath",
                                   elem_id="picture")
                use_audio, num_frames = _media_settings(pipeline, facts)
            with gr.Column(scale=3, min_width=400):
                status = gr.Markdown(view.conversation_status(None), elem_id="status")
                chatbot = gr.Chatbot(label="Conversation", height=440, elem_id="chatbot", buttons=["copy"],
                                     placeholder="Answers appear here, token by token.")
                with gr.Row():
                    question.render()
                    send = gr.Button("Send", variant="primary", scale=1, min_width=80)
                    stop = gr.Button("Stop", variant="stop", scale=1, min_width=80, elem_id="stop")
                with gr.Row():
                    regenerate = gr.Button("Regenerate", size="sm")
                    undo = gr.Button("Undo", size="sm")
                    new_chat = gr.Button("New chat", size="sm")
                sampling = _answer_settings(pipeline)
                held_question = gr.Textbox(label="question", visible=False)
        with gr.Group():
            frames = gr.Gallery(label="What the model saw: the sampled frames and their times", columns=8,
                                height=190, object_fit="contain", allow_preview=True, elem_id="frames-strip")
            seen = gr.Markdown("", elem_id="seen-summary", padding=True)

        media_outputs = [page, chatbot, player, picture, frames, seen, status, upload]
        gpu = {"concurrency_id": GPU, "concurrency_limit": options.concurrency}
        private = {"api_visibility": "private"}

        # Questions: empty the box at once, then stream the answer in the queue.
        held = gr.on([question.submit, send.click], hold_question, [question], [question, held_question],
                     queue=False, **private)
        asking = held.then(actions.ask, [held_question, *sampling, page], [chatbot],
                           api_name="ask", show_progress="full", **gpu)
        asking.failure(restore_question, [held_question, question], [question], queue=False, **private)
        retrying = gr.on([regenerate.click, chatbot.retry], actions.retry, [*sampling, page], [chatbot],
                         api_name="regenerate", show_progress="full", **gpu)
        answers = [asking, retrying]

        stop.click(actions.stop, [page], [chatbot], cancels=answers, queue=False, api_name="stop")
        gr.on([undo.click, chatbot.undo], actions.undo, [page], [chatbot, question], cancels=answers,
              queue=False, api_name="undo")
        gr.on([new_chat.click, chatbot.clear], actions.new_chat, [page], [chatbot], cancels=answers,
              queue=False, api_name="reset")

        # Media: a new file, an example or new Audio/Frames settings start a new conversation.
        media_inputs = [upload, use_audio, num_frames, page]
        uploading = upload.upload(actions.upload, media_inputs, media_outputs, cancels=answers,
                                  api_name="upload", show_progress="full", **gpu)
        uploading.failure(actions.file_refused, [page], [upload, chatbot], queue=False, **private)
        if example_set is not None:
            example_set.load_input_event.then(actions.upload, media_inputs, media_outputs, cancels=answers,
                                              show_progress="full", **gpu, **private)
        for changed in (use_audio.input, num_frames.release):
            changed(actions.settings_changed, media_inputs[1:], media_outputs, cancels=answers,
                    show_progress="full", **gpu, **private)
        demo.unload(actions.tab_closed)
    return demo


def _media_settings(pipeline: Pipeline, facts: view.ModelFacts) -> tuple[gr.Checkbox, gr.Slider]:
    """How the file is read. Changing these encodes the file again."""
    config = pipeline.config
    audio_info = ("Listen to the sound track when the file has one" if facts.has_audio
                  else "This model has no audio branch")
    use_audio = gr.Checkbox(value=facts.has_audio, label="Audio", info=audio_info, interactive=facts.has_audio)
    num_frames = gr.Slider(1, config.max_frame_pos, value=config.num_frames, step=1, label="Frames",
                           info="Sampled evenly over the video (official: 8)")
    gr.Markdown(SETTINGS_NOTE)
    return use_audio, num_frames


def _answer_settings(pipeline: Pipeline) -> list[gr.Slider]:
    """How answers are sampled: per request, no new encoding."""
    llm = pipeline.config.llm
    with gr.Accordion("Answer settings: temperature, top-p, length", open=False):
        sliders = [
            gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Temperature",
                      info="0 = greedy (always the most likely word); official: 1.0"),
            gr.Slider(0.05, 1.0, value=0.9, step=0.05, label="Top-p", info="official: 0.9"),
            gr.Slider(1, max(llm.max_new_tokens, min(1024, llm.context_length // 2)), value=llm.max_new_tokens,
                      step=1, label="Max new tokens", info="official: 300"),
            gr.Slider(1.0, 2.0, value=1.0, step=0.05, label="Repetition penalty",
                      info="Above 1 discourages loops; official: 1.0 (off)"),
        ]
        gr.Markdown(BEAM_NOTE)
    return sliders


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
    settings = dict(server_name=options.host, server_port=options.port, share=options.share,
                    max_file_size=options.max_file_size, theme=gr.themes.Soft(), css=CSS,
                    allowed_paths=[str(options.examples_dir)])
    return demo.launch(**(settings | overrides))


__all__ = ["PageSession", "UIOptions", "build_demo", "launch_demo"]
