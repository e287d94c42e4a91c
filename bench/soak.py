"""`python -m bench.soak`: many sessions against the real server, then its memory and disk.

Starts `app.py` (preview model) in its own process with short keep and session times, runs
`--sessions` REST sessions over `--minutes` (each: a distinct upload, one question, then silence,
as a script that never closes would), waits for their sessions to expire and the sweep, and
prints the server's RSS and upload-folder size at the start, the peak and the end.

A first round of `--warm-up` sessions (expired and swept like the rest) comes before the measured
start: the first answers and encodings grow the process once (allocator arenas, the shared
in-memory encode cache filling up to its `--cache-size`), which is not growth with visitors. The
server runs with a 16 MB encode cache, so the warm-up fills it (at the default 256 MB the cache
alone would grow the process by 256 MB over the first ~200 distinct uploads, then stop). The RSS
is also sampled at each quarter of the run, to show a trend.
Targets: disk back to its start within the keep time, RSS within 10% of the (warm) start.
"""

from __future__ import annotations

import argparse
import struct
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.media_factory import make_video
from tests.ui.hosted_server import HostedServer, client_from, start_server
from tests.ui.test_hosting import ask_data, call, rest_upload, result

KEEP_SECONDS = 20
SESSION_TTL = 15
CACHE_MB = 16  # the in-memory encode cache: filled by the warm-up (about 1.3 MB per preview encoding)


def distinct_copy(video: Path, folder: Path, index: int) -> Path:
    """The same video with a unique trailing `free` box (valid MP4): a distinct upload to the server."""
    payload = uuid.uuid4().bytes * 64
    copy = folder / f"clip_{index}.mp4"
    copy.write_bytes(video.read_bytes() + struct.pack(">I", 8 + len(payload)) + b"free" + payload)
    return copy


def one_session(server: HostedServer, video: Path, address: str) -> bool:
    session = uuid.uuid4().hex
    with client_from(address, timeout=300) as http:
        rest_upload(http, server, video, session)
        started = call(http, server, "ask", ask_data("What is in the video?", 8), session)
        if started.status_code != 200:
            return False  # refused (job cap): counted, not an error
        return result(http, server, "ask", started.json()["event_id"])[0] == "complete"


class Sampler:
    def __init__(self, server: HostedServer) -> None:
        self.server = server
        self.peak_rss = self.peak_disk = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.peak_rss = max(self.peak_rss, self.server.rss_bytes())
            self.peak_disk = max(self.peak_disk, self.server.folder_bytes())

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=4.0, help="spread the sessions over this long")
    parser.add_argument("--warm-up", type=int, default=12, help="sessions run (and expired) before the start")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 12 sessions, no pacing")
    args = parser.parse_args()
    sessions, minutes = (12, 0.0) if args.quick else (args.sessions, args.minutes)
    warm_up = 0 if args.quick else args.warm_up
    with tempfile.TemporaryDirectory(prefix="soak-") as scratch:
        work = Path(scratch)
        server = start_server(work, "--keep-uploads", str(KEEP_SECONDS), "--session-ttl", str(SESSION_TTL),
                              "--concurrency", "2", "--max-jobs-per-client", "4", "--cache-size", str(CACHE_MB))
        try:
            base = make_video(work / "clip.mp4", seconds=2.0)
            videos = [distinct_copy(base, work, n) for n in range(warm_up + sessions)]
            cold_rss, start_disk = server.rss_bytes(), server.folder_bytes()
            if warm_up:
                with ThreadPoolExecutor(4) as pool:
                    list(pool.map(lambda n: one_session(server, videos[n], f"127.0.0.{2 + n % 4}"), range(warm_up)))
                time.sleep(SESSION_TTL + KEEP_SECONDS + 10)
                videos = videos[warm_up:]
            start_rss = server.rss_bytes()
            began = time.monotonic()
            with Sampler(server) as sampler, ThreadPoolExecutor(4) as pool:
                futures, quarters = [], []
                for n, video in enumerate(videos):
                    if n and n % max(1, sessions // 4) == 0:
                        quarters.append(server.rss_bytes())
                    # pace the starts evenly; four client addresses share the load
                    time.sleep(max(0.0, began + n * minutes * 60 / sessions - time.monotonic()))
                    futures.append(pool.submit(one_session, server, video, f"127.0.0.{2 + n % 4}"))
                answered = sum(future.result() for future in futures)
                run_seconds = time.monotonic() - began
                # every session idle: wait for expiry and the sweep
                time.sleep(SESSION_TTL + KEEP_SECONDS + 10)
            end_rss, end_disk = server.rss_bytes(), server.folder_bytes()
        finally:
            server.stop()
    print(f"{sessions} sessions in {run_seconds:.0f} s ({answered} answered) after {warm_up} warm-up sessions, "
          f"keep {KEEP_SECONDS} s, session TTL {SESSION_TTL} s; RSS before any session: {cold_rss / 2**20:.0f} MiB\n")
    print("| | start | peak | end (after TTL + keep) | end vs start |")
    print("|---|---|---|---|---|")
    print(f"| server RSS | {start_rss / 2**20:.0f} MiB | {sampler.peak_rss / 2**20:.0f} MiB | "
          f"{end_rss / 2**20:.0f} MiB | {end_rss / start_rss - 1:+.1%} |")
    if quarters:
        print(f"| server RSS at each quarter of the run | {' / '.join(f'{rss / 2**20:.0f}' for rss in quarters)} "
              f"MiB | | | |")
    print(f"| upload folder | {start_disk / 2**20:.2f} MiB | {sampler.peak_disk / 2**20:.2f} MiB | "
          f"{end_disk / 2**20:.2f} MiB | {(end_disk - start_disk) / 2**20:+.2f} MiB |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
