"""Command line: `python -m videollama_demo ask VIDEO_OR_IMAGE "question" [-i]`."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .config import PRESETS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m videollama_demo", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    ask = commands.add_parser("ask", help="ask about a video or an image; the answer streams to stdout")
    ask.add_argument("media", help="a video or an image file")
    ask.add_argument("question", help="the first question")
    ask.add_argument("--model", default="auto", choices=["auto", *PRESETS],
                     help="preset; auto = complete local checkpoints, else the preview model")
    ask.add_argument("--checkpoints", default="checkpoints", help="directory with the weights")
    ask.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda if available)")
    ask.add_argument("--no-audio", action="store_true", help="use the frames only")
    ask.add_argument("--frames", type=int, default=None, help="frames to sample, 1-32 (default 8)")
    ask.add_argument("--temperature", type=float, default=1.0, help="0 = greedy (default 1.0, official)")
    ask.add_argument("--max-new-tokens", type=int, default=300)
    ask.add_argument("-i", "--interactive", action="store_true", help="keep asking follow-up questions")
    return parser


def run_ask(args: argparse.Namespace) -> int:
    from . import ChatError, MediaError, load_pipeline
    from .media import probe

    try:
        probe(args.media)  # a bad file fails in a second, before minutes of model loading
    except MediaError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    pipe = load_pipeline(args.model, checkpoints=args.checkpoints, device=args.device)
    if pipe.is_preview:
        print(f"[preview] {pipe.preview_reason}: answers are NOT about the video.", file=sys.stderr)
    session = pipe.new_session()
    try:
        encoding = session.add_media(args.media, use_audio=not args.no_audio, num_frames=args.frames)
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

    try:
        return run_ask(args)
    except (CheckpointError, LLMLoadError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
