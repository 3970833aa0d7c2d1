"""Stage: how well does the reward model follow the principle it is given?

    salmon eval-rm --rm rm/ --labeled judge_dev --out rm_eval/

The labeled file (the `eval-judge` format) holds one pair per line:
    {"prompt", "chosen", "rejected", "principle": {"name", "definition", "negation"?},
     "split"?: "train_principle" | "heldout_principle", "id"?}
`--labeled` is a path or the name of a built-in set in `salmon/data/dev/` (`judge_dev`).

Each response is scored under the stated principle alone and under its negation
(one (prompt, response) prefix shared by both). Metrics:
- accuracy: reward(chosen) > reward(rejected) under the principle (ties count half);
- negation flip rate: the share of pairs whose preference changes sign when the
  principle is replaced by its negation text;
- negation accuracy: reward(rejected) > reward(chosen) under the negation;
- both: the pair is right under the principle and right (flipped) under its negation;
- accuracy and flip rate per `split` (heldout_principle = never seen in RM training)
  and per principle;
- length bias: Pearson correlation of reward with response length in words;
- the "longer response wins" baseline on the same pairs;
- a 95% bootstrap interval over pairs for every rate (`<metric>_ci_low`, `_ci_high`,
  salmon/stats.py) and the paired gap `accuracy_minus_longer_wins`.
A contrastive RM (`train-rm --objective contrastive`, `reward.contrastive`) is scored as
raw(principle) - raw(labelled negation), so its flip rate is 1 by construction and its
negation accuracy equals its accuracy: accuracy is the figure that says whether it reads
the principle; `metrics.json` adds `scoring: contrastive` and the `raw` scores' metrics.
With `--judge-model M`, the raw self-judge (`salmon eval-judge`, both orders, mean) is
run on the same file and shown beside the reward model (`out/judge.json`).
Writes `out/metrics.json`, per-pair rewards `out/scores.jsonl`, and prints a table.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from salmon.config import opt
from salmon.conversation import parse_prompt
from salmon.errors import SalmonError
from salmon.jsonl import atomic_write_text, iter_jsonl, write_jsonl
from salmon.principles import Principle
from salmon.progress import info, progress_bar
from salmon.stage import StageFiles
from salmon.stats import diff_estimate, estimate


@dataclass
class EvalRMConfig:
    rm: str = opt("rm", "Reward model folder written by `salmon train-rm`")
    labeled: str = opt("judge_dev", "Labeled pairs: a JSONL path or a built-in set name (judge_dev)")
    out: str = opt("rm_eval", "Output folder (metrics.json, scores.jsonl)")
    judge_model: str | None = opt(None, "Also run this model as the raw self-judge (`eval-judge`) on the "
                                        "same file and show it side by side")
    limit: int | None = opt(None, "Use only the first N pairs")
    batch_size: int = opt(8, "Sequences per forward batch", resume_safe=True)
    dtype: str = opt("auto", "auto, float32, bfloat16 or float16")
    device: str = opt("auto", "auto (cuda if present), cpu or cuda", resume_safe=True)
    progress: bool = opt(True, "Show progress", resume_safe=True)


# ---- metrics (pure) -------------------------------------------------------------------

def pairwise_outcomes(first: list[float], second: list[float]) -> list[float]:
    """Per pair: 1 when first > second, 0.5 on a tie, else 0."""
    if not first or len(first) != len(second):
        raise ValueError("pairwise_accuracy needs two equal, non-empty lists")
    return [1.0 if a > b else 0.5 if a == b else 0.0 for a, b in zip(first, second, strict=True)]


def pairwise_accuracy(first: list[float], second: list[float]) -> float:
    """Share of pairs where first > second; ties count half."""
    return sum(pairwise_outcomes(first, second)) / len(first)


def pearson(x: list[float], y: list[float]) -> float | None:
    """Pearson correlation; None when either side is constant or there are < 2 points."""
    n = len(x)
    if n < 2 or n != len(y):
        return None
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


def word_count(text: str) -> int:
    return len(text.split())


def flip_rate(stated: list[float], negated: list[float]) -> float:
    """Share of pairs whose preference changes sign between the principle and its negation
    (margins chosen - rejected under each; a zero margin is no preference, so no flip)."""
    return sum(flip_outcomes(stated, negated)) / len(stated)


def flip_outcomes(stated: list[float], negated: list[float]) -> list[float]:
    """Per pair: 1 when the margin changes sign between principle and negation, else 0."""
    if not stated or len(stated) != len(negated):
        raise ValueError("flip_rate needs two equal, non-empty lists")
    return [float(a * b < 0) for a, b in zip(stated, negated, strict=True)]


def rm_metrics(rows: list[dict[str, Any]], seed: int = 0) -> dict[str, Any]:
    """Metrics from per-pair rewards: rows with rc, rr (stated principle), rc_neg, rr_neg,
    chosen, rejected, split, principle. Overall and per split, every rate also gets a 95%
    bootstrap interval over pairs (`<metric>_ci_low`, `<metric>_ci_high`, seeded), and
    `accuracy_minus_longer_wins` is the paired gap to the length baseline."""
    def block(sub: list[dict[str, Any]], intervals: bool = True) -> dict[str, Any]:
        words_c, words_r = [word_count(r["chosen"]) for r in sub], [word_count(r["rejected"]) for r in sub]
        per_pair = {
            "accuracy": pairwise_outcomes([r["rc"] for r in sub], [r["rr"] for r in sub]),
            "flip_rate": flip_outcomes([r["rc"] - r["rr"] for r in sub], [r["rc_neg"] - r["rr_neg"] for r in sub]),
            "negation_accuracy": pairwise_outcomes([r["rr_neg"] for r in sub], [r["rc_neg"] for r in sub]),
            "both": [float((r["rc"] > r["rr"]) and (r["rr_neg"] > r["rc_neg"])) for r in sub],
            "longer_wins": pairwise_outcomes(words_c, words_r),
            "longer_wins_negation": pairwise_outcomes(words_r, words_c)}
        out: dict[str, Any] = {"n": len(sub), **{k: sum(v) / len(sub) for k, v in per_pair.items()}}
        if intervals:  # 95% bootstrap over pairs; keys <metric>_ci_low / _ci_high
            for k, v in per_pair.items():
                out.update(estimate(v, k, seed=seed))
            out.update(diff_estimate(per_pair["longer_wins"], per_pair["accuracy"], "accuracy_minus_longer_wins",
                                     paired=True, seed=seed))
        return out

    out = block(rows)
    lengths = [word_count(r[side]) for r in rows for side in ("chosen", "rejected")]
    out["length_corr"] = pearson([r[k] for r in rows for k in ("rc", "rr")], lengths)
    out["length_corr_negated"] = pearson([r[k] for r in rows for k in ("rc_neg", "rr_neg")], lengths)
    for key, field in (("by_split", "split"), ("by_principle", "principle")):
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            groups[r[field]].append(r)
        out[key] = {k: block(v, key == "by_split") for k, v in sorted(groups.items())}
    return out


# ---- input ----------------------------------------------------------------------------

def labeled_file(spec: str) -> Path:
    """A path, or the name of a built-in labeled set under salmon/data/dev/."""
    p = Path(spec)
    if p.exists() or p.suffix == ".jsonl" or "/" in spec:
        return p
    builtin = Path(str(resources.files("salmon").joinpath(f"data/dev/{spec}.jsonl")))
    if not builtin.exists():
        raise SalmonError(f"--labeled {spec}: no such file or built-in labeled set")
    return builtin


def read_labeled(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Labeled pairs, each checked; the principle gets a derived negation when it has none."""
    rows = []
    for lineno, rec in iter_jsonl(path):
        where = f"{path}:{lineno}"
        for key in ("prompt", "chosen", "rejected"):
            if key == "prompt" and isinstance(rec.get(key), list):
                rec[key] = parse_prompt(rec[key], where)  # a conversation ending with a user turn
            elif not isinstance(rec.get(key), str):
                raise SalmonError(f"{where}: missing text field '{key}'")
        pr = rec.get("principle")
        if not isinstance(pr, dict) or not isinstance(pr.get("definition"), str) or not pr["definition"].strip():
            raise SalmonError(f"{where}: 'principle' must be an object with a 'definition'")
        p = Principle(name=str(pr.get("name") or pr["definition"][:40]), definition=pr["definition"].strip(),
                      negation=str(pr.get("negation") or "").strip())
        rows.append({"id": rec.get("id", str(lineno)), "prompt": rec["prompt"], "chosen": rec["chosen"],
                     "rejected": rec["rejected"], "principle": p.name, "definition": p.definition,
                     "negation": p.negation, "split": str(rec.get("split") or "all")})
        if limit is not None and len(rows) >= limit:
            break
    if not rows:
        raise SalmonError(f"{path}: no labeled pairs")
    return rows


