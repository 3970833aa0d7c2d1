"""The steering benchmark: targets and cap room on hand-computed numbers, the per-seed
assembly with fake measurements (no model runs), and one tiny-model run end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from salmon.errors import SalmonError
from salmon.rl import steer_bench
from salmon.rl.steer_bench import SteerBenchConfig, cap_room, steer, steer_targets


def _entry(seed, b_before, b_after, t_before, t_after):
    return {"seed": seed, "brevity_before": b_before, "brevity_after": b_after,
            "thoroughness_before": t_before, "thoroughness_after": t_after}


def test_steer_targets_hand_checked():
    # seed 0: 60 <= 0.67 * 90 = 60.3 and 135 >= 1.5 * 90 = 135 (both on the edge, both met)
    # seed 1: 68 > 0.67 * 100 = 67 (brevity missed), 160 >= 150 (thoroughness met)
    by_seed = [_entry(0, 90, 60, 90, 135), _entry(1, 100, 68, 100, 160)]
    t = steer_targets(by_seed)
    assert t["by_seed"] == [{"seed": 0, "brevity": True, "thoroughness": True, "both": True},
                            {"seed": 1, "brevity": False, "thoroughness": True, "both": False}]
    assert t["all"] is False
    assert steer_targets(by_seed[:1])["all"] is True
    # thoroughness 134.9 < 135 misses; looser thresholds change the verdict
    assert steer_targets([_entry(0, 90, 60, 90, 134.9)])["all"] is False
    assert steer_targets([_entry(1, 100, 68, 100, 160)], shrink=0.7)["all"] is True
    assert steer_targets([])["all"] is False
    # custom set names come from the keys, in order
    custom = {"seed": 3, "short_before": 10, "short_after": 5, "long_before": 10, "long_after": 14}
    assert steer_targets([custom])["by_seed"][0] == {"seed": 3, "short": True, "long": False, "both": False}


def test_cap_room_uses_the_longest_starting_mean():
    assert cap_room(512, [100.0, 128.0]) == 4.0  # 512 / 128
    assert cap_room(96, [86.5]) == round(96 / 86.5, 3) == 1.11
    assert cap_room(96, [0.0]) is None and cap_room(96, []) is None


class _FakeRM:
    def score(self, prompts, texts, principles):  # a longer answer scores higher under any principle
        return [float(len(t)) for t in texts]


def _fake_models(monkeypatch, calls, penalties=None):
    """Starting policy answers 90 + 10*seed tokens; the brevity run halves that, the
    thoroughness run doubles it (trebles for seed 1)."""
    import salmon.models
    import salmon.reward.model
    import salmon.rl.models
    import salmon.rl.ppo

    def fake_rl(cfg):
        calls.append((cfg.out, cfg.seed, cfg.principles))
        if penalties is not None:
            penalties.append((cfg.unfinished_penalty, cfg.value_head_init, cfg.center_scores))
        return Path(cfg.out)

    def fake_measure(lm, cfg, seed, cap):
        calls.append(("measure", str(lm), seed, cap))
        start = 90 + 10 * seed
        factor = {"brevity": 0.5, "thoroughness": 2.0 if seed == 0 else 3.0}.get(Path(str(lm)).name, 1.0)
        n = length = min(int(start * factor), cap)
        return {"prompts": ["p", "q"], "texts": ["x" * n, "y" * n], "lengths": [length, length],
                "finished": [True, factor != 1.0]}

    monkeypatch.setattr(salmon.rl.ppo, "rl", fake_rl)
    monkeypatch.setattr(salmon.rl.models, "check_rm_folder", lambda path: Path(path))
    monkeypatch.setattr(salmon.models, "load_causal_lm", lambda spec, device="cpu": spec)
    monkeypatch.setattr(steer_bench, "_measure", fake_measure)
    monkeypatch.setattr(salmon.reward.model.InstructableRewardModel, "load",
                        classmethod(lambda cls, path, device="cpu": _FakeRM()))


def test_by_seed_assembly_with_fake_measurements(monkeypatch, tmp_path, capsys):
    calls: list = []
    penalties: list = []
    _fake_models(monkeypatch, calls, penalties)
    steer(SteerBenchConfig(policy="start", rm="rm", seeds=[0, 1], eval_max_new_tokens=288, max_new_tokens=160,
                           unfinished_penalty=-6.0, value_head_init="zero", out=str(tmp_path / "s"), json=True))
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    runs = [str(tmp_path / "s" / f"seed{seed}" / name) for seed in (0, 1) for name in ("brevity", "thoroughness")]
    assert calls == [("measure", "start", 0, 288), (runs[0], 0, "brevity"), ("measure", runs[0], 0, 288),
                     (runs[1], 0, "thoroughness"), ("measure", runs[1], 0, 288),
                     ("measure", "start", 1, 288), (runs[2], 1, "brevity"), ("measure", runs[2], 1, 288),
                     (runs[3], 1, "thoroughness"), ("measure", runs[3], 1, 288)]
    first, second = result["by_seed"]
    assert {k: first[k] for k in list(first)[:7]} == {
        "seed": 0, "brevity_before": 90.0, "brevity_after": 45.0, "thoroughness_before": 90.0,
        "thoroughness_after": 180.0, "brevity_ratio": 0.5, "thoroughness_ratio": 2.0}
    # seed 1: thoroughness would write 300 tokens, the cap of 288 stops it
    assert (second["seed"], second["brevity_after"], second["thoroughness_after"]) == (1, 50.0, 288.0)
    run = first["runs"]["thoroughness"]
    assert run["before"]["stop_rate"] == 0.5 and run["after"]["stop_rate"] == 1.0
    assert run["after"]["mean_rm_score"] == 180.0 == run["after"]["mean_rm_score_under"]["brevity"]
    assert run["length_change_ci95"] == [90.0, 90.0]  # every answer 90 -> 180 tokens: no spread
    assert second["runs"]["brevity"]["length_change_ci95"] == [-50.0, -50.0]
    assert result["targets_met"]["all"] is True
    # 288 / 100 (seed 1 starts longest): below 3x, so not ok, and a warning names the figures
    assert result["eval_cap_over_start_length"] == 2.88 and result["cap_ok"] is False
    assert result["eval_max_new_tokens"] == 288 and result["eval_cap_automatic"] is False
    # every PPO run gets the settings given; the ones not given stay salmon rl's defaults
    assert penalties == [(-6.0, "zero", "group")] * 4 and result["unfinished_penalty"] == -6.0
    assert result["value_head_init"] == "zero" and result["center_scores"] is None
    assert "runs" not in result  # only with one seed
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "seed 1" in warnings[0] and "288" in warnings[0] and "100.0" in warnings[0]
    assert result["train_tokens_over_start_length"] == 1.6  # 160 / 100: room for 1.5x, no warning


def test_one_seed_keeps_the_earlier_fields(monkeypatch, tmp_path, capsys):
    _fake_models(monkeypatch, [])
    steer(SteerBenchConfig(policy="start", rm="rm", seed=0, eval_max_new_tokens=300, max_new_tokens=135,
                           out=str(tmp_path), json=True))
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["seeds"] == [0] and len(result["by_seed"]) == 1
    assert result["length_ratio_thoroughness_over_brevity_after"] == 4.0  # 180 / 45
    assert result["runs"]["brevity"]["after"]["mean_length"] == 45.0
    assert result["cap_ok"] is True and "warning" not in captured.err  # 300 / 90 = 3.33


def test_automatic_cap_is_chosen_on_the_first_seed(monkeypatch, tmp_path, capsys):
    calls: list = []
    _fake_models(monkeypatch, calls)
    monkeypatch.setattr(steer_bench, "AUTO_CAPS", (64, 128, 256, 512))
    steer(SteerBenchConfig(policy="start", rm="rm", seeds=[0, 1], max_new_tokens=150, out=str(tmp_path), json=True))
    # seed 0 starts at 90 tokens: 64 (mean 64, 1x) and 128 (mean 90, 1.42x) leave too little
    # room, 256 (2.84x) too, 512 (5.69x) is enough; seed 1 (100 tokens) and every run use 512
    measures = [c for c in calls if c[0] == "measure"]
    assert [c[3] for c in measures[:4]] == [64, 128, 256, 512] and {c[3] for c in measures[4:]} == {512}
    assert len(measures) == 4 + 2 + 3
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["eval_max_new_tokens"] == 512 and result["eval_cap_automatic"] is True
    assert result["eval_cap_over_start_length"] == 5.12 and result["cap_ok"] is True  # 512 / 100
    assert result["by_seed"][0]["thoroughness_after"] == 180.0 and "warning" not in captured.err
    # none of the automatic caps is enough: the last one is used, with the warning
    monkeypatch.setattr(steer_bench, "AUTO_CAPS", (64, 128))
    steer(SteerBenchConfig(policy="start", rm="rm", seeds=[0], max_new_tokens=150, out=str(tmp_path / "b"), json=True))
    captured = capsys.readouterr()
    assert json.loads(captured.out)["eval_max_new_tokens"] == 128 and "warning: seed 0" in captured.err


def test_training_length_below_the_growth_target_warns(monkeypatch, tmp_path, capsys):
    _fake_models(monkeypatch, [])
    # starting mean 90 tokens: 134 < 1.5 x 90 = 135 warns, 135 does not
    steer(SteerBenchConfig(policy="start", rm="rm", seed=0, eval_max_new_tokens=300, max_new_tokens=134,
                           out=str(tmp_path / "a"), json=True))
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "--max-new-tokens 134" in warnings[0] and "1.49x" in warnings[0]
    assert "90.0 tokens" in warnings[0] and json.loads(captured.out)["train_tokens_over_start_length"] == 1.489


@pytest.mark.parametrize("kwargs, match", [({"seeds": [1, 1]}, "--seeds"), ({"seeds": []}, "--seeds"),
                                           ({"sets": ["brevity"]}, "--sets"),
                                           ({"eval_max_new_tokens": -1}, "--eval-max-new-tokens"),
                                           ({"rm": "missing"}, "--rm missing: reward model folder not found")])
def test_bad_settings_fail_before_any_model_runs(kwargs, match, tmp_path, random_rm):
    with pytest.raises(SalmonError, match=match):
        steer(SteerBenchConfig(**{"rm": str(random_rm), "out": str(tmp_path / "s"), **kwargs}))
    assert not (tmp_path / "s").exists()


def test_steer_bench_tiny_two_seeds(cli, tiny_model, random_rm, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    code, out, err = cli("bench", "steer", "--policy", tiny_model, "--rm", random_rm, "--steps", "1", "--seeds", "0,1",
                         "--batch-size", "2", "--max-new-tokens", "4", "--eval-max-new-tokens", "4",
                         "--eval-limit", "2", "--eval-samples", "1", "--ppo-epochs", "1",
                         "--out", tmp_path / "steer", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert [e["seed"] for e in result["by_seed"]] == [0, 1]
    for e in result["by_seed"]:
        assert {"brevity_before", "brevity_after", "thoroughness_before", "thoroughness_after"} <= set(e)
        assert e["brevity_before"] == e["thoroughness_before"] > 0  # one starting measurement per seed
        assert set(e["runs"]["brevity"]["before"]) >= {"mean_length", "mean_rm_score", "stop_rate"}
    assert set(result["targets_met"]) >= {"all", "by_seed"} and isinstance(result["cap_ok"], bool)
    assert (tmp_path / "steer" / "seed1" / "thoroughness" / "summary.json").exists()
