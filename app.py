"""`python app.py`: load the model once and serve the chat page (`--help` lists every flag).

Without the official checkpoints it starts in preview mode and says so, in the console and on
the page. On Hugging Face Spaces (`SPACE_ID` is set) it listens on 0.0.0.0.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
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
    parser.add_argument("--concurrency", type=int, default=None,
                        help="model jobs (encoding or answering) run at once; more wait in the queue "
                             "(default: 1 with the local engine, 16 with vllm, which batches them)")
    parser.add_argument("--queue-size", type=int, default=32,
                        help="requests allowed to wait; beyond this users are told the queue is full (default: 32)")
    parser.add_argument("--api-key", default=os.environ.get("VIDEOLLAMA_API_KEY") or None,
                        help="require `Authorization: Bearer KEY` on the OpenAI-style /v1 routes "
                             "(default: $VIDEOLLAMA_API_KEY; unset: open, fine on 127.0.0.1)")
    parser.add_argument("--allow-url-fetch", action="store_true",
                        help="let /v1/chat/completions fetch http(s) media URLs (default: data: URLs only)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    add_host_options(parser)
    return parser


def add_host_options(parser: argparse.ArgumentParser) -> None:
    """What bounds the server's disk, memory and queue on a public host (README: "Hosting it publicly")."""
    host = parser.add_argument_group("public hosting limits")
    host.add_argument("--keep-uploads", type=float, default=3600, metavar="SECONDS",
                      help="delete uploads and the files made from them once no session uses them and they are "
                           "this old (default: 3600)")
    host.add_argument("--upload-dir-size", default="20gb",
                      help="most disk for uploads and Gradio's cache together; beyond it uploads are refused "
                           "with 'the server is full' (default: 20gb)")
    host.add_argument("--session-ttl", type=float, default=1800, metavar="SECONDS",
                      help="end a session (and free its encoding and KV cache) after this long without a request, "
                           "whatever the client (default: 1800)")
    host.add_argument("--max-jobs-per-client", type=int, default=2, metavar="N",
                      help="queued or running model jobs one client address may have (default: 2)")
    host.add_argument("--trusted-proxy", action="store_true",
                      help="the server is behind a proxy that sets X-Forwarded-For: count jobs by that address")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from videollama_demo import CheckpointError, DownloadError, EngineError, LLMLoadError, load_pipeline
    from videollama_demo.ui import HostLimits, UIOptions, Upkeep, build_demo, launch_demo, parse_size

    try:
        pipeline = load_pipeline(**pipeline_options(args))
    except (CheckpointError, LLMLoadError, DownloadError, EngineError, ValueError) as err:
        log.error("%s", err)
        return 1
    options = UIOptions(host=args.host, port=args.port, share=args.share, max_file_size=args.max_file_size,
                        concurrency=args.concurrency or pipeline.engine.parallel_requests, queue_size=args.queue_size,
                        limits=HostLimits(upload_dir_bytes=parse_size(args.upload_dir_size),
                                          jobs_per_client=args.max_jobs_per_client, trusted_proxy=args.trusted_proxy),
                        upkeep=Upkeep(keep_seconds=args.keep_uploads, session_ttl=args.session_ttl),
                        api_key=args.api_key, allow_url_fetch=args.allow_url_fetch)
    if pipeline.is_preview:
        log.warning("PREVIEW MODE (%s): answers are NOT about the video. See README.md#getting-the-weights.",
                    pipeline.preview_reason)
    else:
        log.info("loaded %s on %s", pipeline.config.name, pipeline.runtime.device)
    if args.api_key is None and args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("The OpenAI-style /v1 routes are open to anyone who reaches %s: set --api-key "
                    "(or VIDEOLLAMA_API_KEY) to require a key.", args.host)
    # A plain `kill` ends the app like Ctrl-C does, so a vLLM server it started is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        launch_demo(build_demo(pipeline, options), options)
    finally:
        pipeline.close()  # stops the decoder workers and a vLLM server started for this app
    return 0


if __name__ == "__main__":
    sys.exit(main())
