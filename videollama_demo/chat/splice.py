"""Media embeddings go in where the prompt has its media markers: one splice, one count check.

Every prompt position gets a key: a token id for text, or (owner id, block, row) for a row of a
media block. The keys say which positions a kept KV cache can reuse; the embeddings are built
from them in one pass.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch

from ..engines.base import PositionKey
from ..prompt.parts import Media

Block = tuple[int, int]  # (owner id, block number within its owner)
TokenEmbedder = Callable[[list[int]], torch.Tensor]  # ids -> (1, n, H)


class SpliceError(ValueError):
    """The prompt's media markers and the media blocks disagree: a bug, never the user's doing."""


def splice_keys(items: Sequence[int | Media], blocks: list[tuple[int, int, torch.Tensor]]
                ) -> tuple[list[PositionKey], dict[Block, torch.Tensor]]:
    """Token ids and media markers (from the tokenizer) -> one key per prompt position.

    `blocks` are (owner id, number within its owner, (1, rows, H) tensor) in prompt numbering:
    marker `Media(i)` stands for `blocks[i]`, and each block must appear exactly once."""
    markers = [item.index for item in items if isinstance(item, Media)]
    if sorted(markers) != list(range(len(blocks))):
        raise SpliceError(f"the prompt has {len(markers)} media markers ({markers}) for {len(blocks)} media blocks")
    keys: list[PositionKey] = []
    for item in items:
        if isinstance(item, Media):
            owner, number, block = blocks[item.index]
            keys.extend((owner, number, row) for row in range(block.shape[1]))
        else:
            keys.append(item)
    return keys, {(owner, number): block for owner, number, block in blocks}


def embed_positions(embed_tokens: TokenEmbedder, keys: Sequence[PositionKey], blocks: dict[Block, torch.Tensor],
                    dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(L, H): runs of token embeddings and media rows, in the order of `keys`."""
    pieces: list[torch.Tensor] = []
    for is_text, run in itertools.groupby(keys, key=lambda key: isinstance(key, int)):
        run = list(run)
        if is_text:
            pieces.append(embed_tokens(run)[0])  # (n, H)
            continue
        for block, rows in itertools.groupby(run, key=lambda key: key[:2]):
            rows = [row for _, _, row in rows]
            pieces.append(blocks[block][0, rows[0]:rows[-1] + 1])  # (n, H), rows are consecutive
    return torch.cat([piece.to(device=device, dtype=dtype) for piece in pieces], dim=0)
