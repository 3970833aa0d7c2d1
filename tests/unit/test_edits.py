"""Edited pairs (salmon.edits): each edit toggles what its checker reads, and the verify
source labels the pairs by the checkers, never by the edit's name."""

import numpy as np

from salmon.edits import (
    EDITS,
    as_bullets,
    as_numbered,
    as_prose,
    edit_pairs,
    first_sentences,
    with_exclamations,
)
from salmon.label_sources import differing, verify_examples
from salmon.verify import CHECKERS, RELATIONS, load_verifiable

PLAIN = "Water the plant once a week. Keep it out of direct sun. Turn the pot now and then so it grows evenly."
LISTED = "Three steps:\n1. Water weekly.\n2. Avoid direct sun.\n3. Turn the pot."


def test_each_edit_by_hand():
    rng = np.random.default_rng(0)
    assert as_numbered(PLAIN, rng).splitlines()[0] == "1. Water the plant once a week."
    assert all(ln.startswith(("- ", "* ")) for ln in as_bullets(PLAIN, rng).splitlines())
    assert as_prose(LISTED, rng) == "Three steps: Water weekly. Avoid direct sun. Turn the pot."
    assert as_prose(PLAIN, rng) is None  # nothing listed
    assert first_sentences(LISTED, rng) is None  # shortening a list would drop the list too
    assert first_sentences(PLAIN, rng) in ("Water the plant once a week.",
                                           "Water the plant once a week. Keep it out of direct sun.")
    assert with_exclamations(LISTED, rng) == "Three steps:\n1. Water weekly!\n2. Avoid direct sun!\n3. Turn the pot!"


def test_edits_toggle_what_the_checkers_read():
    check = {name: CHECKERS[name].fn for name in CHECKERS}
    rng = np.random.default_rng(1)
    assert check["numbered_list"]("q", EDITS["numbered"](PLAIN, rng), None)
    assert check["bulleted_list"]("q", EDITS["bullets"](PLAIN, rng), None)
    assert check["prose_only"]("q", EDITS["prose"](LISTED, rng), None) and not check["prose_only"]("q", LISTED, None)
    assert check["ends_with_question"]("q", EDITS["question"](PLAIN, rng), None)
    assert not check["no_opener"]("q", EDITS["opener"](PLAIN, rng), None) and check["no_opener"]("q", PLAIN, None)
    assert not check["no_exclamation"]("q", EDITS["exclaim"](PLAIN, rng), None)


def test_edit_pairs_are_labelled_by_the_checkers_and_respect_cut_off_answers():
    recs = [{"id": "p1", "prompt": "How do I care for a fern?", "response_a": PLAIN, "response_b": LISTED},
            {"id": "p2", "prompt": "q", "response_a": "Cut off here, no end", "response_b": "",
             "finished_a": False}]
    pairs = edit_pairs(recs, np.random.default_rng(0), per_response=3)
    assert sum(p["id"].startswith("e:p1:a:") for p in pairs) == 3 and len({p["id"] for p in pairs}) == len(pairs)
    cut = [p for p in pairs if p["id"].startswith("e:p2")]
    assert cut and all(p["finished_a"] is False and not p["id"].endswith("question") for p in cut)
    vps = load_verifiable(None, "train")
    for p in pairs:
        for found in differing(p, vps).values():
            for v, d in found:  # +1: side a satisfies the principle (a relation: a covers more)
                if v.checker in RELATIONS:
                    assert d == RELATIONS[v.checker](p["prompt"], p["response_a"], p["response_b"], True, True)
                    continue
                a = v.check(p["prompt"], p["response_a"], p["finished_a"])
                assert (d > 0) == bool(a)
    cfg = type("C", (), dict(passes=1, seed=0, negation_prob=0.5, verify_per_pair=2, verify_max_principles=2,
                             twins=False))
    first = edit_pairs(recs, np.random.default_rng(0), per_response=1, shorter_first=True)
    shorter = [p for p in first if p["id"] == "e:p1:a:shorter"]  # tried first where it applies
    assert shorter and [(v.checker, d) for v, d in differing(shorter[0], vps)["Covers more"]][0] == ("covers_more", 1)
    ex, counts = verify_examples(pairs, vps, cfg)
    assert ex and counts["verify_pairs_labelled"] >= len(pairs) - 1
