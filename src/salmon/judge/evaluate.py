"""Judge quality on labelled pairs: how often the self-judge agrees with a known preference.

    salmon eval-judge --model default --labeled dev --out judge_eval.json
    salmon eval-judge --labeled harm_pairs.jsonl --variant letters --out harm_eval.json

Labelled records: {"prompt", "chosen", "rejected", "principle": {"name", "definition",
"negation"?} (or a text), "split"?, "lang"?}; `chosen` is better under the principle.
`--labeled dev` is the built-in development set. Each pair is judged in both orders
under the principle's definition and under its negation, with `chosen` as output (a),
so every score below is positive when it favours `chosen`.

Metrics (`judge_metrics`, pure):
- accuracy: the mean of both orders favours chosen (ties count as wrong);
- strict_accuracy: both orders favour chosen (the paper's rule; undecided counts as
  wrong), strict_yield: share of pairs where both orders agree (= consistency),
  strict_precision: accuracy among those;
- position_bias: share of single-order verdicts won by the output shown first (0.5 =
  none);
- negation_flip_rate: the score under the negation has the opposite sign;
- calibrated_consistency: consistency after removing the mean first-position margin
  (estimated from the scores alone, no labels);
- contrast_accuracy: sign of (score under definition - score under negation) / 2;
- longer_wins_accuracy: the baseline "the longer response is better";
- accuracy per split (train_principle / heldout_principle).
Writes the metrics JSON to --out, per-pair scores beside it (`<out>.rows.jsonl`), and
prints a table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from salmon.config import opt
from salmon.conversation import Prompt, parse_prompt, prompt_chars
from salmon.devsets import builtin_dev_path
from salmon.errors import SalmonError
from salmon.jsonl import atomic_write_text, iter_jsonl, write_jsonl
from salmon.judge.core import DEFAULT_VARIANT, VARIANT_HELP
from salmon.principles import Principle, parse_principle
from salmon.progress import info, progress_bar


@dataclass
class EvalJudgeConfig:
    model: str = opt("default", "Judge model: 'default' (embedded SmolLM2-135M-Instruct), a local folder or a hub id")
    labeled: str = opt("dev", "Labelled pairs JSONL, or 'dev' for the built-in development set")
    out: str = opt("judge_eval.json", "Metrics JSON (per-pair scores go to <out>.rows.jsonl)")
    variant: str = opt(DEFAULT_VARIANT, VARIANT_HELP)
    batch_pairs: int = opt(4, "Pairs per forward batch")
    max_response_tokens: int = opt(384, "Responses longer than this are cut to this many tokens")
    max_prompt_tokens: int = opt(256, "Requests longer than this are cut to this many tokens")
    limit: int | None = opt(None, "Use only the first N labelled pairs")
    adapter: str | None = opt(None, "Optional LoRA adapter folder")
    dtype: str = opt("auto", "auto, float32, bfloat16 or float16")
    device: str = opt("auto", "auto (cuda if present), cpu or cuda")
    trust_remote_code: bool = opt(False, "Allow model code from the hub (off by default)")
    progress: bool = opt(True, "Show a progress bar")


@dataclass
class Labeled:
    id: str
    prompt: Prompt  # text, or a conversation ending with a user turn
    chosen: str
    rejected: str
    principle: Principle
    split: str
    lang: str


def read_labeled(path: str, limit: int | None = None) -> list[Labeled]:
    """Validate a labelled pair file; errors name the file and line."""
    src = builtin_dev_path() if path == "dev" else Path(path)
    out: list[Labeled] = []
    for ln, rec in iter_jsonl(src):
        where = f"{src}:{ln}"
        for key in ("prompt", "chosen", "rejected"):
            if key == "prompt" and isinstance(rec.get(key), list):
                rec[key] = parse_prompt(rec[key], where)  # a conversation ending with a user turn
            elif not isinstance(rec.get(key), str) or not rec[key].strip():
                raise SalmonError(f"{where}: '{key}' must be non-empty text")
        if "principle" not in rec:
            raise SalmonError(f"{where}: missing 'principle' ({{name, definition, negation?}} or a text)")
        raw = rec["principle"]
        if isinstance(raw, dict):
            raw = {k: v for k, v in raw.items() if k in ("name", "definition", "negation")}
        out.append(Labeled(str(rec.get("id", f"line{ln}")), rec["prompt"], rec["chosen"], rec["rejected"],
                           parse_principle(raw, f"{where}: principle"), str(rec.get("split", "all")),
                           str(rec.get("lang", "?"))))
        if limit is not None and len(out) >= limit:
            break
    if not out:
        raise SalmonError(f"{src}: no labelled pairs")
    return out


def _rate(hits: list[bool]) -> float | None:
    return sum(hits) / len(hits) if hits else None


def judge_metrics(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Metrics from per-pair scores (positive favours chosen). Each row: score_ab (chosen
    shown first), score_ba (chosen shown second), optional neg_score_ab / neg_score_ba
    (same under the negation), len_chosen, len_rejected, split."""
    if not rows:
        raise SalmonError("no scored pairs to compute metrics from")
    ab = [r["score_ab"] for r in rows]
    ba = [r["score_ba"] for r in rows]
    mean = [(x + y) / 2 for x, y in zip(ab, ba, strict=True)]
    agree = [(x > 0 and y > 0) or (x < 0 and y < 0) for x, y in zip(ab, ba, strict=True)]
    strict = [x > 0 and y > 0 for x, y in zip(ab, ba, strict=True)]
    bias = sum(x - y for x, y in zip(ab, ba, strict=True)) / (2 * len(rows))  # mean margin of the first-shown output
    cal = [(x - bias > 0 and y + bias > 0) or (x - bias < 0 and y + bias < 0) for x, y in zip(ab, ba, strict=True)]
    neg = [((r["neg_score_ab"] + r["neg_score_ba"]) / 2, m) for r, m in zip(rows, mean, strict=True) if "neg_score_ab" in r]
    splits = sorted({r.get("split", "all") for r in rows})
    return {
        "n": len(rows),
        "accuracy": _rate([m > 0 for m in mean]),
        "strict_accuracy": _rate(strict),
        "strict_yield": _rate(agree),
        "strict_precision": _rate([s for s, a in zip(strict, agree, strict=True) if a]),
        "consistency": _rate(agree),
        "position_bias": (sum(x > 0 for x in ab) + sum(y < 0 for y in ba)) / (2 * len(rows)),
        "first_position_margin": bias,
        "calibrated_consistency": _rate(cal),
        "negation_flip_rate": _rate([n * m < 0 for n, m in neg]),
        "contrast_accuracy": _rate([m - n > 0 for n, m in neg]),
        "longer_wins_accuracy": _rate([r["len_chosen"] > r["len_rejected"] for r in rows]),
        "accuracy_by_split": {s: _rate([m > 0 for r, m in zip(rows, mean, strict=True) if r.get("split", "all") == s])
                              for s in splits},
    }


