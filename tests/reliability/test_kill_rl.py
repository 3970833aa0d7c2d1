"""kill -9 during `salmon rl` (PPO), rerun: log.jsonl holds each step once, with the numbers
and final adapter of an uninterrupted run.

Kill points (checkpoints every 2 steps): with step 3 logged but the newest checkpoint at
step 2 (the rerun must drop step 3's line and recompute it); the same with a torn last
line, as a kill in the middle of a log write leaves; and while checkpoint-2 is being
written (it is built as .checkpoint-2.tmp and renamed into place).
"""

import json

import pytest

from tests.reliability.conftest import (
    assert_same_tensors,
    has_lines,
    kill_mid_run,
    run_ok,
    salmon_cmd,
)

STEPS = 6
ARGS = (
    f"--steps {STEPS} --save-steps 2 --batch-size 2 --mini-batches 2 --ppo-epochs 2 "
    "--max-new-tokens 6 --lora-r 4 --lora-alpha 8 --device cpu --no-progress"
).split()
PER_STEP = ("policy_loss", "value_loss", "rm_score", "kl", "entropy", "grad_norm")


def rl_cmd(model, rm, out) -> list[str]:
    return salmon_cmd("rl", "--policy", model, "--rm", rm, "--out", out, *ARGS)


def log(out) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def checkpoint_steps(out) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*"))


KILL_POINTS = {
    "log_ahead_of_checkpoint": lambda out: has_lines(out / "log.jsonl", 3)(),
    "torn_log_line": lambda out: has_lines(out / "log.jsonl", 3)(),
    "while_writing_checkpoint": lambda out: any(out.glob(".checkpoint-*.tmp")),
}


@pytest.fixture(scope="module")
def clean(tiny_model, random_rm, tmp_path_factory):
    out = tmp_path_factory.mktemp("clean") / "policy"
    run_ok(rl_cmd(tiny_model, random_rm, out))
    return out


@pytest.mark.parametrize("point", KILL_POINTS)
def test_rl_survives_kill_9(point, tiny_model, random_rm, clean, tmp_path):
    out = tmp_path / "policy"
    cmd = rl_cmd(tiny_model, random_rm, out)
    kill_mid_run(cmd, lambda: KILL_POINTS[point](out))
    assert not (out / "summary.json").exists() and not (out / "adapter_model.safetensors").exists()
    if point == "while_writing_checkpoint":
        # only the temp folder: no half-written checkpoint under a final name
        assert checkpoint_steps(out) == []
    else:
        assert len(log(out)) == 3 and checkpoint_steps(out) == [2]  # the log is ahead
    if point == "torn_log_line":
        with open(out / "log.jsonl", "a") as fh:
            fh.write('{"step": 4, "policy_loss": 0.12')

    run_ok(cmd)
    records, clean_records = log(out), log(clean)
    assert [r["step"] for r in records] == list(range(1, STEPS + 1))  # each step exactly once
    for key in (*PER_STEP, "principles_drawn"):
        assert [r[key] for r in records] == [r[key] for r in clean_records], key
    assert_same_tensors(out / "adapter_model.safetensors", clean / "adapter_model.safetensors")
    assert checkpoint_steps(out) == checkpoint_steps(clean) and not list(out.glob(".checkpoint-*"))
    summary, clean_summary = (json.loads((o / "summary.json").read_text()) for o in (out, clean))
    assert summary == clean_summary
