"""Percentile-bootstrap 95% intervals for the evaluation's figures (pure, seeded).

    from salmon.stats import mean_ci, diff_ci
    lo, hi = mean_ci([1, 0, 1, 1])                       # a rate or a mean
    lo, hi = diff_ci(before, after, paired=True)         # after - before, same prompts

Percentile bootstrap (Efron & Tibshirani 1993, ch. 13): resample the observations with
replacement `n_boot` times, compute the statistic on each resample, and take the
(1 - level) / 2 and (1 + level) / 2 percentiles of those values. A paired difference
resamples prompts (both answers of a prompt travel together), so the prompt-to-prompt
spread that before and after share cancels; an unpaired one resamples each side on its
own. Results depend only on the inputs and `seed` (numpy's PCG64), so a rerun gives the
same interval. With small n the percentile interval is a little too narrow (about 0.90
coverage at n = 10); the report states n beside every interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

N_BOOT = 2000
LEVEL = 0.95


def _array(x: Sequence[float], name: str) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{name}: need a non-empty 1-D sequence of numbers")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: contains NaN or infinity")
    return a


def _check(n_boot: int, level: float) -> None:
    if n_boot < 1:
        raise ValueError("n_boot must be at least 1")
    if not 0 < level < 1:
        raise ValueError("level must be in (0, 1)")


def _resampled_means(a: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Means of `n_boot` resamples (with replacement) of `a`."""
    idx = rng.integers(0, a.size, size=(n_boot, a.size))
    return a[idx].mean(axis=1)


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    lo, hi = np.percentile(values, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(lo), float(hi)


def mean_ci(x: Sequence[float], *, n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0) -> tuple[float, float]:
    """Interval for the mean of `x` (for a rate, pass 0/1 outcomes; ties may count 0.5)."""
    _check(n_boot, level)
    a = _array(x, "mean_ci")
    return _percentiles(_resampled_means(a, n_boot, np.random.default_rng(seed)), level)


def diff_ci(before: Sequence[float], after: Sequence[float], *, paired: bool, n_boot: int = N_BOOT,
            level: float = LEVEL, seed: int = 0) -> tuple[float, float]:
    """Interval for mean(after) - mean(before).

    paired: before[i] and after[i] belong to the same prompt (equal lengths required);
    the interval is that of the mean of the per-prompt differences.
    """
    _check(n_boot, level)
    b, a = _array(before, "diff_ci before"), _array(after, "diff_ci after")
    rng = np.random.default_rng(seed)
    if paired:
        if a.size != b.size:
            raise ValueError(f"diff_ci: paired samples need equal lengths, got {b.size} and {a.size}")
        return _percentiles(_resampled_means(a - b, n_boot, rng), level)
    return _percentiles(_resampled_means(a, n_boot, rng) - _resampled_means(b, n_boot, rng), level)


def estimate(x: Sequence[float], name: str, **kw: Any) -> dict[str, float]:
    """`{name: mean, name_ci_low, name_ci_high}`: the flat-key form used in metrics.json."""
    lo, hi = mean_ci(x, **kw)
    return {name: float(np.mean(_array(x, name))), f"{name}_ci_low": lo, f"{name}_ci_high": hi}


def diff_estimate(before: Sequence[float], after: Sequence[float], name: str, *, paired: bool,
                  **kw: Any) -> dict[str, float]:
    """`{name: mean(after) - mean(before), name_ci_low, name_ci_high}`."""
    lo, hi = diff_ci(before, after, paired=paired, **kw)
    diff = float(np.mean(_array(after, name)) - np.mean(_array(before, name)))
    return {name: diff, f"{name}_ci_low": lo, f"{name}_ci_high": hi}


def excludes_zero(lo: float, hi: float) -> bool:
    """True when the interval lies wholly on one side of 0 (a change the sample can tell
    from noise at the interval's level)."""
    return lo > 0 or hi < 0
