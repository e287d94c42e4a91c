"""Full-size dress rehearsal on CPU: official-format files at the released sizes, loaded for real.

`python -m bench.full_size [--scratch DIR] [--size 7b|scaled] [--keep] [--json PATH]` writes random
weights in the official formats and file names (`bench/official_files.py`) into DIR/checkpoints,
loads them through the production loaders (`resolve_weights`, `load_official_weights`, `load_llm`,
the encoders in fp32 as they run on CPU, the LLM in bf16), and measures: that every key is loaded or
dropped by a named rule, peak resident memory while loading against the loaded model's bytes, the
bytes of each component against the computed `memory` table, and one answer end to end (a short
ffmpeg video, 8 frames and audio, 16 greedy tokens) with the time of each stage. `--size scaled` runs
the same code on a tiny model with the same key names in seconds (tests/bench/test_full_size.py).

Resident memory is sampled by a thread; a memory-mapped file counts in RSS only for the pages read
(`RssFile`, page cache the kernel can drop), what the process allocated is `RssAnon`. The thread stops
the run if `RssAnon` passes `--max-anon-gib` or the machine's available memory falls below 3 GiB.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import sentencepiece as spm
import torch
from torch import nn
from transformers import DynamicCache, LlamaConfig

from bench.official_files import Modality, OfficialSizes, UnusedSizes, WrittenFile, write_checkpoints
from tests.tiny_llama import train_tiny_sentencepiece
from videollama_demo.config import AudioEncoderConfig, QFormerConfig, VideoLlamaConfig, VisionConfig
from videollama_demo.encoding import MediaEncoding

# The package internals this rehearsal drives; kept here so that a moved module is one line to change.
from videollama_demo.engines.base import SamplingSettings
from videollama_demo.engines.decode import generate_tokens, prefill
from videollama_demo.hub import resolve_weights
from videollama_demo.media.upload import decode_upload
from videollama_demo.model.llm import LoadedLLM, load_llm
from videollama_demo.model.video_llama import VideoLlamaEncoder
from videollama_demo.model.weights import TRAINING_STATE, LoadReport, load_official_weights
from videollama_demo.pipeline import Pipeline, RuntimeChoice
from videollama_demo.pipeline.memory import ENCODER_PARTS, LLM_ROW, MemoryEstimate, estimate_memory, llm_shape_of

log = logging.getLogger(__name__)

PRESET = "video-llama-2-7b"
GIB = 2**30
QUESTION = "What is happening in this video?"
NEW_TOKENS = 16
LLM_DTYPE = torch.bfloat16
MIN_AVAILABLE_BYTES = 3 * GIB  # the machine is shared: leave others room


# ---- sizes ------------------------------------------------------------------------------------

def sizes_7b() -> OfficialSizes:
    config = VideoLlamaConfig.from_name(PRESET)
    return OfficialSizes(config, llm_shape_of(config), UnusedSizes())


def sizes_scaled() -> OfficialSizes:
    """The 7B preset's files and key names with a few layers of small width."""
    base = VideoLlamaConfig.from_name(PRESET)

    def qformer(encoder_width: int, freq: int, queries: int) -> QFormerConfig:
        return QFormerConfig(num_layers=2, hidden_size=32, num_heads=4, intermediate_size=64,
                             encoder_width=encoder_width, cross_attention_freq=freq, num_queries=queries)

    config = dataclasses.replace(
        base, name=f"{PRESET}-scaled",
        vision=VisionConfig(image_size=28, width=48, depth=2, num_heads=4, mlp_dim=96),
        image_qformer=qformer(48, 2, 4), video_qformer=qformer(32, 1, 4), audio_qformer=qformer(40, 1, 2),
        audio=AudioEncoderConfig(width=32, depth=2, num_heads=4, mlp_ratio=2, out_dim=40),
        llm=dataclasses.replace(base.llm, hidden_size=64))
    vocab = _tokenizer_vocab_size()  # every id the model can pick is then a piece of the tokenizer
    llm = LlamaConfig(hidden_size=64, intermediate_size=172, num_hidden_layers=2, num_attention_heads=4,
                      vocab_size=vocab, max_position_embeddings=4096, rms_norm_eps=1e-6)
    small = Modality(16, 1, bias_kv=True)
    unused = UnusedSizes(vision=Modality(16, 1, bias_kv=False), text=Modality(16, 1, bias_kv=False), depth=small,
                         thermal=small, imu=small, image_size=32, text_vocab=50, text_context=8, imu_length=64,
                         t5_width=24)
    return OfficialSizes(config, llm, unused)


