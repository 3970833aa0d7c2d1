"""Edited pairs (salmon.edits): each edit toggles what its checker reads, and the verify
source labels the pairs by the checkers, never by the edit's name."""

import numpy as np

from salmon.edits import (
    EDIT_NEEDS,
    EDITS,
    as_bullets,
    as_numbered,
    as_one_paragraph,
    as_paragraphs,
    as_prose,
    edit_pairs,
    first_sentences,
    with_bold,
    with_exclamations,
    with_heading,
    with_hedge,
    without_examples,
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


FOUR = "Water the plant once a week. Keep it out of direct sun. Turn the pot now and then. Feed it in spring."


def test_format_edits_by_hand():
    rng = np.random.default_rng(0)
    assert with_heading(PLAIN, rng).split("\n\n", 1)[1] == PLAIN and with_heading("# Title\nx", rng) is None
    got = with_bold(PLAIN, np.random.default_rng(0))
    assert got in ("**Water the** plant once a week." + PLAIN[len("Water the plant once a week."):],
                   "**Water the plant** once a week." + PLAIN[len("Water the plant once a week."):])
    assert with_bold("Paris.", rng) is None and with_bold(LISTED, rng) is None and with_bold("A **b** c d e f", rng) is None
    for seed in range(4):  # trailing punctuation stays outside the bold
        assert with_bold("Water it, then wait a bit.", np.random.default_rng(seed)) in (
            "**Water it**, then wait a bit.", "**Water it, then** wait a bit.")
    hedged = with_hedge(PLAIN, rng)
    assert hedged.endswith("ater the plant once a week. Keep it out of direct sun. Turn the pot now and then so it grows evenly.")
    assert "water the plant" in hedged and with_hedge("It is probably fine.", rng) is None
    assert with_hedge("I keep it short.", rng).endswith("I keep it short.")
    assert without_examples("Eat fruit. Apples, for example, are cheap. Walk daily.", rng) == "Eat fruit. Walk daily."
    assert without_examples(PLAIN, rng) is None and without_examples("Such as apples.", rng) is None
    assert as_paragraphs(FOUR, rng) == ("Water the plant once a week. Keep it out of direct sun.\n\n"
                                        "Turn the pot now and then. Feed it in spring.")
    assert as_paragraphs(PLAIN, rng) is None  # three sentences: too short to split
    assert as_one_paragraph("One.\n\nTwo.", rng) == "One. Two." and as_one_paragraph(PLAIN, rng) is None


def test_edits_only_for_loaded_families():
    recs = [{"id": "p1", "prompt": "q", "response_a": FOUR, "response_b": PLAIN}]
    old = {n for n in EDITS if n not in EDIT_NEEDS}
    for seed in range(5):
        pairs = edit_pairs(recs, np.random.default_rng(seed), per_response=20, checkers={"max_words"})
        assert {p["id"].rsplit(":", 1)[1] for p in pairs} <= old
        # the old edits' draws do not depend on whether the new edits exist: same as with only them loaded
        again = edit_pairs(recs, np.random.default_rng(seed), per_response=20, checkers=set())
        assert pairs == again
    every = edit_pairs(recs, np.random.default_rng(0), per_response=20)
    assert {"heading", "hedge", "paragraphs"} <= {p["id"].rsplit(":", 1)[1] for p in every}


def test_edits_toggle_what_the_checkers_read():
    check = {name: CHECKERS[name].fn for name in CHECKERS}
    rng = np.random.default_rng(1)
    assert check["numbered_list"]("q", EDITS["numbered"](PLAIN, rng), None)
    assert check["bulleted_list"]("q", EDITS["bullets"](PLAIN, rng), None)
    assert check["prose_only"]("q", EDITS["prose"](LISTED, rng), None) and not check["prose_only"]("q", LISTED, None)
    assert check["ends_with_question"]("q", EDITS["question"](PLAIN, rng), None)
    assert not check["no_opener"]("q", EDITS["opener"](PLAIN, rng), None) and check["no_opener"]("q", PLAIN, None)
    assert not check["no_exclamation"]("q", EDITS["exclaim"](PLAIN, rng), None)
    for edit, name, before in (("heading", "heading", PLAIN), ("bold", "bold", PLAIN), ("hedge", "hedged", PLAIN),
                               ("no_examples", "example_marker", "Eat fruit. Pears, for instance. Walk."),
                               ("paragraphs", "paragraphs", FOUR), ("one_paragraph", "paragraphs", "A.\n\nB.")):
        assert check[name]("q", EDITS[edit](before, rng), None) is not check[name]("q", before, None), edit


def test_edit_pairs_are_labelled_by_the_checkers_and_respect_cut_off_answers():
    recs = [{"id": "p1", "prompt": "How do I care for a fern?", "response_a": PLAIN, "response_b": LISTED},
            {"id": "p2", "prompt": "q", "response_a": "Cut off here, no end", "response_b": "",
             "finished_a": False}]
    vps = load_verifiable(None, "train")
    pairs = edit_pairs(recs, np.random.default_rng(0), per_response=3, checkers={v.checker for v in vps})
    assert sum(p["id"].startswith("e:p1:a:") for p in pairs) == 3 and len({p["id"] for p in pairs}) == len(pairs)
    cut = [p for p in pairs if p["id"].startswith("e:p2")]
    assert cut and all(p["finished_a"] is False and not p["id"].endswith("question") for p in cut)
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
