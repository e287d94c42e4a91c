"""memory.py: bytes per component from modules built on `meta`, checked against the official modules' parameter
counts and the storage rules written out here by hand; and the loader's memory behaviour on CPU."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.official_format import save, write_official_checkpoints
from tests.tiny_llama import tiny_llama_dir  # noqa: F401  (session fixture)
from videollama_demo import load_pipeline
from videollama_demo.__main__ import main
from videollama_demo.config import PRESETS, VideoLlamaConfig
from videollama_demo.model.llm import load_llm
from videollama_demo.model.weights import load_official_weights
from videollama_demo.pipeline.memory import (
    FIT_TARGETS,
    GIB,
    KV_ROW,
    LLM_ROW,
    RUNTIME_ALLOWANCE_GIB,
    encoder_components,
    estimate_memory,
    llm_shape_of,
    precision_of,
)

# Parameter counts of the official 7B model's modules (Video-LLaMA `VideoLLAMA.__init__` in
# `video_llama/models/video_llama.py`); the video and audio branches are what the VL/AL files' `['model']` holds.
OFFICIAL_7B_PARAMS = {
    "EVA ViT-g": 985_952_256,  # 39 blocks, "985.9 M"
    "BLIP-2 Q-Former": 105_137_664 + 24_576,  # Qformer.bert "105.1 M" + query_tokens (1, 32, 768)
    "video branch": 18_905_088 + 24_576 + 24_576 + 3_149_824,  # VL: 22.10 M
    "audio branch": 19_691_520 + 6_144 + 8_192 + 3_149_824,  # AL: 22.86 M
}
LLAMA2_7B_PARAMS = 6_738_415_616
LLAMA2_13B_PARAMS = 13_015_864_320
ROPE_BUFFERS = 2 * 64 * 4  # inv_freq and original_inv_freq of the rotary embedding, fp32 whatever the weights


def llama_linear_params(hidden: int, inner: int, layers: int) -> int:
    return layers * (4 * hidden * hidden + 3 * hidden * inner)  # q, k, v, o + gate, up, down; no biases


def test_component_parameter_counts_match_the_official_model() -> None:
    estimate = estimate_memory(PRESETS["video-llama-2-7b"], "16bit")
    counts = {row.name: row.params for row in estimate.components}
    assert {name: counts[name] for name in OFFICIAL_7B_PARAMS} == OFFICIAL_7B_PARAMS
    # ImageBind audio: preprocessor + trunk + head
    assert counts["ImageBind audio"] == pytest.approx(0.37e6 + 85.07e6 + 0.79e6, rel=2e-3)
    assert counts[LLM_ROW] == LLAMA2_7B_PARAMS
    assert estimate_memory(PRESETS["video-llama-2-13b"], "16bit").components[-2].params == LLAMA2_13B_PARAMS
    vicuna = estimate_memory(PRESETS["video-llama-vicuna-7b"], "16bit").components[-2].params
    assert vicuna == LLAMA2_7B_PARAMS + 2 * 4096  # v0's extra pad token: one more row in embed and lm_head


def test_the_official_mix_keeps_only_the_vit_linear_layers_in_half_precision() -> None:
    """As Video-LLaMA's `create_eva_vit_g(precision="fp16")` leaves it (`convert_weights_to_fp16`,
    `video_llama/models/eva_vit.py`): the ViT's Linear weights and biases are fp16; LayerNorms, CLS,
    positions and the rest fp32."""
    per_block = (1408 * 4224 + 4224) + (1408 * 1408 + 1408) + (1408 * 6144 + 6144) + (6144 * 1408 + 1408)
    half = 39 * per_block
    rows = {row.name: row for row in encoder_components(PRESETS["video-llama-2-7b"], "16bit")}
    assert rows["EVA ViT-g"].bytes == 2 * half + 4 * (OFFICIAL_7B_PARAMS["EVA ViT-g"] - half)
    for name in ("BLIP-2 Q-Former", "video branch", "ImageBind audio", "audio branch"):
        assert rows[name].bytes == 4 * rows[name].params


@pytest.mark.parametrize("precision, expected", [
    ("16bit", 2 * LLAMA2_7B_PARAMS + ROPE_BUFFERS),
    # int8 weights + an fp32 scale per output row of each decoder Linear; embeddings, lm_head, norms fp16
    ("8bit", llama_linear_params(4096, 11008, 32) + 4 * 32 * (4 * 4096 + 2 * 11008 + 4096)
     + 2 * (LLAMA2_7B_PARAMS - llama_linear_params(4096, 11008, 32)) + ROPE_BUFFERS),
    ("fp32", 4 * LLAMA2_7B_PARAMS + ROPE_BUFFERS),
])
def test_llm_bytes_per_precision(precision: str, expected: int) -> None:
    assert estimate_memory(PRESETS["video-llama-2-7b"], precision).bytes_of(LLM_ROW) == expected


def test_nf4_takes_a_little_over_half_a_byte_per_quantized_weight() -> None:
    linear = llama_linear_params(4096, 11008, 32)
    rest = 2 * (LLAMA2_7B_PARAMS - linear)
    llm = estimate_memory(PRESETS["video-llama-2-7b"], "4bit").bytes_of(LLM_ROW)
    assert 0.5 * linear + rest < llm < 0.52 * linear + rest  # 4 bits + 8-bit absmax per 64 (+ fp32 per 256 of those)


def test_kv_cache_for_the_official_2000_positions() -> None:
    assert estimate_memory(PRESETS["video-llama-2-7b"], "16bit").bytes_of(KV_ROW) == 2 * 32 * 2000 * 4096 * 2
    assert estimate_memory(PRESETS["video-llama-2-13b"], "8bit").bytes_of(KV_ROW) == 2 * 40 * 2000 * 5120 * 2


def test_the_targets_fit_on_paper() -> None:
    """7B with audio in fp16 on 24 GB, 13B with audio in 8-bit on 24 GB, 7B in 4-bit on 12 GB."""
    for target in FIT_TARGETS:
        estimate = estimate_memory(PRESETS[target.preset], target.precision)
        assert estimate.fits(target), (target, estimate.total_bytes / GIB)
    assert estimate_memory(PRESETS["video-llama-2-13b"], "16bit").total_bytes / GIB + RUNTIME_ALLOWANCE_GIB > 22.49


def test_the_estimate_covers_every_loaded_tensor_once(tiny_checkpoints: Path,
                                                      tiny_llama_dir: Path) -> None:  # noqa: F811
    config = VideoLlamaConfig.from_name("tiny")
    encoder, _ = load_official_weights(config, write_official_checkpoints(config, tiny_checkpoints / "again"))
    loaded = sum(t.numel() * t.element_size() for t in [*encoder.parameters(), *encoder.buffers()])
    assert sum(row.bytes for row in encoder_components(config, "fp32")) == loaded

    llm = load_llm(config.llm, tiny_llama_dir, torch.device("cpu"), torch.float32)
    estimate = estimate_memory(config, "fp32", llm_shape_of(config, tiny_llama_dir))
    assert estimate.components[-2].params == sum(p.numel() for p in llm.model.parameters())
    assert estimate.bytes_of(LLM_ROW) == sum(t.numel() * t.element_size()
                                             for t in [*llm.model.parameters(), *llm.model.buffers()])


PEAK_RSS_SCRIPT = """
import dataclasses, os, sys, threading
from pathlib import Path
from tests.official_format import write_official_checkpoints
from videollama_demo.config import VideoLlamaConfig
from videollama_demo.model.weights import load_official_weights

