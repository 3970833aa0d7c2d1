"""Reward shaping and PPO maths against numbers worked out by hand (in the comments)."""

from __future__ import annotations

import math

import pytest
import torch

from salmon.rl import shaping as S


def close(actual, expected, tol=1e-5):
    assert torch.allclose(torch.as_tensor(actual, dtype=torch.float32),
                          torch.tensor(expected, dtype=torch.float32), atol=tol), (actual, expected)


def test_gae_three_steps():
    # gamma 0.9, lam 0.8, V = [.5, .6, .7], r = [0, 0, 1], V_3 = 0
    # d2 = 1 - .7 = .3                 A2 = .3
    # d1 = .9*.7 - .6 = .03            A1 = .03 + .72*.3 = .246
    # d0 = .9*.6 - .5 = .04            A0 = .04 + .72*.246 = .21712
    adv, ret = S.gae(torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[0.5, 0.6, 0.7]]), 0.9, 0.8)
    close(adv, [[0.21712, 0.246, 0.3]])
    close(ret, [[0.71712, 0.846, 1.0]])


def test_gae_padding_is_terminal():
    # the last token is padding: its value (9.9) must not leak into the bootstrap
    # d1 = 1 - .6 = .4 ; d0 = .9*.6 - .5 = .04 ; A0 = .04 + .72*.4 = .328
    adv, _ = S.gae(torch.tensor([[0.0, 1.0, 0.0]]), torch.tensor([[0.5, 0.6, 9.9]]), 0.9, 0.8,
                   mask=torch.tensor([[1, 1, 0]]))
    close(adv, [[0.328, 0.4, 0.0]])


def test_gae_gamma_lam_one_is_monte_carlo_minus_value():
    adv, _ = S.gae(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[1.0, 1.0, 1.0]]), 1.0, 1.0)
    close(adv, [[5.0, 4.0, 2.0]])  # returns-to-go 6, 5, 3 minus V


def test_whiten_full_and_masked():
    # mean 2.5, population var 1.25, std 1.118034
    close(S.whiten(torch.tensor([1.0, 2.0, 3.0, 4.0])), [-1.341641, -0.447214, 0.447214, 1.341641])
    # masked: mean 2, var 2/3 over the first three; the 100 is ignored and zeroed
    close(S.whiten(torch.tensor([1.0, 2.0, 3.0, 100.0]), torch.tensor([1, 1, 1, 0])),
          [-1.224745, 0.0, 1.224745, 0.0])
    # shift_mean=False keeps the mean: whitened + 2.5
    close(S.whiten(torch.tensor([1.0, 2.0, 3.0, 4.0]), shift_mean=False),
          [1.158359, 2.052786, 2.947214, 3.841641])


def test_kl_estimators():
    logp = torch.log(torch.tensor([0.5, 0.2]))
    ref = torch.log(torch.tensor([0.25, 0.4]))
    # log r = log(q/p) = [-log 2, +log 2]
    close(S.kl_per_token(logp, ref, "k1"), [math.log(2), -math.log(2)])
    # k3 = (r - 1) - log r: r=.5 -> -.5 + .693147 ; r=2 -> 1 - .693147
    close(S.kl_per_token(logp, ref, "k3"), [0.193147, 0.306853])
    with pytest.raises(ValueError):
        S.kl_per_token(logp, ref, "k2")


def test_length_bonus_and_switch_off():
    lengths = torch.tensor([10, 80, 100])
    close(S.length_bonus(lengths, 100, 5.0, 0.8), [0.5, 4.0, 4.0])  # 5*min(l/100, .8)
    close(S.length_bonus(lengths, 100, 0.0, 0.8), [0.0, 0.0, 0.0])


def test_unfinished_penalty_relative_and_absolute():
    scores, finished = torch.tensor([1.0, 2.0]), torch.tensor([True, False])
    close(S.unfinished_penalty(scores, finished, -6.0, relative=True), [1.0, -4.0])
    close(S.unfinished_penalty(scores, finished, -6.0, relative=False), [1.0, -6.0])


def test_shaped_scores_combines_terms():
    out = S.shaped_scores(torch.tensor([1.0, 2.0]), torch.tensor([True, False]), torch.tensor([50, 100]),
                          penalty=-6.0, relative=True, max_len=100, bonus_coef=5.0, bonus_cap=0.8)
    close(out, [1.0 + 2.5, 2.0 - 6.0 + 4.0])


def test_center_scores_by_group_batch_and_none():
    scores = torch.tensor([-20.0, -22.0, 15.0, 3.0])
    # rows 0 and 1 share their principles: their mean -21 is their baseline; rows 2 and 3
    # share theirs with nobody: the batch mean (-20 - 22 + 15 + 3) / 4 = -6
    close(S.center_scores(scores, ["brief", "brief", "thorough", "other"]), [1.0, -1.0, 21.0, 9.0])
    close(S.center_scores(scores, ["brief"] * 4, "batch"), [-14.0, -16.0, 21.0, 9.0])
    close(S.center_scores(scores, ["brief"] * 4, "none"), [-20.0, -22.0, 15.0, 3.0])
    close(S.center_scores(torch.tensor([-20.0, -22.0]), ["brief", "brief"]), [1.0, -1.0])  # the offset is gone
    with pytest.raises(ValueError, match="center_scores"):
        S.center_scores(scores, ["a"] * 4, "median")


def test_token_rewards_put_score_on_last_token():
    kl = torch.tensor([[0.1, 0.2, 0.3], [0.5, 0.5, 0.5]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    out = S.token_rewards(torch.tensor([2.0, -1.0]), kl, mask, kl_coef=0.1)
    close(out, [[-0.01, -0.02, 1.97], [-0.05, -1.05, 0.0]])


def test_policy_loss_clipping():
    # A = [1, -1, 2], ratio = [1.5, .5, 1.1], eps .2
    # per token max(-A r, -A clip(r)): max(-1.5,-1.2)=-1.2 ; max(.5,.8)=.8 ; max(-2.2,-2.2)=-2.2
    old = torch.zeros(1, 3)
    new = torch.log(torch.tensor([[1.5, 0.5, 1.1]]))
    loss, clip_frac, _ = S.policy_loss(new, old, torch.tensor([[1.0, -1.0, 2.0]]), torch.ones(1, 3), 0.2)
    close(loss, (-1.2 + 0.8 - 2.2) / 3)
    close(clip_frac, 2 / 3)


def test_value_loss_clipping():
    # token0: V_clip=.2, (.5-1)^2=.25 < (.2-1)^2=.64 ; token1: V_clip=.9=V, .81
    loss, clip_frac = S.value_loss(torch.tensor([0.5, 0.9]), torch.tensor([0.0, 1.0]),
                                   torch.tensor([1.0, 0.0]), torch.ones(2), 0.2)
    close(loss, 0.5 * (0.64 + 0.81) / 2)
    close(clip_frac, 0.5)


def test_entropy_from_logits():
    # uniform over 2: log 2 ; p = (.25, .75): -(.25 ln .25 + .75 ln .75) = .562335
    close(S.entropy_from_logits(torch.tensor([[0.0, 0.0], [0.0, math.log(3.0)]])), [math.log(2), 0.562335])


def test_logprobs_from_logits():
    logits = torch.tensor([[[0.0, math.log(3.0)]]])
    close(S.logprobs_from_logits(logits, torch.tensor([[1]])), [[math.log(0.75)]])


def test_last_index():
    close(S.last_index(torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0]])), [1, 2, 0])
