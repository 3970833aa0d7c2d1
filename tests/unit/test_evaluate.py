"""The evaluation stage: paired before/after figures with intervals, on a tiny random model."""

from __future__ import annotations

import json

import pytest

from salmon.evaluate import EvalConfig, before_after, common_prompts, evaluate, labeled_path


def test_before_after_by_hand():
    values = {"before": {"length": [10.0, 20.0, 30.0], "redteam_refusal": [0.0, 1.0, 0.0]},
              "after": {"length": [12.0, 22.0, 32.0], "redteam_refusal": [0.0, 1.0, 0.0]}}
    m = before_after(values)
    assert m["policy.before.length"] == 20.0 and m["policy.after.length"] == 22.0
    assert m["policy.before.length_ci_low"] < 20.0 < m["policy.before.length_ci_high"]
    # every prompt got exactly 2 tokens longer: the paired interval is [2, 2]
    assert (m["policy.diff.length"], m["policy.diff.length_ci_low"], m["policy.diff.length_ci_high"]) == (2.0, 2.0, 2.0)
    # the refusal rate keeps its older key names
    assert m["policy.redteam_refusal_before"] == pytest.approx(1 / 3)
    assert "policy.redteam_refusal_after_ci_high" in m and m["policy.diff.redteam_refusal_ci_low"] == 0.0
    assert not any(k.startswith("policy.diff") for k in before_after({"before": values["before"]}))


@pytest.mark.parametrize("flag", ["limit", "redteam_limit", "redteam_max_new_tokens", "bootstrap"])
def test_bad_sizes_are_refused(cli, flag):
    code, _, err = cli("eval", f"--{flag.replace('_', '-')}", "0", "--out", "/nonexistent/x")
    assert code != 0 and f"--{flag.replace('_', '-')} must be at least 1" in err


def test_common_prompts_pairs_by_id_in_one_order():
    gens = {"before": [{"id": "a"}, {"id": "b"}, {"id": "c"}], "after": [{"id": "c", "x": 1}, {"id": "a"}]}
    out = common_prompts(gens)
    assert [r["id"] for r in out["before"]] == ["a", "c"] and [r["id"] for r in out["after"]] == ["a", "c"]


def figure_keys(metrics: dict) -> list[str]:
    """Keys of quality figures: everything but counts, timings, intervals and length correlations."""
    skip = ("_ci_low", "_ci_high", ".n", "n_prompts", "n_redteam", "length_corr", "length_corr_negated")
    return [k for k, v in metrics.items() if isinstance(v, float) and not k.startswith("timings.")
            and not k.endswith(skip)]


def test_evaluate_writes_an_interval_for_every_figure(tiny_model, random_rm, tmp_path, one_torch_thread):
    labeled = tmp_path / "pairs.jsonl"
    rows = [json.loads(line) for line in open(labeled_path("judge_dev"))][:6]
    labeled.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = EvalConfig(rm=str(random_rm), policy_before=str(tiny_model), policy_after=str(tiny_model),
                     out=str(tmp_path / "eval"), labeled=[str(labeled)], limit=4, redteam_limit=3,
                     max_new_tokens=4, redteam_max_new_tokens=3, bootstrap=200, progress=False)
    m = json.loads((evaluate(cfg) / "metrics.json").read_text())
    assert m["policy.n_prompts"] == 4 and m["policy.n_redteam"] == 3
    keys = figure_keys(m)
    assert {"policy.before.rm_score", "policy.diff.rm_score", "policy.redteam_refusal_after",
            "policy.diff.redteam_refusal", f"rm.{labeled}.accuracy", f"rm.{labeled}.flip_rate"} <= set(keys)
    for k in keys:
        assert m[f"{k}_ci_low"] <= m[k] + 1e-9 and m[k] <= m[f"{k}_ci_high"] + 1e-9, k
    # the same model before and after answers the same way: every difference is exactly 0
    assert all(m[k] == 0.0 for k in keys if k.startswith("policy.diff."))
    red = [json.loads(line) for line in open(tmp_path / "eval" / "before" / "redteam.jsonl")]
    assert len(red) == 3 and max(r["num_tokens"][0] for r in red) <= 3
