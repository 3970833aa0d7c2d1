"""Resuming past what a kill -9 leaves half-written: a torn train-rm checkpoint, a kill
between the reward model's files and its summary, a torn last line of the PPO log."""

from __future__ import annotations

import json

import pytest

from salmon.reward.train import train_rm
from salmon.reward.trainer import last_complete_checkpoint
from tests.unit.test_reward_train import rm_rows, save_rm_data, small_cfg


def _checkpoint(out, step: int, state: str | None):
    folder = out / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(b"\0" * 8)
    if state is not None:
        (folder / "trainer_state.json").write_text(state)
    return folder


def test_last_complete_checkpoint_skips_and_removes_torn_folders(tmp_path):
    assert last_complete_checkpoint(tmp_path / "missing") is None
    out = tmp_path / "rm"
    done = _checkpoint(out, 2, '{"global_step": 2}')
    older = _checkpoint(out, 1, '{"global_step": 1}')
    # killed before the trainer wrote its state (10 > 9 > 2 as numbers, not as text)
    no_state = _checkpoint(out, 10, None)
    half_state = _checkpoint(out, 9, '{"global_st')  # killed while writing it
    (out / "checkpoint-final").mkdir()  # not a step: ignored, left alone
    assert last_complete_checkpoint(out) == str(done)
    assert not no_state.exists() and not half_state.exists()
    assert older.exists() and (out / "checkpoint-final").exists()
    assert last_complete_checkpoint(_checkpoint(tmp_path / "only_torn", 1, None).parent) is None


def test_training_resumes_past_a_torn_checkpoint(tiny_model, tmp_path):
    data = save_rm_data(rm_rows(8), tmp_path)
    cfg = small_cfg(tiny_model, data, tmp_path / "rm", max_steps=3, save_steps=1, stop_after=2)
    out = train_rm(cfg)
    torn = _checkpoint(out, 3, None)  # as a kill during the save of step 3 leaves it
    cfg.stop_after = None
    train_rm(cfg)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["pairs_this_run"] == 1 * cfg.batch_size  # step 3 only
    assert not torn.exists()  # removed at the end with the other checkpoints


def test_checkpoints_outlive_a_kill_before_the_summary(tiny_model, tmp_path, monkeypatch):
    from salmon.stage import StageFiles

    cfg = small_cfg(tiny_model, save_rm_data(rm_rows(8), tmp_path), tmp_path / "rm", max_steps=2)

    def killed(self, summary):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(StageFiles, "write_summary", killed)
        with pytest.raises(KeyboardInterrupt):
            train_rm(cfg)
    out = tmp_path / "rm"
    assert (out / "checkpoint-2" / "trainer_state.json").exists()
    assert not (out / "summary.json").exists()
    train_rm(cfg)
    summary = json.loads((out / "summary.json").read_text())
    # resumed at the end, not retrained
    assert summary["steps"] == 2 and summary["pairs_this_run"] == 0
    assert not list(out.glob("checkpoint-*"))


def test_ppo_log_drops_a_torn_line_and_steps_past_the_checkpoint(tmp_path):
    from salmon.rl.ppo import StepLog

    log = tmp_path / "log.jsonl"
    lines = [json.dumps({"step": s, "kl": 0.1 * s}) + "\n" for s in (1, 2, 3)]
    log.write_text("".join(lines) + '{"step": 4, "k')
    with StepLog(tmp_path, start=2, enabled=True) as step_log:
        step_log.write({"step": 3, "kl": 0.5})
    assert [json.loads(line) for line in log.read_text().splitlines()] == [
        {"step": 1, "kl": 0.1},
        {"step": 2, "kl": 0.2},
        {"step": 3, "kl": 0.5},
    ]
