"""Shared fixtures: tiny random models (no network, seconds) and a CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Tests never write to the user's cache, except e2e tests that reuse a prepared model."""
    if "SALMON_CACHE" not in os.environ:
        os.environ["SALMON_CACHE"] = str(tmp_path_factory.mktemp("salmon-cache"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    yield


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A 2-layer random Llama with the SmolLM2 tokenizer, saved as a HF folder."""
    from salmon.models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture
def cli():
    """Run the salmon CLI in-process: cli(args) -> (exit_code, stdout, stderr)."""
    from typer.testing import CliRunner

    from salmon.cli import app

    runner = CliRunner()

    def run(*args: str):
        res = runner.invoke(app, [str(a) for a in args])
        return res.exit_code, res.stdout, res.stderr

    return run


@pytest.fixture(scope="module")
def random_rm(tiny_model, tmp_path_factory) -> Path:
    """An untrained reward-model folder on the tiny base, LoRA weights made non-zero."""
    from salmon.rl.bench import make_untrained_rm

    return make_untrained_rm(str(tiny_model), tmp_path_factory.mktemp("rm") / "rm", randomize=True)


@pytest.fixture
def one_torch_thread():
    """Torch on one thread for the test (small tensors; avoids thread start-up noise)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def shared_data(*parts: str) -> Path:
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data not present: {p}")
    return p


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """One uninterrupted `salmon run` of configs/smoke.yaml (tiny random model, every stage)."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("smoke") / "run"
    proc = subprocess.run([sys.executable, "-m", "salmon.cli", "run", "--config", str(REPO / "configs/smoke.yaml"),
                           "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out
