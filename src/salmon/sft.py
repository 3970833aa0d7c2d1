"""Stage: supervised fine-tuning with LoRA ("principle engraving" after Self-Align).

    salmon sft --model default --data sft_data/ --out sft/ [--merge]
    accelerate launch -m salmon.cli sft --model M --data sft_data/ --out sft/

Trains a LoRA adapter with TRL's `SFTTrainer` on (prompt, answer) conversations: the
`dataset/` folder written by `salmon self-align`, any `datasets` folder, or a JSONL
file, each row with `messages` = [{role, content}, ...] ending in an assistant turn.

Loss is on the final assistant turn only. Each conversation is rendered with
`salmon.chat.render_chat`, exactly as `salmon generate` renders prompts: the
tokenizer's chat template, or for a base model without one the plain
"### User:" / "### Assistant:" format, where the answer is followed by the EOS token so
the model learns to stop. The prompt part (everything up to and including the
assistant header) gets label -100; we build the labels ourselves (TRL uses a
pre-tokenised `labels` column as is) because SmolLM2's template has no
`{% generation %}` markers for TRL's `assistant_only_loss`.

Checkpoints go to `out/checkpoints/`; rerunning the same command resumes from the
latest one. The finished folder holds the adapter (`adapter_config.json`,
`adapter_model.safetensors`) and tokenizer, loadable with `models.load_causal_lm(out)`;
`--merge` also writes a merged full model to `out/merged/`. `config.yaml` is written
first and `summary.json` last.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from salmon.chat import has_chat_template, render_chat
from salmon.config import opt
from salmon.errors import SalmonError
from salmon.jsonl import read_jsonl
from salmon.progress import info
from salmon.stage import StageFiles
from salmon.trackers import REPORT_TO_HELP, check_report_to, salmon_callbacks, trainer_report_to

ROLES = ("system", "user", "assistant")


@dataclass
class SFTConfig:
    model: str = opt("default", "Base model: 'default' (embedded SmolLM2-135M-Instruct), a local folder or a hub id")
    data: str = opt("sft_data", "SFT data: a self-align output folder, a datasets folder, or a .jsonl with 'messages'")
    out: str = opt("sft", "Output folder (adapter, checkpoints/, merged/ with --merge)")
    epochs: float = opt(3.0, "Training epochs")
    max_steps: int = opt(-1, "Stop after this many optimizer steps (-1 = use --epochs)")
    learning_rate: float = opt(2e-4, "Peak learning rate (cosine schedule)")
    warmup: float = opt(0.03, "Warmup: a fraction of the steps (< 1) or a number of steps")
    batch_size: int = opt(4, "Sequences per device per step")
    grad_accum: int = opt(1, "Gradient accumulation steps")
    max_length: int = opt(1024, "Truncate conversations to this many tokens")
    lora_r: int = opt(16, "LoRA rank")
    lora_alpha: int = opt(32, "LoRA alpha")
    lora_dropout: float = opt(0.05, "LoRA dropout")
    target_modules: list[str] = opt(["all-linear"], "LoRA target modules (comma-separated names, or all-linear)")
    save_steps: int = opt(50, "Save a checkpoint every N steps")
    save_total_limit: int = opt(2, "Checkpoints kept (oldest removed first); 0: remove them all at the end")
    logging_steps: int = opt(5, "Log the loss every N steps", resume_safe=True)
    seed: int = opt(0, "Random seed (data order, LoRA init, dropout)")
    merge: bool = opt(False, "Also write the base model with the adapter merged in, to out/merged/")
    gradient_checkpointing: bool = opt(False, "Recompute activations to save memory")
    dtype: str = opt("auto", "auto (bfloat16 on GPUs that support it, else float32), float32, bfloat16 or float16")
    device: str = opt("auto", "auto (cuda if present) or cpu; under accelerate launch, accelerate decides",
                      resume_safe=True)
    trust_remote_code: bool = opt(False, "Allow model code from the hub (off by default)")
    progress: bool = opt(True, "Show a progress bar", resume_safe=True)
    report_to: str = opt("tensorboard", REPORT_TO_HELP, resume_safe=True)

    def validate(self) -> None:
        check_report_to(self.report_to)
        if self.save_total_limit < 0:
            raise SalmonError("--save-total-limit must be 0 or more")
        for name in ("batch_size", "grad_accum", "max_length", "lora_r", "lora_alpha", "save_steps",
                     "logging_steps"):
            if getattr(self, name) < 1:
                raise SalmonError(f"--{name.replace('_', '-')} must be at least 1")
        if self.max_steps == 0 or self.max_steps < -1:
            raise SalmonError("--max-steps must be -1 (use --epochs) or at least 1")
        if self.epochs <= 0 or self.learning_rate <= 0 or self.warmup < 0:
            raise SalmonError("--epochs and --learning-rate must be positive and --warmup >= 0")
        if not 0 <= self.lora_dropout < 1:
            raise SalmonError("--lora-dropout must be in [0, 1)")
        if not self.target_modules:
            raise SalmonError("--target-modules must name at least one module (or all-linear)")


def check_messages(messages: Any, where: str) -> list[dict[str, str]]:
    """A conversation ending in an assistant turn after at least one user turn."""
    if not isinstance(messages, list) or len(messages) < 2:
        raise SalmonError(f"{where}: 'messages' must be a list of at least a user and an assistant turn")
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise SalmonError(f"{where}: each message needs 'role' ({', '.join(ROLES)}) and text 'content'")
    if messages[-1]["role"] != "assistant" or not any(m["role"] == "user" for m in messages[:-1]):
        raise SalmonError(f"{where}: the conversation must end with an assistant turn that follows a user turn")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def load_conversations(spec: str) -> list[list[dict[str, str]]]:
    """Conversations from a self-align folder, a `datasets` folder or a JSONL file."""
    path = Path(spec).expanduser()
    if not path.exists():
        raise SalmonError(f"--data {spec}: not found")
    if path.is_dir() and (path / "responses.jsonl").exists() and not (path / "summary.json").exists():
        raise SalmonError(f"--data {spec}: self-align has not finished there (no summary.json); rerun it first")
    if path.is_dir() and (path / "dataset").is_dir():
        path = path / "dataset"
    if path.is_dir():
        rows = _load_dataset_folder(path, spec)
        where = [f"{path}: row {i + 1}" for i in range(len(rows))]
    elif path.suffix == ".jsonl":
        rows = read_jsonl(path)
        where = [f"{path}: record {i + 1}" for i in range(len(rows))]
    else:
        raise SalmonError(f"--data {spec}: expected a self-align folder, a datasets folder or a .jsonl file")
    if rows and "messages" not in rows[0]:
        raise SalmonError(f"{where[0]}: no 'messages' column")
    convs = [check_messages(r.get("messages"), w) for r, w in zip(rows, where, strict=True)]
    if not convs:
        raise SalmonError(f"--data {spec}: no rows to train on (did self-align filter every answer out?)")
    return convs


def _load_dataset_folder(path: Path, spec: str) -> list[dict[str, Any]]:
    import datasets

    state = path / "state.json"
    if state.exists() and json.loads(state.read_text()).get("_data_files") == []:
        return []  # a saved empty dataset, which load_from_disk cannot read back
    try:
        return list(datasets.load_from_disk(str(path)))
    except (FileNotFoundError, ValueError) as e:
        raise SalmonError(f"--data {spec}: not a datasets folder ({str(e).splitlines()[0]})") from None


def encode_conversation(tok, messages: list[dict[str, str]], max_length: int) -> dict[str, list[int]] | None:
    """input_ids and labels (-100 on the prompt) for one conversation, or None when
    truncation to `max_length` leaves no answer token."""
    prompt = render_chat(tok, messages[:-1], add_generation_prompt=True)
    full = render_chat(tok, messages, add_generation_prompt=False)
    if not full.startswith(prompt):
        raise SalmonError("the chat template renders a prompt differently with and without its answer; "
                          "cannot tell where the answer starts (use a model with a standard template)")
    completion = full[len(prompt):]
    plain = not has_chat_template(tok)
    if plain:  # the plain format has no end-of-turn token: end the answer with EOS
        completion = completion.rstrip() + (tok.eos_token or "")
    # Tokenised apart so the boundary is exact: generation sees `prompt` tokenised alone.
    prompt_ids = tok(prompt, add_special_tokens=plain)["input_ids"]
    answer_ids = tok(completion, add_special_tokens=False)["input_ids"]
    ids = (prompt_ids + answer_ids)[:max_length]
    labels = ([-100] * len(prompt_ids) + answer_ids)[:max_length]
    if all(label == -100 for label in labels):
        return None
    return {"input_ids": ids, "labels": labels}


def _base_name(spec: str) -> str:
    """How the adapter names its base, so plain PEFT can load it: a real folder (absolute;
    `default` is the embedded model's cache folder, valid on this machine) or a hub id."""
    from salmon.models import resolve_model

    path = resolve_model(spec)
    return str(Path(path).resolve()) if Path(path).exists() else path


def _load_base(cfg: SFTConfig):
    from salmon.models import is_peft_adapter, load_causal_lm

    if is_peft_adapter(Path(cfg.model).expanduser()):
        raise SalmonError(f"--model {cfg.model}: is a LoRA adapter; train on a full model, e.g. the merged/ "
                          "folder that `salmon sft --merge` writes")
    # Loaded on the CPU; the Trainer (or accelerate) moves it to the training device.
    model = load_causal_lm(cfg.model, dtype=cfg.dtype, device="cpu", trust_remote_code=cfg.trust_remote_code)
    model.train()
    return model


def make_trainer(cfg: SFTConfig, tok, rows: list[dict[str, list[int]]]):
    """A TRL SFTTrainer over pre-tokenised rows, with a fresh LoRA adapter."""
    import datasets
    import torch
    from peft import LoraConfig
    from trl import SFTConfig as TRLSFTConfig
    from trl import SFTTrainer

    from salmon.models import pick_device

    model = _load_base(cfg)
    targets = cfg.target_modules[0] if cfg.target_modules == ["all-linear"] else list(cfg.target_modules)
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=targets, task_type="CAUSAL_LM")
    args = TRLSFTConfig(
        output_dir=str(Path(cfg.out) / "checkpoints"), num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate, lr_scheduler_type="cosine",
        warmup_steps=cfg.warmup if cfg.warmup < 1 else int(cfg.warmup),
        logging_steps=cfg.logging_steps, save_strategy="steps", save_steps=cfg.save_steps,
        save_total_limit=max(cfg.save_total_limit, 1), seed=cfg.seed, data_seed=cfg.seed,
        report_to=trainer_report_to(cfg.report_to, Path(cfg.out)),
        max_length=cfg.max_length, activation_checkpointing=cfg.gradient_checkpointing,
        bf16=model.dtype == torch.bfloat16, fp16=model.dtype == torch.float16,
        use_cpu=pick_device(cfg.device) == "cpu", disable_tqdm=True, dataloader_num_workers=0,
    )
    tok.padding_side = "right"
    ds = datasets.Dataset.from_list(rows)
    try:
        trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, peft_config=lora)
    except ValueError as e:  # e.g. a target module name that the model does not have
        raise SalmonError(f"cannot set up training: {str(e).splitlines()[0]}") from None
    salmon_callbacks(trainer, cfg.progress, Path(cfg.out))
    return trainer


