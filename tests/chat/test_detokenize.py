"""Streaming detokenizer, table-driven, with real tokenizers: the tiny LLaMA-style SentencePiece
model (byte fallback, dummy prefix) and the preview LLM's byte-level BPE (SmolLM2 GGUF)."""

from pathlib import Path

import pytest

from tests.tiny_llama import smollm2_prompt_tokenizer, tiny_llama_dir  # noqa: F401 (fixture)
from videollama_demo.chat.detokenize import StreamDecoder
from videollama_demo.prompt.parts import Text
from videollama_demo.prompt.tokenizer import (
    HFPromptTokenizer,
    PromptTokenizer,
    SentencePieceLlamaTokenizer,
    load_prompt_tokenizer,
)

VICUNA_STOP = ("###",)
CHATML_STOPS = ("<|im_end|>", "<|endoftext|>")


@pytest.fixture(scope="module")
def llama(tiny_llama_dir: Path) -> SentencePieceLlamaTokenizer:  # noqa: F811
    return load_prompt_tokenizer(tiny_llama_dir)


@pytest.fixture(scope="module")
def smollm2() -> HFPromptTokenizer:
    return smollm2_prompt_tokenizer()


def stream(decoder: StreamDecoder, ids: list[int]) -> tuple[list[str], str]:
    """Push every id (as a generation loop would, also after a stop); return deltas and finish()."""
    return [decoder.push(i) for i in ids], decoder.finish()


# (pieces, stop strings, deltas per push, finish(), stopped)
LLAMA_TABLE = [
    # Decoded alone, "▁dog" loses its space; in the stream it keeps it.
    (["▁The", "▁dog", "▁is"], (), ["The", " dog", " is"], "", False),
    (["▁", "▁", "▁the"], (), ["", " ", " the"], "", False),
    # Byte fallback: nothing until the character is complete, never U+FFFD mid-character.
    (["▁dog", "▁", "<0xF0>", "<0x9F>", "<0x98>", "<0x80>", "!"], (), ["dog", " ", "", "", "", "😀", "!"], "", False),
    (["<0xE6>", "<0xBC>", "<0xA2>", "<0xE5>", "<0xAD>", "<0x97>"], (), ["", "", "漢", "", "", "字"], "", False),
    # Generation cut mid-character: the end shows what decoding the whole would show.
    (["▁dog", "<0xF0>", "<0x9F>"], (), ["dog", "", ""], "\ufffd\ufffd", False),
    # The Vicuna stop "###" as "##" + "#": never shown, and the stream ends.
    (["▁The", "▁dog", "##", "#", "Human"], VICUNA_STOP, ["The", " dog", "", "", ""], "", True),
    (["▁dog", "###"], VICUNA_STOP, ["dog", ""], "", True),
    (["▁dog", "▁###"], VICUNA_STOP, ["dog", " "], "", True),
    (["▁dog", ".###"], VICUNA_STOP, ["dog", "."], "", True),
    # A held "#" that turns out not to be a stop is released.
    (["▁dog", "#", "▁is"], VICUNA_STOP, ["dog", "", "# is"], "", False),
    (["▁dog", "##"], VICUNA_STOP, ["dog", ""], "##", False),
    (["▁a", "#", "<0xF0>", "<0x9F>", "<0x98>", "<0x80>"], VICUNA_STOP, ["a", "", "", "", "", "#😀"], "", False),
    # Official LLaMA-2 stops on EOS only: "###" is ordinary text there.
    (["▁dog", "###"], (), ["dog", "###"], "", False),
]


@pytest.mark.parametrize("pieces, stops, deltas, tail, stopped", LLAMA_TABLE)
def test_sentencepiece_stream(llama, pieces, stops, deltas, tail, stopped) -> None:
    decoder = StreamDecoder(llama.decode, stops)
    assert stream(decoder, [llama.token_to_id(p) for p in pieces]) == (deltas, tail)
    assert decoder.stopped is stopped
    assert decoder.text == "".join(deltas) + tail


