"""The instructable reward model (SALMON stage 3): template, model, training, scoring,
evaluation, and a TRL-style reward function for RL.

    from salmon.reward import InstructableRewardModel, make_reward_fn
"""

from salmon.reward.fn import make_reward_fn
from salmon.reward.model import InstructableRewardModel

__all__ = ["InstructableRewardModel", "make_reward_fn"]
