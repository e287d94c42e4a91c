"""Row 10: `python app.py` in preview mode, from the command to the page and the first answer, against
the bare import of torch + transformers + gradio (what any such app pays before its own work).

Each measure is a fresh process. The app's stages are read from its own log lines (their clock
times against the moment it was started): the pipeline loaded ("PREVIEW MODE"), then the page
served (the first HTTP 200 on /), then one answer through the page's API (upload a 10 s video,
ask, 12 greedy tokens). The first start of an installation converts the preview GGUF once
(`videollama_demo/model/gguf_cache.py`); it is shown apart, the ratio is a later start.
"""

from __future__ import annotations

import datetime
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from videollama_demo.model.gguf_cache import CACHE_ENV

from .context import BenchContext, run_standalone
from .media import SHORT_SECONDS, VideoSpec, synthetic_video
from .report import Row, Target, seconds

ROOT = Path(__file__).resolve().parent.parent
TARGET = Target(1.6)
BARE_IMPORT = "import torch, transformers, gradio"
LOADED_LINE = "PREVIEW MODE"
ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}


@dataclass(frozen=True)
class Start:
    loaded: float  # seconds from the command to the pipeline loaded
    page: float  # ... to the page served
    answer: float  # ... to the first answer complete


def bare_import_seconds() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", BARE_IMPORT], check=True, env=os.environ | ENV)
    return time.perf_counter() - start


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_app(scratch: Path, video: Path, timeout: float = 300.0) -> Start:
    """Start app.py (no checkpoints in `scratch`, its cache there too), wait for its page, ask once
    through the API, stop it."""
    port = free_port()
    log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
    command = [sys.executable, "app.py", "--model", "preview", "--port", str(port), "--checkpoints", str(scratch)]
    env = os.environ | ENV | {CACHE_ENV: str(scratch / "cache")}
    started_at = datetime.datetime.now()
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        page = _wait_for_page(f"http://127.0.0.1:{port}/", process, start, timeout)
        _answer_once(f"http://127.0.0.1:{port}/", video)
        answer = time.perf_counter() - start
        loaded = _log_time(Path(log.name), LOADED_LINE, started_at)
    finally:
        process.terminate()
        process.wait(30)
        Path(log.name).unlink(missing_ok=True)
    return Start(loaded, page, answer)


def _wait_for_page(url: str, process: subprocess.Popen, start: float, timeout: float) -> float:
    while time.perf_counter() - start < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with {process.returncode} before serving the page")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.perf_counter() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"no page at {url} after {timeout:.0f} s")


def _answer_once(url: str, video: Path) -> None:
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    try:
        client.predict(handle_file(str(video)), api_name="/upload")
        client.predict("What is in the video?", temperature=0.0, top_p=0.9, max_new_tokens=12,
                       repetition_penalty=1.0, api_name="/ask")
    finally:
        client.close()


def _log_time(log: Path, marker: str, started_at: datetime.datetime) -> float:
    """Seconds from `started_at` to the app's log line holding `marker` (`%(asctime)s` format)."""
    for line in log.read_text().splitlines():
        if marker in line:
            stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            return (stamp - started_at).total_seconds()
    raise RuntimeError(f"app.py never logged {marker!r}")


def run(ctx: BenchContext) -> list[Row]:
    empty = ctx.scratch_dir("startup")  # no checkpoints: the preview; an empty GGUF cache
    video = synthetic_video(VideoSpec(SHORT_SECONDS), ctx.cache_root)
    first = start_app(empty, video)  # converts the GGUF if this installation never did
    # --quick (the smoke test) stops at that first start: its ratio is then the first start's.
    imports, starts = ([bare_import_seconds()], [first]) if ctx.quick else ([], [])
    for _ in range(ctx.repeats(3, 0)):  # interleaved: a busy moment of the machine hits both
        imports.append(bare_import_seconds())
        starts.append(start_app(empty, video))
    bare = statistics.median(imports)
    loaded, page, answer = (statistics.median(getattr(s, name) for s in starts)
                            for name in ("loaded", "page", "answer"))
    return [Row(
        benchmark="10. start in preview: `python app.py` to the page served, vs the bare import",
        ours=(f"pipeline loaded {seconds(loaded)}, page {seconds(page)}, first answer {seconds(answer)} "
              f"(a first start ever, converting the GGUF: page {seconds(first.page)})"),
        reference=f"`{BARE_IMPORT}`: {seconds(bare)}",
        ratio=page / bare, target=TARGET)]


def main(argv: list[str] | None = None) -> int:
    return run_standalone(run, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    raise SystemExit(main())
