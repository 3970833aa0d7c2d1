"""Stage 4: RL against the instructable reward model (PPO, GRPO, RLOO)."""
