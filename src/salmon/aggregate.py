"""Stage: self-judge verdicts -> the instructable reward model's training set.

    salmon aggregate --pairs pairs.jsonl --judgments judgments.jsonl --principles judge --out rm_data/

As in SALMON, each training example shows a random list of principles and is labelled by
the one the judge feels most strongly about:

1. per (pair, principle) take the judge's score under a consistency policy: `strict` keeps
   it only when both presentation orders agree in sign (the paper), `mean` keeps the
   order-debiased mean always;
2. divide each principle's kept scores by their standard deviation over the data set, so
   principles the judge scores on different scales compete fairly (`scale: order_var`:
   by the variance of the single-order scores, as the reference code does);
3. per example draw k ~ Geometric(p=0.2) principles (above `max_principles`: clipped, or
   redrawn with `count_policy: redraw` as the reference) in random display order, negate
   each with probability 0.5 (its score flips sign and its negation text is shown), and
   let the largest |score| pick `chosen`; exact ties and draws whose principles were all
   dropped by `strict` are skipped;
4. symbolic rules (`salmon.rules`) that fire on a pair override the judge under any
   principle list (a sampled negation of the principle a rule checks flips its label);
   `banned_phrase_prob` < 1 lets banned_phrase decide only that often, and
   `drop_wrong_language` drops pairs with both responses in the wrong language;
5. repeat for `passes` passes with fresh draws; optional label noise (`label_noise` for
   judge labels, `rule_label_noise` for rule labels).
6. other label sources (verifiable principles, principle-contrast pairs) are mixed in by
   `--source-shares` (salmon.label_sources); every example records its `label_source`.

Draws come from `numpy.random.default_rng([seed, pass, pair index])`, so each example is
reproducible on its own. Output (the dataset first, summary.json last as the finished mark):
    rm_data/dataset/   datasets.Dataset.save_to_disk, columns pair_id, prompt, chosen,
                       rejected, principles (shown texts), dominant_principle, rule, pass,
                       label_source ("judge" | "rule" | "verify" | "contrast"), twin (an id shared
                       by an example and its negated twin under `--twins` / `--judge-twins`, else
                       ""); `prompt` is text, or,
                       when any pair's prompt is a conversation, every prompt as a message list
                       (TRL's conversational format; a text prompt is one user message)
    rm_data/config.yaml, rm_data/summary.json (label yield, who decided, consistency)
"""

from __future__ import annotations

import math
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from salmon.config import opt
from salmon.conversation import as_messages, is_conversation, last_user_text, parse_prompt
from salmon.errors import SalmonError
from salmon.jsonl import iter_jsonl
from salmon.label_sources import LabelSourcesConfig, add_label_sources, parse_shares, with_twin
from salmon.principles import Principle, load_principles, parse_principle
from salmon.progress import info
from salmon.rules import RULES, apply_rules, both_wrong_language
from salmon.stage import StageFiles


