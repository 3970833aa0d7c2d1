"""Stage 4: RL against the instructable reward model (PPO, as in the paper).

    salmon rl --policy default --rm rm/ --prompts builtin --principles rl --out policy/
    accelerate launch --multi_gpu --num_processes 2 -m salmon.cli rl --device cpu ...   # DDP on CPU
    accelerate launch --config_file configs/accelerate/deepspeed_zero2.yaml -m salmon.cli rl ...

(accelerate 1.15's `--cpu` flag starts one process whatever --num_processes says; the
multi-process launcher with `--device cpu` gives DDP over gloo on CPU.)

Each step: draw prompts and, per prompt, principles (rollout.py); sample responses;
score them with the RM under those principles; shape the reward (shaping.py); then
several PPO epochs of clipped policy and value updates. Policy, reference, value and
reward share one base model (models.py). `--algo grpo|rloo` hands the same reward to
TRL's trainers instead (trl_algos.py).

Output folder: the policy LoRA adapter (`models.load_causal_lm(out)` loads it),
`log.jsonl` (one record per step), TensorBoard events under `tb/`, `checkpoint-N/`
(adapters, value head, optimizer state; safetensors + JSON), `config.yaml`, and
`summary.json` written last. Rerunning the same command resumes from the newest
checkpoint and reproduces the losses of an uninterrupted run: all randomness is drawn
from (seed, step, rank), and the optimizer state travels in the checkpoint.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from salmon.config import opt
from salmon.errors import SalmonError
from salmon.principles import BOOST_MODES
from salmon.progress import info, progress_bar
from salmon.rl.principle_sets import check_rm_budget, load_principle_sets
from salmon.stage import StageFiles
from salmon.trackers import REPORT_TO_HELP, StepTracker, check_report_to

ALGOS = ("ppo", "grpo", "rloo", "dpo")


@dataclass
class RLConfig:
    algo: str = opt("ppo", "ppo (ours, as in the paper), grpo or rloo (TRL trainers), or dpo (TRL, offline on --preferences)")
    policy: str = opt("default", "Starting policy: 'default', a model folder, or a LoRA adapter folder (e.g. the SFT output)")
    rm: str = opt("rm", "Reward model folder (from `salmon train-rm`)")
    prompts: str = opt("builtin", "Prompts: builtin, eval, redteam, or a .jsonl/.json/.parquet file")
    principles: str = opt("rl", "Principles sampled per prompt: a YAML file or a built-in name")
    intervention: str | None = opt("intervention", "Principles always added (reward-hacking guards); empty for none")
    max_principles: int = opt(3, "Principles drawn per prompt (without replacement, by weight)")
    type_boost: float = opt(2.0, "Boost for principles tagged with the prompt's type (see --type-boost-mode)")
    type_boost_mode: str = opt("multiply", "multiply: weight x type_boost; add: weight + type_boost (the "
                                           "reference adds 128 for reasoning and red-team prompts)")
    type_boost_types: list[str] = opt([], "Prompt types whose tagged principles are boosted (empty: every type)")
    out: str = opt("policy", "Output folder")
    steps: int = opt(100, "Rollout + update steps")
    batch_size: int = opt(8, "Prompts per step per process")
    mini_batches: int = opt(1, "Minibatches per PPO epoch")
    ppo_epochs: int = opt(4, "PPO epochs per rollout")
    learning_rate: float = opt(1e-4, "AdamW learning rate (policy and value adapters, value head)")
    max_new_tokens: int = opt(128, "Maximum response tokens")
    max_prompt_tokens: int = opt(256, "Query budget: longer prompts are cut at the end and counted")
    temperature: float = opt(0.7, "Sampling temperature (log-probs use the same temperature)")
    kl_coef: float = opt(0.01, "Per-token KL penalty to the reference policy")
    kl_estimator: str = opt("k1", "KL estimator per token: k1 or k3")
    kl_clamp: bool = opt(False, "Clamp the per-token KL estimate at >= 0 (the reference clamps k1)")
    gamma: float = opt(1.0, "Discount")
    lam: float = opt(0.95, "GAE lambda")
    clip_range: float = opt(0.2, "PPO ratio clip")
    clip_range_value: float = opt(0.2, "Value clip")
    vf_coef: float = opt(0.1, "Value loss weight")
    ent_coef: float = opt(0.0, "Entropy bonus weight")
    max_grad_norm: float = opt(1.0, "Gradient clipping (global norm)")
    whiten_rewards: bool = opt(True, "Scale token rewards to unit variance per batch (the reference does not)")
    reward_scale: float = opt(1.0, "Multiply token rewards by this before GAE (the reference: 10, with rewards "
                                    "not whitened)")
    value_head_init: str = opt("copy", "Value head start: copy (the RM's score head) or zero (the reference; it "
                                       "helped the steering benchmark but lowered the default run's held-out RM "
                                       "score, README); the value LoRA is the RM's in both")
    normalize_reward: bool = opt(True, "Standardise RM scores with the RM's training mean and std")
    unfinished_penalty: float = opt(-6.0, "Added to the score of a response with no stop token (0 = off)")
    center_scores: str = opt("group", "Baseline subtracted from the shaped scores: group (mean of the batch's rows "
                                      "with the same principles, else the batch mean), batch, or none "
                                      "(a contrastive RM's per-principle offset otherwise moves the stop token)")
    penalty_relative: bool = opt(True, "Add the penalty to the score (paper); off = replace the score by it")
    length_bonus_coef: float = opt(0.0, "Length bonus coef * min(len/max_new_tokens, cap); paper used 5 (0 = off)")
    length_bonus_cap: float = opt(0.8, "Cap of the length bonus fraction")
    lora_r: int = opt(16, "LoRA rank of the policy adapter")
    lora_alpha: int = opt(32, "LoRA alpha of the policy adapter")
    lora_target: str = opt("all-linear", "LoRA target modules: all-linear or comma-separated names")
    share_base: bool = opt(True, "One copy of the base weights for policy, reference, value and reward")
    gradient_checkpointing: bool = opt(False, "Recompute activations in the backward pass (less memory, slower)")
    rm_batch_size: int = opt(8, "Reward-model scoring batch size")
    num_generations: int = opt(4, "grpo/rloo: completions per prompt")
    system_prompt: str | None = opt(None, "Optional system message")
    seed: int = opt(0, "Random seed")
    save_steps: int = opt(25, "Checkpoint every N steps")
    save_total_limit: int = opt(2, "Checkpoints kept (oldest removed first); 0: remove them all at the end")
    stop_after: int | None = opt(None, "Stop (with a checkpoint) after this many steps; rerun to resume", resume_safe=True)
    dtype: str = opt("auto", "auto, float32, bfloat16 or float16")
    device: str = opt("auto", "auto (cuda if present), cpu or cuda", resume_safe=True)
    progress: bool = opt(True, "Show a progress bar", resume_safe=True)
    report_to: str = opt("tensorboard", REPORT_TO_HELP, resume_safe=True)
    preferences: str | None = opt(None, "dpo: an aggregate folder or an export-preferences folder")
    principles_in_system: bool = opt(False, "dpo: train on every example with its principles in a system turn")
    beta: float = opt(0.1, "dpo: DPO's beta (how strongly the policy is tied to the reference)")

    def validate(self) -> None:
        if self.algo not in ALGOS:
            raise SalmonError(f"--algo {self.algo}: expected one of {', '.join(ALGOS)}")
        for name in ("steps", "batch_size", "mini_batches", "ppo_epochs", "max_new_tokens",
                     "max_prompt_tokens", "max_principles", "save_steps", "num_generations"):
            if getattr(self, name) < 1:
                raise SalmonError(f"--{name.replace('_', '-')} must be at least 1")
        if self.batch_size % self.mini_batches:
            raise SalmonError(f"--batch-size {self.batch_size} must be a multiple of --mini-batches {self.mini_batches}")
        if self.type_boost_mode not in BOOST_MODES:
            raise SalmonError(f"--type-boost-mode {self.type_boost_mode}: expected one of {', '.join(BOOST_MODES)}")
        if self.value_head_init not in ("copy", "zero"):
            raise SalmonError(f"--value-head-init {self.value_head_init}: expected copy or zero")
        if self.kl_estimator not in ("k1", "k3"):
            raise SalmonError(f"--kl-estimator {self.kl_estimator}: expected k1 or k3")
        from salmon.rl.shaping import CENTERING

        if self.center_scores not in CENTERING:
            raise SalmonError(f"--center-scores {self.center_scores}: expected one of {', '.join(CENTERING)}")
        check_report_to(self.report_to)
        if self.save_total_limit < 0:
            raise SalmonError("--save-total-limit must be 0 or more")
        if self.temperature <= 0:
            raise SalmonError("--temperature must be above 0 (PPO needs sampled responses)")


def rl(cfg: RLConfig) -> Path:
    """Train a policy against the instructable RM with `cfg.algo`; returns the output folder."""
    from salmon.rl.models import check_rm_folder

    if cfg.algo != "dpo":
        check_rm_folder(cfg.rm)
    runners = {"ppo": train_ppo, "grpo": _trl("grpo"), "rloo": _trl("rloo"), "dpo": _trl("dpo")}
    return runners[cfg.algo](cfg)


def _trl(algo: str):
    def run(cfg: RLConfig) -> Path:
        if algo == "dpo":
            from salmon.rl.dpo import train_dpo

            return train_dpo(cfg)
        from salmon.rl.trl_algos import train_trl

        return train_trl(cfg, algo)
    return run


def train_ppo(cfg: RLConfig) -> Path:
    from accelerate import Accelerator

    from salmon.rl import checkpoint as ckpt
    from salmon.rl.models import LoraSettings, load_rl_models
    from salmon.rl.rollout import PromptPool
    from salmon.sources import load_prompts

    files = StageFiles.for_dir(cfg.out)
    principles, interventions = load_principle_sets(cfg)
    prompts = load_prompts(cfg.prompts)
    if files.begin(cfg):
        return files.out
    acc = Accelerator(cpu=cfg.device == "cpu")
    lora = LoraSettings(cfg.lora_r, cfg.lora_alpha, 0.0, cfg.lora_target)
    models = load_rl_models(cfg.policy, cfg.rm, lora, share_base=cfg.share_base, device=str(acc.device),
                            dtype=cfg.dtype, seed=cfg.seed, rm_batch_size=cfg.rm_batch_size,
                            checkpointing=cfg.gradient_checkpointing, value_head=cfg.value_head_init)
    check_rm_budget(models.reward.tokenizer, int(models.reward.meta["max_length"]), principles, interventions,
                    cfg.max_principles)
    params = [p for p in models.actor_critic.parameters() if p.requires_grad]
    import torch

    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=0.0)
    start = ckpt.restore_latest(files.out, models, optimizer)
    if acc.state.deepspeed_plugin is not None:  # no dataloader to infer it from
        acc.state.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = cfg.batch_size // cfg.mini_batches
    model, optimizer = acc.prepare(models.actor_critic, optimizer)
    pool = PromptPool.build(models.tokenizer, prompts, cfg.max_prompt_tokens, cfg.system_prompt)
    if any(pool.truncated):
        info(f"{sum(pool.truncated)} prompt(s) longer than --max-prompt-tokens {cfg.max_prompt_tokens} were cut to fit")
    log = StepLog(files.out, start, acc.is_main_process, cfg.report_to)
    end = min(cfg.steps, cfg.stop_after) if cfg.stop_after else cfg.steps
    with log, progress_bar(cfg.steps, "rl", "steps", cfg.progress and acc.is_main_process, completed=start) as advance:
        for step in range(start, end):
            t0 = time.time()
            exp, record = experience(models, pool, principles, interventions, cfg, step, acc)
            record.update(ppo_update(model, optimizer, exp, cfg, acc, step))
            record.update(_reduce(acc, record), step=step + 1, seconds=round(time.time() - t0, 2))
            record["principles_drawn"] = _gather_lists(acc, record["principles_drawn"])
            log.write(record)
            advance(1)
            if (step + 1) % cfg.save_steps == 0 or step + 1 == end:
                ckpt.save(files.out, step + 1, models, optimizer, acc, max(cfg.save_total_limit, 1))
    if end < cfg.steps:
        info(f"stopped after step {end} of {cfg.steps}; rerun the same command to resume")
        return files.out
    in_sync = _ranks_in_sync(acc, params)
    if acc.is_main_process:
        ckpt.save_policy(files.out, models)
        files.write_summary({**_summary(files.out, cfg, pool, models), "processes": acc.num_processes,
                             "ranks_in_sync": in_sync})
        if cfg.save_total_limit == 0:  # only after the summary: a kill before it resumes from them
            ckpt.remove_all(files.out)
    acc.wait_for_everyone()
    if acc.is_main_process:
        info(f"wrote the policy adapter to {files.out}")
    return files.out


def experience(models, pool, principles, interventions, cfg: RLConfig, step: int, acc):
    """One rollout on this process's prompts: samples, scores, shaped rewards, advantages."""
    import torch

    from salmon.rl import shaping as S
    from salmon.rl.models import response_logits
    from salmon.rl.rollout import batch_indices, draw_principles, sample_responses

    rank, world = acc.process_index, acc.num_processes
    idx = batch_indices(len(pool.prompts), step, cfg.batch_size, rank, world, cfg.seed)
    drawn = [draw_principles(principles, interventions, cfg.max_principles, pool.prompts[i]["type"],
                             cfg.type_boost, cfg.seed, step, i, cfg.type_boost_mode, cfg.type_boost_types)
             for i in idx]
    samples = sample_responses(models.actor_critic.policy, models.tokenizer, [pool.queries[i] for i in idx],
                               max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                               seed=_seed(cfg.seed, step, rank, 0))
    ids, mask, start, rmask = samples.input_ids, samples.attention_mask, samples.start, samples.response_mask
    tokens = samples.response_tokens
    with torch.no_grad():
        logits, values = models.actor_critic(ids, mask, start)
        logprobs = S.logprobs_from_logits(logits / cfg.temperature, tokens)
        ref = response_logits(models.reference, ids, mask, start) / cfg.temperature
        ref_logprobs = S.logprobs_from_logits(ref, tokens)
        del logits, ref
    raw = torch.tensor(models.reward.score([pool.texts[i] for i in idx], samples.texts,
                                           [[p.definition for p in ps] for ps in drawn]), device=ids.device)
    rm = raw
    if cfg.normalize_reward:
        meta = models.reward.meta
        rm = (raw - float(meta.get("reward_mean", 0.0))) / max(float(meta.get("reward_std", 1.0)), 1e-6)
    scores = S.shaped_scores(rm, samples.finished, samples.lengths, penalty=cfg.unfinished_penalty,
                             relative=cfg.penalty_relative, max_len=cfg.max_new_tokens,
                             bonus_coef=cfg.length_bonus_coef, bonus_cap=cfg.length_bonus_cap)
    centred = S.center_scores(scores, [tuple(p.definition for p in ps) for ps in drawn], cfg.center_scores)
    kl = S.kl_per_token(logprobs, ref_logprobs, cfg.kl_estimator, clamp=cfg.kl_clamp) * rmask
    rewards = S.token_rewards(centred, kl, rmask, cfg.kl_coef)
    if cfg.whiten_rewards:
        rewards = S.whiten(rewards, rmask, shift_mean=False)
    rewards = rewards * cfg.reward_scale
    values = values * rmask
    advantages, returns = S.gae(rewards, values, cfg.gamma, cfg.lam, rmask)
    advantages = S.whiten(advantages, rmask)
    exp = dict(ids=ids, mask=mask, start=start, tokens=tokens, rmask=rmask, logprobs=logprobs,
               values=values, advantages=advantages, returns=returns)
    record = {"rm_score": rm.mean().item(), "rm_score_raw": raw.mean().item(), "shaped_score": scores.mean().item(),
              "kl": kl.sum(1).mean().item(), "response_length": samples.lengths.float().mean().item(),
              "stop_rate": samples.finished.float().mean().item(),
              "truncated_prompts": float(sum(pool.truncated[i] for i in idx)),
              "principles_drawn": [{"id": pool.prompts[i]["id"], "principles": [p.name for p in ps]}
                                   for i, ps in zip(idx, drawn, strict=True)]}
    return exp, record