def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

config = VideoLlamaConfig.from_name("tiny")
paths = write_official_checkpoints(config, Path(sys.argv[1]))
load_official_weights(config, paths)  # warm-up: the loader's own allocations happen here
before, peak, done = rss(), [0], threading.Event()
def watch():  # the kernel's own high-water mark is updated lazily: sample instead
    while not done.is_set():
        peak[0] = max(peak[0], rss())
threading.Thread(target=watch, daemon=True).start()
_, report = load_official_weights(config, dataclasses.replace(paths, imagebind=Path(sys.argv[2])))
done.set()
print((max(peak[0], rss()) - before) // 1024)  # KiB the memory rose by, at its highest
print(sum(len(keys) for keys in report.file("imagebind").ignored.values()))
"""


def test_loading_reads_only_the_audio_part_of_imagebind(tmp_path: Path) -> None:
    """imagebind_huge.pth is 4.8 GB for an 86 M-parameter audio path: the file is memory-mapped and the
    other modalities' tensors are never read, so they never take memory, not even for a moment."""
    config = VideoLlamaConfig.from_name("tiny")
    padded = tmp_path / "imagebind_huge.pth"
    state = torch.load(write_official_checkpoints(config, tmp_path / "files").imagebind, weights_only=True)
    state["modality_trunks.vision.blocks.0.attn.in_proj_weight"] = torch.randn(64 * 2**20)  # 256 MiB, unused
    save(state, padded)
    result = subprocess.run([sys.executable, "-c", PEAK_RSS_SCRIPT, str(tmp_path / "small"), str(padded)],
                            capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[2])
    peak_rise_kib, ignored = map(int, result.stdout.split())
    assert peak_rise_kib < 32 * 1024, f"the peak grew by {peak_rise_kib / 1024:.0f} MiB"
    assert ignored == 8  # the tiny file's six other-modality keys, the fixed audio scale, the padding


@pytest.mark.parametrize("device, dtype, quantization, expected", [
    ("cpu", torch.float32, None, "fp32"),
    ("cuda", torch.bfloat16, None, "16bit"),
    ("cuda", torch.float16, None, "16bit"),
    ("cuda", torch.bfloat16, "8bit", "8bit"),
    ("cuda", torch.float16, "4bit", "4bit"),
])
def test_the_precision_a_pipeline_runs_in(device: str, dtype: torch.dtype, quantization: str | None,
                                          expected: str) -> None:
    assert precision_of(torch.device(device), dtype, quantization) == expected


def test_the_start_up_log_reports_memory(tiny_checkpoints: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="videollama_demo.pipeline"):
        load_pipeline("tiny", checkpoints=tiny_checkpoints, device="cpu")
    report = next(r.message for r in caplog.records if r.message.startswith("memory of tiny"))
    assert "(fp32 (CPU))" in report and "EVA ViT-g" in report and "KV cache" in report


def test_the_memory_command_prints_the_table(capsys: pytest.CaptureFixture) -> None:
    assert main(["memory", "video-llama-2-7b"]) == 0
    out = capsys.readouterr().out
    assert "| component | parameters | fp16/bf16 | 8-bit LLM | 4-bit LLM | fp32 (CPU) |" in out
    assert "| LLM | 6.74 B | 12.55 | 6.53 | 3.60 | 25.10 |" in out
    assert "video-llama-2-13b 8-bit LLM on 24 GB (A10G, L4, RTX 3090/4090): 18.2 of 22.49 GiB: yes" in out