def score_labeled(cfg: EvalJudgeConfig, pairs: list[Labeled]) -> list[dict[str, Any]]:
    """Judge every labelled pair in both orders under its definition and its negation."""
    from salmon.judge.core import (
        choice_token_ids,
        keep_freed_memory,
        load_judge_template,
        score_pairs,
        truncate_prompt,
        truncate_text,
    )
    from salmon.models import load_causal_lm, load_tokenizer

    keep_freed_memory()

    template = load_judge_template(cfg.variant)
    tok = load_tokenizer(cfg.model, cfg.trust_remote_code)
    choices = choice_token_ids(tok, template, cfg.model)
    model = load_causal_lm(cfg.model, adapter=cfg.adapter, dtype=cfg.dtype, device=cfg.device,
                           trust_remote_code=cfg.trust_remote_code)

    def cut(text: str, n: int) -> str:
        return truncate_text(tok, text, n)[0]

    jobs = [(truncate_prompt(tok, p.prompt, cfg.max_prompt_tokens)[0], cut(p.chosen, cfg.max_response_tokens),
             cut(p.rejected, cfg.max_response_tokens), [p.principle.definition, p.principle.negation])
            for p in pairs]
    order = sorted(range(len(jobs)), key=lambda i: (prompt_chars(jobs[i][0]) + len(jobs[i][1]) + len(jobs[i][2]), i))
    verdicts: dict[int, list[dict]] = {}
    with progress_bar(len(jobs), "eval-judge", "pairs", cfg.progress) as advance:
        for s in range(0, len(order), cfg.batch_pairs):
            idx = order[s:s + cfg.batch_pairs]
            for i, v in zip(idx, score_pairs(model, tok, template, choices, [jobs[i] for i in idx]), strict=True):
                verdicts[i] = v
            advance(len(idx))
    rows = []
    for i, p in enumerate(pairs):
        pos, neg = verdicts[i]
        rows.append({"id": p.id, "principle": p.principle.name, "split": p.split, "lang": p.lang,
                     "score_ab": pos["score_ab"], "score_ba": pos["score_ba"], "score": pos["score"],
                     "neg_score_ab": neg["score_ab"], "neg_score_ba": neg["score_ba"], "neg_score": neg["score"],
                     "len_chosen": len(p.chosen), "len_rejected": len(p.rejected)})
    return rows


def format_table(metrics: dict[str, Any], title: str) -> str:
    lines = [title, "-" * len(title)]
    for key, value in metrics.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
        lines.append(f"{key:<24}{_fmt(value)}")
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def eval_judge(cfg: EvalJudgeConfig) -> Path:
    if cfg.batch_pairs < 1:
        raise SalmonError("--batch-pairs must be at least 1")
    pairs = read_labeled(cfg.labeled, cfg.limit)
    rows = score_labeled(cfg, pairs)
    metrics = judge_metrics(rows)
    out = Path(cfg.out)
    write_jsonl(out.with_name(out.name + ".rows.jsonl"), rows)
    result = {"model": cfg.model, "labeled": cfg.labeled, "variant": cfg.variant, **metrics}
    atomic_write_text(out, json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(format_table(metrics, f"eval-judge: {cfg.labeled}, variant {cfg.variant}, model {cfg.model}"))
    info(f"wrote {out}")
    return out
