"""RL benchmarks: does the choice of principles steer the policy, and what does sharing
one base model save?

    salmon bench steer --rm rm/ --json        # brevity vs thoroughness, same RM and prompts
    salmon bench rl-memory --json             # peak RSS of one PPO step, shared vs separate

`make_untrained_rm` writes a reward-model folder in the trained format (a seq-cls LoRA
adapter with a score head) without training; the memory benchmark uses it when no
--rm is given, since memory does not depend on what the weights are.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from salmon.config import opt
from salmon.errors import SalmonError


def make_untrained_rm(base_spec: str, out: str | Path, seed: int = 0, r: int = 8,
                      randomize: bool = False, max_length: int = 512) -> Path:
    """An RM folder in the trained on-disk format (PEFT seq-cls LoRA + score head +
    tokenizer + salmon_rm.json). `randomize` also makes the LoRA B matrices nonzero, so
    the adapter changes the model (tests use this to see weights travel)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification

    from salmon.models import load_tokenizer, resolve_model

    out = Path(out)
    base = resolve_model(base_spec)
    tok = load_tokenizer(base)
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    model.config.pad_token_id = tok.pad_token_id
    cfg = LoraConfig(r=r, lora_alpha=2 * r, target_modules="all-linear", task_type="SEQ_CLS")
    model = get_peft_model(model, cfg)
    if randomize:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0.0, 0.05)
    model.save_pretrained(str(out))
    cfg_path = out / "adapter_config.json"
    adapter_cfg = json.loads(cfg_path.read_text())
    adapter_cfg["base_model_name_or_path"] = base
    cfg_path.write_text(json.dumps(adapter_cfg, indent=2))
    tok.save_pretrained(str(out))
    (out / "salmon_rm.json").write_text(json.dumps({
        "base_model": base_spec, "template": "rm", "max_length": max_length,
        "reward_mean": 0.0, "reward_std": 1.0}))
    return out


# ---- steering -----------------------------------------------------------------------

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
    eval_max_new_tokens: int = opt(96, "Response tokens in the before/after measurement")
    ppo_epochs: int = opt(2, "PPO epochs per rollout")
    learning_rate: float = opt(3e-4, "Learning rate")
    temperature: float = opt(0.7, "Sampling temperature (training and measurement)")
    seed: int = opt(0, "Random seed")
    out: str = opt("bench_steer", "Folder for the two RL runs (a rerun reuses finished runs)")
    json: bool = opt(False, "Print only the JSON result")


def steer(cfg: SteerBenchConfig) -> None:
    """Two PPO runs that differ only in their principle file; length and RM score of the
    policy before and after each, measured on the same held-out prompts and seeds."""
    import time

    from salmon.models import load_causal_lm
    from salmon.principles import load_principles
    from salmon.reward.model import InstructableRewardModel
    from salmon.rl.ppo import RLConfig, rl

    if len(cfg.sets) != 2:
        raise SalmonError(f"--sets: expected two principle files, got {len(cfg.sets)}")
    names = [Path(s).stem for s in cfg.sets]
    defs = {n: [p.definition for p in load_principles(s)] for n, s in zip(names, cfg.sets, strict=True)}
    before = _measure(load_causal_lm(cfg.policy, device="cpu"), cfg)
    runs: dict[str, dict] = {}
    for name, spec in zip(names, cfg.sets, strict=True):
        t0 = time.time()
        out = rl(RLConfig(policy=cfg.policy, rm=cfg.rm, prompts=cfg.prompts, principles=spec, intervention=None,
                          out=str(Path(cfg.out) / name), steps=cfg.steps, batch_size=cfg.batch_size,
                          max_new_tokens=cfg.max_new_tokens, ppo_epochs=cfg.ppo_epochs, learning_rate=cfg.learning_rate,
                          temperature=cfg.temperature, unfinished_penalty=0.0, seed=cfg.seed,
                          save_steps=cfg.steps, device="cpu", report_to="none"))
        runs[name] = {"after": _measure(load_causal_lm(str(out), device="cpu"), cfg),
                      "train_seconds": round(time.time() - t0, 1)}
    rm = InstructableRewardModel.load(cfg.rm, device="cpu")
    result: dict = {"policy": cfg.policy, "rm": cfg.rm, "steps": cfg.steps, "prompts_per_step": cfg.batch_size,
                    "max_new_tokens": cfg.max_new_tokens, "eval_responses": len(before["texts"]), "runs": {}}
    for name in names:
        result["runs"][name] = {
            "before": _describe(before, rm, defs, name), "after": _describe(runs[name]["after"], rm, defs, name),
            "train_seconds": runs[name]["train_seconds"]}
    a, b = names
    after_len = {n: result["runs"][n]["after"]["mean_length"] for n in names}
    result[f"length_ratio_{b}_over_{a}_after"] = round(after_len[b] / max(after_len[a], 1e-9), 3)
    result["length_ratio_before"] = 1.0  # both runs start from the same policy and samples
    _emit(result, cfg.json)


