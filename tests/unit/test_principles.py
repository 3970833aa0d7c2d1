from pathlib import Path

import numpy as np
import pytest

from salmon.errors import SalmonError
from salmon.principles import (
    Principle,
    builtin_names,
    derive_negation,
    load_principles,
    principle_from_text,
    sample_principles,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("definition,negation", [
    ("The response is concise.", "The response is not concise."),
    ("The answer should cite sources.", "The answer should not cite sources."),
    ("The response has a clear structure.", "The response does not have a clear structure."),
    ("Avoid jargon.", "It is not the case that: Avoid jargon."),
])
def test_derive_negation(definition, negation):
    assert derive_negation(definition) == negation


def test_negated_swaps_texts():
    p = Principle("Concise", "The response is short.", "The response is long.")
    n = p.negated()
    assert (n.name, n.definition, n.negation) == ("not Concise", "The response is long.", "The response is short.")


def test_principle_from_text():
    p = principle_from_text("Honest: The response admits uncertainty.")
    assert (p.name, p.definition) == ("Honest", "The response admits uncertainty.")
    q = principle_from_text("The response uses examples.")
    assert q.definition == "The response uses examples."


def _write(tmp_path, text):
    f = tmp_path / "p.yaml"
    f.write_text(text)
    return f


@pytest.mark.parametrize("text,msg", [
    ("", "empty file"),
    ("principles: [\n", "not valid YAML"),
    ("principles: []\n", "non-empty list"),
    ("rules: []\n", "unknown top-level key 'rules'"),
    ("principles:\n  - name: A\n", r"principle 1 \(A\): missing or empty 'definition'"),
    ("principles:\n  - definition: x\n", "principle 1: missing or empty 'name'"),
    ("principles:\n  - {name: A, definition: The response is x.}\n  - {name: a, definition: The response is y.}\n",
     r"principle 2 \(a\): duplicate name"),
    ("principles:\n  - {name: A, definition: x, weight: 0}\n", "'weight' must be a positive number"),
    ("principles:\n  - {name: A, definition: x, weight: -1}\n", "'weight' must be a positive number"),
    ("principles:\n  - {name: A, definition: x, colour: red}\n", "unknown key 'colour'"),
    ("principles:\n  - {name: A, definition: x, tags: 3}\n", "'tags' must be a list"),
    ("principles:\n  - 42\n", "expected a mapping"),
])
def test_validation_errors_name_file_entry_field(tmp_path, text, msg):
    f = _write(tmp_path, text)
    with pytest.raises(SalmonError, match=msg) as e:
        load_principles(f)
    assert str(f) in str(e.value)


def test_unknown_builtin_name_lists_choices():
    with pytest.raises(SalmonError, match="built-in: .*judge"):
        load_principles("no-such-set")


def test_every_shipped_principle_file_loads():
    files = list((REPO / "src/salmon/data/principles").rglob("*.yaml")) + list(REPO.glob("configs/**/principles*.yaml"))
    assert len(files) >= 6
    for f in files:
        ps = load_principles(f)
        assert all(p.definition and p.negation and p.weight > 0 for p in ps)
    assert {"judge", "rl", "intervention", "heldout", "self_align_rules"} <= set(builtin_names())


def test_shipped_collection_sizes():
    assert 8 <= len(load_principles("judge")) <= 12
    assert 10 <= len(load_principles("rl")) <= 15
    assert 15 <= len(load_principles("self_align_rules")) <= 20
    assert all(p.tags for p in load_principles("rl"))


def test_sample_principles_respects_weights_boosts_and_uniqueness():
    ps = [Principle("A", "a", weight=1.0), Principle("B", "b", weight=1.0, tags=("redteam",)),
          Principle("C", "c", weight=8.0)]
    rng = np.random.default_rng(0)
    counts = {"A": 0, "B": 0, "C": 0}
    for _ in range(2000):
        got = sample_principles(ps, 1, rng)
        counts[got[0].name] += 1
    # P(C) = 8/10
    assert abs(counts["C"] / 2000 - 0.8) < 0.03
    rng = np.random.default_rng(1)
    boosted = sum(sample_principles(ps, 1, rng, prompt_type="redteam", boost=8.0)[0].name == "B" for _ in range(2000))
    # P(B) = 8/(1+8+8) = 0.47
    assert abs(boosted / 2000 - 8 / 17) < 0.04
    for _ in range(50):
        two = sample_principles(ps, 2, rng)
        assert len({p.name for p in two}) == 2
    assert [p.name for p in sample_principles(ps, 5, rng)] == ["A", "B", "C"]
