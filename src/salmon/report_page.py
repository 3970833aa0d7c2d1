"""The run report's content: plain-language sections built from the flat metrics, rendered
to Markdown and to one self-contained HTML page (charts embedded as PNGs).

Each section says in one or two sentences what its numbers mean; a before/after
difference or an edge over a baseline whose 95% interval includes 0 is called "no change
distinguishable from noise". Every figure is shown as value [95% interval] with its
sample size. The raw metric keys stay available in a collapsed table at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from salmon import report_plots
from salmon.conversation import request_text
from salmon.machine import REFERENCE_GFLOPS, normalised_seconds
from salmon.stats import excludes_zero

NOISE = "no change distinguishable from noise"
# policy metric -> (plain label, kind); kinds: rate (shown in %), score, count
POLICY_ROWS = {
    "rm_score": ("Reward-model score under the RL principles", "score"),
    "rm_score_heldout": ("Reward-model score under held-out principles", "score"),
    "length": ("Answer length in tokens", "count"),
    "length_words": ("Answer length in words", "count"),
    "stop_rate": ("Answers that ended before the token limit", "rate"),
    "redteam_refusal": ("Refusals on harmful (red-team) requests", "rate"),
}
RM_SERIES = (("accuracy", "Reward model: accuracy"), ("longer_wins", '"Longer wins" baseline: accuracy'),
             ("flip_rate", "Reward model: flips under negation"))
Cell = str | tuple[str, str]  # text, or (text, css class)


@dataclass
class Section:
    title: str
    sentences: list[str]
    header: list[str] = field(default_factory=list)
    rows: list[list[Cell]] = field(default_factory=list)
    images: list[tuple[str, str]] = field(default_factory=list)  # (base64 png, alt text)
    details: bool = False  # render collapsed
    wrap: bool = False  # table cells hold prose (wrap) rather than figures (keep on one line)
    headline: str | None = None  # the sentence for "At a glance"


# ---- numbers --------------------------------------------------------------------------

def fmt(v: Any, kind: str, signed: bool = False) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    sign = "+" if signed else ""
    if kind == "rate":
        return f"{100 * v:{sign}.1f}" + (" pts" if signed else "%")
    if kind == "count":
        return f"{v:{sign}.1f}"
    return f"{v:{sign}.3f}"


def with_ci(m: dict[str, Any], key: str, kind: str, signed: bool = False) -> str:
    """'value [low, high]' from `key`, `key_ci_low`, `key_ci_high` (value alone without them)."""
    if key not in m:
        return "-"
    text = fmt(m[key], kind, signed)
    lo, hi = m.get(f"{key}_ci_low"), m.get(f"{key}_ci_high")
    if lo is None or hi is None:
        return text
    unit = " pts" if kind == "rate" and signed else "%" if kind == "rate" else ""
    return f"{text} [{fmt(lo, kind, signed).removesuffix(unit)}, {fmt(hi, kind, signed)}]"


def interval(m: dict[str, Any], key: str) -> tuple[float, float] | None:
    lo, hi = m.get(f"{key}_ci_low"), m.get(f"{key}_ci_high")
    return (lo, hi) if lo is not None and hi is not None else None


def change_verdict(m: dict[str, Any], key: str, up: str = "higher after RL", down: str = "lower after RL") -> Cell:
    ci = interval(m, key)
    if ci is None:
        return "-"
    if not excludes_zero(*ci):
        return (NOISE, "noise")
    return (up, "up") if ci[0] > 0 else (down, "down")


# ---- sections -------------------------------------------------------------------------

def rm_sets(m: dict[str, Any]) -> list[str]:
    """Labelled sets with RM figures (`rm.<set>.accuracy`), in the order they appear; the
    headline set's copies (`rm.accuracy`, `rm.raw.accuracy`) are not sets of their own."""
    return [k[3:-len(".accuracy")] for k in m if k.startswith("rm.") and k.endswith(".accuracy")
            and k.count(".") >= 2 and ".by_split." not in k and ".judge." not in k
            and not k.startswith("rm.raw.")]