def _measure(lm, cfg: SteerBenchConfig) -> dict:
    """Responses of `lm` to the evaluation prompts (fixed seeds), with token lengths."""
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
        out = sample_responses(role, tok, [f[1] for f in chunk], max_new_tokens=cfg.eval_max_new_tokens,
                               temperature=cfg.temperature, seed=cfg.seed + s)
        texts += out.texts
        lengths += out.lengths.tolist()
        finished += out.finished.tolist()
    return {"prompts": [f[0] for f in fitted], "texts": texts, "lengths": lengths, "finished": finished}


def _describe(m: dict, rm, defs: dict[str, list[str]], own: str) -> dict:
    n = len(m["texts"])
    scores = {name: rm.score(m["prompts"], m["texts"], [d] * n) for name, d in defs.items()}
    return {"mean_length": round(sum(m["lengths"]) / n, 2), "stop_rate": round(sum(m["finished"]) / n, 3),
            "mean_rm_score": round(sum(scores[own]) / n, 4),
            "mean_rm_score_under": {name: round(sum(s) / n, 4) for name, s in scores.items()}}


# ---- memory -------------------------------------------------------------------------

@dataclass
class MemoryBenchConfig:
    model: str = opt("default", "Policy base model ('default' = embedded SmolLM2-135M-Instruct)")
    rm: str | None = opt(None, "Reward model folder; default: an untrained RM adapter on --model (memory "
                               "does not depend on the weights)")
    batch_size: int = opt(2, "Prompts in the PPO step")
    max_new_tokens: int = opt(16, "Response tokens in the PPO step")
    repeats: int = opt(3, "Fresh processes per configuration (the median is reported)")
    json: bool = opt(False, "Print only the JSON result")


def rl_memory(cfg: MemoryBenchConfig) -> None:
    """Peak RSS of one PPO step with one shared base vs separate copies of policy,
    reference, value and reward, each in a fresh process, beside one model doing inference.

    Each configuration runs `repeats` times: the allocator makes single peaks vary by a
    few hundred MB, so the median is reported with the range."""
    import statistics
    import tempfile

    modes = ("inference", "shared", "shared_checkpointing", "separate")
    with tempfile.TemporaryDirectory(prefix="salmon-rl-memory-") as tmp:
        rm = cfg.rm or str(make_untrained_rm(cfg.model, Path(tmp) / "rm"))
        args = {"model": cfg.model, "rm": rm, "batch_size": cfg.batch_size, "max_new_tokens": cfg.max_new_tokens}
        runs = {m: [_child(m, args) for _ in range(cfg.repeats)] for m in modes}
    peaks = {m: [r["peak_rss_mb"] for r in runs[m]] for m in modes}
    med = {m: statistics.median(v) for m, v in peaks.items()}
    base = statistics.median(r["baseline_rss_mb"] for r in runs["inference"])
    one = med["inference"]
    result = {
        "model": cfg.model, "batch_size": cfg.batch_size, "max_new_tokens": cfg.max_new_tokens,
        "repeats": cfg.repeats,
        "baseline_rss_mb": base,  # the interpreter with torch/transformers/peft imported, no model
        "peak_rss_mb_median": med, "peak_rss_mb_range": {m: [min(v), max(v)] for m, v in peaks.items()},
        "over_one_inference_model": {m: round(med[m] / one, 3) for m in modes[1:]},
        "over_one_inference_model_above_baseline": {  # None when the model is too small to show
            m: round((med[m] - base) / (one - base), 3) if one - base > 1 else None for m in modes[1:]},
        "separate_over_shared": round(med["separate"] / med["shared"], 3),
        "target_shared_le_1_5x": {m: med[m] <= 1.5 * one for m in ("shared", "shared_checkpointing")},
        "shared_is_shared": runs["shared"][0].get("shared"),
    }
    _emit(result, cfg.json)