def ppo_update(model, optimizer, exp: dict[str, Any], cfg: RLConfig, acc, step: int) -> dict[str, float]:
    """`ppo_epochs` passes over the rollout in shuffled minibatches, one optimizer step each."""
    import torch

    from salmon.rl import shaping as S

    n = exp["ids"].shape[0]
    size = n // cfg.mini_batches
    gen = torch.Generator().manual_seed(_seed(cfg.seed, step, acc.process_index, 1))
    stats: dict[str, list[float]] = {k: [] for k in ("policy_loss", "value_loss", "entropy", "clip_frac",
                                                       "value_clip_frac", "approx_kl", "grad_norm")}
    for _ in range(cfg.ppo_epochs):
        order = torch.randperm(n, generator=gen)
        for s in range(0, n, size):
            mb = order[s:s + size].to(exp["ids"].device)
            logits, values = model(exp["ids"][mb], exp["mask"][mb], exp["start"])
            logits = logits / cfg.temperature
            rmask = exp["rmask"][mb]
            logprobs = S.logprobs_from_logits(logits, exp["tokens"][mb])
            pg, clip_frac, approx_kl = S.policy_loss(logprobs, exp["logprobs"][mb], exp["advantages"][mb],
                                                     rmask, cfg.clip_range)
            vf, vclip = S.value_loss(values, exp["values"][mb], exp["returns"][mb], rmask, cfg.clip_range_value)
            entropy = S.masked_mean(S.entropy_from_logits(logits), rmask)
            loss = pg + cfg.vf_coef * vf - cfg.ent_coef * entropy
            optimizer.zero_grad(set_to_none=True)
            acc.backward(loss)
            norm = acc.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], cfg.max_grad_norm)
            optimizer.step()
            for k, v in (("policy_loss", pg), ("value_loss", vf), ("entropy", entropy), ("clip_frac", clip_frac),
                         ("value_clip_frac", vclip), ("approx_kl", approx_kl), ("grad_norm", norm)):
                stats[k].append(float("nan") if v is None else v.item() if hasattr(v, "item") else float(v))
    return {k: sum(v) / len(v) for k, v in stats.items()}


