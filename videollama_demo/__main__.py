"""Command line: `python -m videollama_demo ask VIDEO_OR_IMAGE "question" [-i]`, `timeline VIDEO`,
`batch VIDEOS... --questions FILE --out DIR`, `transcribe VIDEO [--format srt|vtt|json]`, `download PRESET`,
`memory`."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .config import PRESETS, VideoLlamaConfig
from .hub import DOWNLOADABLE_PRESETS, GB, DownloadError, download_bytes, download_weights, resolve_weights
from .media.cue_formats import CUE_FORMATS, format_cues_as
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
from .pipeline.timeline import DEFAULT_MAX_NEW_TOKENS, DEFAULT_MAX_SEGMENTS

if TYPE_CHECKING:
    from . import Pipeline


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
    add_timeline_command(commands)
    add_batch_parser(commands)
    add_transcribe_command(commands)
    return parser


def add_timeline_command(commands: argparse._SubParsersAction) -> None:
    timeline = commands.add_parser("timeline", help="describe each ~30 s part of a video: timed cues to stdout")
    timeline.add_argument("media", help="a video file")
    add_model_options(timeline)
    timeline.add_argument("--format", choices=["text", *CUE_FORMATS], default="text",
                          help="text (one '0:30-1:00  ...' line per part, default), vtt, srt or json")
    timeline.add_argument("--max-segments", type=int, default=DEFAULT_MAX_SEGMENTS,
                          help=f"at most this many parts (default {DEFAULT_MAX_SEGMENTS}; one per ~30 s)")
    timeline.add_argument("--max-new-tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS)
    timeline.add_argument("--temperature", type=float, default=1.0, help="0 = greedy (default 1.0, official)")
    timeline.add_argument("--no-audio", action="store_true", help="use the frames only")
    timeline.add_argument("--subtitles", action="store_true", help="put the video's own subtitles beside each part")


def run_timeline(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from . import MediaError, Reading

    pipe = _pipeline_for(args, "the descriptions")
    if pipe is None:
        return 1
    try:
        reading = Reading(use_audio=not args.no_audio, subtitles="embedded" if args.subtitles else "off")
        plan = pipe.plan_timeline(args.media, args.max_segments, reading)
        print(f"[plan] {plan.summary()}", file=sys.stderr)
        cues = pipe.timeline(args.media, reading, plan=plan, temperature=args.temperature,
                             max_new_tokens=args.max_new_tokens)
        done = list(tqdm(cues, total=len(plan.spans), unit="part", file=sys.stderr))
    except MediaError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        pipe.close()  # the decoder workers, and a vLLM server started for this command
    if args.format == "text":
        print("\n".join(f"{cue.label}  {' '.join(cue.text.split())}" for cue in done))
    else:
        print(format_cues_as([cue.as_cue() for cue in done], args.format))
    return 0


def add_batch_parser(commands: argparse._SubParsersAction) -> None:
    batch = commands.add_parser(
        "batch", help="answer every question about every video (and setting): results.jsonl + report.html; "
                      "running it again skips what is done")
    batch.add_argument("videos", nargs="+", metavar="VIDEO", help="video or image files, and/or folders of them")
    batch.add_argument("--questions", required=True, metavar="FILE",
                       help="one question per line, or JSON lines with \"question\" and optional \"video\", "
                            "\"audio\", \"frames\"")
    batch.add_argument("--out", required=True, metavar="DIR", help="where results.jsonl and report.html go")
    add_model_options(batch)
    batch.add_argument("--temperature", type=float, default=1.0, help="0 = greedy (default 1.0, official)")
    batch.add_argument("--max-new-tokens", type=int, default=300)
    batch.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2",
                       help="run each pair under several settings: audio=on,off and/or frames=8,16 "
                            "(repeat the flag to combine them)")


def run_batch(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from . import load_pipeline
    from .pipeline.batch import (
        BatchRunner,
        ResultStore,
        RunOptions,
        digest_of,
        expand_videos,
        parse_vary,
        pending_jobs,
        plan_jobs,
        read_questions,
    )
    from .pipeline.report import write_report

    settings = parse_vary(args.vary)
    out = Path(args.out)
    videos = expand_videos(args.videos, skip=out)
    jobs = plan_jobs(videos, read_questions(args.questions), settings)
    out.mkdir(parents=True, exist_ok=True)
    store = ResultStore(out / "results.jsonl")
    digests = {video: digest_of(video) for video in videos}
    todo = pending_jobs(jobs, store, digests)
    print(f"{len(jobs)} answers in all ({len(videos)} files x questions x {len(settings)} setting(s)); "
          f"{len(jobs) - len(todo)} already in {store.path}", file=sys.stderr)
    pipe = None
    try:
        if todo:
            pipe = load_pipeline(**pipeline_options(args))
            if pipe.is_preview:
                print(f"[preview] {pipe.preview_reason}: answers are NOT about the videos.", file=sys.stderr)
            runner = BatchRunner(pipe, store, out, RunOptions(temperature=args.temperature,
                                                              max_new_tokens=args.max_new_tokens), digests)
            with tqdm(total=len(todo), unit="answer", desc="batch") as bar:
                runner.run(todo, bar.update)
    finally:
        report = write_report(store.rows, out)  # also after Ctrl-C: the report shows what is done
        if pipe is not None:
            pipe.close()
    errors = sum(1 for row in store.rows if row.get("error"))
    print(f"{report} ({len(store.rows)} rows, {errors} errors)", file=sys.stderr)
    return 0


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


def _pipeline_for(args: argparse.Namespace, what: str) -> Pipeline | None:
    """The loaded pipeline for a command about `args.media`, or None after one `error:` line: a bad
    file fails in a second, before minutes of model loading. Preview mode is said on stderr."""
    from . import MediaError, load_pipeline
    from .media import probe

    try:
        probe(args.media)
    except MediaError as err:
        print(f"error: {err}", file=sys.stderr)
        return None
    pipe = load_pipeline(**pipeline_options(args))
    if pipe.is_preview:
        print(f"[preview] {pipe.preview_reason}: {what} are NOT about the video.", file=sys.stderr)
    return pipe


def run_ask(args: argparse.Namespace) -> int:
    from . import ChatError, MediaError, Reading

    pipe = _pipeline_for(args, "answers")
    if pipe is None:
        return 1
    try:
        session = pipe.new_session()
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
    finally:
        pipe.close()  # the decoder workers, and a vLLM server started for this command
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

    run = {"ask": run_ask, "download": run_download, "memory": run_memory, "timeline": run_timeline,
           "batch": run_batch, "transcribe": run_transcribe}[args.command]
    try:
        return run(args)
    except (CheckpointError, LLMLoadError, DownloadError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