def _tokenizer_vocab_size() -> int:
    return spm.SentencePieceProcessor(model_proto=train_tiny_sentencepiece()).vocab_size()


SIZES = {"7b": sizes_7b, "scaled": sizes_scaled}


# ---- memory -----------------------------------------------------------------------------------

def status_bytes(field_name: str, path: str = "/proc/self/status") -> int:
    """One `kB` line of /proc/self/status or /proc/meminfo, in bytes."""
    with open(path) as status:
        for line in status:
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{path} has no {field_name} line (not Linux?)")


def reset_peak_rss() -> bool:
    """Reset the kernel's VmHWM to the current RSS (Linux `clear_refs` 5); False if not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


@dataclass
class MemoryWatch:
    """Samples RSS every `interval` s, keeps the peaks of the current phase, stops a runaway run."""

    max_anon_bytes: int
    interval: float = 0.05
    peak_rss: int = 0
    peak_anon: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        threading.Thread(target=self._run, name="memory-watch", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def new_phase(self) -> None:
        self.peak_rss = self.peak_anon = 0

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            anon = status_bytes("RssAnon")
            self.peak_anon = max(self.peak_anon, anon)
            self.peak_rss = max(self.peak_rss, status_bytes("VmRSS"))
            available = status_bytes("MemAvailable", "/proc/meminfo")
            if anon > self.max_anon_bytes or available < MIN_AVAILABLE_BYTES:
                sys.stderr.write(f"full_size: stopping: RssAnon {anon / GIB:.1f} GiB (limit "
                                 f"{self.max_anon_bytes / GIB:.1f}), available {available / GIB:.1f} GiB; the "
                                 "written files are left in --scratch\n")
                os._exit(3)


# ---- results ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class KeyCheck:
    """One file: keys written, loaded into the model, dropped by a named rule, and unaccounted for."""

    file: str
    written: int
    loaded: int
    dropped: int
    missing: int
    unexpected: int


@dataclass(frozen=True)
class ComponentBytes:
    name: str
    precision: str
    measured: int
    computed: int

    @property
    def ratio(self) -> float:
        return self.measured / self.computed


@dataclass
class Rehearsal:
    size: str
    files: dict[str, int] = field(default_factory=dict)  # file -> bytes on disk
    write_seconds: float = 0.0
    keys: list[KeyCheck] = field(default_factory=list)
    components: list[ComponentBytes] = field(default_factory=list)
    model_bytes: int = 0
    load_peak_rss: int = 0  # VmHWM after a reset just before loading
    load_peak_anon: int = 0  # sampled
    after_load_anon: int = 0
    after_load_file: int = 0
    answer_peak_rss: int = 0
    stages: dict[str, float] = field(default_factory=dict)  # seconds
    decode_tokens_per_s: float = 0.0
    answer_ids: list[int] = field(default_factory=list)
    answer: str = ""

    @property
    def load_overhead(self) -> int:
        return self.load_peak_rss - self.model_bytes


# ---- the rehearsal ----------------------------------------------------------------------------

def make_test_video(path: Path, seconds: float = 4.0) -> Path:
    """A real short video with an audio track: ffmpeg's test pattern and a 440 Hz tone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    command = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=duration={seconds}:size=320x240:rate=25",
               "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}:sample_rate=44100",
               "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)]
    subprocess.run(command, check=True)
    return path


