"""The report's charts, as base64 PNGs for a self-contained HTML page (matplotlib, Agg)."""

from __future__ import annotations

import base64
import io
from typing import Any

# (label, value, ci_low, ci_high) per bar; None values are left out
Bar = tuple[str, float | None, float | None, float | None]

RL_CURVES = {"rm_score": "Reward-model score", "reward": "Reward (score - KL penalty)",
             "kl": "KL to the starting policy", "response_length": "Answer length (tokens)"}
COLOURS = ["#1f77b4", "#bbbbbb", "#ff7f0e", "#2ca02c"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    _pyplot().close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def rm_chart(groups: list[tuple[str, list[Bar]]], chance: float = 0.5) -> str | None:
    """Grouped bars in per cent with 95% interval whiskers: one group per labelled set
    (its name with n), one bar per series (RM accuracy, 'longer wins', flip rate, ...)."""
    if not groups:
        return None
    plt = _pyplot()
    series = [label for label, *_ in groups[0][1]]
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(2.4 + 2.2 * len(groups), 3.6))
    for s, label in enumerate(series):
        xs, ys, err = [], [], [[], []]
        for g, (_, bars) in enumerate(groups):
            _, v, lo, hi = bars[s]
            if v is None:
                continue
            xs.append(g - 0.4 + width * (s + 0.5))
            ys.append(100 * v)
            err[0].append(100 * (v - lo) if lo is not None else 0.0)
            err[1].append(100 * (hi - v) if hi is not None else 0.0)
        ax.bar(xs, ys, width * 0.92, yerr=err, capsize=3, label=label, color=COLOURS[s % len(COLOURS)])
        for x, y in zip(xs, ys, strict=True):
            ax.text(x, 1.5, f"{y:.0f}", ha="center", va="bottom", fontsize=8, color="white" if y > 12 else "black")
    ax.axhline(100 * chance, color="black", linestyle="--", linewidth=1)
    ax.text(len(groups) - 0.45, 100 * chance + 1.5, "chance", fontsize=8, ha="right")
    ax.set_xticks(range(len(groups)), [name for name, _ in groups])
    ax.set_ylim(0, 105)
    ax.set_ylabel("% of labelled pairs")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=min(4, len(series)), fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def diff_chart(rows: list[tuple[str, float, float, float]]) -> str | None:
    """Before -> after differences with 95% intervals, one small panel per figure (their
    units differ), each with a line at 0: an interval crossing it is noise."""
    if not rows:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(len(rows), 1, figsize=(6.5, 0.85 * len(rows) + 0.2), squeeze=False)
    for ax, (label, v, lo, hi) in zip(axes[:, 0], rows, strict=True):
        crosses = lo <= 0 <= hi
        ax.errorbar([v], [0], xerr=[[v - lo], [hi - v]], fmt="o", capsize=4,
                    color="#888888" if crosses else "#1f77b4")
        ax.axvline(0, color="black", linewidth=0.8)
        span = max(abs(lo), abs(hi), abs(v)) * 1.25 or 1.0
        ax.set_xlim(-span, span)
        ax.set_yticks([])
        ax.set_title(label, fontsize=8, loc="left", pad=2)
        ax.tick_params(axis="x", labelsize=7)
        ax.spines[["top", "right", "left"]].set_visible(False)
    fig.tight_layout(h_pad=1.0)
    return _png(fig)


def rl_curves(log: list[dict[str, Any]]) -> str | None:
    """RL log keys over steps, one panel each, with plain titles."""
    present = [k for k in RL_CURVES if any(isinstance(r.get(k), (int, float)) for r in log)]
    if not present:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(present), figsize=(3.2 * len(present), 2.6), squeeze=False)
    for ax, k in zip(axes[0], present, strict=True):
        pts = [(r.get("step", i), r[k]) for i, r in enumerate(log) if isinstance(r.get(k), (int, float))]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".")
        ax.set_title(RL_CURVES[k], fontsize=9)
        ax.set_xlabel("RL step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return _png(fig)
