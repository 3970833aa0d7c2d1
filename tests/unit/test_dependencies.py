"""pyproject.toml states the versions the ML stack is tested with: lower bounds at least
those, an upper bound below the next major version, and the installed versions inside."""

from importlib.metadata import version
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")
from packaging.requirements import Requirement  # noqa: E402
from packaging.version import Version  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
# The lowest versions whose API the code uses (transformers 5: `.cache`/`cache=` in the
# reward model's prefix sharing, a 2-D `logits_to_keep` in the judge).
NEEDS = {"torch": "2.13", "transformers": "5.24", "peft": "0.21", "trl": "1.16", "accelerate": "1.15",
         "datasets": "5.2"}


def _requirements() -> dict[str, Requirement]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    reqs = [Requirement(r) for r in data["project"]["dependencies"]]
    return {r.name: r for r in reqs}


@pytest.mark.parametrize("name", sorted(NEEDS))
def test_ml_stack_is_pinned_to_tested_majors(name):
    req = _requirements()[name]
    lower = [Version(s.version) for s in req.specifier if s.operator == ">="]
    upper = [Version(s.version) for s in req.specifier if s.operator == "<"]
    assert lower and lower[0] >= Version(NEEDS[name]), f"{name}: lower bound {req.specifier} below {NEEDS[name]}"
    assert upper and upper[0] <= Version(f"{lower[0].major + 1}"), f"{name}: no upper bound on the next major"
    installed = Version(version(name).split("+")[0])
    assert installed in req.specifier, f"{name} {installed} is not inside {req.specifier}"
