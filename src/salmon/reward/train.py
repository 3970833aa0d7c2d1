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
- Batches keep each row next to its negated twin (the same `twin` id where aggregate
  wrote one; chosen and rejected swapped, another principle list: `twin_units`), so the
  part of the gradient that ignores the principles cancels within the batch
  (`--no-pair-batches`: plain shuffling).
  Rows without a twin in the data are trained as single rows; none is synthesised.
- The score head learns `--head-lr-mult` (10) times faster than the LoRA weights.
- `--trainable-layers N` trains only the top N layers (the step gets cheaper: see
  `reward.trainer`); `--max-response-tokens` cuts long responses; `--flip-coefficient`
  adds a term on each row and its negated twin (`reward.losses.flip_loss`).
- Held-out pairs are chosen by a hash of `pair_id`, so no pass of a held-out pair leaks
  into training; their accuracy is logged every `--eval-steps`.
- Checkpoints (`out/checkpoint-N`) every `--save-steps`; a rerun resumes from the newest
  one exactly (data order, RNG, optimiser). TensorBoard logs go to `out/runs`.
- `--pmp-data FILE` (chosen/rejected JSONL, no principles) trains first under one
  generic principle for `--pmp-epochs`, as SALMON's preference-model pre-training.
- `--ensemble K` trains K reward models (seeds --seed ... --seed+K-1) into `out/member-<k>/`
  and makes `out/` one reward model that scores their weighted mean (`reward.ensemble`).
Writes `out/` (adapter + tokenizer + `salmon_rm.json`, then `summary.json` last).
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from salmon.config import opt
from salmon.errors import SalmonError
from salmon.jsonl import atomic_write_text
from salmon.progress import info
from salmon.reward.contrastive import CONTRASTIVE, SCORING_KEY
from salmon.reward.data import (
    load_pmp_rows,
    load_rm_rows,
    split_by_pair_id,
    tokenize_rows,
    twin_ids,
    twin_units,
)
from salmon.reward.merge import save_merged
from salmon.reward.model import InstructableRewardModel
from salmon.reward.template import RM_TEMPLATES, TEMPLATE
from salmon.reward.trainer import MIXED_PRECISION, build_rm_model, run_phase
from salmon.stage import StageFiles
from salmon.trackers import REPORT_TO_HELP, check_report_to

