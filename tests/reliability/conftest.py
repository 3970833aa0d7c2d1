"""Fault injection helpers: run a salmon command in a subprocess and `kill -9` it once its
partial output has grown, to check that a rerun finishes with exactly the right records."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def salmon_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "salmon.cli", *[str(a) for a in args]]


def run_and_kill(cmd: list[str], watch: Path, min_lines: int = 1, timeout: float = 120) -> bool:
    """Start `cmd`, SIGKILL it when `watch` holds >= min_lines lines. True if it was killed
    mid-run (False if it finished first, which makes the test inconclusive)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ))
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            if proc.poll() is not None:
                return False
            if watch.exists() and watch.read_bytes().count(b"\n") >= min_lines:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.05)
        raise AssertionError(f"{watch} did not reach {min_lines} lines in {timeout}s")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def killer():
    return run_and_kill
