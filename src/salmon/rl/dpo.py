"""`salmon rl --algo dpo`: TRL's DPOTrainer on the self-judged preferences (no reward model).

    salmon rl --algo dpo --policy default --preferences runs/default/aggregate --out dpo/
    salmon rl --algo dpo --preferences runs/default/aggregate --principles-in-system --out dpo_p/

`--preferences` is an aggregate folder (converted as `salmon export-preferences` does) or
an `export-preferences` folder. Plain: one row per pair, labels voted under the principles
as written; `--principles-in-system`: every example with its principle list in a system
turn (the model learns to follow the principles it is shown, as the reward model does).
A fresh LoRA adapter is trained; the reference is the same model with the adapter off,
so no second copy of the weights. `--steps` optimizer steps of `--batch-size` pairs,
`--beta` is DPO's beta, sequences are cut to `--max-prompt-tokens` + `--max-new-tokens`.

Writes the adapter (loadable with `AutoPeftModelForCausalLM`), `log.jsonl`, tracker files,
TRL's `checkpoint-N/` (a rerun resumes), `config.yaml`, `summary.json` last.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from salmon.errors import SalmonError
from salmon.progress import info
from salmon.stage import StageFiles
from salmon.trackers import salmon_callbacks, trainer_report_to

TRL_COLUMNS = ("prompt", "chosen", "rejected")


def dpo_args(cfg, out: Path, on_cpu: bool):
    from trl import DPOConfig

    return DPOConfig(
        output_dir=str(out), per_device_train_batch_size=cfg.batch_size, max_steps=cfg.steps,
        learning_rate=cfg.learning_rate, beta=cfg.beta, max_length=cfg.max_prompt_tokens + cfg.max_new_tokens,
        seed=cfg.seed, data_seed=cfg.seed, logging_steps=1, save_steps=cfg.save_steps,
        save_total_limit=max(cfg.save_total_limit, 1), report_to=trainer_report_to(cfg.report_to, out),
        use_cpu=on_cpu, bf16=not on_cpu and cfg.dtype in ("auto", "bf16", "bfloat16"),
        max_grad_norm=cfg.max_grad_norm, gradient_checkpointing=cfg.gradient_checkpointing,
        disable_tqdm=True, dataloader_num_workers=0,
    )


def preference_dataset(cfg, tok):
    """The training rows in TRL's format (prompt/chosen/rejected only). Text rows become
    chat messages when the model has a chat template, so DPO sees prompts rendered as
    `salmon generate` rendered them (TRL concatenates plain strings without the template)."""
    from datasets import Dataset

    from salmon.chat import has_chat_template
    from salmon.preferences import load_preferences, trl_row

    if not cfg.preferences:
        raise SalmonError("--algo dpo needs --preferences: an aggregate folder or an export-preferences folder")
    rows = load_preferences(cfg.preferences, cfg.principles_in_system)
    if not rows:
        raise SalmonError(f"--preferences {cfg.preferences}: no preference rows")
    missing = [c for c in TRL_COLUMNS if c not in rows[0]]
    if missing:
        raise SalmonError(f"--preferences {cfg.preferences}: missing column '{missing[0]}'")
    if cfg.principles_in_system and not isinstance(rows[0]["prompt"], list):
        raise SalmonError(f"--preferences {cfg.preferences}: exported without principles; export again with "
                          "--principles-in-system, or pass the aggregate folder")
    if not isinstance(rows[0]["prompt"], list) and has_chat_template(tok):
        rows = [trl_row(r["prompt"], r["chosen"], r["rejected"], True) for r in rows]
    return Dataset.from_list([{c: r[c] for c in TRL_COLUMNS} for r in rows])


def train_dpo(cfg) -> Path:
    """Train a LoRA adapter on the preferences with DPO; returns the output folder."""
    import datasets
    from peft import LoraConfig
    from trl import DPOTrainer

    from salmon.models import load_causal_lm, load_tokenizer, pick_device
    from salmon.rl.models import policy_parts
    from salmon.rl.trl_algos import JsonlLog, drop_checkpoints, train_and_save

    if policy_parts(cfg.policy)[1] is not None:
        raise SalmonError(f"--policy {cfg.policy}: --algo dpo needs a full model folder; merge the adapter "
                          "into its base first (salmon sft --merge writes one)")
    files = StageFiles.for_dir(cfg.out)
    tok = load_tokenizer(cfg.policy)
    dataset = preference_dataset(cfg, tok)
    if files.begin(cfg):
        return files.out
    device = pick_device(cfg.device)
    model = load_causal_lm(cfg.policy, dtype=cfg.dtype, device=device)
    targets: Any = cfg.lora_target if cfg.lora_target == "all-linear" else cfg.lora_target.split(",")
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0, target_modules=targets,
                      task_type="CAUSAL_LM")
    tok.padding_side = "right"
    shown = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # TRL tokenises with `map`: one progress style, salmon's bar
    try:
        trainer = DPOTrainer(model=model, ref_model=None, args=dpo_args(cfg, files.out, device == "cpu"),
                             train_dataset=dataset, processing_class=tok, peft_config=lora,
                             callbacks=[JsonlLog(files.out)])
    finally:
        if shown:
            datasets.enable_progress_bars()
    salmon_callbacks(trainer, cfg.progress, files.out)
    tok.padding_side = "left"  # as salmon saves every tokenizer (generation pads on the left)
    if train_and_save(trainer, tok, files.out):
        logs = [h for h in trainer.state.log_history if "loss" in h]
        keys = ("loss", "rewards/accuracies", "rewards/margins")
        files.write_summary({"algo": "dpo", "steps": trainer.state.global_step, "pairs": len(dataset),
                             "conversational": isinstance(dataset[0]["prompt"], list),
                             "principles_in_system": cfg.principles_in_system,
                             "first": {k: logs[0].get(k) for k in keys} if logs else {},
                             "last": {k: logs[-1].get(k) for k in keys} if logs else {}})
        drop_checkpoints(files.out, cfg.save_total_limit)
        info(f"wrote the DPO policy adapter to {files.out}")
    return files.out
