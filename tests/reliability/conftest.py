"""Fault injection helpers: run a salmon command in a subprocess and `kill -9` it once its
partial output has grown, to check that a rerun finishes with exactly the right records."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest


def salmon_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "salmon.cli", *[str(a) for a in args]]


def run_ok(cmd: list[str]) -> None:
    """Run `cmd` to the end; fail with its stderr unless it exits 0."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]


def has_lines(path: Path, n: int) -> Callable[[], bool]:
    """A watch condition: `path` exists and holds at least `n` complete lines."""
    return lambda: path.exists() and path.read_bytes().count(b"\n") >= n


def run_and_kill(cmd: list[str], watch: Path | None = None, min_lines: int = 1, timeout: float = 120,
                 until: Callable[[], bool] | None = None, poll: float = 0.05) -> bool:
    """Start `cmd`, SIGKILL it once `until()` is true (default: `watch` holds >= min_lines lines).
    True if the kill landed mid-run (False if it finished first, which makes the test
    inconclusive)."""
    if until is None:
        if watch is None:
            raise TypeError("run_and_kill needs `watch` or `until`")
        until = has_lines(watch, min_lines)
    # stderr to a file, not a pipe: nobody reads it while the run goes, and a full pipe would block it
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=dict(os.environ))
        deadline = time.time() + timeout
        try:
            while time.time() < deadline:
                if proc.poll() is not None:
                    return False
                if until():
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
                    return proc.returncode == -signal.SIGKILL  # not a run that ended just before the signal
                time.sleep(poll)
            err.seek(0)
            tail = err.read().decode(errors="replace")[-2000:]
            raise AssertionError(f"the kill condition was not met in {timeout}s ({watch or until}):\n{tail}")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def kill_mid_run(cmd: list[str], until: Callable[[], bool]) -> None:
    """`kill -9` the run once `until()` holds; fail if it finished first. The 2 ms poll
    catches the tiny models' short windows (a checkpoint save takes tens of ms)."""
    killed = run_and_kill(cmd, until=until, poll=0.002)
    assert killed, "the run finished before it could be killed; make it longer"


def assert_same_tensors(a: Path, b: Path) -> None:
    """Two safetensors files hold the same names and bit-identical tensors."""
    import torch
    from safetensors.torch import load_file

    ta, tb = load_file(str(a)), load_file(str(b))
    assert ta.keys() == tb.keys()
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k


@pytest.fixture
def killer():
    return run_and_kill
