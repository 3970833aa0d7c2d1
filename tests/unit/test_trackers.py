"""--report-to on every training stage (same field, same values), W&B offline, RM --merge."""

import dataclasses
import importlib.util
import json

import pytest

from salmon.errors import SalmonError
from salmon.trackers import REPORT_TO, check_report_to

from .test_reward_train import rm_rows, save_rm_data, small_cfg

TRAINING = ("sft", "train-rm", "rl")


def test_every_training_stage_has_the_same_report_to_field():
    from salmon.stages import STAGES

    for name in TRAINING:
        cls = STAGES[name].load()[0]
        field = {f.name: f for f in dataclasses.fields(cls)}["report_to"]
        assert field.type in ("str", str) and field.default == "tensorboard", name
    with pytest.raises(SalmonError, match="--report-to mlflow: expected one of tensorboard, wandb, none"):
        check_report_to("mlflow")
    assert REPORT_TO == ("tensorboard", "wandb", "none")


def test_train_rm_tensorboard_events_and_merged_model(tiny_model, tmp_path):
    from salmon.reward.model import InstructableRewardModel
    from salmon.reward.train import train_rm

    data = save_rm_data(rm_rows(8), tmp_path)
    out = train_rm(small_cfg(tiny_model, data, tmp_path / "rm", max_steps=2, merge=True, eval_fraction=0.0))
    assert list((out / "tb").rglob("events.out.tfevents.*"))
    merged = out / "merged"
    assert (merged / "model.safetensors").exists() and not (merged / "adapter_config.json").exists()
    a = InstructableRewardModel.load(out, device="cpu", dtype="float32")
    b = InstructableRewardModel.load(merged, device="cpu", dtype="float32")
    args = (["Q?", "Q?"], ["Short.", "A longer answer here."], [["Be brief."], ["Be thorough."]])
    sa, sb = a.score(*args), b.score(*args)
    assert max(abs(x - y) for x, y in zip(sa, sb, strict=True)) < 1e-4, (sa, sb)
    assert abs(sa[0] - sa[1]) > 1e-6  # the scores differ, so the comparison means something
    from transformers import AutoModelForSequenceClassification

    plain = AutoModelForSequenceClassification.from_pretrained(str(merged), num_labels=1)
    assert plain.score.weight.shape[0] == 1


@pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="wandb not installed")
def test_wandb_offline_run_files(tiny_model, tmp_path, monkeypatch):
    from salmon.reward.train import train_rm

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    data = save_rm_data(rm_rows(8), tmp_path)
    out = train_rm(small_cfg(tiny_model, data, tmp_path / "rm", max_steps=2, report_to="wandb",
                             eval_fraction=0.0))
    runs = list((out / "wandb").glob("offline-run-*"))
    assert runs and list(runs[0].glob("*.wandb")), list((out / "wandb").iterdir())
    assert json.loads((out / "summary.json").read_text())["steps"] == 2


@pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="wandb not installed")
def test_ppo_loop_logs_to_wandb_offline_and_nothing_else(tiny_model, random_rm, tmp_path, monkeypatch):
    from salmon.rl.ppo import RLConfig, rl

    monkeypatch.delenv("WANDB_MODE", raising=False)
    out = rl(RLConfig(policy=str(tiny_model), rm=str(random_rm), out=str(tmp_path / "ppo"), steps=1, batch_size=2,
                      max_new_tokens=4, ppo_epochs=1, progress=False, device="cpu", report_to="wandb"))
    assert list((out / "wandb").glob("offline-run-*/*.wandb"))
    assert not (out / "tb").exists()
    none = rl(RLConfig(policy=str(tiny_model), rm=str(random_rm), out=str(tmp_path / "none"), steps=1, batch_size=2,
                       max_new_tokens=4, ppo_epochs=1, progress=False, device="cpu", report_to="none"))
    assert not (none / "tb").exists() and not (none / "wandb").exists() and (none / "log.jsonl").exists()
