"""kill -9 during `salmon run` (inside the judge stage), rerun: the run finishes, and its data
stages hold exactly the records of an uninterrupted run."""

import json
import subprocess

from tests.conftest import REPO
from tests.reliability.conftest import salmon_cmd


def test_run_survives_kill_9(smoke_run, tmp_path, killer):
    out = tmp_path / "run"
    cmd = salmon_cmd("run", "--config", REPO / "configs/smoke.yaml", "--out", out)
    # A single-process judge appends to <out>.rank0.partial (one file per process under accelerate).
    assert killer(cmd, out / "judge" / "judgments.jsonl.rank0.partial", min_lines=1, timeout=900)
    assert not (out / "judge" / "manifest.json").exists()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for f in ["generate/responses.jsonl", "pairs/pairs.jsonl", "judge/judgments.jsonl"]:
        assert (out / f).read_bytes() == (smoke_run / f).read_bytes(), f
    a = json.loads((out / "aggregate" / "summary.json").read_text())
    b = json.loads((smoke_run / "aggregate" / "summary.json").read_text())
    assert a == b
    m1 = json.loads((out / "metrics.json").read_text())
    m2 = json.loads((smoke_run / "metrics.json").read_text())
    for key in ("rm.accuracy", "rm.flip_rate", "policy.after.rm_score"):
        assert abs(m1[key] - m2[key]) < 1e-4, key
