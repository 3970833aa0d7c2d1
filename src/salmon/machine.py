"""The machine's speed, so a run's times compare across machines.

    from salmon.machine import measure_machine, normalised_seconds

Shared CPU machines differ 2x in speed, so a wall time means little alone. `salmon run`
measures the dense fp32 matmul peak once at its start (`measure_machine`, about 1.5 s:
the judge benchmark's probe on an MLP-shaped matmul of the embedded model) and writes
`machine.json` in the run folder; the report puts `machine.matmul_gflops` in
`metrics.json` and shows every stage time also as time x peak / 200 GFLOP/s, the time the
stage would take on a machine whose peak is 200 GFLOP/s (compute-bound stages scale so).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from salmon.jsonl import atomic_write_text

REFERENCE_GFLOPS = 200.0
# tokens x hidden x intermediate of the embedded SmolLM2-135M's MLP
PROBE_SHAPE = (512, 576, 1536)
MACHINE_FILE = "machine.json"


def matmul_peak(m: int, k: int, n: int, seconds: float = 1.0, dtype: str = "float32") -> float:
    """Best GFLOP/s of a dense (m x k) @ (k x n) matmul in `dtype` over about `seconds`."""
    import torch

    a, b = torch.randn(m, k, dtype=getattr(torch, dtype)), torch.randn(k, n, dtype=getattr(torch, dtype))
    a @ b
    best, stop = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < stop:
        t = time.perf_counter()
        a @ b
        best = max(best, 2 * m * k * n / (time.perf_counter() - t) / 1e9)
    return best


def measure_machine(seconds: float = 1.5) -> dict[str, Any]:
    """The dense fp32 matmul peak (GFLOP/s, best over `seconds`), the bf16 one (over a
    third of that: whether `train-rm --mixed-precision bf16` can pay here), and the thread count."""
    import torch

    return {"matmul_gflops": round(matmul_peak(*PROBE_SHAPE, seconds=seconds), 1),
            "matmul_bf16_gflops": round(matmul_peak(*PROBE_SHAPE, seconds=seconds / 3, dtype="bfloat16"), 1),
            "matmul_shape": list(PROBE_SHAPE), "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count()}


def normalised_seconds(seconds: float, gflops: float, reference: float = REFERENCE_GFLOPS) -> float:
    """Wall seconds on this machine -> seconds on a machine with a `reference` GFLOP/s peak."""
    if gflops <= 0 or reference <= 0:
        raise ValueError("peaks must be positive")
    return seconds * gflops / reference


def record_machine(run_dir: str | Path, seconds: float = 1.5) -> dict[str, Any]:
    """Measure and write `run_dir/machine.json` (overwritten by each `salmon run`)."""
    info = measure_machine(seconds)
    atomic_write_text(Path(run_dir) / MACHINE_FILE, json.dumps(info, indent=2) + "\n")
    return info


def record_machine_in_subprocess(run_dir: str | Path) -> None:
    """`record_machine` in a child process, so the caller (the pipeline, which otherwise
    never imports torch) does not carry torch's memory through the whole run."""
    subprocess.run([sys.executable, "-m", "salmon.machine", str(run_dir)], check=True)


def read_machine(run_dir: str | Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(run_dir) / MACHINE_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None


if __name__ == "__main__":
    record_machine(sys.argv[1])
