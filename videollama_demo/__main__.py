"""Command line: `python -m videollama_demo ask VIDEO_OR_IMAGE "question" [-i]`, `download PRESET`, `memory`,
`transcribe VIDEO [--format srt|vtt|json]`."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from .config import PRESETS, VideoLlamaConfig
from .hub import DOWNLOADABLE_PRESETS, GB, DownloadError, download_bytes, download_weights, resolve_weights
from .options import add_model_options, add_path_options, add_speech_options, path_overrides, pipeline_options
from .pipeline.memory import (
    FIT_TARGETS,
    GIB,
    PRECISION_LABELS,
    RUNTIME_ALLOWANCE_GIB,
    estimate_memory,
    llm_shape_of,
    memory_table,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m videollama_demo", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    ask = commands.add_parser("ask", help="ask about a video or an image; the answer streams to stdout")
    ask.add_argument("media", help="a video or an image file")
    ask.add_argument("question", help="the first question")
    add_model_options(ask)
    ask.add_argument("--no-audio", action="store_true", help="use the frames only")
    ask.add_argument("--frames", type=int, default=None, help="frames to sample, 1-32 (default 8)")
    ask.add_argument("--temperature", type=float, default=1.0, help="0 = greedy (default 1.0, official)")
    ask.add_argument("--max-new-tokens", type=int, default=300)
    ask.add_argument("-i", "--interactive", action="store_true", help="keep asking follow-up questions")
    download = commands.add_parser("download", help="download the official weights of a preset, resumably")
    download.add_argument("preset", choices=DOWNLOADABLE_PRESETS,
                          help="; ".join(f"{name}: about {download_bytes(PRESETS[name]) / GB:.0f} GB"
                                         for name in DOWNLOADABLE_PRESETS))
    download.add_argument("--checkpoints", default="checkpoints", help="where to put them (default: checkpoints)")
    add_path_options(download)
    memory = commands.add_parser("memory", help="print how much GPU memory each preset needs, per precision")
    memory.add_argument("presets", nargs="*", metavar="PRESET",
                        help=f"presets to show (default: {', '.join(DOWNLOADABLE_PRESETS)})")
    memory.add_argument("--checkpoints", default="checkpoints", help="read the LLM shape from here when present")
    add_transcribe_command(commands)
    return parser


def add_transcribe_command(commands: argparse._SubParsersAction) -> None:
    transcribe = commands.add_parser("transcribe", help="print the speech in a video (or a sound file) as timed cues")
    transcribe.add_argument("media", help="a video or sound file")
    transcribe.add_argument("--format", choices=["srt", "vtt", "json"], default="srt", help="(default: srt)")
    add_speech_options(transcribe)
    transcribe.add_argument("--download", action="store_true",
                            help="fetch the --asr-model from the Hugging Face hub when it is not on disk")


def run_transcribe(args: argparse.Namespace) -> int:
    from .media import MediaError
    from .media.cue_formats import format_cues_as
    from .media.speech import resolve_speech_model, transcribe

    model = resolve_speech_model(args.asr_model, allow_download=args.download)
    logging.getLogger("libav").setLevel(logging.CRITICAL)  # ffmpeg's own log lines: our one sentence says it
    show = _ProgressLine()
    try:
        # Here the file is the user's own: it is read in this process, not in a decoder worker.
        result = transcribe(args.media, model, args.asr_language, on_progress=show)
    except MediaError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        show.done()
    if result.note:
        print(f"[note] {result.note}", file=sys.stderr)
    sys.stdout.write(format_cues_as(result.cues, args.format))
    return 0


class _ProgressLine:
    """Progress on stderr, one line redrawn in a terminal; nothing when stderr is not a terminal."""

    def __init__(self) -> None:
        self.shown = False

    def __call__(self, done: float, total: float) -> None:
        from .media.speech import clock

        if sys.stderr.isatty():
            print(f"\rTranscribing speech: {clock(done)} of {clock(total)}", end="", file=sys.stderr, flush=True)
            self.shown = True

    def done(self) -> None:
        if self.shown:
            print(file=sys.stderr)


def run_ask(args: argparse.Namespace) -> int:
    from . import ChatError, MediaError, Reading, load_pipeline
    from .media import probe

    try:
        probe(args.media)  # a bad file fails in a second, before minutes of model loading
    except MediaError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    pipe = load_pipeline(**pipeline_options(args))
    if pipe.is_preview:
        print(f"[preview] {pipe.preview_reason}: answers are NOT about the video.", file=sys.stderr)
    session = pipe.new_session()
    try:
        encoding = session.add_media(pipe.encode(args.media, Reading(use_audio=not args.no_audio,
                                                                     num_frames=args.frames)))
        if encoding.audio_note:
            print(f"[note] {encoding.audio_note}", file=sys.stderr)
        question = args.question
        while question:
            reply = session.ask(question, temperature=args.temperature, max_new_tokens=args.max_new_tokens)
            for delta in reply:
                print(delta, end="", flush=True)
            print()
            for notice in reply.notices:
                print(f"[note] {notice}", file=sys.stderr)
            question = _next_question() if args.interactive else ""
    except (MediaError, ChatError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def run_download(args: argparse.Namespace) -> int:
    config = VideoLlamaConfig.from_name(args.preset)
    print(f"Getting {args.preset} into {args.checkpoints}/ (about {download_bytes(config) / GB:.1f} GB in all; "
          "files already there are skipped, partial ones resumed)", file=sys.stderr)
    resolved = download_weights(config, args.checkpoints, path_overrides(args))
    if not resolved.complete:
        print(resolved.explain(), file=sys.stderr)
        return 1
    print(f"All files of {args.preset} are in place. Start with: python app.py --model {args.preset}"
          + (f" --checkpoints {args.checkpoints}" if args.checkpoints != "checkpoints" else ""))
    return 0


def run_memory(args: argparse.Namespace) -> int:
    shapes = {}
    for name in args.presets or DOWNLOADABLE_PRESETS:
        config = VideoLlamaConfig.from_name(name)
        llm_dir = resolve_weights(config, Path(args.checkpoints)).path("llm")
        shapes[name] = llm_shape_of(config, llm_dir)
        print(f"### {name} (GiB; computed from the modules built on the meta device)\n")
        print(memory_table(config, llm_shape=shapes[name]) + "\n")
    print(f"Fits (weights + KV cache + {RUNTIME_ALLOWANCE_GIB} GiB for activations and the CUDA context):")
    for target in FIT_TARGETS:
        config = PRESETS[target.preset]
        estimate = estimate_memory(config, target.precision, shapes.get(target.preset))
        verdict = "yes" if estimate.fits(target) else "NO"
        print(f"  {target.preset} {PRECISION_LABELS[target.precision]} on {target.card}: "
              f"{estimate.total_bytes / GIB + RUNTIME_ALLOWANCE_GIB:.1f} of {target.usable_gib} GiB: {verdict}")
    return 0


def _next_question() -> str:
    try:
        return input("> ").strip()
    except EOFError:
        return ""


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    from .model.llm import LLMLoadError
    from .model.weights import CheckpointError

    run = {"ask": run_ask, "download": run_download, "memory": run_memory, "transcribe": run_transcribe}[args.command]
    try:
        return run(args)
    except (CheckpointError, LLMLoadError, DownloadError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
