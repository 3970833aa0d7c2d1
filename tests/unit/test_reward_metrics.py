"""eval-rm's metric functions, checked against numbers worked out by hand."""

from __future__ import annotations

import math

import pytest

from salmon.reward.evaluate import flip_rate, format_table, pairwise_accuracy, pearson, rm_metrics
from salmon.reward.train import heldout_fraction_of, split_by_pair_id


def test_pairwise_accuracy_counts_ties_half():
    # 1 > 0 (1), 2 == 2 (0.5), 3 < 4 (0)  ->  1.5 / 3
    assert pairwise_accuracy([1, 2, 3], [0, 2, 4]) == 0.5
    with pytest.raises(ValueError):
        pairwise_accuracy([], [])


def test_pearson_by_hand():
    # x = 1,2,3 ; y = 2,4,7 : dx = -1,0,1 ; dy = -7/3,-1/3,8/3
    # sxy = 7/3 + 8/3 = 5 ; sxx = 2 ; syy = (49 + 1 + 64) / 9 = 114/9
    assert pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(5 / math.sqrt(2 * 114 / 9))
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert pearson([1, 1, 1], [1, 2, 3]) is None
    assert pearson([1], [2]) is None


def test_flip_rate_needs_opposite_signs():
    # margins (stated, negated): (1,-1) flip ; (-1,-1) no ; (0,3) no preference ; (2,0.5) no
    assert flip_rate([1, -1, 0, 2], [-1, -1, 3, 0.5]) == 0.25


def test_rm_metrics_by_hand():
    rows = [  # chosen has 1 word, rejected 3 words
        {"rc": 2.0, "rr": 1.0, "rc_neg": 0.0, "rr_neg": 1.0, "chosen": "a", "rejected": "b c d",
         "split": "train_principle", "principle": "P"},   # right, flipped
        {"rc": 1.0, "rr": 3.0, "rc_neg": 1.0, "rr_neg": 3.0, "chosen": "a", "rejected": "b c d",
         "split": "heldout_principle", "principle": "Q"},  # wrong, not flipped, right under negation
    ]
    m = rm_metrics(rows)
    assert m["n"] == 2
    assert m["accuracy"] == 0.5
    assert m["flip_rate"] == 0.5
    assert m["negation_accuracy"] == 1.0
    assert m["both"] == 0.5
    assert m["longer_wins"] == 0.0 and m["longer_wins_negation"] == 1.0
    # rewards (stated) 2,1,1,3 vs lengths 1,3,1,3: dx = .25,-.75,-.75,1.25 ; dy = -1,1,-1,1
    # sxy = -.25-.75+.75+1.25 = 1 ; sxx = .0625+.5625+.5625+1.5625 = 2.75 ; syy = 4
    assert m["length_corr"] == pytest.approx(1 / math.sqrt(2.75 * 4))
    assert m["by_split"]["train_principle"]["accuracy"] == 1.0
    assert m["by_split"]["heldout_principle"]["accuracy"] == 0.0
    assert set(m["by_principle"]) == {"P", "Q"}
    table = format_table(m, None)
    assert "negation flip rate" in table and "50.0%" in table and "heldout_principle" in table


def test_heldout_split_keeps_every_pass_of_a_pair_together():
    ids = [f"pair{i % 50}" for i in range(400)]  # 8 passes of 50 pairs
    train, held = split_by_pair_id(ids, 0.2)
    assert not {ids[i] for i in train} & {ids[i] for i in held}
    assert sorted(train + held) == list(range(400))
    assert 0 < len({ids[i] for i in held}) < 25
    assert heldout_fraction_of("pair1") == heldout_fraction_of("pair1")
    assert split_by_pair_id(ids, 0.0)[1] == []


def test_rm_metrics_carry_bootstrap_intervals():
    right = {"rc": 2.0, "rr": 1.0, "rc_neg": 0.0, "rr_neg": 1.0, "chosen": "a b c", "rejected": "d",
             "split": "train_principle", "principle": "P"}  # right, flipped, chosen is longer
    m = rm_metrics([dict(right) for _ in range(6)])
    # every pair agrees, so each interval collapses onto its value
    for key in ("accuracy", "flip_rate", "negation_accuracy", "both", "longer_wins"):
        assert m[f"{key}_ci_low"] == m[f"{key}_ci_high"] == m[key] == 1.0
    assert m["accuracy_minus_longer_wins"] == 0.0 and m["accuracy_minus_longer_wins_ci_high"] == 0.0
    assert m["by_split"]["train_principle"]["accuracy_ci_low"] == 1.0
    assert "accuracy_ci_low" not in m["by_principle"]["P"]  # per principle: too few pairs for intervals
    wrong = {**right, "rc": 0.0}
    m = rm_metrics([dict(right), dict(wrong)] * 10)
    assert m["accuracy"] == 0.5 and m["accuracy_ci_low"] < 0.5 < m["accuracy_ci_high"]
    assert rm_metrics([dict(right), dict(wrong)] * 10) == m  # seeded
    lo, hi = 100 * m["accuracy_ci_low"], 100 * m["accuracy_ci_high"]
    assert f" 50.0% [{lo:.1f}, {hi:.1f}]" in format_table(m, None)