def _seed(seed: int, step: int, rank: int, purpose: int) -> int:
    """A distinct, reproducible seed per (run seed, step, process, purpose)."""
    return (seed * 1_000_003 + step * 1_009 + rank * 101 + purpose) % (2**31 - 1)


def _reduce(acc, record: dict[str, Any]) -> dict[str, float]:
    """Average the numeric entries over processes."""
    import torch

    keys = [k for k, v in record.items() if isinstance(v, float)]
    if acc.num_processes == 1:
        return {k: record[k] for k in keys}
    t = acc.reduce(torch.tensor([record[k] for k in keys], device=acc.device), reduction="mean")
    return {k: float(v) for k, v in zip(keys, t.tolist(), strict=True)}


def _ranks_in_sync(acc, params) -> bool:
    """True when every process ends with the same trainable weights (DDP kept them equal)."""
    import torch

    total = torch.stack([p.detach().double().sum() for p in params]).sum().reshape(1).to(acc.device)
    gathered = acc.gather(total)
    return bool(torch.all(gathered == gathered[0]))


def _gather_lists(acc, items: list) -> list:
    if acc.num_processes == 1:
        return items
    from accelerate.utils import gather_object

    return gather_object(items)


class StepLog:
    """log.jsonl (one record per step) and tracker scalars (`--report-to`), written by the
    main process. On resume, records after the checkpoint's step are dropped (they are
    recomputed), and TensorBoard purges its events from that step on."""

    def __init__(self, out: Path, start: int, enabled: bool, report_to: str = "tensorboard"):
        self.path, self.enabled, self._fh, self._tb = out / "log.jsonl", enabled, None, None
        if not enabled:
            return
        from salmon.jsonl import recover_jsonl, write_jsonl

        # a kill -9 mid-write leaves a torn last line: dropped with the records past the checkpoint
        kept = [r for r in recover_jsonl(self.path) if r.get("step", 0) <= start] if self.path.exists() else []
        write_jsonl(self.path, kept)
        self._fh = open(self.path, "a", encoding="utf-8")
        self._tb = StepTracker(report_to, out, start)

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._fh.flush()
        self._tb.log({k: v for k, v in record.items() if isinstance(v, float)}, record["step"], "rl/")

    def __enter__(self) -> StepLog:
        return self

    def __exit__(self, *exc) -> None:
        if self._fh:
            self._fh.close()
            self._tb.close()


def _summary(out: Path, cfg: RLConfig, pool, models) -> dict[str, Any]:
    from salmon.jsonl import read_jsonl

    records = read_jsonl(out / "log.jsonl")
    last = records[-max(1, len(records) // 10):]
    keys = ("rm_score", "shaped_score", "kl", "response_length", "stop_rate", "entropy", "value_loss")
    return {"algo": "ppo", "steps": cfg.steps, "shared_base": models.shared,
            "prompts": len(pool.prompts), "truncated_prompts": sum(pool.truncated),
            "first": {k: records[0][k] for k in keys} if records else {},
            "last_10pct_mean": {k: sum(r[k] for r in last) / len(last) for k in keys} if records else {}}
