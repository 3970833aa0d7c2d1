"""Wiring of the reward model's training: the model to train (LoRA or full, on every
layer or only the top ones), the RewardTrainer subclass (twin-keeping batches, a faster
score head, the optional flip term), one training phase, and checkpoints.

Training only the top `trainable_layers` layers makes the step cheaper, not only smaller:
no input of the frozen lower layers needs a gradient, so autograd records nothing there,
and the backward pass (about twice a forward) stops at the first trainable layer.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from salmon.errors import SalmonError
from salmon.progress import info
from salmon.reward.data import TwinBatchSampler
from salmon.reward.model import load_seqcls
from salmon.trackers import salmon_callbacks, trainer_report_to

# `cfg` below is a salmon.reward.train.TrainRMConfig, typed Any: train imports this module.


def init_yes_no_head(model, tokenizer, base_path: str) -> bool:
    """Set the score head to W[Yes] - W[No] of the LM head; False when not possible."""
    import torch

    yes, no = (tokenizer(w, add_special_tokens=False)["input_ids"] for w in ("Yes", "No"))
    if len(yes) != 1 or len(no) != 1:
        return False
    if getattr(model.config.get_text_config(), "tie_word_embeddings", False):
        rows = model.get_input_embeddings().weight[[yes[0], no[0]]]
    else:
        rows = _lm_head_rows(Path(base_path), [yes[0], no[0]])
    if rows is None:
        return False
    with torch.no_grad():
        model.score.weight.copy_((rows[0] - rows[1]).unsqueeze(0).to(model.score.weight.dtype))
    return True


def _lm_head_rows(folder: Path, rows: list[int]):
    from safetensors import safe_open

    for f in sorted(folder.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as st:
            key = next((k for k in st.keys() if k.endswith("lm_head.weight")), None)
            if key:
                weight = st.get_slice(key)
                return [weight[r:r + 1].squeeze(0) for r in rows]
    return None


def top_layers(n_layers: int, keep: int) -> list[int] | None:
    """Indices of the top `keep` of `n_layers` layers; None (all) when keep is 0 or >= n_layers."""
    return list(range(n_layers - keep, n_layers)) if 0 < keep < n_layers else None


def freeze_below_top(model, keep: int) -> None:
    """Full fine-tuning of the top `keep` layers, the final norm and the score head only."""
    core = model.base_model
    layers = top_layers(len(core.layers), keep)
    if layers is None:
        return
    for p in model.parameters():
        p.requires_grad_(False)
    trainable = [core.layers[i] for i in layers] + [getattr(core, "norm", None), model.score]
    for module in filter(None, trainable):
        for p in module.parameters():
            p.requires_grad_(True)


def build_rm_model(cfg: Any, tokenizer, start_from: Path | None = None):
    """The trainable RM: a fresh LoRA (or full) seq-cls model, or one saved at `start_from`.

    `cfg.trainable_layers` > 0 puts LoRA (or full training) on the top layers only."""
    from salmon.models import pick_device, pick_dtype, resolve_model

    base = resolve_model(cfg.model)
    dtype = pick_dtype(cfg.dtype, pick_device("auto"))
    if start_from is not None and not cfg.lora:
        model = load_seqcls(str(start_from), tokenizer.pad_token_id, dtype, cfg.trust_remote_code)
        freeze_below_top(model, cfg.trainable_layers)
        return model
    model = load_seqcls(base, tokenizer.pad_token_id, dtype, cfg.trust_remote_code)
    if start_from is None and cfg.head_init == "yes_no" and not init_yes_no_head(model, tokenizer, base):
        info("--head-init yes_no: no single-token Yes/No rows found; the score head starts random")
    if not cfg.lora:
        freeze_below_top(model, cfg.trainable_layers)
        return model
    from peft import LoraConfig, PeftModel, get_peft_model

    if start_from is not None:
        return PeftModel.from_pretrained(model, str(start_from), is_trainable=True)
    layers = top_layers(len(model.base_model.layers), cfg.trainable_layers)
    # PEFT takes a layer list only with named targets: every linear layer of the blocks
    targets = "all-linear" if layers is None else layer_linear_names(model)
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=targets, modules_to_save=["score"], task_type="SEQ_CLS",
                      layers_to_transform=layers, layers_pattern="layers" if layers else None)
    return get_peft_model(model, lora)


def layer_linear_names(model) -> list[str]:
    """Names of the linear projections inside the transformer blocks (q_proj, up_proj, ...)."""
    import torch

    return sorted({name.rsplit(".", 1)[-1] for name, mod in model.base_model.layers.named_modules()
                   if isinstance(mod, torch.nn.Linear)})


def stop_after_callback(steps: int):
    """A TrainerCallback that saves a checkpoint and stops after `steps` steps."""
    from transformers import TrainerCallback

    class StopAfter(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step >= steps:
                control.should_save = True
                control.should_training_stop = True

    return StopAfter()


def collate_with_twins(pad_token_id: int):
    """TRL's preference collator, passing through each row's `twin` unit and, as `split`
    (chosen rows first, like input_ids), where each input's principles begin."""
    import torch
    from trl.trainer.reward_trainer import DataCollatorForPreference

    base = DataCollatorForPreference(pad_token_id=pad_token_id)
    extra = ("twin", "chosen_split", "rejected_split")

    def collate(examples: list[dict[str, Any]]) -> dict[str, Any]:
        out = base([{k: v for k, v in e.items() if k not in extra} for e in examples])
        if "twin" in examples[0]:
            out["twin"] = torch.tensor([e["twin"] for e in examples], dtype=torch.long)
        if "chosen_split" in examples[0]:
            out["split"] = torch.tensor([e["chosen_split"] for e in examples] + [e["rejected_split"] for e in examples])
        return out

    return collate


