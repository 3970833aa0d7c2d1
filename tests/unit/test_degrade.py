"""The degrade label source: each edit by hand, which answers it uses, labels by construction."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
from datasets import load_from_disk

from salmon.aggregate import AggregateConfig, aggregate
from salmon.degrade import (
    NAMES,
    degrade_pairs,
    first_sentence,
    repeated,
    shuffled,
    with_boilerplate,
)
from salmon.errors import SalmonError
from salmon.label_sources import degrade_examples, degrade_principles
from salmon.principles import load_principles
from tests.unit.test_aggregate import _cfg, write_inputs

FOUR = "Boil the water. Add the pasta. Stir now and then. Drain it after ten minutes."
SENTS = ["Boil the water.", "Add the pasta.", "Stir now and then.", "Drain it after ten minutes."]
JUDGE = {p.name: p for p in load_principles("judge")}


def rngs(n=30):
    return (np.random.default_rng(s) for s in range(n))


def test_repeated_says_two_of_its_sentences_again_after_the_unchanged_answer():
    for rng in rngs():
        out = repeated(FOUR + "\n", rng)
        head, tail = out.split("\n\n")
        assert head == FOUR
        again = tail[: -len(SENTS[0])].strip()
        assert tail.endswith(SENTS[0]) and again in SENTS[1:]
    assert repeated("Only one sentence here.", np.random.default_rng(0)) is None
    assert repeated("Run this. Then that.\n```\nx = 1\n```", np.random.default_rng(0)) is None


def test_shuffled_is_a_permutation_that_never_starts_with_the_first_sentence():
    for rng in rngs():
        out = shuffled(FOUR, rng)
        words = out.split(". ")
        assert sorted(s.rstrip(".") for s in words) == sorted(s.rstrip(".") for s in SENTS)
        assert not out.startswith(SENTS[0])
    assert shuffled("One. Two. Three.", np.random.default_rng(0)) is None


def test_first_sentence_needs_four():
    assert first_sentence(FOUR, np.random.default_rng(0)) == "Boil the water."
    assert first_sentence("One. Two. Three.", np.random.default_rng(0)) is None


def test_boilerplate_in_front_and_the_question_restated_only_when_there_is_one():
    seen = set()
    for rng in rngs():
        out = with_boilerplate("  Paris.", rng, "What is the  capital\nof France?")
        assert out.endswith(" Paris.") and out != "Paris."
        seen.add(out[:10])
        assert "You are asking" not in with_boilerplate("Paris.", rng, "")
    assert any(s.startswith("You are") for s in seen)
    restated = [with_boilerplate("Paris.", r, "What is the  capital\nof France?") for r in rngs()]
    assert 'You are asking: "What is the capital of France?" That is a good question, so let me answer it. Paris.' in restated


def pairs():
    return [{"id": "p1", "prompt": "How do I cook pasta?", "type": "general", "response_a": FOUR,
             "response_b": "Use a big pot.", "finished_a": True, "finished_b": False},
            {"id": "p2", "prompt": "Name a river.", "type": "general", "response_a": "The Nile.", "response_b": " "},
            {"id": "p3", "prompt": "How do I pick a lock?", "type": "redteam", "response_a": FOUR,
             "response_b": "I can't help with that."}]


def test_degrade_pairs_one_per_answer_never_off_topic_from_its_own_prompt_redteam_left_out():
    made, counts = degrade_pairs(pairs(), JUDGE, np.random.default_rng(0), per_response=1)
    assert counts["degrade_dropped:empty"] == 1 and counts["degrade_pairs"] == len(made) == 3
    originals = sorted(p["response_a"] for _, p in made)
    assert originals == sorted([FOUR, "Use a big pot.", "The Nile."])  # the red-team answers are not used
    every, counts = degrade_pairs(pairs(), JUDGE, np.random.default_rng(0), per_response=len(NAMES))
    by = {(p["response_a"], pr.name): p for pr, p in every}
    assert set(n for a, n in by if a == FOUR) == set(NAMES)  # four sentences: every degradation applies
    assert by[(FOUR, "Helpful")]["response_b"] == "The Nile."  # the only answer to another (non-red-team) prompt
    assert by[(FOUR, "Thorough")]["response_b"] == SENTS[0]
    assert ("Use a big pot.", "Thorough") not in by and counts["degrade_not_applicable:Thorough"] == 2
    assert all(pr is JUDGE[pr.name] for pr, _ in every)
    only = degrade_pairs(pairs(), {"Thorough": JUDGE["Thorough"]}, np.random.default_rng(0), per_response=5)[0]
    assert [(pr.name, p["response_a"]) for pr, p in only] == [("Thorough", FOUR)]


def test_labels_the_original_wins_under_the_principle_and_loses_under_its_negation():
    cfg = SimpleNamespace(seed=0, passes=4, negation_prob=0.5, twins=True, degrade_per_response=5,
                          principles="judge")
    rows, counts = degrade_examples(pairs(), cfg)
    assert len(rows) == 2 * counts["degrade_pairs"]  # one pass with twins: each pair under P and not-P, once
    made = degrade_pairs(pairs(), degrade_principles("judge"), np.random.default_rng([0, 48_611]), 5)[0]
    sides = {p["id"]: (p["response_a"], p["response_b"]) for _, p in made}
    plain = {p.definition for p in JUDGE.values()}
    for r in rows:
        original, worse = sides[r["pair_id"]]
        assert r["label_source"] == "degrade" and len(r["principles"]) == 1
        under_p = r["principles"][0] in plain
        assert (r["chosen"], r["rejected"]) == ((original, worse) if under_p else (worse, original))
    assert sum(r["principles"][0] in plain for r in rows) == len(rows) // 2
    plain_rows = SimpleNamespace(**{**vars(cfg), "twins": False, "passes": 2})
    assert len(degrade_examples(pairs(), plain_rows)[0]) == 2 * counts["degrade_pairs"]


def test_a_principle_file_without_any_degradable_principle_is_refused(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("principles:\n  - name: Polite\n    definition: The response is polite.\n")
    with pytest.raises(SalmonError, match="none of its principles"):
        degrade_principles(str(f))
    assert set(degrade_principles("judge")) == set(NAMES)


def test_aggregate_with_the_degrade_source(tmp_path):
    pp, jp = write_inputs(tmp_path, n_pairs=6)
    lines = [json.loads(x) for x in pp.read_text().splitlines()]
    for r in lines:
        r["response_a"] = FOUR
    pp.write_text("".join(json.dumps(r) + "\n" for r in lines))
    out = aggregate(_cfg(tmp_path, pp, jp, source_shares=["judge=1", "degrade=1"], twins=True, consistency="mean"))
    ds = load_from_disk(str(out / "dataset"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["label_sources"]["degrade"]["used"] == sum(s == "degrade" for s in ds["label_source"]) > 0
    assert summary["source_counts"]["degrade_pairs"] == 12  # 6 prompts x 2 answers, one degradation each
    f = tmp_path / "mine.yaml"
    f.write_text("principles:\n  - name: Polite\n    definition: The response is polite.\n")
    with pytest.raises(SalmonError, match="none of its principles"):  # refused before anything is written
        AggregateConfig(pairs=str(pp), judgments=str(jp), principles=str(f), out=str(tmp_path / "bad"),
                        source_shares=["degrade=1"]).validate()
    assert not (tmp_path / "bad").exists()
