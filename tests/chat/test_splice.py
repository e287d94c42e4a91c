"""The splice of media blocks into the prompt: one key per position, and one count check."""

from __future__ import annotations

import pytest
import torch

from videollama_demo.chat.splice import SpliceError, embed_positions, splice_keys
from videollama_demo.prompt.parts import Media

H = 4


def blocks_of(rows: list[int], owner: int = 7) -> list[tuple[int, int, torch.Tensor]]:
    """(owner, number, (1, rows, H)) blocks whose values say where they come from."""
    return [(owner, number, torch.full((1, n, H), float(10 * (number + 1))) + torch.arange(n)[None, :, None])
            for number, n in enumerate(rows)]


def fake_embed_tokens(ids: list[int]) -> torch.Tensor:
    """ids -> (1, n, H): every row is its token id, so the output tells which token went where."""
    return torch.tensor(ids, dtype=torch.float32)[None, :, None].expand(1, len(ids), H)


@pytest.mark.parametrize("items,block_rows", [
    ([1, Media(0), 2], []),  # 1 marker, 0 blocks
    ([1, 2, 3], [2]),  # 0 markers, 1 block
    ([1, Media(0), 2, Media(1), 3], [2]),  # 2 markers, 1 block
    ([1, Media(0), 2], [2, 3]),  # 1 marker, 2 blocks
    ([Media(0), Media(1), Media(2)], [1, 1]),  # 3 markers, 2 blocks
])
def test_markers_and_blocks_that_disagree_raise_an_error_naming_both_counts(items, block_rows) -> None:
    markers = sum(isinstance(item, Media) for item in items)
    assert markers != len(block_rows)
    with pytest.raises(SpliceError) as error:
        splice_keys(items, blocks_of(block_rows))
    message = str(error.value)
    assert f"{markers} media markers" in message and f"{len(block_rows)} media blocks" in message


@pytest.mark.parametrize("items,block_rows", [
    ([1, Media(0), Media(0), 2], [1, 1]),  # right count, one block twice and the other never
    ([1, Media(1), 2], [1]),  # right count, a marker numbered past the blocks
])
def test_each_block_must_appear_exactly_once(items, block_rows) -> None:
    with pytest.raises(SpliceError):
        splice_keys(items, blocks_of(block_rows))


@pytest.mark.parametrize("items,block_rows,expected", [
    ([1, 2, 3], [], [1, 2, 3]),  # no media: the token ids
    ([1, Media(0), 2], [2], [1, (7, 0, 0), (7, 0, 1), 2]),
    ([Media(0), 5, Media(1)], [1, 3], [(7, 0, 0), 5, (7, 1, 0), (7, 1, 1), (7, 1, 2)]),
    ([1, Media(1), 2, Media(0), 3], [1, 2], [1, (7, 1, 0), (7, 1, 1), 2, (7, 0, 0), 3]),  # numbered, not ordered
])
def test_every_position_gets_a_key_and_embeddings_follow_the_keys(items, block_rows, expected) -> None:
    blocks = blocks_of(block_rows)
    keys, by_block = splice_keys(items, blocks)
    assert keys == expected
    assert set(by_block) == {(owner, number) for owner, number, _ in blocks}

    embeds = embed_positions(fake_embed_tokens, keys, by_block, torch.float64, torch.device("cpu"))
    assert embeds.shape == (len(keys), H) and embeds.dtype == torch.float64
    for row, key in zip(embeds, keys):
        want = float(key) if isinstance(key, int) else by_block[key[:2]][0, key[2]]
        assert torch.equal(row, torch.as_tensor(want, dtype=torch.float64).expand(H))