def make_trainer_class(units: list[list[int]] | None, batch_size: int, seed: int, head_lr_mult: float,
                       flip_coefficient: float = 0.0, share_prefix: bool = False, bt_coefficient: float = 1.0):
    """RewardTrainer with twin-keeping batches (when `units` is given), a separate learning
    rate for the score head, the training loss `bt_coefficient` x TRL's Bradley-Terry term +
    `flip_coefficient` x `losses.flip_loss`, and (`share_prefix`) each distinct exchange of
    a batch run once (`reward.shared`). Evaluation loss stays the plain Bradley-Terry term."""
    from trl import RewardTrainer

    class SalmonRewardTrainer(RewardTrainer):
        def _get_train_sampler(self, train_dataset=None):
            if units is not None:
                return TwinBatchSampler(units, batch_size, seed)
            return super()._get_train_sampler(train_dataset)

        def _set_signature_columns_if_needed(self):
            super()._set_signature_columns_if_needed()
            self._signature_columns = [*self._signature_columns, "twin", "chosen_split", "rejected_split"]

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            twin, split = inputs.pop("twin", None), inputs.pop("split", None)
            if share_prefix and split is not None and bool((split > 0).all()):
                from salmon.reward.shared import shared_prefix_logits, split_batch

                prefixes, suffixes = split_batch(inputs["input_ids"], inputs["attention_mask"], split)
                logits = shared_prefix_logits(model, prefixes, suffixes, self.processing_class.pad_token_id)
                model = precomputed(logits)  # TRL's loss and metrics, on these scores
            loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
            if self.model.training and (flip_coefficient or bt_coefficient != 1.0):
                from salmon.reward.losses import flip_loss

                loss = bt_coefficient * loss
                if flip_coefficient and twin is not None:
                    chosen, rejected = outputs.logits.squeeze(-1).chunk(2)
                    loss = loss + flip_coefficient * flip_loss(chosen - rejected, twin)
            return (loss, outputs) if return_outputs else loss

        def create_optimizer(self, model=None):
            if head_lr_mult == 1.0 or self.optimizer is not None:
                return super().create_optimizer(model)
            import torch

            opt_model = self.model if model is None else model
            head, rest = [], []
            for n, p in opt_model.named_parameters():
                if p.requires_grad:
                    (head if ".score." in f".{n}" or n.startswith("score.") else rest).append(p)
            groups = [{"params": rest, "weight_decay": self.args.weight_decay}]
            if head:
                groups.append({"params": head, "weight_decay": 0.0, "lr": self.args.learning_rate * head_lr_mult})
            self.optimizer = torch.optim.AdamW(groups, lr=self.args.learning_rate, betas=(self.args.adam_beta1, self.args.adam_beta2),
                                               eps=self.args.adam_epsilon)
            return self.optimizer

    return SalmonRewardTrainer


def loss_weights(cfg: Any) -> tuple[float, bool, float]:
    """(flip coefficient, share_prefix, Bradley-Terry coefficient) of `cfg`'s objective:
    `contrastive` trains the flip term alone (weight --flip-coefficient, 1 when unset)."""
    if cfg.objective == "contrastive":
        return cfg.flip_coefficient or 1.0, cfg.share_prefix, 0.0
    return cfg.flip_coefficient, cfg.share_prefix, 1.0


def precomputed(logits):
    """A stand-in model whose call returns `logits` (so TRL's compute_loss can use them)."""
    from transformers.modeling_outputs import SequenceClassifierOutput

    def call(**_inputs):
        return SequenceClassifierOutput(logits=logits)

    return call