@dataclass
class AggregateConfig(LabelSourcesConfig):
    pairs: str = opt("pairs.jsonl", "Pairs JSONL written by `salmon pairs` (the file the judge read)")
    judgments: str = opt("judgments.jsonl", "Judgments JSONL written by `salmon judge`")
    principles: str = opt("judge", "Principle file the judge used (path or built-in name)")
    out: str = opt("rm_data", "Output folder (dataset/, config.yaml, summary.json)")
    consistency: str = opt("strict", "strict: keep a score only when both orders agree in sign; mean: the debiased mean")
    normalize: bool = opt(True, "Divide each principle's scores by their spread over the data set (see --scale)")
    scale: str = opt("kept_std", "kept_std: standard deviation of the kept mean scores; order_var: variance of "
                                 "the single-order scores (score_ab and score_ba), as the SALMON reference code")
    passes: int = opt(4, "Passes over the pairs, each with fresh principle draws")
    geometric_p: float = opt(0.2, "Number of principles per example ~ Geometric(p)")
    max_principles: int = opt(8, "Cap on principles shown per example")
    count_policy: str = opt("clip", "A draw above --max-principles: clip (use the cap) or redraw (the reference; "
                                    "mean 3.4 instead of 4.2 at p=0.2, cap 8)")
    negation_prob: float = opt(0.5, "Probability of showing a principle's negation (its score flips sign)")
    label_noise: float = opt(0.0, "Probability of flipping a judge-decided example's label (reference: 0.1)")
    rule_label_noise: float | None = opt(None, "Probability of flipping a rule-decided label (reference: 0.25); "
                                               "empty: the same as --label-noise")
    banned_phrase_prob: float = opt(1.0, "Probability that the banned_phrase rule, having fired, decides an "
                                         "example (reference: 0.5; otherwise the judge decides)")
    drop_wrong_language: bool = opt(False, "Drop pairs whose two responses are both confidently in a language "
                                           "other than the user's (the reference drops them)")
    min_margin: float = opt(0.0, "Skip examples whose deciding |normalised score| is at most this")
    rules: list[str] = opt(list(RULES), "Symbolic rules that override the judge (comma-separated; '' for none)")
    rule_skip_types: list[str] = opt(["redteam"], "Pair types on which rules stay silent (a boilerplate refusal may be right there)")
    judge_twins: bool = opt(False, "Emit every self-judge example with its negated twin and a shared `twin` id "
                                   "(exact: negating every shown principle flips each signed score, so the same "
                                   "principle decides, label flipped), so the contrastive objective can train on "
                                   "them (off: it leaves them out; on was tried in the default run and lost "
                                   "verify_dev, docs/label-sources.md)")
    seed: int = opt(0, "Random seed")

    def validate(self) -> None:
        if self.consistency not in CONSISTENCY:
            raise SalmonError(f"--consistency must be one of {', '.join(CONSISTENCY)}, got {self.consistency!r}")
        if self.passes < 1 or self.max_principles < 1:
            raise SalmonError("--passes and --max-principles must be at least 1")
        if not 0 < self.geometric_p <= 1:
            raise SalmonError(f"--geometric-p must be in (0, 1], got {self.geometric_p}")
        if not 0 <= self.negation_prob <= 1 or not 0 <= self.label_noise <= 0.5:
            raise SalmonError("--negation-prob must be in [0, 1] and --label-noise in [0, 0.5]")
        if self.rule_label_noise is not None and not 0 <= self.rule_label_noise <= 0.5:
            raise SalmonError(f"--rule-label-noise must be in [0, 0.5], got {self.rule_label_noise}")
        if not 0 <= self.banned_phrase_prob <= 1:
            raise SalmonError(f"--banned-phrase-prob must be in [0, 1], got {self.banned_phrase_prob}")
        if self.count_policy not in COUNT_POLICIES:
            raise SalmonError(f"--count-policy must be one of {', '.join(COUNT_POLICIES)}, got {self.count_policy!r}")
        if self.scale not in SCALES:
            raise SalmonError(f"--scale must be one of {', '.join(SCALES)}, got {self.scale!r}")
        if self.min_margin < 0:
            raise SalmonError(f"--min-margin must be >= 0, got {self.min_margin}")
        unknown = [r for r in self.rules if r not in RULES]
        if unknown:
            raise SalmonError(f"--rules: unknown rule '{unknown[0]}' (known: {', '.join(RULES)})")
        self.validate_sources()


# --- pure maths ----------------------------------------------------------------------

def strict_score(score_ab: float, score_ba: float, score: float) -> float | None:
    """The paper's rule: the mean score when both orders prefer the same response, else None."""
    agree = (score_ab > 0 and score_ba > 0) or (score_ab < 0 and score_ba < 0)
    return score if agree else None


def mean_score(score_ab: float, score_ba: float, score: float) -> float | None:
    """The order-debiased mean, always kept."""
    return score


CONSISTENCY = {"strict": strict_score, "mean": mean_score}


def principle_scale(values: list[float], fallback: float = 1.0) -> float:
    """Standard deviation (population) of one principle's kept scores, or `fallback` where
    it is undefined (fewer than two scores, or all equal). Scores are not centred: zero
    is where the judge has no preference, and moving it would change who wins."""
    if len(values) < 2:
        return fallback
    std = float(np.std(np.asarray(values, dtype=np.float64)))
    return std if std > 0 else fallback


def order_variance(pairs_of_scores: list[tuple[float, float]], fallback: float = 1.0) -> float:
    """The SALMON reference's scale: the (population) variance of the single-order scores,
    score_ab and score_ba pooled, or `fallback` when it is undefined or zero."""
    values = [v for ab_ba in pairs_of_scores for v in ab_ba]
    if len(values) < 2:
        return fallback
    var = float(np.var(np.asarray(values, dtype=np.float64)))
    return var if var > 0 else fallback


