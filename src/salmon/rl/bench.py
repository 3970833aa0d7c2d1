"""RL benchmarks: does the choice of principles steer the policy, and what does sharing
one base model save?

    salmon bench steer --rm rm/ --json        # brevity vs thoroughness (salmon.rl.steer_bench)
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