def run_phase(model, tokenizer, train_ds, eval_ds, out_dir: Path, cfg: Any, epochs: float,
              units: list[list[int]] | None = None, evaluate_at_end: bool = True) -> dict[str, Any]:
    """Train one phase with RewardTrainer; resumes from out_dir/checkpoint-*; returns metrics.

    `units` (from `twin_units`, indices into `train_ds`) keeps twins in one batch when
    `cfg.pair_batches` is on. The held-out metrics are those logged at the last step, else
    a final evaluation, unless `evaluate_at_end` is off (the caller scores `eval_ds` itself)."""
    from trl import RewardConfig

    last = last_complete_checkpoint(out_dir)
    if last and not cfg.resume:
        raise SalmonError(f"--out {out_dir}: has checkpoints; drop --no-resume to continue, or choose another --out")
    if last:
        info(f"resuming from {last}")
    bf16 = _use_bf16(model) or cfg.mixed_precision == "bf16"  # a bf16 model trains in bf16 anyway
    args = RewardConfig(
        output_dir=str(out_dir), per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, learning_rate=cfg.learning_rate, num_train_epochs=epochs,
        max_steps=cfg.max_steps or -1, warmup_steps=cfg.warmup, lr_scheduler_type="cosine",
        logging_steps=cfg.logging_steps, save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=max(cfg.save_total_limit, 2),
        eval_strategy="steps" if eval_ds is not None and cfg.eval_steps else "no", eval_steps=cfg.eval_steps or None,
        seed=cfg.seed, data_seed=cfg.seed, max_length=None, report_to=trainer_report_to(cfg.report_to, out_dir),
        disable_tqdm=True, use_cpu=not _has_cuda(), bf16=bf16,
        dataloader_num_workers=0, pad_to_multiple_of=None, gradient_checkpointing=cfg.gradient_checkpointing,
    )
    callbacks = [stop_after_callback(cfg.stop_after)] if cfg.stop_after else []
    trainer_cls = make_trainer_class(units if cfg.pair_batches else None, cfg.batch_size, cfg.seed, cfg.head_lr_mult,
                                     *loss_weights(cfg))
    trainer = trainer_cls(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                          processing_class=tokenizer, callbacks=callbacks,
                          data_collator=collate_with_twins(tokenizer.pad_token_id))
    salmon_callbacks(trainer, cfg.progress, out_dir)
    with contextlib.redirect_stdout(sys.stderr):  # the trainer prints its logs; stdout stays clean
        result = trainer.train(resume_from_checkpoint=last)
        done = eval_ds is not None and trainer.state.global_step >= trainer.state.max_steps
        ev = (final_eval(trainer.state.log_history, trainer.state.global_step)
              or (trainer.evaluate() if evaluate_at_end else {})) if done else {}
    state = trainer.state
    runtime = result.metrics.get("train_runtime") or 0.0
    start = int(Path(last).name.rsplit("-", 1)[-1]) if last else 0
    pairs = (state.global_step - start) * cfg.batch_size * cfg.grad_accum * args.world_size
    metrics = {"steps": state.global_step, "max_steps": state.max_steps, "train_loss": result.training_loss,
               "runtime_s": runtime, "pairs_this_run": pairs, "processes": args.world_size, "pairs_per_s": pairs / runtime if runtime else None,
               "finished": state.global_step >= state.max_steps, "trainer": trainer,
               "mixed_precision": "bf16" if bf16 else "no"}
    if ev:
        metrics.update(heldout_accuracy=ev.get("eval_accuracy"), heldout_loss=ev.get("eval_loss"))
    return metrics


MIXED_PRECISION = ("no", "bf16")


def final_eval(log_history: list[dict[str, Any]], step: int) -> dict[str, Any]:
    """The held-out evaluation the trainer already logged at `step` (its last), so it is
    not run twice; {} when there is none."""
    for entry in reversed(log_history):
        if "eval_loss" in entry and entry.get("step") == step:
            return entry
    return {}


def last_complete_checkpoint(out_dir: Path) -> str | None:
    """The newest `out_dir/checkpoint-N` the trainer finished writing, or None.

    The trainer writes a checkpoint folder in place, `trainer_state.json` last, so a kill
    during a save leaves a newest folder without it (or with half of it) that resuming
    would choke on. Such folders are skipped, and the main process removes them (the
    rerun writes that step again)."""
    found = []
    for p in out_dir.glob("checkpoint-*") if out_dir.is_dir() else []:
        if p.is_dir() and p.name.split("-", 1)[1].isdigit():
            found.append((int(p.name.split("-", 1)[1]), p))
    for _, p in sorted(found, reverse=True):
        try:
            json.loads((p / "trainer_state.json").read_text())
            return str(p)
        except (OSError, ValueError):
            if os.environ.get("RANK", "0") == "0":  # one process removes it; the others only skip it
                info(f"{p}: incomplete (interrupted while saving); removing it")
                shutil.rmtree(p, ignore_errors=True)
    return None


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _use_bf16(model) -> bool:
    import torch

    return next(model.parameters()).dtype == torch.bfloat16


