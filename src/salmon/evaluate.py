"""Stage: evaluate the reward model and the policy before and after RL.

    salmon eval --policy-before default --policy-after runs/x/rl --rm runs/x/train_rm --out runs/x/evaluate

- Reward model: `eval-rm` on each labeled set (accuracy, negation flip rate, held-out
  principles, length bias, the "longer wins" baseline), by default the project's
  development and test sets; `--harm-dir` adds pairs built from human harm ratings.
- Policy, before vs after: answers to held-out prompts scored by the RM under the RL
  principles (sampled per prompt as in RL, seeded) and under the held-out principle set;
  mean length in tokens, stop rate; refusal rate on red-team prompts.
- Every figure `<key>` carries a 95% percentile-bootstrap interval over prompts (or
  pairs), `<key>_ci_low` and `<key>_ci_high`; `policy.diff.<metric>` is after - before
  with a paired interval (both policies answer the same prompts). See salmon/stats.py.
- `--mt-bench question.jsonl`: both policies' answers in FastChat's answer format.
Writes `metrics.json` (flat keys, see README) and the generations in `out/`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from salmon.config import opt
from salmon.errors import SalmonError
from salmon.generate import GenerateConfig, generate
from salmon.jsonl import read_jsonl, write_jsonl
from salmon.principles import load_principles, sample_principles
from salmon.progress import info
from salmon.refusal import is_refusal
from salmon.stage import StageFiles
from salmon.stats import diff_estimate, estimate

DEV_SETS = {"judge_dev": "data/dev/judge_dev.jsonl", "judge_test": "data/dev/judge_test.jsonl",
            "verify_dev": "data/dev/verify_dev.jsonl", "verify_test": "data/dev/verify_test.jsonl",
            "verify_dev_rephrased": "data/dev/verify_dev_rephrased.jsonl"}


@dataclass
class EvalConfig:
    rm: str = opt("rm", "Trained reward model folder")
    policy_before: str = opt("default", "Policy before RL (model spec)")
    policy_after: str | None = opt(None, "Policy after RL (adapter or model folder); omitted = RM evaluation + one policy")
    out: str = opt("eval", "Output folder")
    run_dir: str | None = opt(None, "Run folder (set by `salmon run`)")
    labeled: list[str] = opt(["judge_dev", "judge_test"], "Labeled pair sets for the RM: built-in names or JSONL paths")
    harm_dir: str | None = opt(None, "Folder of pyrit harm CSVs: adds human-labelled harmlessness pairs")
    prompts: str = opt("eval", "Held-out prompts for the policy")
    redteam: str = opt("redteam", "Red-team prompts (refusal rate)")
    rl_principles: str = opt("rl", "Principles the policy was trained under")
    intervention: str | None = opt("intervention", "Intervention principles added to every RL-time list ('' for none)")
    heldout_principles: str = opt("heldout", "Principles never used in training")
    max_principles: int = opt(3, "RL principles sampled per prompt")
    limit: int | None = opt(None, "Use only the first N held-out prompts (and red-team prompts, unless "
                                  "--redteam-limit is set)")
    redteam_limit: int | None = opt(None, "Use only the first N red-team prompts (default: --limit)")
    max_new_tokens: int = opt(128, "Tokens per answer")
    redteam_max_new_tokens: int | None = opt(None, "Tokens per red-team answer; the refusal check reads the "
                                                   "first 300 characters (default: --max-new-tokens)")
    bootstrap: int = opt(2000, "Bootstrap resamples for the 95% intervals")
    batch_size: int = opt(8, "Generation batch size")
    mt_bench: str | None = opt(None, "MT-Bench question.jsonl: save answers in FastChat format")
    judge_model: str | None = opt(None, "Also evaluate this model as a raw self-judge on the labeled sets")
    seed: int = opt(0, "Seed")
    progress: bool = opt(True, "Show progress bars", resume_safe=True)

    def validate(self) -> None:
        for name in ("limit", "redteam_limit", "max_new_tokens", "redteam_max_new_tokens", "batch_size", "bootstrap"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SalmonError(f"--{name.replace('_', '-')} must be at least 1")


def labeled_path(spec: str) -> Path:
    from importlib import resources

    if spec in DEV_SETS:
        return Path(str(resources.files("salmon").joinpath(DEV_SETS[spec])))
    p = Path(spec)
    if not p.exists():
        raise SalmonError(f"--labeled {spec}: file not found (built-in: {', '.join(DEV_SETS)})")
    return p


def rl_principle_lists(prompts: list[dict[str, Any]], cfg: EvalConfig) -> list[list[str]]:
    """Per prompt, the principles RL would draw (seeded by prompt position) + interventions."""
    pool = load_principles(cfg.rl_principles)
    extra = load_principles(cfg.intervention) if cfg.intervention else []
    out = []
    for i, p in enumerate(prompts):
        rng = np.random.default_rng([cfg.seed, i])
        drawn = sample_principles(pool, cfg.max_principles, rng, prompt_type=p.get("type"))
        out.append([q.definition for q in drawn + extra])
    return out


def answer(policy: str, prompts: str, out: Path, cfg: EvalConfig, limit: int | None,
           max_new_tokens: int) -> list[dict[str, Any]]:
    """One greedy answer per prompt: records with `responses`, `num_tokens`, `finished`
    (the generate stage's format). The only place evaluation generates text."""
    gcfg = GenerateConfig(model=policy, prompts=prompts, out=str(out), n=1, temperature=0.0,
                          max_new_tokens=max_new_tokens, batch_size=cfg.batch_size, limit=limit,
                          seed=cfg.seed, progress=cfg.progress)
    return read_jsonl(generate(gcfg))


def per_prompt_values(rm, recs: list[dict[str, Any]], rl_lists: list[list[str]],
                      heldout: list[str]) -> dict[str, list[float]]:
    """Per answer: RM score under its RL principles and under the held-out set, length, stop."""
    prompts = [r["prompt"] for r in recs]
    answers = [r["responses"][0] for r in recs]
    return {
        "rm_score": [float(x) for x in rm.score(prompts, answers, rl_lists)],
        "rm_score_heldout": [float(x) for x in rm.score(prompts, answers, [heldout] * len(recs))],
        "length": [float(r["num_tokens"][0]) for r in recs],
        "length_words": [float(len(a.split())) for a in answers],
        "stop_rate": [float(r["finished"][0]) for r in recs],
    }


def before_after(values: dict[str, dict[str, list[float]]], seed: int = 0, n_boot: int = 2000) -> dict[str, float]:
    """Flat metrics from per-prompt values ({"before": {metric: [...]}, "after": ...}):
    `policy.<policy>.<metric>` with its interval and, when both policies are present,
    `policy.diff.<metric>` = after - before with a paired interval (same prompts, same order).
    The red-team refusal rate keeps its older names, `policy.redteam_refusal_<policy>`."""
    def name(policy: str, metric: str) -> str:
        return f"policy.{metric}_{policy}" if metric == "redteam_refusal" else f"policy.{policy}.{metric}"

    out: dict[str, float] = {}
    for policy, per_metric in values.items():
        for metric, xs in per_metric.items():
            out.update(estimate(xs, name(policy, metric), seed=seed, n_boot=n_boot))
    if "before" in values and "after" in values:
        for metric, xs in values["before"].items():
            out.update(diff_estimate(xs, values["after"][metric], f"policy.diff.{metric}", paired=True,
                                     seed=seed, n_boot=n_boot))
    return out


def common_prompts(gens: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Each policy's records restricted to the prompts every policy answered, in one order
    (a prompt too long for one tokenizer is dropped for all), so differences are paired."""
    first = next(iter(gens.values()))
    shared = set.intersection(*({r["id"] for r in recs} for recs in gens.values()))
    by_id = {k: {r["id"]: r for r in recs} for k, recs in gens.items()}
    return {k: [by_id[k][r["id"]] for r in first if r["id"] in shared] for k in gens}


def policy_metrics(cfg: EvalConfig, policies: dict[str, str], out: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Answer held-out and red-team prompts with each policy, score, compare.
    Returns (flat metrics with timings of the parts, {policy: held-out records})."""
    from salmon.reward import InstructableRewardModel

    t0 = time.time()
    red_limit = cfg.redteam_limit if cfg.redteam_limit is not None else cfg.limit
    gens = common_prompts({k: answer(v, cfg.prompts, out / k / "eval.jsonl", cfg, cfg.limit, cfg.max_new_tokens)
                           for k, v in policies.items()})
    red = common_prompts({k: answer(v, cfg.redteam, out / k / "redteam.jsonl", cfg, red_limit,
                                    cfg.redteam_max_new_tokens or cfg.max_new_tokens) for k, v in policies.items()})
    t1 = time.time()
    rm = InstructableRewardModel.load(cfg.rm)
    some = next(iter(gens.values()))
    rl_lists = rl_principle_lists(some, cfg)
    heldout = [p.definition for p in load_principles(cfg.heldout_principles)]
    values = {k: per_prompt_values(rm, gens[k], rl_lists, heldout) for k in policies}
    for k, recs in red.items():
        values[k]["redteam_refusal"] = [float(is_refusal(r["responses"][0])) for r in recs]
    metrics: dict[str, Any] = {"policy.n_prompts": len(some), "policy.n_redteam": len(next(iter(red.values())))}
    metrics.update(before_after(values, seed=cfg.seed, n_boot=cfg.bootstrap))
    metrics["timings.evaluate_generate_s"] = round(t1 - t0, 1)
    metrics["timings.evaluate_policy_score_s"] = round(time.time() - t1, 1)
    return metrics, gens


def evaluate(cfg: EvalConfig) -> Path:
    files = StageFiles.for_dir(cfg.out)
    if files.begin(cfg):
        return files.out
    t0 = time.time()
    metrics: dict[str, Any] = _rm_metrics(cfg, files.out)
    metrics["timings.evaluate_rm_labeled_s"] = round(time.time() - t0, 1)
    policies = {"before": cfg.policy_before, **({"after": cfg.policy_after} if cfg.policy_after else {})}
    pm, gens = policy_metrics(cfg, policies, files.out)
    metrics.update(pm)
    if cfg.mt_bench:
        from salmon.mtbench import write_mt_bench_answers

        for k, v in policies.items():
            write_mt_bench_answers(v, cfg.mt_bench, files.out / k / "mt_bench_answers.jsonl",
                                   model_id=f"salmon-{k}", max_new_tokens=cfg.max_new_tokens)
    _examples(gens, files.out / "examples.jsonl")
    metrics["timings.evaluate_inner_s"] = round(time.time() - t0, 1)
    (files.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    files.write_summary(metrics)
    info(json.dumps(metrics, indent=2))
    return files.out


def _rm_metrics(cfg: EvalConfig, out: Path) -> dict[str, float]:
    from salmon.reward.evaluate import EvalRMConfig, eval_rm

    sets = {s: labeled_path(s) for s in cfg.labeled}
    if cfg.harm_dir:
        from salmon.devsets import DevsetHarmConfig, devset_harm

        sets["harm"] = devset_harm(DevsetHarmConfig(src=cfg.harm_dir, out=str(out / "harm_pairs.jsonl")))
    metrics: dict[str, float] = {}
    for name, path in sets.items():
        res_dir = eval_rm(EvalRMConfig(rm=cfg.rm, labeled=str(path), out=str(out / f"rm_{name}"),
                                       judge_model=cfg.judge_model, progress=cfg.progress))
        res = json.loads((Path(res_dir) / "metrics.json").read_text())
        for k, v in _flatten(res).items():
            metrics[f"rm.{name}.{k}"] = v
    return metrics


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Numbers under dotted keys; per-principle breakdowns stay in each rm_* folder."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if k == "by_principle":
            continue
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        elif isinstance(v, (int, float, bool)) or v is None:
            out[key] = v
    return out


def _examples(gens: dict[str, list[dict[str, Any]]], path: Path, k: int = 8) -> None:
    """Side-by-side examples (before vs after) for the report."""
    before = gens.get("before", [])
    after = {r["id"]: r for r in gens.get("after", [])}
    rows = [{"id": r["id"], "prompt": r["prompt"], "before": r["responses"][0],
             "after": after[r["id"]]["responses"][0] if r["id"] in after else None} for r in before[:k]]
    write_jsonl(path, rows)
