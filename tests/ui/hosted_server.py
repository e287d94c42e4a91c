"""`app.py` started for real in its own process (preview model), with its own upload folder, so its
memory and disk can be measured from outside and its housekeeper sweeps only its own files."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 400.0  # loading the preview model takes a minute on a busy 2-core machine


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class HostedServer:
    process: subprocess.Popen
    url: str
    upload_folder: Path
    log_path: Path
    examples: frozenset[Path] = frozenset()  # cached while the page was built; never swept

    def leftovers(self) -> list[Path]:
        """Files in the upload folder other than the examples' copies."""
        return [path for path in self.folder_files() if path not in self.examples]

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def folder_files(self) -> list[Path]:
        """The files now in the upload folder (the housekeeper may delete some while we look)."""
        return [Path(root) / name for root, _, names in os.walk(self.upload_folder) for name in names]

    def folder_bytes(self) -> int:
        total = 0
        for path in self.folder_files():
            with contextlib.suppress(FileNotFoundError):
                total += path.stat().st_size
        return total

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_server(workdir: Path, *flags: str) -> HostedServer:
    port = free_port()
    upload_folder = workdir / "gradio-cache"
    log_path = workdir / "server.log"
    env = os.environ | {"GRADIO_TEMP_DIR": str(upload_folder), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                        "GRADIO_ANALYTICS_ENABLED": "False"}
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--model", "preview", "--port", str(port),
                                    *flags], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = HostedServer(process, f"http://127.0.0.1:{port}/", upload_folder, log_path)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited:\n{server.log()[-3000:]}")
        try:
            if httpx.get(server.url + "gradio_api/info", timeout=2).status_code == 200:
                server.examples = frozenset(server.folder_files())
                return server
        except httpx.HTTPError:
            pass
        time.sleep(1)
    server.stop()
    raise RuntimeError(f"the server did not start in {START_TIMEOUT:.0f} s:\n{server.log()[-3000:]}")


def client_from(address: str, timeout: float = 30) -> httpx.Client:
    """An HTTP client whose requests come from `address` (any 127.x.y.z works on Linux loopback)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=timeout)
