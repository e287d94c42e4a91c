"""bench/full_size.py at a scaled-down size: the same writer, loaders and measurements as the 7B run."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.full_size import rehearse, sizes_7b, sizes_scaled
from bench.official_files import official_layouts


@pytest.mark.slow
def test_scaled_rehearsal_loads_every_key_and_answers(tmp_path: Path) -> None:
    result = rehearse(sizes_scaled(), tmp_path, "scaled")

    assert [check.file.rsplit("/", 1)[-1] for check in result.keys] == [
        "eva_vit_g.pth", "blip2_pretrained_flant5xxl.pth", "imagebind_huge.pth", "VL_LLaMA_2_7B_Finetuned.pth",
        "AL_LLaMA_2_7B_Finetuned.pth", "llama-2-7b-chat-hf"]
    for check in result.keys:
        assert (check.missing, check.unexpected) == (0, 0), check
        assert check.loaded > 0 and check.loaded + check.dropped == check.written, check
    assert {c.name for c in result.components} == {"EVA ViT-g", "BLIP-2 Q-Former", "video branch",
                                                    "ImageBind audio", "audio branch", "LLM"}
    for component in result.components:
        assert component.measured == component.computed, component
    assert len(result.answer_ids) == 16 and result.answer
    assert result.decode_tokens_per_s > 0 and result.load_peak_rss > 0


def test_7b_layouts_have_the_official_sizes() -> None:
    """Parameter counts of the files the 7B rehearsal writes, against the official model's (counted from
    the official code): ImageBind-Huge whole, and the trainable VL / AL branches (their file sizes)."""
    params = {name.rsplit("/", 1)[-1]: sum(math.prod(spec.shape) for spec in layout.values() if not spec.is_buffer)
              for name, layout, _ in official_layouts(sizes_7b())}
    assert params["imagebind_huge.pth"] == 1_200_781_057
    assert params["VL_LLaMA_2_7B_Finetuned.pth"] == 18_905_088 + 24_576 + 24_576 + 3_149_824
    assert params["AL_LLaMA_2_7B_Finetuned.pth"] == 19_691_520 + 6_144 + 8_192 + 3_149_824