# (text encoded as plain text + special tokens appended, stop strings, deltas, finish(), stopped)
SMOLLM2_TABLE = [
    ("Hello world 😀 漢字!", [], (), ["Hello", " world", "", " 😀", "", "", " 漢", "字", "!"], "", False),
    ("Sure.", ["<|im_end|>"], CHATML_STOPS, ["Sure", ".", ""], "", True),
    # The stop typed out as text tokens (as a user might have the model echo it).
    ("Hi<|im_end|>", [], CHATML_STOPS, ["Hi", "", "", "", "", "", "", ""], "", True),
    ("ok <|im_e", [], CHATML_STOPS, ["ok", " ", "", "", "", ""], "<|im_e", False),
    ("a ### b", [], VICUNA_STOP, ["a", " ", ""], "", True),
]


@pytest.mark.parametrize("text, specials, stops, deltas, tail, stopped", SMOLLM2_TABLE)
def test_byte_level_bpe_stream(smollm2, text, specials, stops, deltas, tail, stopped) -> None:
    ids = smollm2.tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True)
    ids += [smollm2.token_to_id(s) for s in specials]
    decoder = StreamDecoder(smollm2.decode, stops)
    assert stream(decoder, ids) == (deltas, tail)
    assert decoder.stopped is stopped


ANSWERS = [
    "The dog is running in the park with a red ball.",
    "  Two leading spaces, then 3.14 and 1,000 people!",
    "Emoji 😀🎉 and CJK 漢字かな mixed with text.",
    "Tabs\tand\nnew lines\n\n stay.",
    "## heading # and C# but no stop",
]


@pytest.mark.parametrize("which", ["llama", "smollm2"])
@pytest.mark.parametrize("answer", ANSWERS)
def test_deltas_add_up_to_decoding_the_whole(request, which: str, answer: str) -> None:
    tokenizer = request.getfixturevalue(which)
    ids = answer_ids(tokenizer, answer)
    decoder = StreamDecoder(tokenizer.decode, VICUNA_STOP)
    deltas, tail = stream(decoder, ids)
    assert "".join(deltas) + tail == tokenizer.decode(ids)
    assert not any("\ufffd" in d for d in deltas)


@pytest.mark.parametrize("which", ["llama", "smollm2"])
def test_text_after_a_stop_is_cut(request, which: str) -> None:
    tokenizer = request.getfixturevalue(which)
    ids = answer_ids(tokenizer, "It is red.###Human: and more")
    decoder = StreamDecoder(tokenizer.decode, VICUNA_STOP)
    deltas, tail = stream(decoder, ids)
    assert "".join(deltas) + tail == decoder.text == tokenizer.decode(ids).split("###")[0]
    assert decoder.stopped


def test_cost_per_token_stays_constant(llama) -> None:
    # Each push decodes a window of a few tokens, never the whole answer so far.
    sizes: list[int] = []

    def decode(ids):
        sizes.append(len(ids))
        return llama.decode(ids)

    ids = answer_ids(llama, "The dog is running in the park. " * 40)
    decoder = StreamDecoder(decode, VICUNA_STOP)
    deltas, tail = stream(decoder, ids)
    assert len(ids) > 300
    assert max(sizes) <= 3
    assert "".join(deltas) + tail == llama.decode(ids)


def test_pushes_after_a_stop_show_nothing(llama) -> None:
    decoder = StreamDecoder(llama.decode, VICUNA_STOP)
    stream(decoder, [llama.token_to_id(p) for p in ["▁dog", "###"]])
    assert decoder.push(llama.token_to_id("▁the")) == "" and decoder.text == "dog"


def answer_ids(tokenizer: PromptTokenizer, text: str) -> list[int]:
    """The ids a model would generate to write `text` (no BOS)."""
    ids = tokenizer.encode_parts([Text(text, from_user=True)])
    return ids[1:] if tokenizer.bos_token_id is not None else ids
