"""The judge benchmark: FLOP count by hand, and a tiny end-to-end run of both modes."""

from __future__ import annotations

import pytest

from salmon.judge.bench import BenchJudgeConfig, linear_params, measure_judge_speed, shared_flops
from salmon.judge.core import PromptIds


@pytest.fixture(scope="module")
def model(tiny_model):
    from salmon.models import load_causal_lm

    return load_causal_lm(str(tiny_model), dtype="float32", device="cpu")


def test_flop_count_hand_computed(model):
    # tiny Llama: hidden 64, MLP 128, 4 heads of 16, 2 KV heads, 2 layers
    per_layer = 64 * 64 + 64 * 32 + 64 * 32 + 64 * 64 + 3 * 64 * 128
    assert linear_params(model) == 2 * per_layer
    item = PromptIds(prefix=[1, 2, 3], suffixes=[[4, 5]])
    # 5 tokens through the linear layers; keys seen: prefix 1+2+3, suffix 4+5;
    # output layer at the prefix's last token and the suffix's last token
    vocab = model.config.vocab_size
    expected = 2 * (2 * per_layer) * 5 + 4 * 64 * 2 * (6 + 9) + 2 * 64 * vocab * 2
    assert shared_flops([item], model) == expected


def test_bench_runs_both_modes_and_they_agree(tiny_model):
    res = measure_judge_speed(BenchJudgeConfig(model=str(tiny_model), pairs=2, principles=3, batch_pairs=2,
                                               response_tokens=24, repeats=1))
    for key in ("reference_verdicts_per_s", "shared_verdicts_per_s", "speedup", "max_abs_score_diff",
                "achieved_gflops_per_s", "matmul_peak_gflops_per_s"):
        assert res[key] > 0 or key == "max_abs_score_diff"
    assert res["max_abs_score_diff"] < 1e-4
    assert res["pairs"] == 2 and res["principles"] == 3
    assert res["token_ratio"] > 1
