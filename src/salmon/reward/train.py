"""Stage: train the instructable reward model on `salmon aggregate`'s output.

    salmon train-rm --model default --data rm_data/ --out rm/
    accelerate launch --multi_gpu --num_processes 2 -m salmon.cli train-rm --data rm_data/ --out rm/

(`--multi_gpu` is accelerate's multi-process launcher; without GPUs it runs DDP on the
CPU, while accelerate's `--cpu` flag alone starts a single process.)

A sequence-classification head (one score) on the base model, LoRA on every linear
projection (the head trained in full through `modules_to_save`), and the Bradley-Terry
loss -log sigmoid(r_chosen - r_rejected) through TRL's `RewardTrainer`, fed with token
ids built here by `reward.template` (so the principles, which come last, are never cut).

- The head starts as the difference of the language-model rows for "Yes" and "No"
  (`--head-init yes_no`): the input ends by asking whether the reply follows the
  principles, so the untrained RM already reads them as the model's own yes/no log-odds.
- Batches keep each row next to its negated twin (same pair_id, chosen and rejected
  swapped, another principle list: `twin_units`), so the part of the gradient that
  ignores the principles cancels within the batch (`--no-pair-batches`: plain shuffling).
  Rows without a twin in the data are trained as single rows; none is synthesised.
- The score head learns `--head-lr-mult` (10) times faster than the LoRA weights.
- Held-out pairs are chosen by a hash of `pair_id`, so no pass of a held-out pair leaks
  into training; their accuracy is logged every `--eval-steps`.
- Checkpoints (`out/checkpoint-N`) every `--save-steps`; a rerun resumes from the newest
  one exactly (data order, RNG, optimiser). TensorBoard logs go to `out/runs`.
- `--pmp-data FILE` (chosen/rejected JSONL, no principles) trains first under one
  generic principle for `--pmp-epochs`, as SALMON's preference-model pre-training.
Writes `out/` (adapter + tokenizer + `salmon_rm.json`, then `summary.json` last).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from salmon.config import opt
from salmon.errors import SalmonError
from salmon.jsonl import atomic_write_text, iter_jsonl
from salmon.progress import info
from salmon.reward.merge import save_merged
from salmon.reward.model import InstructableRewardModel, load_seqcls
from salmon.reward.template import RM_TEMPLATES, TEMPLATE, encode_rm_input, template_for
from salmon.stage import StageFiles
from salmon.trackers import REPORT_TO_HELP, check_report_to, salmon_callbacks, trainer_report_to

REQUIRED_COLUMNS = ("prompt", "chosen", "rejected", "principles")


@dataclass
class TrainRMConfig:
    model: str = opt("default", "Base model: 'default' (embedded SmolLM2-135M-Instruct), a local folder or a hub id")
    data: str = opt("rm_data", "Training data: a `salmon aggregate` folder, or a JSONL file with the same columns")
    out: str = opt("rm", "Output folder for the reward model")
    epochs: float = opt(1.0, "Passes over the training pairs")
    max_steps: int | None = opt(None, "Optimiser steps per phase (overrides --epochs); 0 writes the "
                                      "untrained (zero-shot) reward model")
    batch_size: int = opt(4, "Pairs per device per step")
    grad_accum: int = opt(1, "Gradient accumulation steps")
    learning_rate: float = opt(2e-4, "Peak learning rate")
    head_lr_mult: float = opt(10.0, "The score head's learning rate as a multiple of --learning-rate (1: one rate for all)")
    pair_batches: bool = opt(True, "Keep each row and its negated twin (same pair_id, chosen and rejected "
                                   "swapped, other principles) next to each other in one batch, so gradients "
                                   "that ignore the principles cancel (off: plain shuffling)")
    gradient_checkpointing: bool = opt(False, "Recompute activations in the backward pass (less memory, slower)")
    warmup: float = opt(0.05, "Warmup: a fraction of the steps (< 1) or a number of steps")
    lora: bool = opt(True, "Train LoRA adapters (off: fine-tune every weight)")
    lora_r: int = opt(16, "LoRA rank")
    lora_alpha: int = opt(32, "LoRA alpha")
    lora_dropout: float = opt(0.0, "LoRA dropout")
    templates: list[str] = opt(["rm"], "RM prompt wordings rotated over training examples by pair id "
                                       f"(known: {', '.join(RM_TEMPLATES)}); scoring always uses 'rm'")
    head_init: str = opt("yes_no", "Score head start: yes_no (the LM's Yes-minus-No logit) or random")
    max_length: int = opt(512, "Maximum tokens per input; the response is cut first, principles never")
    eval_fraction: float = opt(0.1, "Share of pair_ids held out for accuracy (hash of pair_id)")
    eval_steps: int = opt(50, "Evaluate held-out accuracy every N steps")
    save_steps: int = opt(50, "Save a checkpoint every N steps")
    logging_steps: int = opt(5, "Log every N steps")
    norm_samples: int = opt(64, "Training pairs scored after training for reward_mean / reward_std")
    pmp_data: str | None = opt(None, "Optional human preference JSONL {prompt, chosen, rejected} trained on first")
    pmp_epochs: float = opt(1.0, "Passes over --pmp-data")
    pmp_principle: str = opt("The response is helpful, honest and harmless, and does what the user asked.",
                             "The principle shown with --pmp-data pairs")
    limit: int | None = opt(None, "Use only the first N training rows")
    seed: int = opt(0, "Random seed")
    dtype: str = opt("auto", "auto, float32, bfloat16 or float16")
    resume: bool = opt(True, "Continue from the newest out/checkpoint-* when there is one", resume_safe=True)
    stop_after: int | None = opt(None, "Save a checkpoint and stop once training reaches this step; rerun to go on",
                                 resume_safe=True)
    save_total_limit: int = opt(0, "Checkpoints kept (oldest removed first); 0: remove them all at the end",
                                resume_safe=True)
    report_to: str = opt("tensorboard", REPORT_TO_HELP, resume_safe=True)
    merge: bool = opt(False, "Also write out/merged/: the LoRA merged into the base, score head included")
    trust_remote_code: bool = opt(False, "Allow model code from the hub (off by default)")
    progress: bool = opt(True, "Show a progress bar", resume_safe=True)

    def validate(self) -> None:
        for name in ("batch_size", "grad_accum", "lora_r", "eval_steps", "save_steps", "logging_steps"):
            if getattr(self, name) < 1:
                raise SalmonError(f"--{name.replace('_', '-')} must be at least 1")
        if self.max_length < 64:
            raise SalmonError("--max-length must be at least 64")
        if not 0 <= self.eval_fraction < 1:
            raise SalmonError("--eval-fraction must be in [0, 1)")
        bad = [t for t in self.templates if t not in RM_TEMPLATES]
        if bad or not self.templates:
            raise SalmonError(f"--templates: unknown template {bad[0] if bad else ''!r} (known: {', '.join(RM_TEMPLATES)})")
        if self.head_init not in ("yes_no", "random"):
            raise SalmonError(f"--head-init {self.head_init}: expected yes_no or random")
        if self.max_steps is not None and self.max_steps < 0:
            raise SalmonError("--max-steps must be at least 0")
        if self.epochs <= 0 or self.pmp_epochs <= 0 or self.learning_rate <= 0 or self.head_lr_mult <= 0:
            raise SalmonError("--epochs, --pmp-epochs, --learning-rate and --head-lr-mult must be positive")
        if self.save_total_limit < 0:
            raise SalmonError("--save-total-limit must be 0 or more")
        check_report_to(self.report_to)


def heldout_fraction_of(pair_id: str) -> float:
    """A stable number in [0, 1) for a pair id (the same in every pass and process)."""
    return int(hashlib.sha256(str(pair_id).encode("utf-8")).hexdigest()[:12], 16) / 16**12


def split_by_pair_id(pair_ids: list[str], fraction: float) -> tuple[list[int], list[int]]:
    """(train indices, held-out indices); every row of a pair id lands on the same side."""
    held = [heldout_fraction_of(p) < fraction for p in pair_ids]
    return [i for i, h in enumerate(held) if not h], [i for i, h in enumerate(held) if h]


def load_rm_rows(spec: str, limit: int | None = None) -> list[dict[str, Any]]:
    """Rows of a `salmon aggregate` folder (or its dataset folder, or a JSONL file)."""
    path = Path(spec)
    if path.suffix == ".jsonl":
        rows = [rec for _, rec in iter_jsonl(path)]
    else:
        from datasets import load_from_disk

        if not path.exists():
            raise SalmonError(f"--data {spec}: not found (expected a `salmon aggregate` output folder)")
        if (path / "dataset").exists():
            if not (path / "summary.json").exists():
                raise SalmonError(f"--data {spec}: unfinished (no summary.json); rerun `salmon aggregate`")
            path = path / "dataset"
        try:
            rows = load_from_disk(str(path)).to_list()
        except (FileNotFoundError, ValueError) as e:
            raise SalmonError(f"--data {spec}: not a saved dataset ({str(e).splitlines()[0]})") from None
    rows = rows[:limit] if limit is not None else rows
    if not rows:
        raise SalmonError(f"--data {spec}: no training pairs; check the aggregate summary (label yield)")
    missing = [c for c in REQUIRED_COLUMNS if c not in rows[0]]
    if missing:
        raise SalmonError(f"--data {spec}: missing column '{missing[0]}' (needs {', '.join(REQUIRED_COLUMNS)})")
    return rows


def load_pmp_rows(path: str, principle: str) -> list[dict[str, Any]]:
    rows = []
    for lineno, rec in iter_jsonl(path):
        for key in ("prompt", "chosen", "rejected"):
            if not isinstance(rec.get(key), str):
                raise SalmonError(f"{path}:{lineno}: missing text field '{key}'")
        rows.append({"pair_id": rec.get("id", rec["prompt"]), "prompt": rec["prompt"], "chosen": rec["chosen"],
                     "rejected": rec["rejected"], "principles": [principle]})
    if not rows:
        raise SalmonError(f"--pmp-data {path}: no pairs")
    return rows


def twin_units(rows: list[dict[str, Any]]) -> list[list[int]]:
    """Row indices grouped into units: [i, j] when row j is row i's negated twin (same
    pair_id, chosen and rejected swapped, a different principle list), else [i].

    Twins are matched greedily in row order within a pair_id; a row without a twin is a
    unit of its own. Every index appears in exactly one unit; units are in first-row order.
    """
    by_pair: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_pair.setdefault(str(r.get("pair_id", r["prompt"])), []).append(i)
    partner: dict[int, int] = {}
    for idx in by_pair.values():
        for a_pos, a in enumerate(idx):
            if a in partner:
                continue
            ra = rows[a]
            for b in idx[a_pos + 1:]:
                rb = rows[b]
                if (b not in partner and ra["chosen"] == rb["rejected"] and ra["rejected"] == rb["chosen"]
                        and ra["chosen"] != ra["rejected"] and list(ra["principles"]) != list(rb["principles"])):
                    partner[a], partner[b] = b, a
                    break
    units, seen = [], set()
    for i in range(len(rows)):
        if i in seen:
            continue
        unit = [i, partner[i]] if i in partner else [i]
        seen.update(unit)
        units.append(unit)
    return units


def pack_units(units: list[list[int]], batch_size: int, seed: int) -> list[int]:
    """A flat order of row indices whose consecutive `batch_size` chunks never split a
    twin unit (unless `batch_size` is odd and no single row is left to fill a gap).

    Units are shuffled with `seed`; each batch takes pairs while two slots are free, and
    single rows for a last odd slot (or when no pair is left).
    """
    import random

    rng = random.Random(seed)
    pairs = [u for u in units if len(u) == 2]
    singles = [u for u in units if len(u) == 1]
    rng.shuffle(pairs)
    rng.shuffle(singles)
    # interleave singles among the pairs' batches rather than all at the end
    order: list[int] = []
    total = sum(len(u) for u in units)
    while len(order) < total:
        room = batch_size - len(order) % batch_size  # less after a split pair spilled over
        batch: list[int] = []
        while room > 0 and (pairs or singles):
            if room % 2 == 1 and singles:  # an odd slot: a single row keeps the pairs aligned
                batch += singles.pop()
                room -= 1
            elif pairs and (len(singles) < 2 or rng.random() >= len(singles) / (len(singles) + 2 * len(pairs))):
                unit = pairs.pop()
                batch += unit  # room == 1 here only when no single row is left: the pair is split
                room -= len(unit)
            else:  # two single rows (the second on the next, odd, slot)
                batch += singles.pop()
                room -= 1
        order += batch
    return order


class TwinBatchSampler:
    """A torch Sampler over `pack_units` orders, reshuffled each epoch (`set_epoch`)."""

    def __init__(self, units: list[list[int]], batch_size: int, seed: int):
        self.units, self.batch_size, self.seed, self.epoch = units, batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        return iter(pack_units(self.units, self.batch_size, self.seed * 1_000_003 + self.epoch))

    def __len__(self) -> int:
        return sum(len(u) for u in self.units)


def tokenize_rows(rows: list[dict[str, Any]], tokenizer, max_length: int, templates: list[str] | None = None):
    """A `datasets.Dataset` of {chosen_ids, rejected_ids} (RewardTrainer's pre-tokenised form),
    each row under `template_for(pair_id, templates)` (default: the one scoring template)."""
    from datasets import Dataset

    data: dict[str, list] = {"chosen_ids": [], "rejected_ids": []}
    for n, r in enumerate(rows):
        where = f"training row {n} (pair_id {r.get('pair_id', '?')})"
        template = template_for(str(r.get("pair_id", n)), templates or [TEMPLATE])
        try:
            for side in ("chosen", "rejected"):
                data[f"{side}_ids"].append(encode_rm_input(tokenizer, r["prompt"], r[side], r["principles"], max_length,
                                                           template=template))
        except SalmonError as e:
            raise SalmonError(f"{where}: {e}") from None
    return Dataset.from_dict(data)


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


def build_rm_model(cfg: TrainRMConfig, tokenizer, start_from: Path | None = None):
    """The trainable RM: a fresh LoRA (or full) seq-cls model, or one saved at `start_from`."""
    from salmon.models import pick_device, pick_dtype, resolve_model

    base = resolve_model(cfg.model)
    dtype = pick_dtype(cfg.dtype, pick_device("auto"))
    if start_from is not None and not cfg.lora:
        return load_seqcls(str(start_from), tokenizer.pad_token_id, dtype, cfg.trust_remote_code)
    model = load_seqcls(base, tokenizer.pad_token_id, dtype, cfg.trust_remote_code)
    if start_from is None and cfg.head_init == "yes_no" and not init_yes_no_head(model, tokenizer, base):
        info("--head-init yes_no: no single-token Yes/No rows found; the score head starts random")
    if not cfg.lora:
        return model
    from peft import LoraConfig, PeftModel, get_peft_model

    if start_from is not None:
        return PeftModel.from_pretrained(model, str(start_from), is_trainable=True)
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules="all-linear", modules_to_save=["score"], task_type="SEQ_CLS")
    return get_peft_model(model, lora)


def stop_after_callback(steps: int):
    """A TrainerCallback that saves a checkpoint and stops after `steps` steps."""
    from transformers import TrainerCallback

    class StopAfter(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step >= steps:
                control.should_save = True
                control.should_training_stop = True

    return StopAfter()


def make_trainer_class(units: list[list[int]] | None, batch_size: int, seed: int, head_lr_mult: float):
    """RewardTrainer with twin-keeping batches (when `units` is given) and a separate
    learning rate for the score head."""
    from trl import RewardTrainer

    class SalmonRewardTrainer(RewardTrainer):
        def _get_train_sampler(self, train_dataset=None):
            if units is not None:
                return TwinBatchSampler(units, batch_size, seed)
            return super()._get_train_sampler(train_dataset)

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


def run_phase(model, tokenizer, train_ds, eval_ds, out_dir: Path, cfg: TrainRMConfig, epochs: float,
              units: list[list[int]] | None = None) -> dict[str, Any]:
    """Train one phase with RewardTrainer; resumes from out_dir/checkpoint-*; returns metrics.

    `units` (from `twin_units`, indices into `train_ds`) keeps twins in one batch when
    `cfg.pair_batches` is on."""
    from trl import RewardConfig

    last = last_complete_checkpoint(out_dir)
    if last and not cfg.resume:
        raise SalmonError(f"--out {out_dir}: has checkpoints; drop --no-resume to continue, or choose another --out")
    if last:
        info(f"resuming from {last}")
    args = RewardConfig(
        output_dir=str(out_dir), per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, learning_rate=cfg.learning_rate, num_train_epochs=epochs,
        max_steps=cfg.max_steps or -1, warmup_steps=cfg.warmup, lr_scheduler_type="cosine",
        logging_steps=cfg.logging_steps, save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=max(cfg.save_total_limit, 2),
        eval_strategy="steps" if eval_ds is not None else "no", eval_steps=cfg.eval_steps,
        seed=cfg.seed, data_seed=cfg.seed, max_length=None, report_to=trainer_report_to(cfg.report_to, out_dir),
        disable_tqdm=True, use_cpu=not _has_cuda(), bf16=_use_bf16(model),
        dataloader_num_workers=0, pad_to_multiple_of=None, gradient_checkpointing=cfg.gradient_checkpointing,
    )
    callbacks = [stop_after_callback(cfg.stop_after)] if cfg.stop_after else []
    trainer_cls = make_trainer_class(units if cfg.pair_batches else None, cfg.batch_size, cfg.seed, cfg.head_lr_mult)
    trainer = trainer_cls(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                            processing_class=tokenizer, callbacks=callbacks)
    salmon_callbacks(trainer, cfg.progress, out_dir)
    with contextlib.redirect_stdout(sys.stderr):  # the trainer prints its logs; stdout stays clean
        result = trainer.train(resume_from_checkpoint=last)
        ev = trainer.evaluate() if eval_ds is not None and trainer.state.global_step >= trainer.state.max_steps else {}
    state = trainer.state
    runtime = result.metrics.get("train_runtime") or 0.0
    start = int(Path(last).name.rsplit("-", 1)[-1]) if last else 0
    pairs = (state.global_step - start) * cfg.batch_size * cfg.grad_accum * args.world_size
    metrics = {"steps": state.global_step, "max_steps": state.max_steps, "train_loss": result.training_loss,
               "runtime_s": runtime, "pairs_this_run": pairs, "processes": args.world_size, "pairs_per_s": pairs / runtime if runtime else None,
               "finished": state.global_step >= state.max_steps, "trainer": trainer}
    if ev:
        metrics.update(heldout_accuracy=ev.get("eval_accuracy"), heldout_loss=ev.get("eval_loss"))
    return metrics


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


def _split(rows: list[dict[str, Any]], tokenizer, cfg: TrainRMConfig):
    """(train dataset, held-out dataset or None, twin units of the training rows)."""
    train_idx, held_idx = split_by_pair_id([str(r.get("pair_id", r["prompt"])) for r in rows], cfg.eval_fraction)
    if not train_idx:
        raise SalmonError(f"--data {cfg.data}: every pair fell in the held-out split; lower --eval-fraction")
    train_rows = [rows[i] for i in train_idx]
    train = tokenize_rows(train_rows, tokenizer, cfg.max_length, cfg.templates)
    held = tokenize_rows([rows[i] for i in held_idx], tokenizer, cfg.max_length) if held_idx else None
    return train, held, twin_units(train_rows)


def _pmp_phase(cfg: TrainRMConfig, tokenizer, out: Path):
    """Pre-train on --pmp-data into out/pmp (skipped when already done); the model to go on with."""
    pmp_dir = out / "pmp"
    done = pmp_dir / "final"
    if not (done / "done.json").exists():
        train, held, _ = _split(load_pmp_rows(cfg.pmp_data, cfg.pmp_principle), tokenizer, cfg)
        model = build_rm_model(cfg, tokenizer)
        m = run_phase(model, tokenizer, train, held, pmp_dir, cfg, cfg.pmp_epochs)
        trainer = m.pop("trainer")
        if not m["finished"]:
            return None, m
        if trainer.is_world_process_zero():
            trainer.model.save_pretrained(str(done))
            atomic_write_text(done / "done.json", json.dumps(m, default=str) + "\n")
        trainer.accelerator.wait_for_everyone()
    return build_rm_model(cfg, tokenizer, start_from=done), json.loads((done / "done.json").read_text())


def train_rm(cfg: TrainRMConfig) -> Path:
    files = StageFiles.for_dir(cfg.out)
    rows = load_rm_rows(cfg.data, cfg.limit)
    if files.begin(cfg):
        return files.out
    from transformers import set_seed

    from salmon.models import load_tokenizer

    tok = load_tokenizer(cfg.model, cfg.trust_remote_code)
    train, held, units = _split(rows, tok, cfg)
    set_seed(cfg.seed)  # the LoRA and head initialisation
    twins = sum(len(u) == 2 for u in units)
    info(f"training pairs: {len(train)}, held-out pairs: {len(held) if held is not None else 0}, "
         f"negated twins kept in one batch: {twins if cfg.pair_batches else 'off'}")
    pmp = None
    if cfg.pmp_data:
        model, pmp = _pmp_phase(cfg, tok, files.out)
        if model is None:
            info(f"stopped during preference-model pre-training at step {pmp['steps']}; rerun to resume")
            return files.out
    else:
        model = build_rm_model(cfg, tok)
    if cfg.max_steps == 0:
        info("--max-steps 0: writing the untrained reward model")
        _finish(cfg, files, model, tok, train, {"steps": 0, "train_loss": None, "runtime_s": 0.0,
                                                 "pairs_this_run": 0, "pairs_per_s": None}, pmp)
        return files.out
    m = run_phase(model, tok, train, held, files.out, cfg, cfg.epochs, units)
    m["twin_units"] = twins
    trainer = m.pop("trainer")
    if not m["finished"]:
        info(f"stopped at step {m['steps']} of {m['max_steps']}; rerun the same command to resume")
        return files.out
    if trainer.is_world_process_zero():
        _finish(cfg, files, trainer.model, tok, train, m, pmp)
    trainer.accelerator.wait_for_everyone()
    return files.out


def _finish(cfg: TrainRMConfig, files: StageFiles, model, tok, train, m: dict[str, Any], pmp) -> None:
    """Reward statistics, the RM folder, and the summary (last)."""
    import statistics

    meta = {"base_model": cfg.model, "template": TEMPLATE, "train_templates": cfg.templates, "max_length": cfg.max_length,
            "reward_mean": 0.0, "reward_std": 1.0}
    model.eval()
    n = min(cfg.norm_samples, len(train))
    sample = train.select(range(n))
    rm = InstructableRewardModel(model, tok, meta)
    rewards = rm.score_ids(list(sample["chosen_ids"]) + list(sample["rejected_ids"]), cfg.batch_size)
    if len(rewards) >= 2:
        meta.update(reward_mean=statistics.fmean(rewards), reward_std=statistics.pstdev(rewards) or 1.0)
    rm.save(files.out)
    if cfg.merge:
        save_merged(rm, files.out / "merged")
    summary = {k: m.get(k) for k in ("steps", "train_loss", "runtime_s", "pairs_this_run", "pairs_per_s",
                                     "processes")}
    summary.update(train_pairs=len(train), twin_units=m.get("twin_units"), heldout_accuracy=m.get("heldout_accuracy"),
                   heldout_loss=m.get("heldout_loss"), reward_mean=meta["reward_mean"],
                   reward_std=meta["reward_std"], pmp=pmp)
    files.write_summary(summary)
    if not cfg.save_total_limit:  # only after the summary: a kill before it resumes from them
        for ckpt in files.out.glob("checkpoint-*"):
            shutil.rmtree(ckpt, ignore_errors=True)
    info(f"reward model written to {files.out} (held-out accuracy: {summary['heldout_accuracy']})")