def rm_section(m: dict[str, Any]) -> Section | None:
    sets = rm_sets(m)
    if not sets:
        return None
    header = ["labelled set (pairs)", "RM accuracy", '"longer wins"', "RM minus baseline", "flips under negation",
              "accuracy under negation", "held-out principles"]
    rows = []
    for s in sets:
        p = f"rm.{s}."
        rows.append([f"{Path(s).stem if '/' in s else s} ({m.get(p + 'n', '?')})", with_ci(m, p + "accuracy", "rate"),
                     with_ci(m, p + "longer_wins", "rate"),
                     with_ci(m, p + "accuracy_minus_longer_wins", "rate", signed=True),
                     with_ci(m, p + "flip_rate", "rate"), with_ci(m, p + "negation_accuracy", "rate"),
                     with_ci(m, p + "by_split.heldout_principle.accuracy", "rate")])
    groups = [(f"{Path(s).stem if '/' in s else s}\n(n={m.get(f'rm.{s}.n', '?')})",
               [(label, m.get(f"rm.{s}.{k}"), m.get(f"rm.{s}.{k}_ci_low"), m.get(f"rm.{s}.{k}_ci_high"))
                for k, label in RM_SERIES]) for s in sets]
    chart = report_plots.rm_chart(groups)
    sentences = rm_sentences(m, sets)
    return Section("Reward model: does it follow the principle it is given?", sentences, header, rows,
                   [(chart, "RM accuracy and flip rate per labelled set against the longer-wins baseline")]
                   if chart else [], headline=" ".join(sentences[:2]))


def rm_sentences(m: dict[str, Any], sets: list[str]) -> list[str]:
    s = m.get("rm.headline_set") if m.get("rm.headline_set") in sets else sets[-1]
    p = f"rm.{s}."
    out = [f"On {s} ({m.get(p + 'n', '?')} labelled pairs) the reward model prefers the better answer in "
           f"{with_ci(m, p + 'accuracy', 'rate')} of pairs (chance is 50%); always preferring the longer answer "
           f"gets {with_ci(m, p + 'longer_wins', 'rate')}."]
    gap = interval(m, p + "accuracy_minus_longer_wins")
    if gap is not None:
        edge = ("better than the length baseline beyond noise" if gap[0] > 0 else
                "worse than the length baseline beyond noise" if gap[1] < 0 else
                "not distinguishable from the length baseline: the interval of the difference includes 0")
        out.append(f"The reward model is {edge}.")
    if p + "flip_rate" in m:
        out.append(f"Replacing the principle by its negation reverses the preference on "
                   f"{with_ci(m, p + 'flip_rate', 'rate')} of pairs (a model that reads the principle flips most "
                   f"pairs; one that ignores it flips none).")
    return out


def policy_section(m: dict[str, Any]) -> Section | None:
    if not any(k.startswith("policy.before.") for k in m):
        return None
    both = any(k.startswith("policy.after.") for k in m)
    names = {"redteam_refusal": ("policy.redteam_refusal_before", "policy.redteam_refusal_after")}
    header = ["figure (n)", "before RL", *(["after RL", "difference", "what it means"] if both else [])]
    rows, diffs = [], []
    for metric, (label, kind) in POLICY_ROWS.items():
        b, a = names.get(metric, (f"policy.before.{metric}", f"policy.after.{metric}"))
        if b not in m:
            continue
        n = m.get("policy.n_redteam" if metric == "redteam_refusal" else "policy.n_prompts", "?")
        row: list[Cell] = [f"{label} ({n})", with_ci(m, b, kind)]
        d = f"policy.diff.{metric}"
        if both:
            row += [with_ci(m, a, kind), with_ci(m, d, kind, signed=True), change_verdict(m, d)]
            if interval(m, d):
                scale = 100 if kind == "rate" else 1
                diffs.append((f"{label} ({'pts' if kind == 'rate' else 'after - before'})",
                              scale * m[d], scale * m[d + "_ci_low"], scale * m[d + "_ci_high"]))
        rows.append(row)
    chart = report_plots.diff_chart(diffs) if both else None
    sentences = policy_sentences(m, both)
    return Section("The policy before and after RL" if both else "The policy", sentences, header, rows,
                   [(chart, "After minus before, with 95% intervals")] if chart else [],
                   headline=" ".join(sentences[1:]) if both else None)


