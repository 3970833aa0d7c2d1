"""Rollout pieces: prompt order, principle sampling, query budget, response masks."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from salmon.padding import left_pad, right_pad
from salmon.principles import Principle
from salmon.rl.rollout import (
    PromptPool,
    batch_indices,
    draw_principles,
    fit_prompt,
    response_mask,
)

P = [Principle("A", "The response is a.", weight=1.0),
     Principle("B", "The response is b.", weight=1.0),
     Principle("C", "The response is c.", weight=4.0, tags=("reasoning",))]
GUARD = [Principle("G", "The response is g.")]


def test_batch_indices_cover_each_epoch_once_and_split_ranks():
    n, per, world = 10, 2, 2
    seen = [i for step in range(5) for rank in range(world) for i in batch_indices(n, step, per, rank, world, 0)]
    assert sorted(seen[:10]) == list(range(10))  # one epoch = 5 steps x 2 ranks x 2
    assert batch_indices(n, 3, per, 0, world, 0) != batch_indices(n, 3, per, 1, world, 0)
    assert batch_indices(n, 3, per, 1, world, 0) == batch_indices(n, 3, per, 1, world, 0)  # reproducible
    assert batch_indices(n, 0, per, 0, 1, 0) != batch_indices(n, 0, per, 0, 1, 1)  # seed matters


def _freq(prompt_type: str, boost: float) -> float:
    counts = Counter(draw_principles(P, [], 1, prompt_type, boost, 0, step, 0)[0].name for step in range(3000))
    return counts["C"] / 3000


def test_principle_sampling_respects_weights_and_type_boost():
    assert abs(_freq("general", 2.0) - 4 / 6) < 0.04    # C weighs 4 of 6
    assert abs(_freq("reasoning", 2.0) - 8 / 10) < 0.04  # boosted x2: 8 of 10


def test_principle_sampling_no_duplicates_and_interventions_always_added():
    for step in range(200):
        drawn = draw_principles(P, GUARD, 2, "general", 2.0, 0, step, 3)
        names = [p.name for p in drawn]
        assert len(names) == len(set(names)) == 3 and names[-1] == "G"


def test_fewer_principles_than_k_uses_all():
    drawn = draw_principles(P[:2], GUARD, 3, "general", 2.0, 0, 0, 0)
    assert [p.name for p in drawn] == ["A", "B", "G"]


def test_intervention_already_drawn_is_not_repeated():
    drawn = draw_principles(P, [P[2]], 3, "general", 2.0, 0, 0, 0)
    assert [p.name for p in drawn] == ["A", "B", "C"]


def test_long_prompt_is_cut_to_the_query_budget(tiny_model):
    from salmon.chat import user_prompt
    from salmon.models import load_tokenizer

    tok = load_tokenizer(str(tiny_model))
    short_text, short_ids, cut = fit_prompt(tok, "Hello there", 64)
    assert not cut and short_text == "Hello there"
    text, ids, cut = fit_prompt(tok, "many words here " * 200, 64)
    assert cut and len(ids) <= 64 and len(text) < len("many words here " * 200)
    assert ids == tok(user_prompt(tok, text), add_special_tokens=False)["input_ids"]
    assert ids[-3:] == short_ids[-3:]  # still ends with the assistant header
    pool = PromptPool.build(tok, [{"id": "a", "prompt": "hi", "type": "general"},
                                  {"id": "b", "prompt": "long " * 300, "type": "general"}], 64)
    assert pool.truncated == [False, True]


def test_response_mask_stops_after_first_stop_token():
    tokens = torch.tensor([[5, 2, 7, 2], [5, 6, 7, 8], [2, 9, 9, 9]])
    mask, finished = response_mask(tokens, [2])
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    assert finished.tolist() == [True, False, True]


def test_left_pad():
    ids, mask = left_pad([[1, 2, 3], [4]], 0)
    assert ids.tolist() == [[1, 2, 3], [0, 0, 4]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_right_pad_and_empty_rows():
    ids, mask = right_pad([[1, 2, 3], [4], []], 9)
    assert ids.tolist() == [[1, 2, 3], [4, 9, 9], [9, 9, 9]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert left_pad([[5], []], 0)[1].tolist() == [[1], [0]]


@pytest.mark.parametrize("world", [1, 3])
def test_batch_indices_in_range(world):
    for step in range(20):
        for rank in range(world):
            assert all(0 <= i < 7 for i in batch_indices(7, step, 3, rank, world, 5))
