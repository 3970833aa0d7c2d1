"""Does the choice of principles steer the policy? Two PPO runs that differ only in their
principle file, repeated over seeds, with the policy's answer length and RM score before
and after each, measured on the same held-out prompts.

    salmon bench steer --rm rm/ --seeds 0,1,2 --json

Per seed, `by_seed` gives the mean answer lengths `<set>_before` / `<set>_after` and their
ratio; `targets_met` says whether the first set shrank the answers to <= 0.67x and the
second grew them to >= 1.5x (`steer_targets`), and `cap_ok` whether the evaluation cap
left room to grow (>= 3x the starting policy's mean length, `cap_room`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from salmon.config import opt
from salmon.errors import SalmonError
from salmon.rl.bench import _emit

CAP_ROOM = 3.0  # the evaluation cap must be at least this many times the starting mean length
AUTO_CAPS = (256, 512, 1024, 2048)  # evaluation caps tried in turn when none is given
SHRINK, GROW = 0.67, 1.5  # the targets: first set's mean length after <= SHRINK x before, second's >= GROW x


@dataclass
class SteerBenchConfig:
    policy: str = opt("default", "Starting policy ('default' = embedded SmolLM2-135M-Instruct)")
    rm: str = opt("rm", "Trained reward model folder (the same RM for both runs)")
    sets: list[str] = opt(["brevity", "thoroughness"], "The two principle files (or built-in names) to compare")
    prompts: str = opt("builtin", "Training prompts")
    eval_prompts: str = opt("eval", "Prompts for the before/after measurement")
    eval_limit: int = opt(12, "Evaluation prompts used")
    eval_samples: int = opt(2, "Samples per evaluation prompt")
    steps: int = opt(20, "PPO steps per run")
    batch_size: int = opt(4, "Prompts per PPO step")
    max_new_tokens: int = opt(48, "Response tokens in training")
    value_head_init: str | None = opt("zero", "Value head start for the PPO runs: zero (moved both sets the right "
                                              "way, docs/steering.md) or copy (salmon rl's default)")
    center_scores: str | None = opt(None, "Baseline of the PPO scores: group, batch or none (default: salmon rl's)")
    unfinished_penalty: float = opt(0.0, "Added to the RM score of a training response with no stop token (the "
                                         "paper's -6 punishes thoroughness at a small --max-new-tokens; 0 = off)")
    eval_max_new_tokens: int = opt(0, "Response tokens in the before/after measurement; 0 = the smallest of "
                                      "256/512/1024/2048 that is at least 3x the starting policy's mean answer "
                                      "length on the first seed (room for answers to grow)")
    ppo_epochs: int = opt(2, "PPO epochs per rollout")
    learning_rate: float = opt(3e-4, "Learning rate")
    temperature: float = opt(0.7, "Sampling temperature (training and measurement)")
    seed: int = opt(0, "Random seed (used when --seeds is not given)")
    seeds: list[int] | None = opt(None, "Seeds to repeat the benchmark with, e.g. 0,1,2 (default: --seed)")
    out: str = opt("bench_steer", "Folder for the RL runs, out/seed<N>/<set> (a rerun reuses finished runs)")
    json: bool = opt(False, "Print only the JSON result")


def steer(cfg: SteerBenchConfig) -> None:
    """For each seed: measure the starting policy, run PPO once per principle set, measure
    each trained policy; then score every measurement with the RM and print the result."""
    from salmon.principles import load_principles
    from salmon.reward.model import InstructableRewardModel

    names, seeds = _check(cfg)
    defs = {n: [p.definition for p in load_principles(s)] for n, s in zip(names, cfg.sets, strict=True)}
    measured, cap = [], cfg.eval_max_new_tokens
    for seed in seeds:
        before, cap = _measure_start(cfg, seed, cap)  # an automatic cap is chosen on the first seed only
        start = _mean(before["lengths"])
        _warn_room(seed, "--eval-max-new-tokens", cap, start, CAP_ROOM, "so answers have little room to grow")
        # training answers cut below the growth target: PPO can learn when to stop, not to write more
        _warn_room(seed, "--max-new-tokens", cfg.max_new_tokens, start, GROW,
                   "so PPO never sees a finished answer as long as the growth target")
        runs = {n: _train_and_measure(cfg, seed, n, spec, cap) for n, spec in zip(names, cfg.sets, strict=True)}
        measured.append((seed, before, runs))
    rm = InstructableRewardModel.load(cfg.rm, device="cpu")
    by_seed = []
    for seed, before, runs in measured:
        described = {"before": _describe(before, rm, defs)}
        for n, run in runs.items():
            described[n] = {"after": _describe(run["after"], rm, defs), "train_seconds": run["train_seconds"],
                            "length_change_ci95": _paired_ci(before["lengths"], run["after"]["lengths"])}
        by_seed.append(seed_entry(seed, described, names))
    _emit(steer_result(cfg, names, by_seed, len(measured[0][1]["texts"]), cap), cfg.json)


def _measure_start(cfg: SteerBenchConfig, seed: int, cap: int) -> tuple[dict, int]:
    """The starting policy's answers at `cap`; with cap 0, at the first of AUTO_CAPS that
    leaves CAP_ROOM x room over their mean length (the last one if none does)."""
    from salmon.models import load_causal_lm

    lm = load_causal_lm(cfg.policy, device="cpu")
    for tried in [cap] if cap else AUTO_CAPS:
        measured = _measure(lm, cfg, seed, tried)
        room = cap_room(tried, [_mean(measured["lengths"])])
        if room is None or room >= CAP_ROOM:
            break
    return measured, tried


def _warn_room(seed: int, flag: str, tokens: int, start_mean: float, need: float, why: str) -> None:
    """One stderr line when a token limit leaves less than `need` x the starting mean length."""
    room = cap_room(tokens, [start_mean])
    if room is not None and room < need:
        print(f"warning: seed {seed}: {flag} {tokens} is {room:.2f}x the starting policy's mean "
              f"answer length {start_mean:.1f} tokens (below {need:g}x, {why})", file=sys.stderr)


def _check(cfg: SteerBenchConfig) -> tuple[list[str], list[int]]:
    """Settings a user can get wrong, checked before any model runs; (set names, seeds)."""
    from salmon.rl.models import check_rm_folder

    check_rm_folder(cfg.rm)
    if len(cfg.sets) != 2:
        raise SalmonError(f"--sets: expected two principle files, got {len(cfg.sets)}")
    names = [Path(s).stem for s in cfg.sets]
    if names[0] == names[1]:
        raise SalmonError(f"--sets: the two sets need different file names, got {names[0]} twice")
    seeds = list(cfg.seeds) if cfg.seeds is not None else [cfg.seed]
    if not seeds or len(set(seeds)) != len(seeds):
        raise SalmonError(f"--seeds: expected one or more different seeds, got {seeds}")
    if cfg.eval_max_new_tokens < 0:
        raise SalmonError("--eval-max-new-tokens must be 0 (automatic) or more")
    return names, seeds


def _train_and_measure(cfg: SteerBenchConfig, seed: int, name: str, spec: str, cap: int) -> dict:
    import time

    from salmon.models import load_causal_lm
    from salmon.rl.ppo import RLConfig, rl

    t0 = time.time()
    chosen = {k: getattr(cfg, k) for k in ("value_head_init", "center_scores") if getattr(cfg, k) is not None}
    out = rl(RLConfig(**chosen, policy=cfg.policy, rm=cfg.rm, prompts=cfg.prompts, principles=spec, intervention=None,
                      out=str(Path(cfg.out) / f"seed{seed}" / name), steps=cfg.steps, batch_size=cfg.batch_size,
                      max_new_tokens=cfg.max_new_tokens, ppo_epochs=cfg.ppo_epochs, learning_rate=cfg.learning_rate,
                      temperature=cfg.temperature, unfinished_penalty=cfg.unfinished_penalty, seed=seed,
                      save_steps=cfg.steps, device="cpu", report_to="none"))
    return {"after": _measure(load_causal_lm(str(out), device="cpu"), cfg, seed, cap),
            "train_seconds": round(time.time() - t0, 1)}


def _measure(lm, cfg: SteerBenchConfig, seed: int, cap: int) -> dict:
    """Responses of `lm` (at most `cap` tokens) to the evaluation prompts (fixed seeds), with token lengths."""
    from salmon.models import load_tokenizer
    from salmon.rl.models import Role
    from salmon.rl.rollout import fit_prompt, sample_responses
    from salmon.sources import load_prompts

    tok = load_tokenizer(cfg.policy)
    prompts = [p["prompt"] for p in load_prompts(cfg.eval_prompts, limit=cfg.eval_limit)] * cfg.eval_samples
    fitted = [fit_prompt(tok, p, 256) for p in prompts]
    role = Role(lm, list(lm.peft_config) if hasattr(lm, "peft_config") else None)
    texts, lengths, finished = [], [], []
    for s in range(0, len(fitted), 8):
        chunk = fitted[s:s + 8]
        out = sample_responses(role, tok, [f[1] for f in chunk], max_new_tokens=cap,
                               temperature=cfg.temperature, seed=seed + s)
        texts += out.texts
        lengths += out.lengths.tolist()
        finished += out.finished.tolist()
    return {"prompts": [f[0] for f in fitted], "texts": texts, "lengths": lengths, "finished": finished}


def _describe(m: dict, rm, defs: dict[str, list[str]]) -> dict:
    """Mean length, stop rate and mean RM score under each set's principles."""
    n = len(m["texts"])
    scores = {name: rm.score(m["prompts"], m["texts"], [d] * n) for name, d in defs.items()}
    return {"mean_length": round(_mean(m["lengths"]), 2), "stop_rate": round(sum(m["finished"]) / n, 3),
            "mean_rm_score_under": {name: round(sum(s) / n, 4) for name, s in scores.items()}}


