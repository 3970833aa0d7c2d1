"""Stage: evaluate the reward model and the policy before and after RL.

    salmon eval --policy-before default --policy-after runs/x/rl --rm runs/x/train_rm --out runs/x/evaluate

- Reward model: `eval-rm` on each labeled set (accuracy, negation flip rate, held-out
  principles, length bias, the "longer wins" baseline), by default the project's
  development and test sets; `--harm-dir` adds pairs built from human harm ratings.
- Policy, before vs after: answers to held-out prompts scored by the RM under the RL
  principles (sampled per prompt as in RL, seeded) and under the held-out principle set;
  mean length in tokens, stop rate; refusal rate on red-team prompts.
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
from salmon.refusal import refusal_rate
from salmon.stage import StageFiles

DEV_SETS = {"judge_dev": "data/dev/judge_dev.jsonl", "judge_test": "data/dev/judge_test.jsonl",
            "verify_dev": "data/dev/verify_dev.jsonl", "verify_test": "data/dev/verify_test.jsonl"}


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
    limit: int | None = opt(None, "Use only the first N held-out and red-team prompts")
    max_new_tokens: int = opt(128, "Tokens per answer")
    batch_size: int = opt(8, "Generation batch size")
    mt_bench: str | None = opt(None, "MT-Bench question.jsonl: save answers in FastChat format")
    judge_model: str | None = opt(None, "Also evaluate this model as a raw self-judge on the labeled sets")
    seed: int = opt(0, "Seed")
    progress: bool = opt(True, "Show progress bars", resume_safe=True)


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


def _generate(policy: str, prompts: str, out: Path, cfg: EvalConfig) -> list[dict[str, Any]]:
    gcfg = GenerateConfig(model=policy, prompts=prompts, out=str(out), n=1, temperature=0.0,
                          max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size, limit=cfg.limit,
                          seed=cfg.seed, progress=cfg.progress)
    return read_jsonl(generate(gcfg))


def policy_metrics(rm, recs: list[dict[str, Any]], rl_lists: list[list[str]], heldout: list[str]) -> dict[str, float]:
    prompts = [r["prompt"] for r in recs]
    answers = [r["responses"][0] for r in recs]
    rl_scores = rm.score(prompts, answers, rl_lists[: len(recs)])
    held_scores = rm.score(prompts, answers, [heldout] * len(recs))
    return {
        "rm_score": float(np.mean(rl_scores)),
        "rm_score_heldout": float(np.mean(held_scores)),
        "length": float(np.mean([r["num_tokens"][0] for r in recs])),
        "length_words": float(np.mean([len(a.split()) for a in answers])),
        "stop_rate": float(np.mean([r["finished"][0] for r in recs])),
    }


def evaluate(cfg: EvalConfig) -> Path:
    files = StageFiles.for_dir(cfg.out)
    if files.begin(cfg):
        return files.out
    from salmon.reward import InstructableRewardModel

    t0 = time.time()
    metrics: dict[str, Any] = {}
    metrics.update(_rm_metrics(cfg, files.out))
    policies = {"before": cfg.policy_before, **({"after": cfg.policy_after} if cfg.policy_after else {})}
    gens = {k: _generate(v, cfg.prompts, files.out / k / "eval.jsonl", cfg) for k, v in policies.items()}
    red = {k: _generate(v, cfg.redteam, files.out / k / "redteam.jsonl", cfg) for k, v in policies.items()}
    rm = InstructableRewardModel.load(cfg.rm)
    some = next(iter(gens.values()))
    rl_lists = rl_principle_lists(some, cfg)
    heldout = [p.definition for p in load_principles(cfg.heldout_principles)]
    for k in policies:
        for name, value in policy_metrics(rm, gens[k], rl_lists, heldout).items():
            metrics[f"policy.{k}.{name}"] = value
        metrics[f"policy.redteam_refusal_{k}"] = refusal_rate([r["responses"][0] for r in red[k]])
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
