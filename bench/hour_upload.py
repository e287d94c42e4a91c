"""Row 9: a first upload of an hour-long file of a real size against a 10 s one.

Both files are 640x360 H.264 at a constant 1.9 Mbit/s with 128 kbit/s stereo AAC, so the hour is
~910 MB, what a recording of that length weighs (row 8's tiny test pattern would hide the cost of
reading the bytes). Each call is `Pipeline.encode` with the official 8 frames + audio from an empty
encode cache and nothing remembered of the file: the content digest, decoding in the worker, the
encoders. Two ways in:

- 9a, the page and the API: the files are first sent through a real Gradio server's upload route
  (untimed, as the bytes travel), and `encode` gets the stored file, whose digest Gradio computed
  while the bytes streamed in (no pass over them);
- 9b, a path given to the Python API (CLI, batch runs): BLAKE3 on every core, overlapped with
  decoding.

For reference the row also shows what one SHA-256 pass over the hour file costs (the key before),
and checks that the same bytes copied under a new name are then served from the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import httpx

from videollama_demo import Pipeline
from videollama_demo.pipeline.content_digest import forget_digests
from videollama_demo.pipeline.encode_cache import EncodeCache

from .context import BenchContext, run_standalone
from .media import QUICK_LONG_SECONDS, SHORT_SECONDS, VideoSpec, duration_label, synthetic_video
from .report import Row, Target, seconds
from .timing import time_once

HOUR_SECONDS = 3600.0
TARGET = Target(2.5)


def real_size_spec(duration: float) -> VideoSpec:
    return VideoSpec(duration, width=640, height=360, fps=25, sample_rate=44100, video_kbps=1900, audio_kbps=128,
                     channels=2)


def first_upload(pipeline: Pipeline, path: Path) -> float:
    """Seconds of one encode that nothing is remembered for (cache and file digests emptied)."""
    pipeline.encode_cache = EncodeCache(pipeline.encode_cache.memory_bytes)
    forget_digests()
    start = time.perf_counter()
    encoding = pipeline.encode(path)
    elapsed = time.perf_counter() - start
    assert not encoding.from_cache and len(encoding.frame_indices) == 8 and encoding.audio is not None
    return elapsed


def interleaved_first_uploads(pipeline: Pipeline, paths: dict[str, Path], repeat: int) -> dict[str, float]:
    """Median seconds per file, the files taking turns so a busy moment of the machine hits both."""
    for path in paths.values():
        first_upload(pipeline, path)  # untimed: page cache, decoder worker and encoders warm
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(repeat):
        for name, path in paths.items():
            times[name].append(first_upload(pipeline, path))
    return {name: statistics.median(values) for name, values in times.items()}


def second_upload_under_new_name(pipeline: Pipeline, path: Path, scratch: Path) -> float:
    """Seconds to serve a copy of `path` under another name; raises if the cache missed."""
    pipeline.encode(path)
    copy = Path(shutil.copyfile(path, scratch / f"renamed-{path.name}"))
    try:
        start = time.perf_counter()
        encoding = pipeline.encode(copy)
        elapsed = time.perf_counter() - start
    finally:
        copy.unlink()
    if not encoding.from_cache:
        raise RuntimeError(f"a copy of {path.name} under a new name was encoded again: the encode cache missed")
    return elapsed


@contextlib.contextmanager
def through_gradio_upload(paths: dict[str, Path]) -> Iterator[dict[str, Path]]:
    """The files as the page's upload route stores them: POSTed to a real (empty) Gradio app; the
    stored copies are deleted afterwards."""
    with gr.Blocks(analytics_enabled=False) as app:
        gr.File()
    _, url, _ = app.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1",
                           max_file_size="2gb")
    stored: dict[str, Path] = {}
    try:
        with httpx.Client(timeout=600) as http:
            for name, path in paths.items():
                with path.open("rb") as file:
                    response = http.post(url + "gradio_api/upload", files=[("files", (path.name, file))])
                response.raise_for_status()
                stored[name] = Path(response.json()[0])
        yield stored
    finally:
        app.close()
        for path in stored.values():
            shutil.rmtree(path.parent, ignore_errors=True)


def run(ctx: BenchContext) -> list[Row]:
    pipeline = ctx.pipeline()
    long_seconds = QUICK_LONG_SECONDS if ctx.quick else HOUR_SECONDS
    paths = {"short": synthetic_video(real_size_spec(SHORT_SECONDS), ctx.cache_root),
             "long": synthetic_video(real_size_spec(long_seconds), ctx.cache_root)}
    kept = pipeline.encode_cache
    try:
        with through_gradio_upload(paths) as uploaded:
            page = interleaved_first_uploads(pipeline, uploaded, ctx.repeats(5, 1))
        plain = interleaved_first_uploads(pipeline, paths, ctx.repeats(5, 1))
        renamed = second_upload_under_new_name(pipeline, paths["long"], ctx.scratch_dir("hour-upload"))
    finally:
        pipeline.encode_cache = kept  # the pipeline may be shared
    sha256_pass = time_once(lambda: _sha256(paths["long"]))
    long_mb, short_mb = (paths[name].stat().st_size / 1e6 for name in ("long", "short"))
    long_name, short_name = duration_label(long_seconds), duration_label(SHORT_SECONDS)
    files = f"{long_name} 640x360 file ({long_mb:,.0f} MB) vs {short_name} ({short_mb:.1f} MB): 8 frames + audio"
    return [
        Row(benchmark=f"9a. first upload through the page or the API, {files}",
            ours=f"{long_name}: {seconds(page['long'])} (the digest Gradio computed while the bytes came in)",
            reference=f"{short_name}: {seconds(page['short'])}",
            ratio=page["long"] / page["short"], target=TARGET),
        Row(benchmark="9b. the same files as paths given to the Python API (CLI, batch)",
            ours=(f"{long_name}: {seconds(plain['long'])} (BLAKE3 beside decoding; a SHA-256 pass alone: "
                  f"{seconds(sha256_pass)}); same bytes under a new name: {seconds(renamed)}, from the cache"),
            reference=f"{short_name}: {seconds(plain['short'])}",
            ratio=plain["long"] / plain["short"]),
    ]


def _sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def main(argv: list[str] | None = None) -> int:
    return run_standalone(run, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    raise SystemExit(main())
