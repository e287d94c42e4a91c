"""Rows 6-7 (CUDA only): time to first token after an upload, and decode speed against the
memory-bandwidth limit, for the 7B model with audio at full size with random weights.

Random weights cost the same time as the official ones; building them needs no download. The
bandwidth limit is what decoding one token must read (every LLM weight once) divided by the
device-to-device copy bandwidth measured here. Without a CUDA GPU both rows say so.
"""

from __future__ import annotations

import statistics
import time

import torch
from transformers import AutoModelForCausalLM

from videollama_demo import Pipeline, Reading
from videollama_demo.config import PRESETS
from videollama_demo.model.llm import LoadedLLM
from videollama_demo.model.video_llama import VideoLlamaEncoder
from videollama_demo.pipeline import choose_runtime
from videollama_demo.pipeline.encode_cache import EncodeCache
from videollama_demo.pipeline.memory import llm_shape_of

from .context import BenchContext, run_standalone
from .report import NO_GPU, Row, seconds

TTFT_NAME = "6. time to first token after upload (7B + audio, 8 frames, full-size random weights)"
DECODE_NAME = "7. decode tokens/s vs the memory-bandwidth limit (7B, 16-bit)"


def build_7b(ctx: BenchContext) -> Pipeline:
    """The 7B preset built on the GPU in the official precision, with random weights."""
    from tests.tiny_llama import write_tiny_llama_dir  # a LLaMA tokenizer; ids stay below 32000
    from videollama_demo.prompt.tokenizer import load_prompt_tokenizer

    cuda = torch.device("cuda")
    config = PRESETS["video-llama-2-7b"]
    runtime = choose_runtime(cuda, None)
    with torch.device(cuda):
        encoder = VideoLlamaEncoder(config)
        model = AutoModelForCausalLM.from_config(llm_shape_of(config), dtype=runtime.llm_dtype)
    encoder.to_runtime(cuda, runtime.encoder_dtype)
    model.eval().requires_grad_(False)
    tokenizer_dir = ctx.scratch_dir("llama-tokenizer")
    write_tiny_llama_dir(tokenizer_dir)
    tokenizer = load_prompt_tokenizer(tokenizer_dir)
    with torch.no_grad():
        model.lm_head.weight[tokenizer.vocab_size:] = 0  # keep random answers inside the small vocabulary
    llm = LoadedLLM(model, tokenizer, cuda, runtime.llm_dtype, config.llm.context_length)
    # An encode cache that keeps nothing: every upload is a first one.
    return Pipeline(config, encoder, llm, runtime, encode_cache=EncodeCache(0))


def copy_bandwidth(gib: float = 2.0) -> float:
    """Bytes/s of a device-to-device copy (each byte read once and written once)."""
    source = torch.empty(int(gib * 2**30), dtype=torch.uint8, device="cuda")
    target = torch.empty_like(source)
    target.copy_(source)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(5):
        target.copy_(source)
    torch.cuda.synchronize()
    return 2 * source.numel() * 5 / (time.perf_counter() - start)


def first_token_after_upload(pipeline: Pipeline, video) -> tuple[float, float]:
    """Seconds from a fresh upload to the first streamed text, and the decode rate after it."""
    session = pipeline.new_session()
    start = time.perf_counter()
    session.add_media(pipeline.encode(video, Reading(use_audio=True, num_frames=8)))
    reply = session.ask("Describe what you see and hear.", temperature=0, max_new_tokens=128)
    next(reply)
    torch.cuda.synchronize()
    first = time.perf_counter() - start
    count, decode_start = 0, time.perf_counter()
    for _ in reply:
        count += 1
    torch.cuda.synchronize()
    return first, count / (time.perf_counter() - decode_start)


def run(ctx: BenchContext) -> list[Row]:
    if not torch.cuda.is_available():
        return [Row(TTFT_NAME, NO_GPU, NO_GPU, None), Row(DECODE_NAME, NO_GPU, NO_GPU, None)]
    pipeline = build_7b(ctx)
    video = ctx.short_video()
    first_token_after_upload(pipeline, video)  # warm-up: kernels, cuBLAS handles
    runs = [first_token_after_upload(pipeline, video) for _ in range(ctx.repeats(5, 1))]
    ttft, rate = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
    weight_bytes = sum(p.numel() * p.element_size() for p in pipeline.llm.model.parameters())
    limit = copy_bandwidth() / weight_bytes  # tokens/s if each token only had to read the weights once
    return [
        Row(TTFT_NAME, f"{seconds(ttft)} ({torch.cuda.get_device_name(0)})", "—", ttft, unit="s"),
        Row(DECODE_NAME, f"{rate:.1f} tok/s", f"bandwidth limit: {limit:.1f} tok/s "
            f"({weight_bytes / 2**30:.1f} GiB of weights per token)", rate / limit, unit="%"),
    ]


def main(argv: list[str] | None = None) -> int:
    return run_standalone(run, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    raise SystemExit(main())
