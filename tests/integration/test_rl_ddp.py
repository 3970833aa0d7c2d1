"""PPO under `accelerate launch` with 2 CPU processes (DDP over gloo) on a tiny model.

accelerate 1.15's `--cpu` flag starts a single process, so the launch uses the
multi-process launcher (`--multi_gpu`) and `--device cpu`; on a machine without GPUs
that is plain DDP on CPU.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from salmon.rl.bench import make_untrained_rm


@pytest.mark.slow
def test_ppo_two_process_ddp(tiny_model, tmp_path):
    accelerate = shutil.which("accelerate") or os.path.join(os.path.dirname(sys.executable), "accelerate")
    rm = make_untrained_rm(str(tiny_model), tmp_path / "rm", randomize=True)
    out = tmp_path / "policy"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TRANSFORMERS_VERBOSITY": "error"}
    cmd = [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29517",
           "-m", "salmon.cli", "rl", "--policy", str(tiny_model), "--rm", str(rm), "--out", str(out),
           "--steps", "2", "--batch-size", "2", "--ppo-epochs", "2", "--max-new-tokens", "6",
           "--lora-r", "4", "--lora-alpha", "8", "--device", "cpu", "--no-progress"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["ranks_in_sync"] is True
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2]
    ids = [d["id"] for r in log for d in r["principles_drawn"]]
    assert len(ids) == 8 and len(set(ids)) == 8  # 2 steps x 2 processes x 2 prompts, no overlap
