"""`salmon ensemble-rm`: several trained reward models scored as one.

    salmon train-rm --data rm_data/ --out rm0 --seed 0      # and --seed 1, --seed 2
    salmon ensemble-rm --members rm0,rm1,rm2 --out rm_ens
    salmon eval-rm --rm rm_ens --labeled verify_dev --out eval/
    salmon train-rm --data rm_data/ --out rm_ens --ensemble 3   # the same, trained in one go

Why: on the embedded model one training run of the reward model moves the dev sets by up
to 21 points from one training seed to the next (same rows, same settings). Averaging the
members' scores removes part of that noise; weight-averaging their LoRA updates into one
adapter did not (docs/reward-training.md has both measurements).

The ensemble's score is a weighted sum of the members' scores, each member divided by its
own reward scale (`reward_std` in its `salmon_rm.json`) so that no member dominates because
its scores happen to be larger, and the sum brought back to the members' mean scale:

    s(y) = sum_k w_k s_k(y),   w_k = mean_j(std_j) / (K * std_k)

With equal scales this is the plain mean. A contrastive member's score is already
raw(P) - raw(not P); the sum of those is the contrast of the summed raw scores, so the
ensemble stays contrastive. Scoring costs K times one member's.

The folder: `member-<k>/` (a copy of each member RM folder, checkpoints left out), the
first member's tokenizer at the top, and `salmon_rm.json` with an `ensemble` list of
{path, weight, source}. `InstructableRewardModel.load` reads it (the members' adapters on one
shared base model); RL scores it as a separate reward model.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from salmon.config import opt
from salmon.errors import SalmonError
from salmon.progress import info
from salmon.reward.meta import META_FILE, read_meta

# members must agree on these to be scored as one (same base weights, same input text)
MUST_MATCH = ("base_model", "template", "max_length", "scoring")


def member_weights(stds: list[float]) -> list[float]:
    """w_k = mean(std) / (K * std_k): each member on a common scale, the sum on the mean scale."""
    if not stds:
        raise SalmonError("ensemble: no members")
    bad = [s for s in stds if not s > 0]
    if bad:
        raise SalmonError(f"ensemble: a member's reward_std is {bad[0]!r}; it must be positive")
    mean = statistics.fmean(stds)
    return [mean / (len(stds) * s) for s in stds]


def combine(scores: list[list[float]], weights: list[float]) -> list[float]:
    """sum_k w_k scores[k][i] for each item i (members' score lists, all the same length)."""
    if len(scores) != len(weights) or len({len(s) for s in scores}) > 1:
        raise SalmonError(f"ensemble: {len(scores)} score lists of lengths {sorted({len(s) for s in scores})} "
                          f"for {len(weights)} weights")
    return [sum(w * s[i] for w, s in zip(weights, scores, strict=True)) for i in range(len(scores[0]))]


def is_ensemble(path: Path) -> bool:
    f = Path(path) / META_FILE
    try:
        return bool(f.exists() and json.loads(f.read_text(encoding="utf-8")).get("ensemble"))
    except json.JSONDecodeError:
        return False


def ensemble_members(path: Path, meta: dict[str, Any]) -> list[tuple[Path, float]]:
    """(member folder, weight) from an ensemble's salmon_rm.json, each folder checked."""
    out = []
    for i, m in enumerate(meta["ensemble"]):
        if not isinstance(m, dict) or not isinstance(m.get("path"), str) or not isinstance(m.get("weight"), int | float):
            raise SalmonError(f"{path}/salmon_rm.json: ensemble entry {i} needs a 'path' and a numeric 'weight'")
        folder = Path(path) / m["path"]
        if Path(m["path"]).is_absolute() or not folder.resolve().is_relative_to(Path(path).resolve()):
            raise SalmonError(f"{path}/salmon_rm.json: ensemble member path {m['path']!r} leaves the ensemble folder")
        if not (folder / "adapter_config.json").exists():
            raise SalmonError(f"{path}: ensemble member {m['path']} is not a LoRA reward-model folder")
        out.append((folder, float(m["weight"])))
    return out


@dataclass
class EnsembleRMConfig:
    members: list[str] = opt([], "Reward-model folders to combine (comma-separated, at least 2): "
                             "`salmon train-rm` outputs, LoRA adapters on one base")
    out: str = opt("rm_ensemble", "Output folder for the ensemble reward model (must not exist)")

    def validate(self) -> None:
        if len(self.members) < 2:
            raise SalmonError(f"--members: give at least 2 reward-model folders (got {len(self.members)})")
        if len(set(self.members)) != len(self.members):
            raise SalmonError("--members: a folder is listed twice")


def _member_meta(folder: Path) -> dict[str, Any]:
    if not folder.is_dir():
        raise SalmonError(f"--members: {folder}: reward model folder not found")
    if is_ensemble(folder):
        raise SalmonError(f"--members: {folder} is itself an ensemble; list its members instead")
    if not (folder / "adapter_config.json").exists():
        raise SalmonError(f"--members: {folder}: not a LoRA reward-model folder (no adapter_config.json)")
    meta = read_meta(folder)
    meta.setdefault("scoring", "raw")
    return meta


def checked_metas(folders: list[Path]) -> list[dict[str, Any]]:
    """The members' `salmon_rm.json`, refused (one line) unless every folder is a finished
    LoRA reward model and they all agree on MUST_MATCH."""
    metas = [_member_meta(f) for f in folders]
    for key in MUST_MATCH:
        values = {json.dumps(m.get(key)) for m in metas}
        if len(values) > 1:
            raise SalmonError(f"--members: the members differ in {key} ({', '.join(sorted(values))}); "
                              "an ensemble needs reward models trained the same way on one base")
    return metas


def write_ensemble(folder: Path, members: list[tuple[str, str]]) -> dict[str, Any]:
    """Make `folder`, whose `member-<k>/` subfolders hold finished member RMs, one ensemble
    reward model: the first member's tokenizer at the top and `salmon_rm.json` (written last,
    it is what makes the folder an ensemble). `members`: (subfolder name, source) in order.
    Returns the meta written."""
    from salmon.jsonl import atomic_write_text

    metas = checked_metas([folder / name for name, _ in members])
    stds = [float(m["reward_std"] or 1.0) for m in metas]
    weights = member_weights(stds)
    for f in (folder / members[0][0]).iterdir():  # the tokenizer at the top, for loaders that read it there
        if f.is_file() and (f.name.startswith("tokenizer") or f.name in ("special_tokens_map.json", "chat_template.jinja")):
            shutil.copy2(f, folder / f.name)
    entries = [{"path": name, "weight": w, "source": source}
               for (name, source), w in zip(members, weights, strict=True)]
    meta = {**metas[0], "ensemble": entries, "reward_std": statistics.fmean(stds),
            "reward_mean": sum(w * float(m["reward_mean"]) for w, m in zip(weights, metas, strict=True))}
    atomic_write_text(folder / META_FILE, json.dumps(meta, indent=2) + "\n")
    info(f"ensemble of {len(members)} reward models (weights {', '.join(f'{w:.3f}' for w in weights)}) in {folder}")
    return meta


def ensemble_rm(cfg: EnsembleRMConfig) -> Path:
    """Write the ensemble folder `cfg.out` (aside first, then renamed into place)."""
    cfg.validate()
    out = Path(cfg.out)
    if out.exists():
        raise SalmonError(f"--out {out}: already exists; choose another folder or delete it")
    folders = [Path(m) for m in cfg.members]
    checked_metas(folders)  # refuse before anything is copied
    tmp = out.with_name(f".{out.name}.tmp.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for k, folder in enumerate(folders):
            shutil.copytree(folder, tmp / f"member-{k}", ignore=shutil.ignore_patterns("checkpoint-*", "tb", "runs"))
        write_ensemble(tmp, [(f"member-{k}", str(f.resolve())) for k, f in enumerate(folders)])
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.replace(tmp, out)
    info(f"wrote {out}")
    return out