SCALES = ("kept_std", "order_var")
COUNT_POLICIES = ("clip", "redraw")


def draw_count(rng: np.random.Generator, geometric_p: float, max_principles: int, policy: str = "clip") -> int:
    """k ~ Geometric(p) on {1, 2, ...}; above the cap, `clip` uses the cap (mean (1 - (1-p)^cap) / p,
    4.16 at p=0.2, cap 8) and `redraw` draws again (the reference: a truncated geometric,
    mean 1/p - cap (1-p)^cap / (1 - (1-p)^cap), 3.39 at p=0.2, cap 8)."""
    k = int(rng.geometric(geometric_p))
    while policy == "redraw" and k > max_principles:
        k = int(rng.geometric(geometric_p))
    return min(k, max_principles)


def draw_principles(rng: np.random.Generator, n: int, geometric_p: float, max_principles: int,
                    negation_prob: float, count_policy: str = "clip") -> tuple[np.ndarray, np.ndarray]:
    """(indices of the principles shown, in display order; which of them are negated).
    k = min(draw_count(...), n) >= 1; the subset is a random permutation's head."""
    k = min(draw_count(rng, geometric_p, max_principles, count_policy), n)
    idx = rng.permutation(n)[:k]
    negated = rng.random(k) < negation_prob
    return idx, negated


def decide(signed: list[float | None], min_margin: float = 0.0) -> tuple[int | None, int, str]:
    """Which shown principle decides, from its signed score (None = dropped by `strict`).

    Returns (index, +1 if response_a wins else -1, "") or (None, 0, reason) with reason
    "all_dropped" or "tie" (largest |score| <= min_margin, or held by scores of both signs).
    """
    kept = [(i, s) for i, s in enumerate(signed) if s is not None]
    if not kept:
        return None, 0, "all_dropped"
    top = max(abs(s) for _, s in kept)
    leaders = [(i, s) for i, s in kept if abs(s) == top]
    if top <= min_margin or len({s > 0 for _, s in leaders}) > 1:
        return None, 0, "tie"
    i, s = leaders[0]
    return i, (1 if s > 0 else -1), ""


# --- reading inputs ------------------------------------------------------------------

@dataclass
class PairScores:
    """One pair and its principles' policy scores (None = dropped), in principle-file order."""
    pair: dict[str, Any]
    principles: list[Principle] = field(default_factory=list)
    scores: list[float | None] = field(default_factory=list)


def read_pairs(path: str) -> dict[str, dict[str, Any]]:
    pairs: dict[str, dict[str, Any]] = {}
    for ln, rec in iter_jsonl(path):
        for key in ("prompt", "response_a", "response_b"):
            if not isinstance(rec.get(key), str) and not (key == "prompt" and isinstance(rec.get(key), list)):
                raise SalmonError(f"{path}:{ln}: missing or non-text field '{key}' (expected a `salmon pairs` record)")
        if isinstance(rec["prompt"], list):
            rec["prompt"] = parse_prompt(rec["prompt"], f"{path}:{ln}")
        pid = str(rec.get("id", f"line{ln}"))  # the judge names id-less pairs the same way
        if pid in pairs:
            raise SalmonError(f"{path}:{ln}: duplicate pair id '{pid}'")
        pairs[pid] = dict(rec, id=pid, _line=ln)
    if not pairs:
        raise SalmonError(f"{path}: no pairs")
    return pairs


def _pair_principles(pair: dict[str, Any], default: dict[str, Principle], path: str) -> dict[str, Principle]:
    """A pair may carry its own principles (the judge then used those)."""
    own = pair.get("principles")
    if not own:
        return default
    if not isinstance(own, list):
        raise SalmonError(f"{path}:{pair['_line']}: 'principles' must be a list")
    parsed = [parse_principle(p, f"{path}:{pair['_line']}: principle {i}") for i, p in enumerate(own, 1)]
    return {p.name: p for p in parsed}