def _child(mode: str, args: dict) -> dict:
    cmd = [sys.executable, "-m", "salmon.rl.bench", "memory-child", mode, json.dumps(args)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
        raise SalmonError(f"rl-memory: the {mode} run failed ({tail})")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _peak_mb() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def memory_child(mode: str, args: dict) -> dict:
    """Run in a fresh process: one inference batch, or one PPO step (shared, shared with
    gradient checkpointing, or separate copies)."""
    import peft  # noqa: F401 - counted in the baseline, like torch and transformers
    import torch
    import transformers  # noqa: F401

    baseline = _peak_mb()
    if mode == "inference":
        from salmon.chat import user_prompt
        from salmon.models import load_causal_lm, load_tokenizer
        from salmon.rl.models import Role
        from salmon.rl.rollout import sample_responses

        tok = load_tokenizer(args["model"])
        lm = load_causal_lm(args["model"], device="cpu")
        queries = [tok(user_prompt(tok, p))["input_ids"] for p in _prompts(args["batch_size"])]
        sample_responses(Role(lm), tok, queries, max_new_tokens=args["max_new_tokens"], temperature=0.7, seed=0)
        return {"mode": mode, "baseline_rss_mb": baseline, "peak_rss_mb": _peak_mb()}
    from accelerate import Accelerator

    from salmon.principles import load_principles
    from salmon.rl.models import LoraSettings, load_rl_models
    from salmon.rl.ppo import RLConfig, experience, ppo_update
    from salmon.rl.rollout import PromptPool

    rl_cfg = RLConfig(rm=args["rm"], batch_size=args["batch_size"], ppo_epochs=1,
                      max_new_tokens=args["max_new_tokens"])
    models = load_rl_models(args["model"], args["rm"], LoraSettings(), share_base=mode != "separate",
                            device="cpu", checkpointing=mode == "shared_checkpointing")
    acc = Accelerator(cpu=True)
    opt_ = torch.optim.AdamW([p for p in models.actor_critic.parameters() if p.requires_grad], lr=1e-5)
    pool = PromptPool.build(models.tokenizer, [{"id": str(i), "prompt": p, "type": "general"}
                                               for i, p in enumerate(_prompts(args["batch_size"]))], 256)
    exp, _ = experience(models, pool, load_principles("rl"), load_principles("intervention"), rl_cfg, 0, acc)
    ppo_update(models.actor_critic, opt_, exp, rl_cfg, acc, 0)
    return {"mode": mode, "baseline_rss_mb": baseline, "peak_rss_mb": _peak_mb(), "shared": models.shared}


def _prompts(n: int) -> list[str]:
    from salmon.sources import load_prompts

    return [p["prompt"] for p in load_prompts("eval", limit=n)]


def _emit(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2))
        return
    for key, value in result.items():
        print(f"{key:28s} {value}")


if __name__ == "__main__":  # the fresh processes of `rl_memory`
    if len(sys.argv) == 4 and sys.argv[1] == "memory-child":
        print(json.dumps(memory_child(sys.argv[2], json.loads(sys.argv[3]))))
