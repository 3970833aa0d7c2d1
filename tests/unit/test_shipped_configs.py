"""Every shipped run config loads and resolves every stage's settings (rglob, no cherry-picking)."""

from pathlib import Path

import pytest

from salmon.pipeline import default_config_path, plan

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted(p for p in (REPO / "configs").rglob("*.yaml") if "accelerate" not in p.parts)


def test_there_are_configs():
    names = {p.name for p in CONFIGS}
    assert {"default.yaml", "smoke.yaml", "gpu-7b.yaml", "paper.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_resolves(path, tmp_path):
    run, _, stages = plan(str(path), str(tmp_path / "run"))
    assert "report" in stages and "rl" in stages
    assert (run.self_align) == ("sft" in stages)


def test_configs_default_is_what_runs_with_no_flags():
    assert (REPO / "configs/default.yaml").resolve() == default_config_path().resolve() or \
        (REPO / "configs/default.yaml").read_text() == default_config_path().read_text()


def test_accelerate_configs_are_yaml():
    import yaml

    files = list((REPO / "configs/accelerate").rglob("*.yaml"))
    assert files
    for f in files:
        assert isinstance(yaml.safe_load(f.read_text()), dict)
