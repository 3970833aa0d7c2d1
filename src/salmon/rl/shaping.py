"""Reward shaping and PPO maths as small pure functions over tensors.

Everything the PPO loop computes from numbers lives here, so each piece can be checked
by hand (`tests/unit/test_rl_shaping.py`). Shapes: `B` sequences, `T` response tokens;
`mask` is 1 on response tokens (up to and including the stop token) and 0 on padding.

Sequence-level shaping (SALMON, Sec. 3.3 / App. C):
    score = rm(x, y | principles)                  # RM score of the cleaned response
          + penalty * [no stop token]              # "relative" penalty (paper: -6)
          + coef * min(len / max_len, cap)         # optional length bonus (paper: 5, 0.8)
Token-level reward: r_t = -kl_coef * KL_t, plus `score` on the last response token.

Centring (`center_scores`): a contrastive RM's score has a large offset that depends on
the principles alone (r(y|P) = raw(y|P) - raw(y|not P) is around -20 for every answer
under "be brief" and +15 under "be thorough" on the embedded model). PPO with that
offset left in, and a value head that has not learnt it yet, pushes the probability of
every sampled token, the stop token included, up (positive offset) or down (negative):
the answers got shorter under "thorough" and longer under "brief". Subtracting the mean
score of the rows that share the principles removes it.
"""

from __future__ import annotations

import torch
from torch import Tensor

