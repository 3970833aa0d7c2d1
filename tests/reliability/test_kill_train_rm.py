"""kill -9 during `salmon train-rm`, rerun: the same reward model as an uninterrupted run.

Two kill points: just after checkpoint-3 is complete, and while the trainer is still
writing it (the trainer writes checkpoint-N in place, trainer_state.json last).
"""

import json

import pytest

from tests.reliability.conftest import assert_same_tensors, kill_mid_run, run_ok, salmon_cmd
from tests.unit.test_reward_train import rm_rows, save_rm_data

STEPS = 8
ARGS = (
    f"--max-steps {STEPS} --save-steps 1 --save-total-limit 2 --batch-size 2 --max-length 192 --learning-rate 1e-3 "
    "--eval-steps 2 --logging-steps 1 --eval-fraction 0.25 --norm-samples 4 --no-progress"
).split()
# what only a finished run has
FINISHED = ("summary.json", "adapter_model.safetensors", "salmon_rm.json")
# log keys that differ between any two runs (timings), or after any resume: TRL's running
# token count restarts from 0 in a resumed run (a logging counter, not a training input)
UNEQUAL = ("runtime", "per_second", "num_tokens")


def train_rm_cmd(model, data, out) -> list[str]:
    return salmon_cmd("train-rm", "--model", model, "--data", data, "--out", out, *ARGS)


def complete(ckpt) -> bool:
    return (ckpt / "trainer_state.json").exists()


def log_history(out) -> list[dict]:
    """The trainer's per-step log (losses, grad norms, learning rates, evals), less UNEQUAL keys."""
    state = json.loads((out / f"checkpoint-{STEPS}" / "trainer_state.json").read_text())
    return [
        {k: v for k, v in h.items() if not any(u in k for u in UNEQUAL)}
        for h in state["log_history"]
    ]


KILL_POINTS = {
    "after_checkpoint_3": lambda out: complete(out / "checkpoint-3"),
    "while_writing_checkpoint_3": lambda out: (
        (out / "checkpoint-3").is_dir() and not complete(out / "checkpoint-3")
    ),
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return save_rm_data(rm_rows(), tmp_path_factory.mktemp("rm_data"))


@pytest.fixture(scope="module")
def clean(tiny_model, data, tmp_path_factory):
    out = tmp_path_factory.mktemp("clean") / "rm"
    run_ok(train_rm_cmd(tiny_model, data, out))
    return out


@pytest.mark.parametrize("point", KILL_POINTS)
def test_train_rm_survives_kill_9(point, tiny_model, data, clean, tmp_path):
    out = tmp_path / "rm"
    cmd = train_rm_cmd(tiny_model, data, out)
    kill_mid_run(cmd, lambda: KILL_POINTS[point](out))
    assert not [f for f in FINISHED if (out / f).exists()]  # nothing looks finished
    if point == "while_writing_checkpoint_3":
        assert not complete(out / "checkpoint-3")  # the kill did tear a checkpoint

    run_ok(cmd)
    assert all(complete(c) for c in out.glob("checkpoint-*"))
    assert_same_tensors(out / "adapter_model.safetensors", clean / "adapter_model.safetensors")
    history = log_history(out)
    # each step logged once
    assert [h["step"] for h in history if "loss" in h] == list(range(1, STEPS + 1))
    assert history == log_history(clean)
    meta, clean_meta = (json.loads((o / "salmon_rm.json").read_text()) for o in (out, clean))
    assert meta == clean_meta  # reward_mean / reward_std from the final weights
    summary, clean_summary = (json.loads((o / "summary.json").read_text()) for o in (out, clean))
    for key in ("steps", "train_pairs", "heldout_accuracy", "heldout_loss"):
        assert summary[key] == clean_summary[key], key