OBJECTIVES = ("plain", CONTRASTIVE)


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
    pair_batches: bool = opt(True, "Keep each row and its negated twin (same twin id, chosen and rejected "
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
    trainable_layers: int = opt(8, "Train only the top N transformer layers (LoRA there, or every weight of them "
                                   "with --no-lora) plus the score head; 0: all layers. Fewer is faster: the "
                                   "backward pass stops at the first trainable layer")
    max_response_tokens: int | None = opt(None, "Cut each training response to its first N tokens (marked with "
                                                "an ellipsis; the principles are never cut)")
    share_prefix: bool = opt(True, "Run each distinct (prompt, response) of a batch once, for all the principle "
                                   "lists it is shown under (a row and its negated twin); exact, only faster")
    flip_coefficient: float = opt(0.0, "Weight of the flip term: -log sigmoid(margin(P) + margin(not P)) over "
                                       "each row and its negated twin in a batch (0: off)")
    objective: str = opt("plain", "plain: the Bradley-Terry loss on each row (+ the flip term); contrastive: "
                                  "only the flip term, on rows with a negated twin (others are dropped), and the "
                                  "RM scores raw(principles) - raw(negation) (`reward.contrastive`)")
    head_init: str = opt("yes_no", "Score head start: yes_no (the LM's Yes-minus-No logit) or random")
    max_length: int = opt(512, "Maximum tokens per input; the response is cut first, principles never")
    eval_fraction: float = opt(0.1, "Share of pair_ids held out for accuracy (hash of pair_id)")
    eval_steps: int = opt(50, "Evaluate held-out accuracy every N steps; 0: once, at the end")
    save_steps: int = opt(50, "Save a checkpoint every N steps")
    logging_steps: int = opt(5, "Log every N steps")
    norm_samples: int = opt(64, "Training pairs scored after training for reward_mean / reward_std when no "
                                   "held-out rewards give them (--eval-fraction 0)")
    pmp_data: str | None = opt(None, "Optional human preference JSONL {prompt, chosen, rejected} trained on first")
    pmp_epochs: float = opt(1.0, "Passes over --pmp-data")
    pmp_principle: str = opt("The response is helpful, honest and harmless, and does what the user asked.",
                             "The principle shown with --pmp-data pairs")
    limit: int | None = opt(None, "Use only the first N training rows")
    seed: int = opt(0, "Random seed")
    ensemble: int = opt(1, "Train this many reward models, seeds --seed, --seed+1, ..., into out/member-<k>/ and "
                           "score them as one: the mean of their standardised scores (`salmon ensemble-rm`; "
                           "K times the training and the scoring time)")
    dtype: str = opt("auto", "auto, float32, bfloat16 or float16")
    mixed_precision: str = opt("no", "no, or bf16: bf16 autocast while training, weights kept in fp32 (1.2-1.5x "
                                     "faster on a CPU with native bf16, but lower verify_dev_rephrased and "
                                     "judge_dev accuracy in 3 of 3 runs: docs/reward-training.md)")
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
        for name in ("batch_size", "grad_accum", "lora_r", "save_steps", "logging_steps", "ensemble"):
            if getattr(self, name) < 1:
                raise SalmonError(f"--{name.replace('_', '-')} must be at least 1")
        if self.eval_steps < 0:
            raise SalmonError("--eval-steps must be at least 0 (0: evaluate once, at the end)")
        if self.mixed_precision not in MIXED_PRECISION:
            raise SalmonError(f"--mixed-precision {self.mixed_precision}: expected {', '.join(MIXED_PRECISION)}")
        if self.max_length < 64:
            raise SalmonError("--max-length must be at least 64")
        if not 0 <= self.eval_fraction < 1:
            raise SalmonError("--eval-fraction must be in [0, 1)")
        if self.objective not in OBJECTIVES:
            raise SalmonError(f"--objective {self.objective}: expected {' or '.join(OBJECTIVES)}")
        if self.objective == CONTRASTIVE and self.pmp_data:
            raise SalmonError("--pmp-data: preference pairs have no negated twins; use --objective plain with it")
        if self.head_init not in ("yes_no", "random"):
            raise SalmonError(f"--head-init {self.head_init}: expected yes_no or random")
        if self.max_steps is not None and self.max_steps < 0:
            raise SalmonError("--max-steps must be at least 0")
        if self.trainable_layers < 0 or self.flip_coefficient < 0:
            raise SalmonError("--trainable-layers and --flip-coefficient must be at least 0")
        if self.max_response_tokens is not None and self.max_response_tokens < 1:
            raise SalmonError("--max-response-tokens must be at least 1 (or unset)")
        if self.epochs <= 0 or self.pmp_epochs <= 0 or self.learning_rate <= 0 or self.head_lr_mult <= 0:
            raise SalmonError("--epochs, --pmp-epochs, --learning-rate and --head-lr-mult must be positive")
        if self.save_total_limit < 0:
            raise SalmonError("--save-total-limit must be 0 or more")
        bad = [t for t in self.templates if t not in RM_TEMPLATES]
        if bad or not self.templates:
            raise SalmonError(f"--templates: unknown template {bad[0] if bad else ''!r} (known: {', '.join(RM_TEMPLATES)})")
        if self.ensemble > 1 and (self.merge or not self.lora):
            raise SalmonError("--ensemble: members are LoRA adapters on one base; drop --merge / --no-lora")
        check_report_to(self.report_to)


def _split(rows: list[dict[str, Any]], tokenizer, cfg: TrainRMConfig):
    """(train dataset, held-out dataset or None, twin units of the training rows)."""
    train_idx, held_idx = split_by_pair_id([str(r.get("pair_id", r["prompt"])) for r in rows], cfg.eval_fraction)
    if not train_idx:
        raise SalmonError(f"--data {cfg.data}: every pair fell in the held-out split; lower --eval-fraction")
    train_rows = [rows[i] for i in train_idx]
    units = twin_units(train_rows)
    if cfg.objective == CONTRASTIVE:  # the flip term learns from twins only
        unpaired = sum(len(u) == 1 for u in units)
        train_rows = [train_rows[i] for u in units if len(u) == 2 for i in u]
        if unpaired:
            info(f"contrastive objective: {unpaired} training rows without a negated twin are not used "
                 "(aggregate --twins / --judge-twins give rows one)")
        if not train_rows:
            raise SalmonError(f"--data {cfg.data}: --objective contrastive needs rows with a negated twin "
                              "(aggregate with --twins); none found")
        units = twin_units(train_rows)
    train = tokenize_rows(train_rows, tokenizer, cfg.max_length, cfg.max_response_tokens,
                          twin_ids(units, len(train_rows)), cfg.templates)
    held_rows = [rows[i] for i in held_idx]
    held = (tokenize_rows(held_rows, tokenizer, cfg.max_length, cfg.max_response_tokens,
                          twin_ids(twin_units(held_rows), len(held_rows)))
            if held_idx else None)
    return train, held, units


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
    if cfg.ensemble > 1:
        return _train_ensemble(cfg)
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
        _finish(cfg, files, model, tok, train, held, {"steps": 0, "train_loss": None, "runtime_s": 0.0,
                                                 "pairs_this_run": 0, "pairs_per_s": None}, pmp)
        return files.out
    m = run_phase(model, tok, train, held, files.out, cfg, cfg.epochs, units, evaluate_at_end=False)
    m["twin_units"] = twins
    trainer = m.pop("trainer")
    if not m["finished"]:
        info(f"stopped at step {m['steps']} of {m['max_steps']}; rerun the same command to resume")
        return files.out
    if trainer.is_world_process_zero():
        _finish(cfg, files, trainer.model, tok, train, held, m, pmp)
    trainer.accelerator.wait_for_everyone()
    return files.out


def _train_ensemble(cfg: TrainRMConfig) -> Path:
    """--ensemble K: member k trained as a plain run with seed cfg.seed + k into
    out/member-<k>/ (each resumes on its own), then the folder made an ensemble
    (`reward.ensemble.write_ensemble`) and the summary written last."""
    from accelerate import PartialState

    from salmon.reward.ensemble import write_ensemble

    files = StageFiles.for_dir(cfg.out)
    if files.begin(cfg):
        return files.out
    names = [f"member-{k}" for k in range(cfg.ensemble)]
    for k, name in enumerate(names):
        info(f"ensemble member {k + 1} of {cfg.ensemble} (seed {cfg.seed + k})")
        member = train_rm(replace(cfg, ensemble=1, seed=cfg.seed + k, out=str(files.out / name)))
        if not (member / "summary.json").exists():
            info(f"stopped in ensemble member {k + 1}; rerun the same command to resume")
            return files.out
    state = PartialState()
    if state.is_main_process:
        meta = write_ensemble(files.out, [(name, f"trained here with seed {cfg.seed + k}") for k, name in enumerate(names)])
        members = [json.loads((files.out / name / "summary.json").read_text()) for name in names]
        files.write_summary({
            "ensemble": cfg.ensemble, "seeds": [cfg.seed + k for k in range(cfg.ensemble)],
            "weights": [e["weight"] for e in meta["ensemble"]], "reward_mean": meta["reward_mean"],
            "reward_std": meta["reward_std"], "runtime_s": sum(m.get("runtime_s") or 0.0 for m in members),
            "members": members})
    state.wait_for_everyone()
    return files.out


def _finish(cfg: TrainRMConfig, files: StageFiles, model, tok, train, held, m: dict[str, Any], pmp) -> None:
    """Reward statistics, the RM folder, and the summary (last). The held-out rows are
    scored once here: their raw loss and accuracy (`heldout_raw_metrics`, what the trainer's
    evaluation reports) where training did not log them at its last step, under the
    contrastive objective the accuracy of the contrastive reward itself on the held-out
    twins, and the rewards of those rows give `reward_mean` / `reward_std`. Only without
    held-out rewards are `norm_samples` training pairs scored for them."""
    import statistics

    meta = {"base_model": cfg.model, "template": TEMPLATE, "train_templates": cfg.templates, "max_length": cfg.max_length,
            "reward_mean": 0.0, "reward_std": 1.0}
    if cfg.objective == CONTRASTIVE:
        meta[SCORING_KEY] = CONTRASTIVE
    model.eval()
    rm = InstructableRewardModel(model, tok, meta)
    contrastive_acc, rewards = None, []
    if held is not None:
        chosen, rejected = _score_rows(rm, held, cfg.batch_size)
        if m.get("heldout_accuracy") is None:
            m = {**m, **heldout_raw_metrics(chosen, rejected)}
        if cfg.objective == CONTRASTIVE:
            contrastive_acc = contrastive_accuracy(chosen, rejected, list(held["twin"]))
        rewards = _rewards(cfg.objective, chosen, rejected, held)
    if len(rewards) < 2:
        sample = train.select(range(min(cfg.norm_samples, len(train))))
        rewards = _rewards(cfg.objective, *_score_rows(rm, sample, cfg.batch_size), sample)
    if len(rewards) >= 2:
        meta.update(reward_mean=statistics.fmean(rewards), reward_std=statistics.pstdev(rewards) or 1.0)
    rm.save(files.out)
    if cfg.merge:
        save_merged(rm, files.out / "merged")
    summary = {k: m.get(k) for k in ("steps", "train_loss", "runtime_s", "pairs_this_run", "pairs_per_s",
                                     "processes", "mixed_precision")}
    summary.update(train_pairs=len(train), twin_units=m.get("twin_units"), heldout_accuracy=m.get("heldout_accuracy"),
                   heldout_loss=m.get("heldout_loss"), heldout_scoring="raw" if cfg.objective == CONTRASTIVE else "plain",
                   heldout_contrastive_accuracy=contrastive_acc, reward_mean=meta["reward_mean"],
                   reward_std=meta["reward_std"], pmp=pmp)
    files.write_summary(summary)
    if not cfg.save_total_limit:  # only after the summary: a kill before it resumes from them
        for ckpt in files.out.glob("checkpoint-*"):
            shutil.rmtree(ckpt, ignore_errors=True)
    shown = (f"held-out accuracy of the contrastive reward: {contrastive_acc}" if cfg.objective == CONTRASTIVE
             else f"held-out accuracy: {summary['heldout_accuracy']}")
    info(f"reward model written to {files.out} ({shown})")


def _score_rows(rm, rows, batch_size: int) -> tuple[list[float], list[float]]:
    """(raw scores of the chosen inputs, of the rejected inputs) of tokenised rows."""
    scores = rm.score_ids(list(rows["chosen_ids"]) + list(rows["rejected_ids"]), batch_size)
    return scores[:len(rows)], scores[len(rows):]


def _rewards(objective: str, chosen: list[float], rejected: list[float], rows) -> list[float]:
    """The rewards the RM gives the scored rows: under the contrastive objective those of
    their twin units (`contrastive_rewards`), else every raw score."""
    if objective == CONTRASTIVE:
        return contrastive_rewards(chosen, rejected, list(rows["twin"]))
    return chosen + rejected


def _twin_pairs(twin: list[int]) -> list[tuple[int, int]]:
    """(a, b) row positions of each twin unit (`twin_ids` values) whose two rows are both in the list."""
    rows: dict[int, list[int]] = {}
    for i, t in enumerate(twin):
        if t >= 0:
            rows.setdefault(t, []).append(i)
    return [(u[0], u[1]) for u in rows.values() if len(u) == 2]


def heldout_raw_metrics(chosen: list[float], rejected: list[float]) -> dict[str, float]:
    """The trainer's evaluation from scores: `heldout_loss`, the mean Bradley-Terry loss
    -log sigmoid(chosen - rejected), and `heldout_accuracy`, the share of rows with chosen
    strictly above rejected (a tie counts as wrong, as TRL counts it)."""
    margins = [c - r for c, r in zip(chosen, rejected, strict=True)]
    if not margins:
        raise SalmonError("no held-out rows to score")
    loss = [max(-x, 0.0) + math.log1p(math.exp(-abs(x))) for x in margins]  # softplus(-x), stable
    return {"heldout_loss": sum(loss) / len(loss), "heldout_accuracy": sum(x > 0 for x in margins) / len(margins)}


def contrastive_accuracy(chosen: list[float], rejected: list[float], twin: list[int]) -> float | None:
    """Share of twin units (row a: A over B under P; twin b: B over A under not P) whose
    contrastive reward prefers A under P: r(A|P) - r(B|P) = (chosen[a] - rejected[a]) +
    (chosen[b] - rejected[b]) > 0 (a tie counts half; twin b's verdict is the same one).
    None when no row has its twin in the lists."""
    margins = [chosen[a] - rejected[a] + chosen[b] - rejected[b] for a, b in _twin_pairs(twin)]
    if not margins:
        return None
    return sum(1.0 if x > 0 else 0.5 if x == 0 else 0.0 for x in margins) / len(margins)


def contrastive_rewards(chosen: list[float], rejected: list[float], twin: list[int]) -> list[float]:
    """Contrastive rewards raw(y | P) - raw(y | not P) of the responses of twin rows: row a
    (chosen A under P) and its twin b (chosen B under not P) give A: chosen[a] - rejected[b]
    and B: rejected[a] - chosen[b], and the same negated for b's principles. Rows without
    their twin in the list give nothing."""
    out: list[float] = []
    for a, b in _twin_pairs(twin):
        out += [chosen[a] - rejected[b], rejected[a] - chosen[b], chosen[b] - rejected[a], rejected[b] - chosen[a]]
    return out