def read_judgments(path: str, pairs: dict[str, dict[str, Any]], principles: list[Principle], pairs_path: str
                   ) -> tuple[dict[str, dict[str, tuple[float, float, float]]], dict[str, dict[str, Principle]]]:
    """{pair_id: {principle name: (score_ab, score_ba, score)}}, and each judged pair's
    principles by name (the file's, or the pair's own), in file order."""
    by_name = {p.name: p for p in principles}
    out: dict[str, dict[str, tuple[float, float, float]]] = {}
    principles_of: dict[str, dict[str, Principle]] = {}
    for ln, rec in iter_jsonl(path):
        pid, name = rec.get("pair_id"), rec.get("principle")
        if not isinstance(pid, str) or not isinstance(name, str):
            raise SalmonError(f"{path}:{ln}: missing 'pair_id' or 'principle' (expected a `salmon judge` record)")
        if pid not in pairs:
            raise SalmonError(f"{path}:{ln}: pair_id '{pid}' is not in {pairs_path}; were these judgments made on another pairs file?")
        if pid not in principles_of:
            principles_of[pid] = _pair_principles(pairs[pid], by_name, pairs_path)
        if name not in principles_of[pid]:
            raise SalmonError(f"{path}:{ln}: principle '{name}' is not in the principle file; pass the --principles file the judge used")
        nums = []
        for key in ("score_ab", "score_ba", "score"):
            v = rec.get(key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise SalmonError(f"{path}:{ln}: '{key}' must be a finite number, got {v!r}")
            nums.append(float(v))
        if name in out.setdefault(pid, {}):
            raise SalmonError(f"{path}:{ln}: second judgment for pair '{pid}' under '{name}'")
        out[pid][name] = (nums[0], nums[1], nums[2])
    return out, principles_of


def score_table(pairs: dict[str, dict[str, Any]], judged: dict[str, dict[str, tuple[float, float, float]]],
                principles_of: dict[str, dict[str, Principle]], consistency: str, normalize: bool,
                scale: str = "kept_std") -> tuple[list[PairScores], dict[str, float], dict[str, float]]:
    """Judged pairs (input order) with policy-filtered, normalised scores; the scale and the
    consistency rate of each principle (`scale`: see AggregateConfig.scale)."""
    policy = CONSISTENCY[consistency]
    kept: dict[str, list[float]] = {}
    orders: dict[str, list[tuple[float, float]]] = {}
    agree: dict[str, list[bool]] = {}
    for verdicts in judged.values():
        for name, (ab, ba, s) in verdicts.items():
            agree.setdefault(name, []).append(strict_score(ab, ba, s) is not None)
            orders.setdefault(name, []).append((ab, ba))
            v = policy(ab, ba, s)
            if v is not None:
                kept.setdefault(name, []).append(v)
    # A principle with under two scores (common under `strict` with a weak judge) gets the
    # pooled scale of all principles, so it competes on the same footing as the rest.
    if scale == "order_var":
        pooled = order_variance([o for os_ in orders.values() for o in os_])
        scales = {n: order_variance(orders[n], pooled) if normalize else 1.0 for n in agree}
    else:
        pooled = principle_scale([v for vs in kept.values() for v in vs])
        scales = {n: principle_scale(kept.get(n, []), pooled) if normalize else 1.0 for n in agree}
    table = []
    for pid, pair in pairs.items():
        if pid not in judged:
            continue
        names = [n for n in principles_of[pid] if n in judged[pid]]
        scores = [policy(*judged[pid][n]) for n in names]
        table.append(PairScores(pair, [principles_of[pid][n] for n in names],
                                [None if s is None else s / scales[n] for s, n in zip(scores, names, strict=True)]))
    consistency_rate = {n: sum(a) / len(a) for n, a in agree.items()}
    return table, scales, consistency_rate


# --- building examples -----------------------------------------------------------------

def make_example(item: PairScores, rule: tuple[str, int], rng: np.random.Generator, pass_idx: int,
                 cfg: AggregateConfig) -> tuple[dict[str, Any] | None, str, int]:
    """One training example for (pass, pair), or None; also the skip reason and the
    judge's own label (0 when it has none) for comparison with a rule. The example keeps
    the shown principles (`_shown`) and the deciding one's position (`_decider`, None for
    a rule) for `label_sources.with_twin`."""
    idx, negated = draw_principles(rng, len(item.principles), cfg.geometric_p, cfg.max_principles,
                                   cfg.negation_prob, cfg.count_policy)
    u_noise = rng.random()
    rule = rule_applies(rule, rng, cfg)
    noise = u_noise < (cfg.label_noise if not rule[0] or cfg.rule_label_noise is None else cfg.rule_label_noise)
    drawn = list(zip(idx.tolist(), negated.tolist(), strict=True))
    shown = [item.principles[i].negated() if ng else item.principles[i] for i, ng in drawn]
    signed = [None if item.scores[i] is None else (-1.0 if ng else 1.0) * item.scores[i] for i, ng in drawn]
    dominant, judge_label, reason = decide(signed, cfg.min_margin)
    rule_name, verdict = rule
    if rule_name:
        checked = (RULES[rule_name].principle or "").lower()
        flips = [ng for i, ng in drawn if item.principles[i].name.lower() == checked]
        label, dominant_name = (-verdict if any(flips) else verdict), ""
    elif dominant is None:
        return None, reason, 0
    else:
        label, dominant_name = judge_label, shown[dominant].name
    agrees = None if not rule_name or judge_label == 0 else judge_label == label
    if noise:
        label = -label
    a, b = item.pair["response_a"], item.pair["response_b"]
    return {
        "pair_id": item.pair["id"], "prompt": item.pair["prompt"],
        "chosen": a if label > 0 else b, "rejected": b if label > 0 else a,
        "principles": [p.definition for p in shown],  # negated() already swapped in the negation
        "dominant_principle": dominant_name, "rule": rule_name, "pass": pass_idx,
        "label_source": "rule" if rule_name else "judge", "_noise": bool(noise),
        "_rule_agrees": agrees, "_shown": shown, "_decider": dominant,
    }, "", judge_label


def rule_applies(rule: tuple[str, int], rng: np.random.Generator, cfg: AggregateConfig) -> tuple[str, int]:
    """The rule that fired, or ("", 0) when the banned_phrase rule loses its
    `banned_phrase_prob` draw (the judge then decides). Draws only when the probability is
    below 1, so default runs keep their random stream."""
    if rule[0] == "banned_phrase" and cfg.banned_phrase_prob < 1.0 and rng.random() >= cfg.banned_phrase_prob:
        return "", 0
    return rule


def pair_rule(pair: dict[str, Any], cfg: AggregateConfig) -> tuple[str, int]:
    """(rule, verdict) for a pair, ("", 0) when none fires."""
    if pair.get("type") in cfg.rule_skip_types:
        return "", 0
    finished = pair.get("finished_a", True) is not False and pair.get("finished_b", True) is not False
    names = [n for n in cfg.rules if finished or not RULES[n].needs_finished]
    return apply_rules(names, last_user_text(pair["prompt"]), pair["response_a"], pair["response_b"])


def build_examples(table: list[PairScores], cfg: AggregateConfig) -> tuple[list[dict[str, Any]], Counter]:
    """All examples, pass by pass in pair order, and counts of what was skipped and why."""
    rules = [pair_rule(item.pair, cfg) for item in table]
    wrong = [cfg.drop_wrong_language and both_wrong_language(item.pair["prompt"], item.pair["response_a"],
                                                             item.pair["response_b"]) for item in table]
    examples, counts = [], Counter()
    counts.update(f"rule_fired:{name}" for name, _ in rules if name)
    for p in range(cfg.passes):
        for i, item in enumerate(table):
            if wrong[i]:
                counts["skipped:both_wrong_language"] += 1
                continue
            rng = np.random.default_rng([cfg.seed, p, i])
            ex, reason, _ = make_example(item, rules[i], rng, p, cfg)
            if ex is None:
                counts[f"skipped:{reason}"] += 1
            else:  # negating every shown principle flips each signed score: same decider, label flipped
                examples += with_twin(ex, cfg.judge_twins and ex["label_source"] == "judge", ex.pop("_decider"))
    return examples, counts


# --- the stage -------------------------------------------------------------------------

def summarize(examples: list[dict[str, Any]], counts: Counter, n_pairs: int, n_judged: int,
              cfg: AggregateConfig, scales: dict[str, float], consistency: dict[str, float]) -> dict[str, Any]:
    n = len(examples)
    judge = Counter(e["dominant_principle"] for e in examples if e["label_source"] == "judge")
    rule = Counter(e["rule"] for e in examples if e["label_source"] == "rule")
    agree = [e["_rule_agrees"] for e in examples if e["_rule_agrees"] is not None]
    return {
        "examples": n, "pairs": n_pairs, "judged_pairs": n_judged, "pairs_without_judgments": n_pairs - n_judged,
        "passes": cfg.passes,  # the self-judge's yield: its examples per (pair, pass) draw, other sources apart
        "label_yield": sum(e["label_source"] in ("judge", "rule") and not e.get("_twin_copy") for e in examples)
        / max(1, n_judged * cfg.passes),
        "skipped": {k.split(":", 1)[1]: v for k, v in counts.items() if k.startswith("skipped:")},
        "decided_by_principle": {k: v / n for k, v in judge.most_common()},
        "decided_by_rule": {k: v / n for k, v in rule.most_common()},
        "rule_fired_pairs": {k.split(":", 1)[1]: v for k, v in counts.items() if k.startswith("rule_fired:")},
        "rule_agrees_with_judge": sum(agree) / len(agree) if agree else None,
        "label_noise_flips": sum(e["_noise"] for e in examples),
        "mean_principles_shown": float(np.mean([len(e["principles"]) for e in examples])) if n else 0.0,
        "consistency_rate": consistency, "score_scale": scales,
    }


def _report(s: dict[str, Any]) -> None:
    info(f"aggregate: {s['examples']} examples from {s['judged_pairs']} judged pairs x {s['passes']} passes "
         f"(label yield {s['label_yield']:.1%}); skipped {s['skipped'] or 'none'}; "
         f"{s['pairs_without_judgments']} pairs had no judgments")
    shares = ", ".join(f"{k} {v:.1%}" for k, v in s["decided_by_principle"].items())
    info(f"decided by principle: {shares or 'none'}")
    rules = ", ".join(f"{k} {v:.1%}" for k, v in s["decided_by_rule"].items())
    info(f"decided by rule: {rules or 'none'} (pairs where a rule fired: {s['rule_fired_pairs'] or 'none'})")
    info("label sources: " + ", ".join(f"{k} {v['used']}/{v['available']}" for k, v in s["label_sources"].items())
         + f"; {s['source_counts'] or ''}")
    info("consistency rate: " + ", ".join(f"{k} {v:.0%}" for k, v in s["consistency_rate"].items()))


def _save_dataset(examples: list[dict[str, Any]], folder: Path) -> None:
    """Write to a temp folder, then rename, so `dataset/` is never half-written."""
    from datasets import (
        Dataset,
        Features,
        List,
        Value,
        disable_progress_bars,
        enable_progress_bars,
        is_progress_bar_enabled,
    )

    rows = [{k: v for k, v in e.items() if not k.startswith("_")} for e in examples]
    prompt_type = Value("string")
    if any(is_conversation(r["prompt"]) for r in rows):  # one type per column: all as messages
        prompt_type = List({"role": Value("string"), "content": Value("string")})
        rows = [dict(r, prompt=as_messages(r["prompt"])) for r in rows]
    features = Features({"pair_id": Value("string"), "prompt": prompt_type, "chosen": Value("string"),
                         "rejected": Value("string"), "principles": List(Value("string")),
                         "dominant_principle": Value("string"), "rule": Value("string"),
                         "pass": Value("int64"), "label_source": Value("string"), "twin": Value("string")})
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shown = is_progress_bar_enabled()
    disable_progress_bars()  # one line of statistics is the stage's report, not shard bars
    try:
        Dataset.from_list(rows, features=features).save_to_disk(str(tmp))
    finally:
        if shown:
            enable_progress_bars()
    if folder.exists():  # left by a run that died before its summary: same config, same content
        shutil.rmtree(folder)
    os.replace(tmp, folder)


def aggregate(cfg: AggregateConfig) -> Path:
    files = StageFiles.for_dir(cfg.out)
    principles = load_principles(cfg.principles)
    pairs = read_pairs(cfg.pairs)
    judged, principles_of = read_judgments(cfg.judgments, pairs, principles, cfg.pairs)
    if not judged and "judge" in parse_shares(cfg.source_shares):  # other sources need no judge
        raise SalmonError(f"{cfg.judgments}: no judgments; run `salmon judge` on {cfg.pairs} first")
    if files.begin(cfg):
        return files.out
    table, scales, consistency = score_table(pairs, judged, principles_of, cfg.consistency, cfg.normalize,
                                             cfg.scale)
    examples, counts = build_examples(table, cfg)
    examples, source_counts, sources = add_label_sources(examples, list(pairs.values()), cfg)
    summary = summarize(examples, counts, len(pairs), len(table), cfg, scales, consistency)
    summary.update(label_sources=sources, source_counts=dict(source_counts))
    if not examples:
        raise SalmonError(f"{cfg.judgments}: no training examples left after filtering (skipped {summary['skipped']}); "
                          "try --consistency mean, or judge more pairs")
    _save_dataset(examples, files.out / "dataset")
    files.write_summary(summary)
    _report(summary)
    return files.out
