"""`salmon bench train-rm`: override parsing, the paired bootstrap, and one tiny run."""

from __future__ import annotations

import json

import pytest

from salmon.errors import SalmonError
from salmon.reward.bench import BenchTrainRMConfig, paired_bootstrap_ci, parse_overrides
from tests.unit.test_reward_train import rm_rows, save_rm_data


def test_parse_overrides_reads_yaml_values_and_rejects_unknown_names():
    assert parse_overrides("trainable_layers=4, flip-coefficient=0.5,max_response_tokens=null") == {
        "trainable_layers": 4, "flip_coefficient": 0.5, "max_response_tokens": None}
    assert parse_overrides("") == {}
    with pytest.raises(SalmonError, match="no_such"):
        parse_overrides("no_such=1")
    with pytest.raises(SalmonError, match="name=value"):
        parse_overrides("trainable_layers")


def test_paired_bootstrap_interval():
    same = [1.0, 0.0, 1.0, 0.0]
    assert paired_bootstrap_ci(same, same) == (0.0, 0.0)
    lo, hi = paired_bootstrap_ci([0.0] * 50, [1.0] * 40 + [0.0] * 10)
    assert lo <= 0.8 <= hi and lo > 0.6 and hi < 0.95
    with pytest.raises(ValueError):
        paired_bootstrap_ci([1.0], [])


@pytest.mark.slow
def test_bench_train_rm_on_the_tiny_model(tiny_model, tmp_path, cli):
    data = save_rm_data(rm_rows(8), tmp_path)
    code, stdout, stderr = cli("bench", "train-rm", "--model", tiny_model, "--data", data, "--pairs", "8",
                               "--batch-size", "2", "--max-length", "192", "--eval-limit", "4",
                               "--new", "trainable_layers=1,flip_coefficient=1,mixed_precision=bf16",
                               "--today", "max_response_tokens=8",
                               "--out", tmp_path / "b", "--json")
    assert code == 0, stderr
    res = json.loads(stdout.strip().splitlines()[-1])
    for name in ("today", "new"):
        run = res[name]
        assert run["steps"] == 4 and run["pairs_per_s"] > 0 and run["peak_rss_mb"] > 50
        assert run["dev"]["n"] == 4 and 0 <= run["dev"]["accuracy"] <= 1 and run["test"]["n"] == 4
    assert res["new"]["settings"]["trainable_layers"] == 1 and res["today"]["settings"]["trainable_layers"] == 0
    assert res["today"]["settings"]["max_response_tokens"] == 8 and res["new"]["settings"]["max_response_tokens"] is None
    assert res["today"]["settings"]["mixed_precision"] == "no" and res["new"]["settings"]["mixed_precision"] == "bf16"
    assert res["speedup"] == pytest.approx(res["new"]["pairs_per_s"] / res["today"]["pairs_per_s"], rel=1e-2)
    lo, hi = res["dev_accuracy_diff_ci95"]
    assert lo <= res["dev_accuracy_diff"] <= hi and res["matmul_peak_gflops_per_s"] > 0
    assert res["matmul_bf16_gflops_per_s"] > 0


def test_bench_train_rm_rejects_bad_settings():
    with pytest.raises(SalmonError, match="--new"):
        BenchTrainRMConfig(new="lr").validate()
    with pytest.raises(SalmonError, match="--today"):
        BenchTrainRMConfig(today="no_such=1").validate()
