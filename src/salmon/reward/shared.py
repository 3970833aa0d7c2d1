"""Reward-model training with each distinct prefix run once per batch (exact).

A batch holds each row twice (chosen, rejected), and with `--pair-batches` a row and its
negated twin: the same two (prompt, response) exchanges under two principle lists. The
principles come last in the input (`reward.template`), so the four inputs of a twin pair
have only two distinct exchange prefixes. `shared_prefix_logits` runs the distinct
prefixes once (one right-padded batch, key/value cache kept, gradients flowing through
it), then every suffix on the cache rows of its own prefix, with explicit positions so
the padding between prefix and suffix is skipped: the scores are those of the full
inputs, up to float rounding.
"""

from __future__ import annotations


def group_prefixes(prefixes: list[list[int]]) -> tuple[list[list[int]], list[int]]:
    """(distinct prefixes in first-seen order, index of each input's prefix among them)."""
    index: dict[tuple[int, ...], int] = {}
    which = [index.setdefault(tuple(p), len(index)) for p in prefixes]
    return [list(k) for k in index], which


def shared_prefix_logits(model, prefixes: list[list[int]], suffixes: list[list[int]], pad_token_id: int):
    """Logits [N, 1] of the inputs prefixes[i] + suffixes[i] (each prefix non-empty, each
    suffix non-empty), with every distinct prefix computed once."""
    import torch

    from salmon.padding import right_pad

    dev = next(model.parameters()).device
    uniq, which = group_prefixes(prefixes)
    p_ids, p_mask = right_pad(uniq, pad_token_id)
    p_ids, p_mask = p_ids.to(dev), p_mask.to(dev)
    cache = model(input_ids=p_ids, attention_mask=p_mask, use_cache=True).cache
    idx = torch.tensor(which, device=dev)
    cache.batch_select_indices(idx)  # each input gets (a differentiable copy of) its prefix's rows
    s_ids, s_mask = right_pad(suffixes, pad_token_id)
    s_ids, s_mask = s_ids.to(dev), s_mask.to(dev)
    mask = torch.cat([p_mask[idx], s_mask], dim=1)
    positions = p_mask.sum(1)[idx].unsqueeze(1) + torch.arange(s_ids.shape[1], device=dev).unsqueeze(0)
    return model(input_ids=s_ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True).logits


def split_batch(input_ids, attention_mask, split) -> tuple[list[list[int]], list[list[int]]]:
    """(prefixes, suffixes) of a right-padded batch, cut at each row's `split` position."""
    seqs = [row[: int(n)].tolist() for row, n in zip(input_ids, attention_mask.sum(1), strict=True)]
    cuts = [int(k) for k in split]
    return [s[:k] for s, k in zip(seqs, cuts, strict=True)], [s[k:] for s, k in zip(seqs, cuts, strict=True)]
