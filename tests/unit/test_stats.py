"""Bootstrap intervals (salmon/stats.py): hand-computed cases, pairing, coverage, errors."""

from __future__ import annotations

import numpy as np
import pytest

from salmon.stats import diff_ci, diff_estimate, estimate, excludes_zero, mean_ci


def test_constant_sample_gives_a_zero_width_interval():
    assert mean_ci([0.7] * 9) == pytest.approx((0.7, 0.7))
    assert mean_ci([3.0]) == (3.0, 3.0)


def test_two_points_cover_both_ends():
    # resample means of [0, 1] are 0, 0.5, 1 with probability 1/4, 1/2, 1/4: both tails
    # hold far more than 2.5%, so the 95% interval is [0, 1].
    assert mean_ci([0, 1], n_boot=4000) == (0.0, 1.0)


def test_one_success_in_four_by_hand():
    # mean of a resample of [0, 0, 0, 1] is k/4 with k ~ Binomial(4, 1/4):
    # P(k = 0) = 0.316 > 0.025, so the low end is 0; P(k >= 3) = 0.051 > 0.025 but
    # P(k = 4) = 0.004 < 0.025, so the high end is 3/4.
    assert mean_ci([0, 0, 0, 1], n_boot=20000) == (0.0, 0.75)


def test_seeded_and_deterministic():
    x = np.random.default_rng(1).normal(size=30)
    assert mean_ci(x, seed=3) == mean_ci(x, seed=3)
    assert mean_ci(x, seed=3) != mean_ci(x, seed=4)


def test_paired_difference_removes_shared_prompt_spread():
    before, after = [1.0, 2.0, 3.0, 10.0], [2.0, 3.0, 4.0, 11.0]  # every prompt +1
    assert diff_ci(before, after, paired=True) == (1.0, 1.0)
    lo, hi = diff_ci(before, after, paired=False)
    assert lo < 0 < 1 < hi  # unpaired, the spread between prompts swamps the +1


def test_unpaired_difference_of_constants_is_exact():
    assert diff_ci([1.0, 1.0], [3.0, 3.0, 3.0], paired=False) == (2.0, 2.0)


def test_estimate_keys_and_values():
    e = estimate([0, 1, 1, 1], "accuracy")
    assert set(e) == {"accuracy", "accuracy_ci_low", "accuracy_ci_high"}
    assert e["accuracy"] == 0.75 and e["accuracy_ci_low"] <= 0.75 <= e["accuracy_ci_high"]
    d = diff_estimate([1, 2], [2, 4], "rm_score", paired=True)
    assert d["rm_score"] == 1.5 and d["rm_score_ci_low"] == 1.0 and d["rm_score_ci_high"] == 2.0


def test_coverage_on_simulated_normal_samples():
    rng = np.random.default_rng(0)
    trials, n = 300, 40
    covered = sum(lo <= 0.0 <= hi for lo, hi in (mean_ci(rng.normal(size=n), n_boot=1000, seed=t)
                                               for t in range(trials)))
    assert 0.89 <= covered / trials <= 0.99  # nominal 0.95; the percentile bootstrap runs slightly low


def test_width_matches_normal_theory():
    x = np.random.default_rng(2).normal(scale=2.0, size=400)
    lo, hi = mean_ci(x, n_boot=4000)
    expected = 2 * 1.96 * x.std(ddof=1) / np.sqrt(x.size)
    assert hi - lo == pytest.approx(expected, rel=0.12)
    assert lo < x.mean() < hi


def test_excludes_zero():
    assert excludes_zero(0.1, 0.3) and excludes_zero(-0.3, -0.1)
    assert not excludes_zero(-0.1, 0.2) and not excludes_zero(0.0, 0.2)


@pytest.mark.parametrize("call", [lambda: mean_ci([]), lambda: mean_ci([1.0, float("nan")]),
                                  lambda: diff_ci([1, 2], [1], paired=True), lambda: mean_ci([1], level=1.0),
                                  lambda: mean_ci([1], n_boot=0)])
def test_bad_input_is_refused(call):
    with pytest.raises(ValueError):
        call()