def _paired_ci(before: list[int], after: list[int]) -> list[float]:
    """95% bootstrap interval of mean(after) - mean(before) length, paired by prompt slot
    (the same prompt and sample index before and after)."""
    from salmon.stats import diff_ci

    return [round(v, 2) for v in diff_ci(before, after, paired=True)]


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


# ---- pure assembly ------------------------------------------------------------------

def _ratio(after: float, before: float) -> float | None:
    return round(after / before, 3) if before > 0 else None


def seed_entry(seed: int, described: dict, names: list[str]) -> dict:
    """One `by_seed` entry from one seed's descriptions: `described["before"]` (the starting
    policy) and `described[<set>]["after"]` for each set, each with `mean_length`."""
    before = described["before"]
    entry: dict = {"seed": seed}
    for n in names:
        entry[f"{n}_before"] = before["mean_length"]
        entry[f"{n}_after"] = described[n]["after"]["mean_length"]
    for n in names:
        entry[f"{n}_ratio"] = _ratio(entry[f"{n}_after"], entry[f"{n}_before"])
    entry["runs"] = {n: {"before": _own(before, n), "after": _own(described[n]["after"], n),
                         **{k: v for k, v in described[n].items() if k != "after"}} for n in names}
    return entry


def _own(description: dict, name: str) -> dict:
    """A description with `mean_rm_score`: the score under set `name`'s own principles."""
    return {**description, "mean_rm_score": description["mean_rm_score_under"][name]}


