"""Batch token-id lists into (input_ids, attention_mask) tensors, padded on one side.

Left padding for generation and for reading the last position (the judge, rollouts),
right padding for the reward model's last-real-token pooling.
"""

from __future__ import annotations


def _pad(seqs: list[list[int]], pad_id: int, left: bool):
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            cols = slice(width - len(s), width) if left else slice(0, len(s))
            ids[i, cols] = torch.tensor(s, dtype=torch.long)
            mask[i, cols] = 1
    return ids, mask


def left_pad(seqs: list[list[int]], pad_id: int):
    """(input_ids, attention_mask), padded on the left."""
    return _pad(seqs, pad_id, left=True)


def right_pad(seqs: list[list[int]], pad_id: int):
    """(input_ids, attention_mask), padded on the right."""
    return _pad(seqs, pad_id, left=False)