@contextmanager
def timed(stages: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    stages[name] = time.perf_counter() - start
    # Logged as it happens: a run the memory watch stops still leaves every finished stage behind.
    log.info("stage %s: %.2f s (RSS now %.2f GiB)", name, stages[name], status_bytes("VmRSS") / GIB)


def rehearse(sizes: OfficialSizes, scratch: Path, size_name: str, max_anon_bytes: int = 14 * GIB) -> Rehearsal:
    """Write the files into `scratch`/checkpoints, load them, answer once; return the measurements."""
    result = Rehearsal(size_name)
    checkpoints = scratch / "checkpoints"
    start = time.perf_counter()
    written = write_checkpoints(sizes, checkpoints)
    result.write_seconds = time.perf_counter() - start
    log.info("wrote %s in %.0f s", scratch / "checkpoints", result.write_seconds)
    result.files = {name: file.bytes for name, file in written.items()}
    video = make_test_video(scratch / "media" / "testsrc_sine.mp4")
    watch = MemoryWatch(max_anon_bytes)
    watch.start()
    try:
        encoder, report, llm = _load(sizes.config, checkpoints, result, watch)
        result.keys = key_checks(report, written, llm, sizes.config)
        result.components = component_bytes(sizes, encoder, llm)
        result.model_bytes = sum(c.measured for c in result.components)
        log.info("keys and bytes measured:\n%s", markdown(result))
        watch.new_phase()
        _answer(sizes.config, encoder, llm, checkpoints / sizes.config.llm.path, video, result)
        result.answer_peak_rss = watch.peak_rss
    finally:
        watch.stop()
    return result


def _load(config: VideoLlamaConfig, checkpoints: Path, result: Rehearsal,
          watch: MemoryWatch) -> tuple[VideoLlamaEncoder, LoadReport, LoadedLLM]:
    """The production loaders, as `load_pipeline` calls them, with the LLM in bf16 on CPU."""
    reset_peak_rss()
    watch.new_phase()
    with timed(result.stages, "load"):
        weights = resolve_weights(config, checkpoints).require()
        encoder, report = load_official_weights(config, weights.official_paths(), "cpu", LLM_DTYPE)
        llm = load_llm(config.llm, weights.llm_dir, torch.device("cpu"), LLM_DTYPE)
    result.load_peak_rss = max(status_bytes("VmHWM"), watch.peak_rss)
    result.load_peak_anon = max(watch.peak_anon, status_bytes("RssAnon"))
    result.after_load_anon, result.after_load_file = status_bytes("RssAnon"), status_bytes("RssFile")
    log.info("loaded: peak RSS %.2f GiB, peak RssAnon %.2f GiB; now RssAnon %.2f GiB, RssFile %.2f GiB",
             result.load_peak_rss / GIB, result.load_peak_anon / GIB, result.after_load_anon / GIB,
             result.after_load_file / GIB)
    return encoder, report, llm


def _answer(config: VideoLlamaConfig, encoder: VideoLlamaEncoder, llm: LoadedLLM, llm_dir: Path, video: Path,
            result: Rehearsal) -> None:
    """Decode, encode, splice into the official prompt, prefill and 16 greedy tokens, each timed."""
    stages = result.stages
    with timed(stages, "decode media"):
        decoded = decode_upload(video, config.num_frames, config.vision.image_size, config.audio)
    assert decoded.audio is not None, decoded.audio_error
    with timed(stages, "encode video"):
        video_tokens = encoder.encode_video(decoded.frames.pixels[None])  # (1, 32, H)
    with timed(stages, "encode audio"):
        audio_tokens = encoder.encode_audio(decoded.audio.fbank[None])  # (1, 8, H)
    frames = decoded.frames
    encoding = MediaEncoding(kind="video", video=video_tokens, audio=audio_tokens, frame_indices=frames.indices,
                             frame_times=frames.times, message=frames.message, thumbnails=frames.thumbnails,
                             audio_note=None, clip_spans=decoded.audio.clip_spans, info=decoded.info)
    runtime = RuntimeChoice(torch.device("cpu"), torch.float32, LLM_DTYPE)
    session = Pipeline(config, encoder, llm, runtime, decoder=None).new_session()
    session.add_media(encoding)
    embeds = session.prompt_embeddings(QUESTION)[None]  # (1, L, H): the official prompt with media spliced in
    cache = DynamicCache()
    with timed(stages, f"prefill ({embeds.shape[1]} positions)"):
        logits = prefill(llm.model, embeds, cache)
    settings = SamplingSettings(temperature=0.0, max_new_tokens=NEW_TOKENS)
    with timed(stages, f"decode {NEW_TOKENS} tokens"):
        result.answer_ids = list(generate_tokens(llm.model, cache, logits, settings, stop_ids=frozenset()))
    result.decode_tokens_per_s = (len(result.answer_ids) - 1) / stages[f"decode {NEW_TOKENS} tokens"]
    result.answer = _decode_answer(llm, result.answer_ids, llm_dir)


def _decode_answer(llm: LoadedLLM, ids: list[int], llm_dir: Path) -> str:
    """The text of the ids the stand-in tokenizer has pieces for (a random 32000-row LLM picks others too)."""
    vocab = spm.SentencePieceProcessor(model_file=str(llm_dir / "tokenizer.model")).vocab_size()
    return llm.tokenizer.decode([i for i in ids if i < vocab])


# ---- checks -----------------------------------------------------------------------------------

def key_checks(report: LoadReport, written: dict[str, WrittenFile], llm: LoadedLLM,
               config: VideoLlamaConfig) -> list[KeyCheck]:
    """Every written key is either loaded or dropped by one of weights.py's named rules."""
    by_path = {file.path.resolve(): (name, file) for name, file in written.items()}
    checks = []
    for file_report in report.files:
        name, file = by_path[file_report.path.resolve()]
        dropped = sum(len(keys) for reason, keys in file_report.ignored.items() if reason != TRAINING_STATE)
        loaded = len(file_report.loaded)
        checks.append(KeyCheck(name, len(file.keys), loaded, dropped, 0, len(file.keys) - loaded - dropped))
    checks.append(_llm_key_check(config.llm.path, written[config.llm.path], llm))
    return checks


def _llm_key_check(name: str, written: WrittenFile, llm: LoadedLLM) -> KeyCheck:
    """The LLM's file keys against the loaded model's state dict (transformers ignores `inv_freq`)."""
    model_keys = set(llm.model.state_dict())
    file_keys = set(written.keys)
    dropped = {key for key in file_keys - model_keys if key.endswith("rotary_emb.inv_freq")}
    unloaded = [name for name, p in llm.model.named_parameters() if p.is_meta or p.dtype != LLM_DTYPE]
    assert not unloaded, f"LLM parameters not loaded in bf16: {unloaded[:3]}"
    return KeyCheck(name, len(file_keys), len(file_keys & model_keys), len(dropped),
                    len(model_keys - file_keys), len(file_keys - model_keys - dropped))


def component_bytes(sizes: OfficialSizes, encoder: VideoLlamaEncoder, llm: LoadedLLM) -> list[ComponentBytes]:
    """Measured bytes of each `memory` table row against the table, in the precision each part runs in."""
    encoder_precision = "fp32" if encoder.autocast_dtype is None else "16bit"
    llm_precision = "16bit" if LLM_DTYPE != torch.float32 else "fp32"
    computed: dict[str, MemoryEstimate] = {p: estimate_memory(sizes.config, p, sizes.llm)  # type: ignore[arg-type]
                                           for p in {encoder_precision, llm_precision}}
    rows = [ComponentBytes(name, encoder_precision, _bytes_of(encoder, attributes),
                           computed[encoder_precision].bytes_of(name))
            for name, attributes in ENCODER_PARTS.items() if hasattr(encoder, attributes[0])]
    llm_bytes = _tensor_bytes([*llm.model.parameters(), *llm.model.buffers()])
    return rows + [ComponentBytes(LLM_ROW, llm_precision, llm_bytes, computed[llm_precision].bytes_of(LLM_ROW))]


def _bytes_of(encoder: VideoLlamaEncoder, attributes: tuple[str, ...]) -> int:
    tensors: list[torch.Tensor] = []
    for attribute in attributes:
        value = getattr(encoder, attribute)
        tensors += [*value.parameters(), *value.buffers()] if isinstance(value, nn.Module) else [value]
    return _tensor_bytes(tensors)


def _tensor_bytes(tensors: list[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


# ---- report -----------------------------------------------------------------------------------

def _gib(value: int) -> str:
    return f"{value / GIB:.2f} GiB"


def markdown(result: Rehearsal) -> str:
    lines = [f"### Full-size rehearsal ({result.size}, CPU, encoders fp32, LLM bf16)", "",
             "| file | on disk | keys written | loaded | dropped by rule | missing | unexpected |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for check in result.keys:
        lines.append(f"| {Path(check.file).name} | {result.files[check.file] / 1e6:,.1f} MB | {check.written} "
                     f"| {check.loaded} | {check.dropped} | {check.missing} | {check.unexpected} |")
    lines += ["", "| component | precision | measured bytes | computed (`memory`) | measured / computed |",
              "| --- | --- | --- | --- | --- |"]
    lines += [f"| {c.name} | {c.precision} | {c.measured:,} | {c.computed:,} | {c.ratio:.4f} |"
              for c in result.components]
    lines += ["", "| memory | value |", "| --- | --- |",
              f"| loaded model (parameters + buffers) | {_gib(result.model_bytes)} |",
              f"| peak RSS while loading (VmHWM) | {_gib(result.load_peak_rss)} |",
              f"| peak RSS - model | {result.load_overhead / GIB:+.2f} GiB |",
              f"| peak RssAnon while loading | {_gib(result.load_peak_anon)} |",
              f"| after loading: RssAnon / RssFile (mapped files read so far) | "
              f"{_gib(result.after_load_anon)} / {_gib(result.after_load_file)} |",
              f"| peak RSS while answering | {_gib(result.answer_peak_rss)} |",
              "", "| stage | seconds |", "| --- | --- |",
              f"| write files | {result.write_seconds:.1f} |"]
    lines += [f"| {name} | {seconds:.2f} |" for name, seconds in result.stages.items()]
    lines += [f"| decode speed | {result.decode_tokens_per_s:.2f} tokens/s |", "",
              f"Answer ({len(result.answer_ids)} greedy tokens, ids {result.answer_ids}): {result.answer!r}"]
    return "\n".join(lines)


def to_json(result: Rehearsal) -> str:
    data = dataclasses.asdict(result) | {"load_overhead": result.load_overhead}
    return json.dumps(data, indent=2)


# ---- command line -----------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.full_size", description=__doc__.splitlines()[0])
    parser.add_argument("--scratch", type=Path, help="where to write (default: a new temporary dir)")
    parser.add_argument("--size", choices=sorted(SIZES), default="7b")
    parser.add_argument("--keep", action="store_true", help="keep the written files")
    parser.add_argument("--json", type=Path, help="also write the measurements as JSON here")
    parser.add_argument("--max-anon-gib", type=float, default=14.0,
                        help="stop if the process allocates more than this (default 14)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="videollama-full-size-"))
    if (scratch / "checkpoints").exists():
        raise SystemExit(f"{scratch / 'checkpoints'} exists already: give an empty --scratch")
    try:
        result = rehearse(SIZES[args.size](), scratch, args.size, int(args.max_anon_gib * GIB))
    finally:
        if not args.keep:
            for written in ("checkpoints", "media"):
                shutil.rmtree(scratch / written, ignore_errors=True)
            if scratch.is_dir() and not any(scratch.iterdir()):
                scratch.rmdir()
    print(markdown(result))
    if args.json:
        args.json.write_text(to_json(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
