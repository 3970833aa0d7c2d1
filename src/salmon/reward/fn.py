"""The instructable reward model as a TRL reward function.

    from salmon.reward import InstructableRewardModel, make_reward_fn
    reward_fn = make_reward_fn(InstructableRewardModel.load("rm/"))
    GRPOTrainer(model=..., reward_funcs=[reward_fn], train_dataset=ds, ...)  # ds has a "principles" column

The callable has TRL's signature `(prompts, completions, **kwargs) -> list[float]`.
TRL passes every extra dataset column as a keyword argument holding one value per
sample, so each sample's principle list is read from `kwargs[principles_column]`
(a list of strings, or one string); samples without one use `default_principles`.
Prompts and completions may be plain strings or conversational message lists: a
conversational prompt is scored as the whole conversation (oldest turns dropped first
when it does not fit the RM; counted in `rm.truncations`), the completion is the text
of its assistant messages.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from salmon.conversation import parse_prompt
from salmon.errors import SalmonError
from salmon.reward.model import InstructableRewardModel


def message_text(value: Any, role: str) -> str:
    """Text of a plain string, or of the last `role` message (user) / all `role` messages
    (assistant) in a conversational list."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        value = [value]
    if isinstance(value, list) and all(isinstance(m, dict) for m in value):
        texts = [str(m.get("content", "")) for m in value if m.get("role") == role]
        if not texts:
            texts = [str(m.get("content", "")) for m in value[-1:]]
        return texts[-1] if role == "user" else "\n".join(texts)
    raise SalmonError(f"reward function: expected text or a list of chat messages, got {type(value).__name__}")


def _principles_for(value: Any, default: list[str] | None, i: int, column: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
        value = default
    if not value:
        raise SalmonError(f"reward function: sample {i} has no principles (column '{column}') "
                          "and no default_principles were given")
    return list(value)


def make_reward_fn(rm: InstructableRewardModel | str | Path, principles_column: str = "principles",
                   default_principles: list[str] | None = None, normalize: bool = False,
                   batch_size: int = 8) -> Callable[..., list[float]]:
    """A TRL reward function scoring each completion under its sample's principles.

    `normalize` standardises rewards with the mean and std measured on the RM's training
    data (`salmon_rm.json`), so several reward functions can be weighted on one scale.
    """
    if not isinstance(rm, InstructableRewardModel):
        rm = InstructableRewardModel.load(rm)
    mean = float(rm.meta.get("reward_mean", 0.0)) if normalize else 0.0
    std = float(rm.meta.get("reward_std", 1.0) or 1.0) if normalize else 1.0

    def instructable_rm(prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float]:
        if len(prompts) != len(completions):
            raise SalmonError(f"reward function: {len(prompts)} prompts but {len(completions)} completions")
        column = kwargs.get(principles_column)
        if column is not None and len(column) != len(prompts):
            raise SalmonError(f"reward function: column '{principles_column}' has {len(column)} values "
                              f"for {len(prompts)} samples")
        lists = [_principles_for(column[i] if column is not None else None, default_principles, i,
                                 principles_column) for i in range(len(prompts))]
        rewards = rm.score([parse_prompt(p, f"reward function: prompt {i}") for i, p in enumerate(prompts)],
                           [message_text(c, "assistant") for c in completions], lists, batch_size=batch_size)
        return [(r - mean) / std for r in rewards]

    instructable_rm.__name__ = "instructable_rm"
    return instructable_rm
