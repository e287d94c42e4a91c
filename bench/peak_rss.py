"""Row 5: peak resident memory (RSS) of reading an hour-long upload against a 10 s one.

Each measurement is a fresh child process (`python -m bench.peak_rss --child WAY FILE`) that does
one read, then reports its own peak (`VmHWM` of /proc/self/status) and exits. Not `ru_maxrss`: Linux
carries the parent's peak across fork + exec into it, so a child of a loaded pipeline would report
the parent's 1.6 GiB whatever it did. "ours" is `decode_upload` (what the app's decoder
worker runs), "naive" the official reading of `bench.frames` (decord + the whole audio track), and
"imports" only imports the same modules: the floor that every child starts from.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .context import BenchContext, run_standalone
from .media import duration_label
from .report import Row

REPO_ROOT = Path(__file__).resolve().parents[1]
WAYS = ("ours", "naive", "imports")


def peak_rss_bytes(way: str, path: Path) -> int:
    """Peak RSS of a fresh process that reads `path` the `way` given."""
    command = [sys.executable, "-m", "bench.peak_rss", "--child", way, str(path)]
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"the {way} reader failed on {path.name}:\n{result.stderr}")
    return int(result.stdout.strip().splitlines()[-1])


def _child(way: str, path: Path) -> None:
    from . import frames  # imported in every child, "imports" included, so the floors are equal

    if way == "ours":
        frames.ours(path)
    elif way == "naive":
        frames.naive(path)
    print(own_peak_rss_bytes())


def own_peak_rss_bytes() -> int:
    """This process's peak resident set since its exec (the kernel's high-water mark)."""
    return process_status_bytes("VmHWM")


def process_status_bytes(field: str) -> int:
    """A memory line of /proc/self/status (VmHWM, VmRSS, ...), which the kernel writes in kB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field} line (not Linux?)")


def mib(value: int) -> str:
    return f"{value / 2**20:.0f} MiB"


def run(ctx: BenchContext) -> list[Row]:
    files = {"short": ctx.short_video(), "long": ctx.long_video()}
    # --quick leaves out the floor and the naive short read: three children instead of six.
    wanted = [("ours", "short"), ("ours", "long"), ("naive", "long")]
    if not ctx.quick:
        wanted += [("naive", "short"), ("imports", "short")]
    # Children run side by side: each one's peak is its own, whatever runs beside it.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        futures = {job: pool.submit(peak_rss_bytes, job[0], files[job[1]]) for job in wanted}
        peaks = {job: future.result() for job, future in futures.items()}
    long_name, short_name = duration_label(ctx.long_spec.seconds), duration_label(ctx.short_spec.seconds)
    reference = f"decord + whole track: {long_name}: {mib(peaks['naive', 'long'])}"
    if not ctx.quick:
        reference += f"; {short_name}: {mib(peaks['naive', 'short'])}; imports alone: {mib(peaks['imports', 'short'])}"
    return [Row(
        benchmark=f"5. peak RSS reading a {long_name} upload vs a {short_name} one (fresh process each)",
        ours=f"{long_name}: {mib(peaks['ours', 'long'])}; {short_name}: {mib(peaks['ours', 'short'])}",
        reference=reference, ratio=peaks["ours", "long"] / peaks["ours", "short"])]


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--child":
        parser = argparse.ArgumentParser()
        parser.add_argument("--child", choices=WAYS, required=True)
        parser.add_argument("path", type=Path)
        args = parser.parse_args()
        _child(args.child, args.path)
        return 0
    return run_standalone(run, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    raise SystemExit(main())