# ---- stage ----------------------------------------------------------------------------

def score_labeled(rm, rows: list[dict[str, Any]], batch_size: int, progress: bool = False,
                  chunk: int = 16) -> list[dict[str, Any]]:
    """Add rc, rr, rc_neg, rr_neg: rewards of chosen/rejected under the principle and its negation."""
    out = []
    with progress_bar(len(rows), "eval-rm", "pairs", progress) as advance:
        for start in range(0, len(rows), chunk):
            part = rows[start:start + chunk]
            prompts, responses, lists = [], [], []
            for r in part:
                for side in ("chosen", "rejected"):
                    for text in (r["definition"], r["negation"]):
                        prompts.append(r["prompt"])
                        responses.append(r[side])
                        lists.append([text])
            contrastive = getattr(rm, "contrastive", False)
            rewards = (rm.raw_score if contrastive else rm.score)(prompts, responses, lists, batch_size=batch_size)
            for i, r in enumerate(part):
                rc, rc_neg, rr, rr_neg = rewards[4 * i: 4 * i + 4]
                row = {**r, "rc": rc, "rr": rr, "rc_neg": rc_neg, "rr_neg": rr_neg}
                if contrastive:  # the RM's reward is raw(P) - raw(not P), with the labelled negation
                    row.update(raw={"rc": rc, "rr": rr, "rc_neg": rc_neg, "rr_neg": rr_neg},
                               rc=rc - rc_neg, rr=rr - rr_neg, rc_neg=rc_neg - rc, rr_neg=rr_neg - rr)
                out.append(row)
            advance(len(part))
    return out