def steer_targets(by_seed: list[dict], shrink: float = SHRINK, grow: float = GROW,
                  names: list[str] | None = None) -> dict:
    """Per seed: did the first set's mean length after RL fall to <= `shrink` x before, and
    the second's rise to >= `grow` x before? `all` only when every seed meets both.
    `names` defaults to the sets named by the entries' `<set>_before` keys, in order."""
    per_seed = []
    for e in by_seed:
        a, b = names or [k[:-len("_before")] for k in e if k.endswith("_before")]
        shrunk = e[f"{a}_after"] <= shrink * e[f"{a}_before"]
        grew = e[f"{b}_after"] >= grow * e[f"{b}_before"]
        per_seed.append({"seed": e["seed"], a: shrunk, b: grew, "both": shrunk and grew})
    return {"shrink": shrink, "grow": grow, "by_seed": per_seed,
            "all": bool(per_seed) and all(s["both"] for s in per_seed)}


def cap_room(cap: int, before_means: list[float]) -> float | None:
    """The evaluation cap over the starting policy's mean answer length, for the seed with
    the longest answers (the least room); None when no answer has any tokens."""
    longest = max(before_means, default=0.0)
    return round(cap / longest, 3) if longest > 0 else None


def steer_result(cfg: SteerBenchConfig, names: list[str], by_seed: list[dict], n_eval: int, cap: int) -> dict:
    """The printed result: settings, `by_seed`, targets, cap room; with one seed also the
    earlier top-level `runs` and length ratio."""
    a, b = names
    starts = [e[f"{a}_before"] for e in by_seed]
    room = cap_room(cap, starts)
    result: dict = {"policy": cfg.policy, "rm": cfg.rm, "steps": cfg.steps, "prompts_per_step": cfg.batch_size,
                    "max_new_tokens": cfg.max_new_tokens, "unfinished_penalty": cfg.unfinished_penalty,
                    "value_head_init": cfg.value_head_init, "center_scores": cfg.center_scores,
                    "eval_max_new_tokens": cap,
                    "eval_cap_automatic": not cfg.eval_max_new_tokens,
                    "eval_responses": n_eval, "seeds": [e["seed"] for e in by_seed], "by_seed": by_seed,
                    "targets_met": steer_targets(by_seed, names=names),
                    "eval_cap_over_start_length": room, "cap_ok": room is not None and room >= CAP_ROOM,
                    "train_tokens_over_start_length": cap_room(cfg.max_new_tokens, starts)}
    if len(by_seed) == 1:
        only = by_seed[0]
        result["runs"] = only["runs"]
        result[f"length_ratio_{b}_over_{a}_after"] = round(only[f"{b}_after"] / max(only[f"{a}_after"], 1e-9), 3)
        result["length_ratio_before"] = 1.0  # both runs start from the same policy and samples
    return result
