"""The preview GGUF is parsed on the first start only: later starts load the kept HF directory, and
get the same weights and the same token ids as transformers' own GGUF load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from videollama_demo.config import VideoLlamaConfig
from videollama_demo.model.gguf_cache import CACHE_ENV, converted_dir, is_complete
from videollama_demo.model.llm import load_llm, resolve_llm_path

CPU = torch.device("cpu")
PROMPT = "<|im_start|>user\nWhat is in the video? <Video><ImageHere></Video> Ünïcode 字<|im_end|>\n"


def test_a_second_start_loads_the_kept_directory_with_the_same_weights_and_tokens(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    cfg = VideoLlamaConfig.from_name("preview").llm
    gguf = resolve_llm_path(cfg, tmp_path)
    kept = converted_dir(gguf, torch.float32)
    assert not is_complete(kept)

    from_gguf = load_llm(cfg, gguf, CPU, torch.float32)  # transformers' GGUF path: the reference
    assert is_complete(kept) and not list(kept.glob("*.gguf"))
    from_kept = load_llm(cfg, gguf, CPU, torch.float32)
    assert Path(from_kept.model.name_or_path) == kept

    reference, loaded = from_gguf.model.state_dict(), from_kept.model.state_dict()
    assert reference.keys() == loaded.keys()
    assert all(torch.equal(reference[key], loaded[key]) for key in reference)
    kept_tok, gguf_tok = from_kept.tokenizer, from_gguf.tokenizer
    assert kept_tok.tokenizer.encode(PROMPT) == gguf_tok.tokenizer.encode(PROMPT)
    assert (kept_tok.eos_token_id, kept_tok.bos_token_id, kept_tok.vocab_size) == \
        (gguf_tok.eos_token_id, gguf_tok.bos_token_id, gguf_tok.vocab_size)
    assert kept_tok.tokenizer.chat_template == gguf_tok.tokenizer.chat_template
    assert set(kept_tok.tokenizer.all_special_tokens) == set(gguf_tok.tokenizer.all_special_tokens)
    ids = torch.tensor([gguf_tok.tokenizer.encode(PROMPT)])
    assert torch.equal(from_kept.model(ids).logits, from_gguf.model(ids).logits)