KL_ESTIMATORS = ("k1", "k3")


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of `x` over positions where `mask` is 1 (all of them when dim is None)."""
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1.0)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1.0)


def unfinished_penalty(scores: Tensor, finished: Tensor, penalty: float, relative: bool = True) -> Tensor:
    """Penalise responses that ran out of tokens before their stop token.

    relative=True adds `penalty` to the score (the paper's setting, -6); relative=False
    replaces the score by `penalty`. Finished responses keep their score.
    """
    unfinished = ~finished.bool()
    penalised = scores + penalty if relative else torch.full_like(scores, penalty)
    return torch.where(unfinished, penalised, scores)


def length_bonus(lengths: Tensor, max_len: int, coef: float, cap: float) -> Tensor:
    """`coef * min(len / max_len, cap)` per response; coef=0 switches it off.

    The paper used coef 5, cap 0.8 to stop the policy collapsing to terse answers;
    reviewers objected that it rewards length for its own sake, so it is off by default.
    """
    frac = lengths.to(torch.float32) / float(max_len)
    return coef * frac.clamp(max=cap)


def shaped_scores(rm_scores: Tensor, finished: Tensor, lengths: Tensor, *, penalty: float,
                  relative: bool, max_len: int, bonus_coef: float, bonus_cap: float) -> Tensor:
    """The sequence-level reward: RM score, stop-token penalty, optional length bonus."""
    scores = unfinished_penalty(rm_scores, finished, penalty, relative)
    return scores + length_bonus(lengths, max_len, bonus_coef, bonus_cap)


CENTERING = ("group", "batch", "none")


def center_scores(scores: Tensor, groups: list, mode: str = "group") -> Tensor:
    """Scores minus a baseline. group: the mean of the rows with the same key in `groups`
    (their principles), and the batch mean for a row no other row shares its key with;
    batch: the batch mean; none: unchanged."""
    if mode == "none" or scores.numel() == 0:
        return scores
    if mode not in CENTERING:
        raise ValueError(f"center_scores must be one of {', '.join(CENTERING)}, got {mode!r}")
    base = torch.full_like(scores, scores.mean().item())
    if mode == "group":
        for key in set(groups):
            rows = [i for i, g in enumerate(groups) if g == key]
            if len(rows) >= 2:
                base[rows] = scores[rows].mean()
    return scores - base


def kl_per_token(logprobs: Tensor, ref_logprobs: Tensor, estimator: str = "k1", clamp: bool = False) -> Tensor:
    """Per-token estimate of KL(policy || reference) from tokens sampled by the policy.

    With log r = log q(x) - log p(x) (q = reference, p = policy):
      k1 = -log r                 (unbiased, can be negative per token)
      k3 = (r - 1) - log r        (unbiased, always >= 0; Schulman 2020)
    `clamp` takes max(estimate, 0) per token, as the SALMON reference does with k1 (biased
    upwards: tokens the policy likes less than the reference are not rewarded).
    """
    log_ratio = ref_logprobs - logprobs
    if estimator == "k1":
        kl = -log_ratio
    elif estimator == "k3":
        kl = torch.expm1(log_ratio) - log_ratio
    else:
        raise ValueError(f"unknown KL estimator {estimator!r} (expected one of {KL_ESTIMATORS})")
    return kl.clamp(min=0.0) if clamp else kl


def token_rewards(scores: Tensor, kl: Tensor, mask: Tensor, kl_coef: float) -> Tensor:
    """[B, T] rewards: -kl_coef * KL on every response token, plus the sequence score
    on its last response token (the last position where mask is 1)."""
    mask = mask.to(kl.dtype)
    rewards = -kl_coef * kl * mask
    last = last_index(mask)
    rewards[torch.arange(len(scores)), last] += scores.to(rewards.dtype)
    return rewards


def last_index(mask: Tensor) -> Tensor:
    """Index of the last 1 in each row of a [B, T] mask (0 for an all-zero row)."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return (positions * (mask > 0)).amax(dim=1)


def whiten(x: Tensor, mask: Tensor | None = None, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """(x - mean) / sqrt(var + eps) over the masked entries (population variance).

    shift_mean=False rescales without centring (used for rewards, whose sign matters).
    Masked-out entries come back as 0.
    """
    if mask is None:
        mask = torch.ones_like(x)
    mask = mask.to(x.dtype)
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask


def gae(rewards: Tensor, values: Tensor, gamma: float, lam: float,
        mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016), backwards over time.

      delta_t = r_t + gamma * V_{t+1} - V_t        (V_T = 0: the episode ends)
      A_t     = delta_t + gamma * lam * A_{t+1}
    Returns (advantages, returns = advantages + values). Padding after a sequence's
    end must have reward 0; its values are zeroed here so the end is terminal.
    """
    if mask is not None:
        values = values * mask.to(values.dtype)
        rewards = rewards * mask.to(rewards.dtype)
    steps = rewards.shape[-1]
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[..., 0])
    for t in reversed(range(steps)):
        next_value = values[..., t + 1] if t + 1 < steps else torch.zeros_like(running)
        delta = rewards[..., t] + gamma * next_value - values[..., t]
        running = delta + gamma * lam * running
        advantages[..., t] = running
    return advantages, advantages + values


def policy_loss(logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor,
                clip: float) -> tuple[Tensor, Tensor, Tensor]:
    """PPO clipped surrogate, L = E[max(-A r, -A clip(r, 1-eps, 1+eps))], r = pi/pi_old.

    Returns (loss, fraction of tokens where the clip was active, approx KL(old||new)).
    """
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    clip_frac = masked_mean((clipped > unclipped).to(logprobs.dtype), mask)
    approx_kl = masked_mean(0.5 * log_ratio**2, mask)
    return loss, clip_frac.detach(), approx_kl.detach()


def value_loss(values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor,
               clip: float) -> tuple[Tensor, Tensor]:
    """Clipped value loss, 0.5 * E[max((V - R)^2, (V_clip - R)^2)] with
    V_clip = V_old + clip(V - V_old, -eps, eps). Returns (loss, clip fraction)."""
    clipped_values = old_values + torch.clamp(values - old_values, -clip, clip)
    err = (values - returns) ** 2
    err_clipped = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(err, err_clipped), mask)
    clip_frac = masked_mean((err_clipped > err).to(values.dtype), mask)
    return loss, clip_frac.detach()


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Entropy of the softmax over the last dimension: logsumexp(z) - sum(p * z)."""
    probs = torch.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (probs * logits).sum(dim=-1)


def logprobs_from_logits(logits: Tensor, tokens: Tensor) -> Tensor:
    """log p(token) under softmax(logits): [B, T, V] x [B, T] -> [B, T]."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return torch.gather(logp, -1, tokens.unsqueeze(-1)).squeeze(-1)
