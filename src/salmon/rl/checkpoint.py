"""PPO checkpoints, adapter folders and the final policy; safetensors and JSON only (no pickle).

    checkpoint-N/policy/          the policy LoRA adapter (a loadable PEFT folder)
    checkpoint-N/value/           the value LoRA adapter
    checkpoint-N/value_head.safetensors
    checkpoint-N/optimizer.safetensors + optimizer.json   AdamW moments, step, groups
    checkpoint-N/state.json       {"step": N}; the folder is renamed into place last

No random-number state is saved because none is carried between steps: every draw is
seeded from (seed, step, rank), so restoring weights and optimizer is enough for an
exact resume.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from salmon.errors import SalmonError
from salmon.progress import info
from salmon.rl.models import (
    POLICY,
    SFT,
    VALUE,
    ActorCritic,
    RLModels,
    adapter_state,
    set_adapter_state,
    set_trainable,
)

STATE = "state.json"


def checkpoints(out: Path) -> list[tuple[int, Path]]:
    """Finished checkpoints, oldest first."""
    found = []
    for p in out.glob("checkpoint-*"):
        if (p / STATE).exists() and p.name.split("-", 1)[1].isdigit():
            found.append((int(p.name.split("-", 1)[1]), p))
    return sorted(found)


def save(out: Path, step: int, models: RLModels, optimizer, acc, keep: int) -> None:
    """Write checkpoint-`step` (main process), then drop all but the newest `keep`."""
    if acc.is_main_process:
        ac = models.actor_critic
        final = out / f"checkpoint-{step}"
        tmp = out / f".checkpoint-{step}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        save_adapter(ac.policy_lm, POLICY, tmp / "policy", models.base_path)
        save_adapter(ac.value_lm, VALUE, tmp / "value", models.base_path)
        _save_tensors({k: v for k, v in ac.value_head.state_dict().items()}, tmp / "value_head.safetensors")
        tensors, meta = optimizer_state(optimizer.state_dict())
        _save_tensors(tensors, tmp / "optimizer.safetensors")
        (tmp / "optimizer.json").write_text(json.dumps(meta))
        (tmp / STATE).write_text(json.dumps({"step": step}))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for _, old in checkpoints(out)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    acc.wait_for_everyone()


def restore_latest(out: Path, models: RLModels, optimizer) -> int:
    """Load the newest checkpoint into the models and optimizer; returns its step (0: none)."""
    found = checkpoints(out)
    if not found:
        return 0
    step, folder = found[-1]
    ac = models.actor_critic
    load_adapter_weights(ac.policy_lm, POLICY, folder / "policy")
    load_adapter_weights(ac.value_lm, VALUE, folder / "value")
    ac.value_head.load_state_dict(_load_tensors(folder / "value_head.safetensors"))
    meta = json.loads((folder / "optimizer.json").read_text())
    optimizer.load_state_dict(optimizer_state_from(_load_tensors(folder / "optimizer.safetensors"), meta))
    info(f"resuming from {folder} (step {step})")
    return step


def optimizer_state(sd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split a torch optimizer state dict into flat tensors and JSON-able metadata."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{idx}.{key}"] = value
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_state_from(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    for idx, values in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_policy(out: Path, models: RLModels) -> None:
    """The trained policy adapter at the top of `out`, with the tokenizer beside it."""
    save_policy_adapter(models.actor_critic, out, models.base_path)
    models.tokenizer.save_pretrained(str(out))


def save_adapter(lm: nn.Module, name: str, out: Path, base_path: str) -> None:
    """Write adapter `name` as a standalone PEFT folder whose base is `base_path`."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    cfg = lm.peft_config[name].to_dict()
    cfg["base_model_name_or_path"] = base_path
    cfg["inference_mode"] = True
    cfg = {k: sorted(v) if isinstance(v, set) else v for k, v in cfg.items()}
    state = {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(lm, adapter_name=name).items()}
    save_file(state, str(out / "adapter_model.safetensors"))
    (out / "adapter_config.json").write_text(json.dumps(cfg, indent=2, default=str))


def load_adapter_weights(lm: nn.Module, name: str, folder: Path) -> None:
    set_adapter_state(lm, name, adapter_state(folder), str(folder))


def save_policy_adapter(ac: ActorCritic, out: Path, base_path: str) -> None:
    """The trained policy as one adapter: the LoRA alone, or, when it was stacked on an
    SFT adapter, both concatenated into one LoRA of rank r_sft + r (exact)."""
    lm = ac.policy_lm
    if SFT not in ac.policy_adapters:
        save_adapter(lm, POLICY, out, base_path)
        return
    merged = "sft_plus_policy"
    lm.add_weighted_adapter([SFT, POLICY], [1.0, 1.0], merged, combination_type="cat")
    try:
        save_adapter(lm, merged, out, base_path)
    finally:
        lm.delete_adapter(merged)
        set_trainable(lm)


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(path))


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not path.exists():
        raise SalmonError(f"{path}: missing from the checkpoint; remove the checkpoint folder to start over")
    return load_file(str(path))


def remove_all(out: Path) -> None:
    """Drop every checkpoint (`--save-total-limit 0`, once the final output is written)."""
    for _, folder in checkpoints(out):
        shutil.rmtree(folder, ignore_errors=True)
