"""train-rm under `accelerate launch` with 2 CPU processes (DDP over gloo) on the tiny model.

accelerate 1.15's `--cpu` flag starts a single process, so the launch uses the
multi-process launcher (`--multi_gpu`); without GPUs the trainer runs plain DDP on CPU.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_train_rm_two_process_ddp(tiny_model, tmp_path):
    from datasets import Dataset

    rows = [{"pair_id": f"p{i // 2}", "prompt": f"Question {i // 2}?", "chosen": f"Answer {i}.",
             "rejected": f"Answer {i}. " + "More words. " * (2 + i % 3),
             "principles": ["The response is short."]} for i in range(16)]
    data = tmp_path / "rm_data"
    Dataset.from_list(rows).save_to_disk(str(data / "dataset"))
    (data / "summary.json").write_text("{}")
    out = tmp_path / "rm"
    accelerate = shutil.which("accelerate") or os.path.join(os.path.dirname(sys.executable), "accelerate")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TRANSFORMERS_VERBOSITY": "error"}
    cmd = [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29523",
           "-m", "salmon.cli", "train-rm", "--model", str(tiny_model), "--data", str(data),
           "--out", str(out), "--max-steps", "3", "--batch-size", "2", "--max-length", "192",
           "--save-steps", "2", "--eval-steps", "2", "--eval-fraction", "0.25", "--norm-samples", "4",
           "--no-progress"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 3
    assert summary["pairs_this_run"] == 3 * 2 * 2  # steps x pairs per process x processes
    assert (out / "adapter_model.safetensors").exists() and (out / "salmon_rm.json").exists()
    assert not list(out.glob("checkpoint-*"))
