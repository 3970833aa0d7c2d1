"""`salmon rl --algo grpo|rloo`: TRL's GRPOTrainer / RLOOTrainer with the instructable RM.

    salmon rl --algo grpo --policy default --rm rm/ --principles rl --out policy/

The reward is `salmon.reward.make_reward_fn` (the RM scores each completion under the
principles in that sample's `principles` column). Each row of the training set is a
prompt with its own principle draw (same sampler as PPO: k by weight, boosted for the
prompt's type, plus the intervention principles); the prompt set is repeated, with
fresh draws, until it covers `--steps`. The PPO shaping terms come as extra reward
functions: `unfinished_penalty` (no stop token) and `length_bonus` when switched on.
KL to the reference uses `--kl-coef` as TRL's beta (the reference is the policy with
its LoRA adapter disabled, so it costs no second copy of the weights).

Writes the policy adapter, `log.jsonl` (TRL's logged metrics per step), TensorBoard
events under `tb/`, TRL's `checkpoint-N/` folders (a rerun resumes from the newest),
`config.yaml` and `summary.json` last.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import PrinterCallback, TrainerCallback

from salmon.errors import SalmonError
from salmon.jsonl import read_jsonl, write_jsonl
from salmon.progress import info
from salmon.rl.shaping import length_bonus
from salmon.stage import StageFiles


def unfinished_penalty_fn(penalty: float, stop_ids: list[int]) -> Callable[..., list[float]]:
    """TRL reward: `penalty` for a completion whose ids do not end with a stop token."""
    stops = set(stop_ids)

    def unfinished_penalty(prompts, completions, completion_ids=None, **kwargs) -> list[float]:
        ids = completion_ids or [[] for _ in completions]
        return [0.0 if row and row[-1] in stops else penalty for row in ids]

    return unfinished_penalty


def length_bonus_fn(coef: float, cap: float, max_len: int) -> Callable[..., list[float]]:
    """TRL reward: `coef * min(len / max_len, cap)` in completion tokens."""

    def length_bonus_reward(prompts, completions, completion_ids=None, **kwargs) -> list[float]:
        lengths = torch.tensor([len(r) for r in (completion_ids or [[] for _ in completions])])
        return length_bonus(lengths, max_len, coef, cap).tolist()

    return length_bonus_reward


def build_dataset(cfg, tokenizer, rows_needed: int):
    """Rows {prompt (chat messages), principles (definitions), principle_names, type, id}."""
    from datasets import Dataset

    from salmon.chat import prompt_messages
    from salmon.rl.ppo import load_principle_sets
    from salmon.rl.rollout import PromptPool, draw_principles
    from salmon.sources import load_prompts

    principles, interventions = load_principle_sets(cfg)
    pool = PromptPool.build(tokenizer, load_prompts(cfg.prompts), cfg.max_prompt_tokens, cfg.system_prompt)
    if any(pool.truncated):
        info(f"{sum(pool.truncated)} prompt(s) longer than --max-prompt-tokens {cfg.max_prompt_tokens} were cut to fit")
    rows = []
    for rep in range(max(1, math.ceil(rows_needed / len(pool.prompts)))):
        for i, p in enumerate(pool.prompts):
            drawn = draw_principles(principles, interventions, cfg.max_principles, p["type"], cfg.type_boost,
                                    cfg.seed, rep, i)
            rows.append({"id": p["id"], "type": p["type"],
                         "prompt": prompt_messages(pool.texts[i], cfg.system_prompt),
                         "principles": [q.definition for q in drawn],
                         "principle_names": [q.name for q in drawn]})
    return Dataset.from_list(rows), sum(pool.truncated)


def trainer_args(cfg, algo: str, out: Path, on_cpu: bool):
    from trl import GRPOConfig, RLOOConfig

    common = dict(
        output_dir=str(out), per_device_train_batch_size=cfg.batch_size * cfg.num_generations,
        num_generations=cfg.num_generations, max_completion_length=cfg.max_new_tokens, max_steps=cfg.steps,
        learning_rate=cfg.lr, num_iterations=cfg.ppo_epochs, epsilon=cfg.clip_range,
        temperature=cfg.temperature, beta=cfg.kl_coef, seed=cfg.seed, logging_steps=1,
        save_steps=cfg.save_every, save_total_limit=cfg.keep_checkpoints, report_to="none",
        use_cpu=on_cpu, bf16=not on_cpu and cfg.dtype in ("auto", "bf16", "bfloat16"),
        max_grad_norm=cfg.max_grad_norm, disable_dropout=True, gradient_checkpointing=False,
        disable_tqdm=not cfg.progress,
    )
    return (GRPOConfig if algo == "grpo" else RLOOConfig)(**common)


def train_trl(cfg, algo: str) -> Path:
    """Run TRL's GRPO or RLOO trainer with the instructable RM as the reward."""
    from peft import LoraConfig
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback
    from trl import GRPOTrainer, RLOOTrainer

    from salmon.models import load_causal_lm, load_tokenizer, pick_device
    from salmon.reward import InstructableRewardModel, make_reward_fn
    from salmon.rl.models import policy_parts
    from salmon.rl.ppo import check_rm_budget, load_principle_sets
    from salmon.rl.rollout import stop_ids

    if policy_parts(cfg.policy)[1] is not None:
        raise SalmonError(f"--policy {cfg.policy}: --algo {algo} needs a full model folder; merge the adapter "
                          "into its base first, or use --algo ppo, which stacks a new adapter on it")
    files = StageFiles.for_dir(cfg.out)
    tok = load_tokenizer(cfg.policy)
    dataset, truncated = build_dataset(cfg, tok, cfg.steps * cfg.batch_size)
    if files.begin(cfg):
        return files.out
    write_jsonl(files.out / "principles_drawn.jsonl",
                [{"row": i, "id": r["id"], "principles": r["principle_names"]} for i, r in enumerate(dataset)])
    device = pick_device(cfg.device)
    model = load_causal_lm(cfg.policy, dtype=cfg.dtype, device=device)
    rm = InstructableRewardModel.load(cfg.rm, device=device, dtype=cfg.dtype)
    check_rm_budget(rm.tokenizer, rm.max_length, *load_principle_sets(cfg), cfg.max_principles)
    rewards: list[Callable[..., list[float]]] = [
        make_reward_fn(rm, normalize=cfg.normalize_reward, batch_size=cfg.rm_batch_size)]
    if cfg.unfinished_penalty:
        rewards.append(unfinished_penalty_fn(cfg.unfinished_penalty, stop_ids(model, tok)))
    if cfg.length_bonus_coef:
        rewards.append(length_bonus_fn(cfg.length_bonus_coef, cfg.length_bonus_cap, cfg.max_new_tokens))
    targets: Any = cfg.lora_target if cfg.lora_target == "all-linear" else cfg.lora_target.split(",")
    peft_config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0,
                             target_modules=targets, task_type="CAUSAL_LM")
    callbacks = [TensorBoardCallback(tb_writer=SummaryWriter(str(files.out / "tb"))), JsonlLog(files.out)]
    trainer_cls = GRPOTrainer if algo == "grpo" else RLOOTrainer
    trainer = trainer_cls(model=model, reward_funcs=rewards, args=trainer_args(cfg, algo, files.out, device == "cpu"),
                          train_dataset=dataset, processing_class=tok, peft_config=peft_config,
                          callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)  # metrics go to log.jsonl and TensorBoard, not stdout
    resume = any(files.out.glob("checkpoint-*"))
    trainer.train(resume_from_checkpoint=True if resume else None)
    if trainer.accelerator.is_main_process:
        trainer.save_model(str(files.out))
        tok.save_pretrained(str(files.out))
        files.write_summary({"algo": algo, "steps": cfg.steps, "prompts_truncated": truncated,
                             "reward_functions": [getattr(f, "__name__", "reward") for f in rewards],
                             "final_log": trainer.state.log_history[-1] if trainer.state.log_history else {}})
        info(f"wrote the policy adapter to {files.out}")
    return files.out


class JsonlLog(TrainerCallback):
    """Append TRL's logged metrics to `log.jsonl`, one record per logging step; on resume,
    records past the checkpoint are dropped first (they are logged again)."""

    def __init__(self, out: Path):
        self.path = out / "log.jsonl"

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero and self.path.exists():
            write_jsonl(self.path, [r for r in read_jsonl(self.path) if r.get("step", 0) <= state.global_step])

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            record = {"step": state.global_step,
                      **{k: v for k, v in logs.items() if isinstance(v, (int, float, str))}}
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