def _save_adapter(trainer, tok, cfg: SFTConfig, out: Path) -> None:
    """Adapter + tokenizer into `out` via a temp folder, so no half-written adapter appears."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    tmp = out / f".adapter.tmp.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tok.padding_side = "left"
    tok.save_pretrained(tmp)
    config_path = tmp / "adapter_config.json"
    adapter_cfg = json.loads(config_path.read_text())
    adapter_cfg["base_model_name_or_path"] = _base_name(cfg.model)
    config_path.write_text(json.dumps(adapter_cfg, indent=2))
    for f in tmp.iterdir():
        os.replace(f, out / f.name)
    tmp.rmdir()
    if cfg.merge:
        merged_tmp = out / f".merged.tmp.{os.getpid()}"
        shutil.rmtree(merged_tmp, ignore_errors=True)
        model.merge_and_unload().save_pretrained(merged_tmp, safe_serialization=True)
        tok.save_pretrained(merged_tmp)
        shutil.rmtree(out / "merged", ignore_errors=True)
        os.replace(merged_tmp, out / "merged")


def sft(cfg: SFTConfig) -> Path:
    files = StageFiles.for_dir(cfg.out)
    convs = load_conversations(cfg.data)
    if files.begin(cfg):
        return files.out
    from transformers.trainer_utils import get_last_checkpoint

    from salmon.models import load_tokenizer

    tok = load_tokenizer(cfg.model, cfg.trust_remote_code)
    encoded = [encode_conversation(tok, m, cfg.max_length) for m in convs]
    rows = [r for r in encoded if r is not None]
    if not rows:
        raise SalmonError(f"--max-length {cfg.max_length}: every prompt fills it, leaving no answer to train on")
    trainer = make_trainer(cfg, tok, rows)
    ckpt_dir = Path(cfg.out) / "checkpoints"
    last = get_last_checkpoint(str(ckpt_dir)) if ckpt_dir.is_dir() else None
    if last:
        info(f"resuming from {last}")
    result = trainer.train(resume_from_checkpoint=last)
    if trainer.is_world_process_zero():
        _save_adapter(trainer, tok, cfg, files.out)
        files.write_summary(_summary(cfg, convs, rows, trainer, result, last))
        if cfg.save_total_limit == 0:  # only after the summary: a kill before it resumes from them
            shutil.rmtree(ckpt_dir, ignore_errors=True)
        info(f"trained on {len(rows)} conversations; adapter in {files.out}")
    return files.out


def _summary(cfg: SFTConfig, convs, rows, trainer, result, resumed: str | None) -> dict[str, Any]:
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    answer_tokens = sum(sum(label != -100 for label in r["labels"]) for r in rows)
    return {
        "conversations": len(convs),
        "trained_rows": len(rows),
        "dropped_prompt_fills_max_length": len(convs) - len(rows),
        "answer_tokens": answer_tokens,
        "prompt_tokens_masked": sum(len(r["labels"]) for r in rows) - answer_tokens,
        "steps": trainer.state.global_step,
        "epochs": trainer.state.epoch,
        "train_loss": result.training_loss,
        "first_logged_loss": losses[0] if losses else None,
        "last_logged_loss": losses[-1] if losses else None,
        "resumed_from": resumed,
        "merged": str(Path(cfg.out) / "merged") if cfg.merge else None,
    }
