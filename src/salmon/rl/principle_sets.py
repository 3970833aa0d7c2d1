"""The principles an RL run draws from, and the check that its reward model can read them.

Shared by PPO (ppo.py) and the TRL trainers (trl_algos.py), so neither imports the other.
"""

from __future__ import annotations

from salmon.errors import SalmonError
from salmon.progress import info


def load_principle_sets(cfg):
    """(principles sampled per prompt, intervention principles always added) for an RL config."""
    from salmon.principles import load_principles

    principles = load_principles(cfg.principles)
    if len(principles) < cfg.max_principles:
        info(f"{cfg.principles}: {len(principles)} principles, fewer than --max-principles "
             f"{cfg.max_principles}; every prompt gets all of them")
    interventions = load_principles(cfg.intervention) if cfg.intervention else []
    return principles, interventions


def check_rm_budget(tokenizer, max_length: int, principles, interventions, k: int) -> None:
    """Fail at the start, not mid-run, when the longest principle list the sampler can
    draw leaves the reward model too few of its `max_length` tokens for the exchange."""
    from salmon.reward.template import MIN_PREFIX_TOKENS, split_rm_input

    longest = sorted(principles, key=lambda p: len(p.definition), reverse=True)[:k] + list(interventions)
    _, suffix = split_rm_input(tokenizer, "", "", [p.definition for p in longest])
    used = len(tokenizer(suffix, add_special_tokens=False)["input_ids"])
    if max_length - used < MIN_PREFIX_TOKENS:
        raise SalmonError(
            f"--principles: the longest draw ({len(longest)} principles) is {used} tokens of the reward model's "
            f"{max_length} (max_length in salmon_rm.json); lower --max-principles, pass --intervention '', "
            "or train the RM with a larger --max-length")