def policy_sentences(m: dict[str, Any], both: bool) -> list[str]:
    n, r = m.get("policy.n_prompts", "?"), m.get("policy.n_redteam", "?")
    out = [f"Each policy answered the same {n} held-out prompts and {r} red-team prompts (greedy decoding); "
           "intervals resample prompts, and differences are paired by prompt."]
    if not both:
        return out
    changed, noise = [], []
    for metric, (label, kind) in POLICY_ROWS.items():
        d = f"policy.diff.{metric}"
        if interval(m, d) is None:
            continue
        if excludes_zero(*interval(m, d)):
            changed.append(f"{_lower(label)} ({with_ci(m, d, kind, signed=True)})")
        else:
            noise.append(_lower(label))
    if changed:
        out.append("Changed beyond noise: " + "; ".join(changed) + ".")
    if noise:
        out.append(f"{'Everything else' if changed else 'Every figure'} shows {NOISE} (its interval includes 0)"
                   + (f": {', '.join(noise)}." if changed else "."))
    return out


def _lower(label: str) -> str:
    return label[:1].lower() + label[1:]


def judge_section(m: dict[str, Any]) -> Section | None:
    labels = {"judge.examples": ("Reward-model training examples", "count0"),
              "judge.label_yield": ("Share of (pair, pass) draws that gave a label", "rate"),
              "judge.consistency_rate": ("Judgments whose two answer orders agree", "rate")}
    rows = [[label, _plain(m[k], kind)] for k, (label, kind) in labels.items() if k in m]
    if not rows:
        return None
    return Section("Self-judge labels", ["What the self-judge produced for reward-model training (no interval: "
                                         "these count what was made, they do not estimate anything)."],
                   ["figure", "value"], rows)


def _plain(v: Any, kind: str) -> str:
    if isinstance(v, dict):  # e.g. a per-principle breakdown
        vals = [x for x in v.values() if isinstance(x, (int, float))]
        return f"mean {fmt(sum(vals) / len(vals), kind)} over {len(vals)} principles" if vals else "-"
    return str(int(v)) if kind == "count0" and isinstance(v, (int, float)) else fmt(v, kind)


def timing_section(m: dict[str, Any]) -> Section | None:
    stages = [k[len("timings."):] for k in m if k.startswith("timings.") and k != "timings.total"]
    if not stages:
        return None
    peak = m.get("machine.matmul_gflops")
    rows = []
    for s in [*stages, "total"]:
        t = m.get(f"timings.{s}")
        norm = f"{normalised_seconds(t, peak):.0f} s" if t is not None and peak else "-"
        mem = m.get(f"memory.{s}_peak_rss_mb")
        rows.append([s.replace("_", " "), f"{t:.0f} s" if t is not None else "-", norm,
                     f"{mem:.0f} MB" if isinstance(mem, (int, float)) else "-"])
    text = (f"Wall time of each stage's process on this machine, whose dense fp32 matmul peak measured "
            f"{peak:.0f} GFLOP/s; the next column is time x {peak:.0f} / {REFERENCE_GFLOPS:.0f}, the time on a "
            f"{REFERENCE_GFLOPS:.0f} GFLOP/s machine for compute-bound work, so runs on different machines compare."
            if peak else "Wall time of each stage's process (no machine peak recorded, so no normalised column).")
    return Section("Time and memory per stage", [text],
                   ["stage", "wall time", f"at {REFERENCE_GFLOPS:.0f} GFLOP/s", "peak memory"], rows)


def curves_section(log: list[dict[str, Any]]) -> Section | None:
    png = report_plots.rl_curves(log)
    if not png:
        return None
    return Section("RL training curves", [f"Per RL step over {len(log)} logged steps."], images=[(png, "RL curves")])


def examples_section(rows: list[dict[str, Any]]) -> Section | None:
    if not rows:
        return None
    return Section("Before / after examples", ["The first held-out prompts with both policies' answers."],
                   ["prompt", "before RL", "after RL"],
                   [[_cell(request_text(r["prompt"])), _cell(r["before"]), _cell(r.get("after") or "")] for r in rows], wrap=True)


def raw_section(m: dict[str, Any]) -> Section:
    return Section("All metrics (metrics.json keys)", ["Every figure under its key in metrics.json."],
                   ["key", "value"], [[k, _raw(v)] for k, v in m.items()], details=True)


def _raw(v: Any) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k} {_raw(x)}" for k, x in v.items())
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _cell(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    return text[:limit] + ("…" if len(text) > limit else "")
