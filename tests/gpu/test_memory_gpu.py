"""On a CUDA GPU: full-size models with random weights measured against memory.py's numbers, the
bitsandbytes 8/4-bit LLM, and KV caches moved off and back onto the GPU. Run: `pytest -m gpu`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, DynamicCache, LlamaConfig, LlamaForCausalLM

from tests import media_factory
from tests.tiny_llama import tiny_llama_dir  # noqa: F401  (session fixture)
from videollama_demo import Pipeline
from videollama_demo.config import PRESETS, LLMConfig
from videollama_demo.engines.decode import prefill
from videollama_demo.engines.kv_cache import KVCacheState
from videollama_demo.model.llm import LoadedLLM, load_llm
from videollama_demo.model.video_llama import VideoLlamaEncoder
from videollama_demo.pipeline import choose_runtime
from videollama_demo.pipeline.memory import (
    FIT_TARGETS,
    GIB,
    KV_ROW,
    estimate_memory,
    llm_component,
    llm_shape_of,
)
from videollama_demo.pipeline.zero_gpu import to_cpu
from videollama_demo.prompt.tokenizer import load_prompt_tokenizer

pytestmark = pytest.mark.gpu
CUDA = torch.device("cuda")
CUDA_CONTEXT_GIB = 0.5  # what the driver takes beside PyTorch's allocations on a 24 GB card


def free_gpu() -> None:
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()


@pytest.fixture(scope="module")
def full_7b(tiny_llama_dir: Path) -> Pipeline:  # noqa: F811
    """The 7B model with audio at full size, random weights, built on the GPU in the official precision."""
    free_gpu()
    config = PRESETS["video-llama-2-7b"]
    runtime = choose_runtime(CUDA, None)
    with torch.device(CUDA):
        encoder = VideoLlamaEncoder(config)  # default initialisation: finite values, no files needed
        model = AutoModelForCausalLM.from_config(llm_shape_of(config), dtype=runtime.llm_dtype)
    encoder.to_runtime(CUDA, runtime.encoder_dtype)
    model.eval().requires_grad_(False)
    tokenizer = load_prompt_tokenizer(tiny_llama_dir)  # ids < 32000: any LLaMA vocabulary works here
    with torch.no_grad():
        model.lm_head.weight[tokenizer.vocab_size:] = 0  # random answers stay inside the small vocabulary
    llm = LoadedLLM(model, tokenizer, CUDA, runtime.llm_dtype, config.llm.context_length)
    free_gpu()
    return Pipeline(config, encoder, llm, runtime)


def test_7b_with_audio_answers_about_8_frames_within_24_gb(full_7b: Pipeline, tmp_path: Path) -> None:
    estimate = estimate_memory(full_7b.config, "16bit")
    weights = torch.cuda.memory_allocated()
    assert weights == pytest.approx(estimate.total_bytes - estimate.bytes_of(KV_ROW), rel=0.02)

    clip = media_factory.make_video(tmp_path / "clip.mp4", seconds=6, size=(320, 240), audio="sine")
    session = full_7b.new_session()
    encoding = session.add_media(clip, use_audio=True, num_frames=8)
    assert encoding.uses_audio and len(encoding.frame_indices) == 8
    reply = session.ask("Describe what you see and hear.", temperature=0, max_new_tokens=64)
    "".join(reply)
    assert reply.prefilled > 8 + 32  # the audio and video tokens and the prompt text
    peak = torch.cuda.max_memory_allocated()
    target = next(t for t in FIT_TARGETS if t.preset == "video-llama-2-7b" and t.precision == "16bit")
    assert peak / GIB + CUDA_CONTEXT_GIB < target.usable_gib, f"peak {peak / GIB:.2f} GiB"
    print(f"7B fp16 + audio, 8 frames: weights {weights / GIB:.2f} GiB, answer peak {peak / GIB:.2f} GiB")


def test_a_full_2000_position_context_stays_within_the_estimate(full_7b: Pipeline) -> None:
    free_gpu()
    estimate = estimate_memory(full_7b.config, "16bit")
    cache = DynamicCache(config=full_7b.llm.model.config)
    embeds = torch.randn(1, estimate.context_length, 4096, device=CUDA, dtype=full_7b.llm.dtype) * 0.02
    prefill(full_7b.llm.model, embeds, cache)
    del embeds
    peak = torch.cuda.max_memory_allocated()
    assert peak <= estimate.total_bytes + 1.0 * GIB, f"peak {peak / GIB:.2f} GiB vs {estimate.total_bytes / GIB:.2f}"
    assert cache.get_seq_length() == estimate.context_length


@pytest.fixture(scope="module")
def mid_llama(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path) -> Path:  # noqa: F811
    """A 0.2 B-parameter LLaMA on disk (LLaMA-2's vocabulary size), to measure quantized storage."""
    directory = tmp_path_factory.mktemp("mid_llama")
    shape = LlamaConfig(hidden_size=1024, intermediate_size=2816, num_hidden_layers=8, num_attention_heads=16,
                        vocab_size=32000)
    LlamaForCausalLM(shape).to(torch.float16).save_pretrained(directory)
    for name in ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(tiny_llama_dir / name, directory / name)
    return directory


@pytest.mark.parametrize("quantization", ["8bit", "4bit"])
def test_bitsandbytes_storage_matches_the_estimate(mid_llama: Path, quantization: str) -> None:
    free_gpu()
    before = torch.cuda.memory_allocated()
    llm = load_llm(LLMConfig(hidden_size=1024, path=str(mid_llama)), mid_llama, CUDA, torch.float16,
                   quantization=quantization)
    stored = torch.cuda.memory_allocated() - before
    expected = llm_component(LlamaConfig.from_pretrained(mid_llama), quantization).bytes
    assert stored == pytest.approx(expected, rel=0.03)
    kinds = {type(module).__name__ for module in llm.model.modules()}
    assert ("Linear8bitLt" if quantization == "8bit" else "Linear4bit") in kinds

    reference = AutoModelForCausalLM.from_pretrained(mid_llama, dtype=torch.float16).to(CUDA).eval()
    ids = torch.tensor([[1, 500, 20, 31000, 7, 99]], device=CUDA)
    with torch.no_grad():
        ours, full = llm.model(input_ids=ids).logits.float(), reference(input_ids=ids).logits.float()
    similarity = torch.nn.functional.cosine_similarity(ours.flatten(), full.flatten(), dim=0)
    assert similarity > (0.97 if quantization == "8bit" else 0.8)  # a sanity check: random weights, 8 layers


def test_an_offloaded_cache_goes_to_the_cpu_and_back(tiny_llama_dir: Path) -> None:  # noqa: F811
    llm = load_llm(LLMConfig(hidden_size=64, path=str(tiny_llama_dir)), tiny_llama_dir, CUDA, torch.float32)
    state = KVCacheState(llm.model.config)
    state.reuse_prefix(list(range(9)))
    prefill(llm.model, llm.embed_tokens([1, 45, 300, 12, 7, 999, 3, 250]), state.cache)
    expected = [layer.keys.clone() for layer in state.cache.layers]
    state.offload()
    assert all(layer.keys.device.type == layer.values.device.type == "cpu" for layer in state.cache.layers)
    state.restore()
    assert all(layer.keys.device.type == "cuda" for layer in state.cache.layers)
    assert all(torch.equal(layer.keys, key) for layer, key in zip(state.cache.layers, expected))


def test_to_cpu_moves_cuda_tensors() -> None:
    moved = to_cpu({"a": [torch.ones(3, device=CUDA)], "b": (torch.zeros(1, device=CUDA),)})
    assert moved["a"][0].device.type == moved["b"][0].device.type == "cpu"


def test_the_llm_loads_straight_onto_the_gpu(tiny_llama_dir: Path) -> None:  # noqa: F811
    llm = load_llm(LLMConfig(hidden_size=64, path=str(tiny_llama_dir)), tiny_llama_dir, CUDA, torch.bfloat16)
    assert {p.device.type for p in llm.model.parameters()} == {"cuda"}
    assert llm.model.get_input_embeddings().weight.dtype == torch.bfloat16
    assert llm_component(llm.model.config, "16bit").bytes == sum(
        t.numel() * t.element_size() for t in [*llm.model.parameters(), *llm.model.buffers()])
