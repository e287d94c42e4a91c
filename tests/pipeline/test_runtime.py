"""Device and dtypes: fp32 on a CPU unless a 16-bit LLM is asked for; the encoders stay fp32 there."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from videollama_demo import load_pipeline
from videollama_demo.pipeline import RuntimeChoice, choose_runtime

CPU = torch.device("cpu")


@pytest.mark.parametrize(("dtype", "expected"), [
    (None, RuntimeChoice(CPU, torch.float32, torch.float32)),
    (torch.float32, RuntimeChoice(CPU, torch.float32, torch.float32)),
    (torch.bfloat16, RuntimeChoice(CPU, torch.float32, torch.bfloat16)),
    (torch.float16, RuntimeChoice(CPU, torch.float32, torch.float16)),
])
def test_on_cpu_a_given_dtype_is_the_llms_only(dtype: torch.dtype | None, expected: RuntimeChoice) -> None:
    assert choose_runtime("cpu", dtype) == expected


def test_a_bf16_llm_on_cpu_loads_in_bf16_and_answers(tiny_checkpoints: Path, shared_media: dict[str, Path]) -> None:
    pipeline = load_pipeline("tiny", checkpoints=tiny_checkpoints, device="cpu", dtype=torch.bfloat16,
                             isolate_decoding=False)
    try:
        assert {p.dtype for p in pipeline.llm.model.parameters()} == {torch.bfloat16}
        assert {p.dtype for p in pipeline.encoder.parameters()} == {torch.float32}
        session = pipeline.new_session()
        encoding = pipeline.encode(shared_media["video"])
        assert encoding.video.dtype == torch.float32
        session.add_media(encoding)
        reply = session.ask("What is in the video?", temperature=0.0, max_new_tokens=4)
        assert len(list(reply)) > 0
    finally:
        pipeline.close()