def judge_side_by_side(cfg: EvalRMConfig, path: Path, out: Path) -> dict[str, Any] | None:
    """The raw self-judge (`salmon eval-judge`) on the same file, in this table's terms."""
    if not cfg.judge_model:
        return None
    from salmon.judge.evaluate import EvalJudgeConfig, eval_judge

    jcfg = EvalJudgeConfig(model=cfg.judge_model, labeled=str(path), out=str(out / "judge.json"),
                           limit=cfg.limit, dtype=cfg.dtype, device=cfg.device, progress=cfg.progress)
    res = json.loads(Path(eval_judge(jcfg)).read_text(encoding="utf-8"))
    return {"n": res["n"], "accuracy": res["accuracy"], "flip_rate": res.get("negation_flip_rate"),
            "contrast_accuracy": res.get("contrast_accuracy"), "strict_accuracy": res.get("strict_accuracy"),
            "by_split": {s: {"accuracy": a} for s, a in (res.get("accuracy_by_split") or {}).items()}}


def format_table(metrics: dict[str, Any], judge: dict[str, Any] | None) -> str:
    """RM | longer wins | judge, one row per metric."""
    def pct(v: Any) -> str:
        return "-" if v is None else f"{100 * v:5.1f}%"

    def ci(m: dict[str, Any], key: str) -> str:  # the rate with its 95% interval when present
        lo, hi = m.get(f"{key}_ci_low"), m.get(f"{key}_ci_high")
        return pct(m[key]) + (f" [{100 * lo:.1f}, {100 * hi:.1f}]" if lo is not None and hi is not None else "")

    def num(v: Any) -> str:
        return "-" if v is None else f"{v:+.2f}"

    j = judge or {}

    def judged(block: dict[str, Any], key: str) -> str:
        return pct(block.get(key)) if judge else ""

    rows = [("pairs", str(metrics["n"]), "", str(j.get("n", "")) if judge else "")]
    for split, m in [("all", metrics), *metrics["by_split"].items()]:
        js = j if split == "all" else (j.get("by_split") or {}).get(split, {})
        tag = "" if split == "all" else f" [{split}, n={m['n']}]"
        rows += [(f"accuracy (stated principle){tag}", ci(m, "accuracy"), ci(m, "longer_wins"),
                  judged(js, "accuracy")),
                 (f"negation flip rate{tag}", ci(m, "flip_rate"), pct(0.0), judged(js, "flip_rate")),
                 (f"accuracy under negation{tag}", ci(m, "negation_accuracy"), ci(m, "longer_wins_negation"),
                  judged(js, "negation_accuracy"))]
    rows.append(("length bias (corr. with words)", num(metrics["length_corr"]), num(1.0),
                 num(j.get("length_corr")) if judge else ""))
    head = ("metric", "reward model", "longer wins", "self-judge" if judge else "")
    widths = [max(len(r[c]) for r in [head, *rows]) for c in range(4)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in [head, *rows])


def eval_rm(cfg: EvalRMConfig) -> Path:
    files = StageFiles.for_dir(cfg.out)
    path = labeled_file(cfg.labeled)
    rows = read_labeled(path, cfg.limit)
    if files.begin(cfg):
        return files.out
    from salmon.reward.model import InstructableRewardModel

    rm = InstructableRewardModel.load(cfg.rm, device=cfg.device, dtype=cfg.dtype)
    info(f"scoring {len(rows)} pairs under their principle and its negation ({4 * len(rows)} inputs)")
    scored = score_labeled(rm, rows, cfg.batch_size, cfg.progress)
    metrics = rm_metrics(scored)
    if rm.contrastive:  # flip is 1 by construction; the raw scores show what the model alone does
        raw = rm_metrics([{**r, **r["raw"]} for r in scored])
        metrics.update(scoring="contrastive", raw={k: v for k, v in raw.items() if k != "by_principle"})
    judge = judge_side_by_side(cfg, path, files.out)
    result = {"labeled": str(path), "rm": cfg.rm, **metrics, **({"judge": judge} if judge else {})}
    write_jsonl(files.out / "scores.jsonl", [{k: r[k] for k in ("id", "split", "principle", "rc", "rr",
                                                                  "rc_neg", "rr_neg")} for r in scored])
    atomic_write_text(files.out / "metrics.json", json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    files.write_summary({k: result[k] for k in ("n", "accuracy", "flip_rate", "negation_accuracy", "both",
                                                "longer_wins", "length_corr")})
    info(format_table(metrics, judge))
    return files.out
