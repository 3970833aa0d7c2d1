"""Safe loading by default: no unpickling of files a user may have downloaded, and no model
code from the hub unless asked for. (The server's localhost default is checked in
tests/integration/test_serve.py.)"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib"}


def python_files(*roots: str) -> list[Path]:
    return sorted(p for root in roots for p in (REPO / root).rglob("*.py"))


def calls(path: Path):
    """(line, dotted callee name, {keyword: node}) for every call in a file."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Call):
            yield node.lineno, ast.unparse(node.func), {k.arg: k.value for k in node.keywords}


def is_true(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def find_calls(roots: tuple[str, ...], bad) -> list[str]:
    """'path:line: callee' for each call under `roots` for which bad(callee, keywords) holds."""
    return [
        f"{p.relative_to(REPO)}:{line}: {name}"
        for p in python_files(*roots)
        for line, name, kw in calls(p)
        if bad(name, kw)
    ]


def unpickles(name: str, kw) -> bool:
    module, _, func = name.rpartition(".")
    loads = module in PICKLE_MODULES and func in ("load", "loads", "Unpickler")
    return loads or is_true(kw.get("allow_pickle"))


def test_every_torch_load_is_weights_only():
    bad = find_calls(
        ("src", "tests"),
        lambda name, kw: name == "torch.load" and not is_true(kw.get("weights_only")),
    )
    assert not bad, f"torch.load without weights_only=True (it unpickles arbitrary code): {bad}"


def test_no_pickle_loading_in_src():
    bad = find_calls(("src",), unpickles)
    assert not bad, f"unpickling in src (checkpoints are safetensors + JSON): {bad}"


def test_no_code_passes_trust_remote_code_true():
    bad = find_calls(("src",), lambda _, kw: is_true(kw.get("trust_remote_code")))
    assert not bad, f"trust_remote_code=True hard-coded: {bad}"


def _command_configs() -> dict[str, type]:
    from salmon.stages import BENCHES, STAGES

    return {
        **{name: stage.load()[0] for name, stage in STAGES.items()},
        **{f"bench {name}": stage.load()[0] for name, stage in BENCHES.items()},
    }


def test_trust_remote_code_is_off_by_default_on_every_command():
    with_field = {
        name: cls
        for name, cls in _command_configs().items()
        if "trust_remote_code" in {f.name for f in dataclasses.fields(cls)}
    }
    assert {"generate", "judge", "train-rm"} <= set(with_field)  # the check is not vacuous
    for name, cls in with_field.items():
        field = next(f for f in dataclasses.fields(cls) if f.name == "trust_remote_code")
        assert field.default is False, (
            f"salmon {name}: trust_remote_code defaults to {field.default!r}"
        )


@pytest.mark.parametrize("path", sorted((REPO / "configs").rglob("*.yaml")), ids=lambda p: p.name)
def test_no_shipped_config_turns_on_trust_remote_code(path):
    def walk(node, where):
        if isinstance(node, dict):
            for key, value in node.items():
                assert not (key == "trust_remote_code" and value), f"{path}: {where}{key} is on"
                walk(value, f"{where}{key}.")
        elif isinstance(node, list):
            for item in node:
                walk(item, where)

    walk(yaml.safe_load(path.read_text(encoding="utf-8")), "")
