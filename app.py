"""`python app.py`: load the model once and serve the chat page (`--help` lists every flag).

Without the official checkpoints it starts in preview mode and says so, in the console and on
the page. On Hugging Face Spaces (`SPACE_ID` is set) it listens on 0.0.0.0.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from videollama_demo.options import add_model_options, pipeline_options

log = logging.getLogger("app")


def build_parser() -> argparse.ArgumentParser:
    on_spaces = bool(os.environ.get("SPACE_ID"))
    parser = argparse.ArgumentParser(description="Chat about a video or an image with Video-LLaMA, in a browser.")
    add_model_options(parser)
    parser.add_argument("--host", default="0.0.0.0" if on_spaces else "127.0.0.1",
                        help="address to listen on (default: 127.0.0.1; 0.0.0.0 on Hugging Face Spaces)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)),
                        help="port (default: 7860 or $GRADIO_SERVER_PORT)")
    parser.add_argument("--share", action="store_true",
                        help="also open a temporary public gradio.live link (needs internet; off by default)")
    parser.add_argument("--max-file-size", default="500mb", help="largest upload accepted (default: 500mb)")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="model jobs (encoding or answering) run at once; more wait in the queue (default: 1)")
    parser.add_argument("--queue-size", type=int, default=32,
                        help="requests allowed to wait; beyond this users are told the queue is full (default: 32)")
    parser.add_argument("--api-key", default=os.environ.get("VIDEOLLAMA_API_KEY") or None,
                        help="require `Authorization: Bearer KEY` on the OpenAI-style /v1 routes "
                             "(default: $VIDEOLLAMA_API_KEY; unset: open, fine on 127.0.0.1)")
    parser.add_argument("--allow-url-fetch", action="store_true",
                        help="let /v1/chat/completions fetch http(s) media URLs (default: data: URLs only)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from videollama_demo import CheckpointError, DownloadError, LLMLoadError, load_pipeline
    from videollama_demo.ui import UIOptions, build_demo, launch_demo

    options = UIOptions(host=args.host, port=args.port, share=args.share, max_file_size=args.max_file_size,
                        concurrency=args.concurrency, queue_size=args.queue_size, api_key=args.api_key,
                        allow_url_fetch=args.allow_url_fetch)
    try:
        pipeline = load_pipeline(**pipeline_options(args))
    except (CheckpointError, LLMLoadError, DownloadError, ValueError) as err:
        log.error("%s", err)
        return 1
    if pipeline.is_preview:
        log.warning("PREVIEW MODE (%s): answers are NOT about the video. See README.md#getting-the-weights.",
                    pipeline.preview_reason)
    else:
        log.info("loaded %s on %s", pipeline.config.name, pipeline.runtime.device)
    if args.api_key is None and args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("The OpenAI-style /v1 routes are open to anyone who reaches %s: set --api-key "
                    "(or VIDEOLLAMA_API_KEY) to require a key.", args.host)
    launch_demo(build_demo(pipeline, options), options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
