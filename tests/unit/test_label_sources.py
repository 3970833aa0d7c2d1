"""Label sources: mixing arithmetic by hand, exact verify labels, contrast filtering, the aggregate hook."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
from datasets import load_from_disk

from salmon.aggregate import aggregate
from salmon.errors import SalmonError
from salmon.label_sources import (
    allocate,
    contrast_examples,
    differing,
    parse_shares,
    pick_balanced_groups,
    pick_whole_groups,
    verify_examples,
    verify_pair_examples,
)
from salmon.verify import load_verifiable
from tests.unit.test_aggregate import _cfg, write_inputs

TRAIN = load_verifiable(split="train")
BY_TEXT = {}
for _v in TRAIN:
    BY_TEXT[_v.principle.definition] = (_v, True)
    BY_TEXT[_v.principle.negation] = (_v, False)

SHORT = "Drink water, sleep eight hours and walk every day."
LONG = ("Here is a fuller plan. " + "Staying healthy takes steady habits over many months, not quick fixes. " * 6
        + "\n1. Drink water.\n2. Sleep well.\n3. Walk daily.\nWhich of these would you like to start with?")


def cfg(**kw):
    base = dict(passes=2, seed=0, negation_prob=0.5, verify_per_pair=2, verify_max_principles=3,
                contrast_filter="checked", twins=False, edits=0)
    return SimpleNamespace(**{**base, **kw})


def test_parse_shares():
    assert parse_shares(["judge=1", "verify=2", "contrast=0"]) == {"judge": 1.0, "verify": 2.0}
    assert parse_shares(["verify"]) == {"verify": 1.0}
    for bad, msg in ((["oracle=1"], "unknown source"), (["judge=x"], "name=number"), (["judge=0"], "no source"),
                     (["judge=-1"], ">= 0")):
        with pytest.raises(SalmonError, match=msg):
            parse_shares(bad)


def test_allocate_by_hand():
    avail = {"judge": 90, "verify": 1000, "contrast": 300}
    assert allocate(avail, {"judge": 1, "verify": 1}, None) == {"judge": 90, "verify": 1000}
    # 600 split 1:1:1 -> 200 each; judge has 90, its 110 go to verify and contrast 55/55.
    assert allocate(avail, {"judge": 1, "verify": 1, "contrast": 1}, 600) == {"judge": 90, "verify": 255,
                                                                                "contrast": 255}
    # 400 split 1:3 -> 100 judge (only 90) + 300 verify; the 10 left go to verify.
    assert allocate(avail, {"judge": 1, "verify": 3}, 400) == {"judge": 90, "verify": 310}
    assert allocate(avail, {"judge": 1}, 5000) == {"judge": 90}
    assert sum(allocate({"a": 7, "b": 7}, {"a": 1, "b": 1}, 3).values()) == 3


def labels_hold(ex, prompt="q"):
    """Every principle shown must prefer chosen over rejected by its checker."""
    for text in ex["principles"]:
        v, positive = BY_TEXT[text]
        c, r = v.check(prompt, ex["chosen"]), v.check(prompt, ex["rejected"])
        assert c is not None and r is not None and c != r
        assert c == positive, (text, ex["chosen"][:30])


def test_verify_labels_are_exact_and_every_shown_principle_agrees():
    pair = {"id": "x", "prompt": "q", "response_a": SHORT, "response_b": LONG}
    known = differing(pair, TRAIN)
    assert {"Word limit", "Numbered list", "Ends with a question", "Prose only"} <= set(known)
    assert known["Word limit"][0][1] == 1  # a (short) satisfies the word limit
    negated = 0
    for p in range(40):
        exs = verify_pair_examples(pair, known, np.random.default_rng(p), p, per_pair=2, max_shown=3,
                                   negation_prob=0.5)
        assert len(exs) == 2 and exs[0]["dominant_principle"] != exs[1]["dominant_principle"]
        for ex in exs:
            assert ex["label_source"] == "verify" and 1 <= len(ex["principles"]) <= 3
            labels_hold(ex)
            negated += ex["dominant_principle"].startswith("not ")
    assert 20 < negated < 60  # about half of 80


def test_twins_negate_every_shown_principle_and_swap_the_sides():
    pair = {"id": "x", "prompt": "q", "response_a": SHORT, "response_b": LONG}
    known = differing(pair, TRAIN)
    for p in range(10):
        exs = verify_pair_examples(pair, known, np.random.default_rng(p), p, per_pair=2, max_shown=3,
                                   negation_prob=0.5, twins=True)
        assert len(exs) == 4
        for a, b in (exs[0:2], exs[2:4]):
            assert a["twin"] == b["twin"] != "" and (a["chosen"], a["rejected"]) == (b["rejected"], b["chosen"])
            assert len(a["principles"]) == len(b["principles"])
            for ta, tb in zip(a["principles"], b["principles"], strict=True):
                assert BY_TEXT[ta][0] is BY_TEXT[tb][0] and BY_TEXT[ta][1] != BY_TEXT[tb][1]  # same, negated
            labels_hold(a)
            labels_hold(b)
            # a negated decider's twin is named plainly again, never "not not ..."
            assert {a["dominant_principle"], b["dominant_principle"]} == {a["dominant_principle"].removeprefix("not "),
                                                                          "not " + a["dominant_principle"].removeprefix("not ")}
    pr = {"name": "Word limit 30", "definition": "At most 30 words.", "negation": "More than 30 words."}
    rows = [{"id": "ok", "prompt": "q", "response_a": SHORT, "response_b": LONG, "principle": pr, "checked": True}]
    ex, _ = contrast_examples(rows, cfg(passes=1, twins=True))
    assert sorted((e["chosen"], e["principles"]) for e in ex) == sorted([(SHORT, [pr["definition"]]),
                                                                          (LONG, [pr["negation"]])])


def test_pick_whole_groups_never_splits_a_twin():
    ex = [{"i": i, "twin": f"t{i // 2}"} for i in range(10)] + [{"i": 10}, {"i": 11, "twin": ""}]  # 5 twin groups, 2 singles
    for seed in range(20):
        got = pick_whole_groups(ex, 7, np.random.default_rng(seed))
        assert 6 <= len(got) <= 7 and [e["i"] for e in got] == sorted(e["i"] for e in got)
        groups = [e["twin"] for e in got if e.get("twin")]
        assert all(groups.count(g) == 2 for g in groups)
    assert pick_whole_groups(ex, 100, np.random.default_rng(0)) == ex
    assert pick_whole_groups(ex, 0, np.random.default_rng(0)) == []


def test_pick_balanced_groups_spreads_over_families_then_principles():
    # family A: principle a1 in 4 twin groups, a2 in 1; family B: b1 in 1; a group is keyed by its first example
    keys = [("A", "a1")] * 4 + [("A", "a2"), ("B", "b1")]
    ex = [{"i": 2 * g + t, "twin": f"t{g}", "_family": f, "_key": k} for g, (f, k) in enumerate(keys) for t in (0, 1)]
    for seed in range(20):
        got = pick_balanced_groups(ex, 6, np.random.default_rng(seed))
        # round 1: one group of A and B's only group; round 2: A's other principle -> a1, a2 and b1 once each
        assert sorted(e["_key"] for e in got) == ["a1", "a1", "a2", "a2", "b1", "b1"]
        assert [e["i"] for e in got] == sorted(e["i"] for e in got)
        odd = pick_balanced_groups(ex, 5, np.random.default_rng(seed))  # a twin never split: 2 groups
        assert len(odd) == 4 and all([e["twin"] for e in odd].count(e["twin"]) == 2 for e in odd)
    assert pick_balanced_groups(ex, 100, np.random.default_rng(0)) == ex
    assert pick_balanced_groups(ex, 0, np.random.default_rng(0)) == []
    plain = [{"i": i} for i in range(5)]  # no family: one bucket, like pick_whole_groups
    assert len(pick_balanced_groups(plain, 3, np.random.default_rng(0))) == 3
    # A supplies 12 examples (6 twin groups), B 4 (2 groups); k = 8:
    # exponent 1: shares 12 : 4 -> quotas 6 and 2 (3 groups and 1); exponent 0: 4 and 4 (2 groups each)
    ex = [{"i": 2 * g + t, "twin": f"t{g}", "_family": "AB"[g >= 6], "_key": "k"} for g in range(8) for t in (0, 1)]
    for exponent, want in ((1.0, {"A": 6, "B": 2}), (0.0, {"A": 4, "B": 4})):
        got = pick_balanced_groups(ex, 8, np.random.default_rng(3), exponent)
        assert {f: sum(e["_family"] == f for e in got) for f in "AB"} == want


def test_verify_examples_carry_family_and_principle_for_balancing():
    pair = {"id": "p", "prompt": "q", "response_a": SHORT, "response_b": LONG}
    known = differing(pair, TRAIN)
    ex = verify_pair_examples(pair, known, np.random.default_rng(0), 0, 2, 1, 0.5, twins=True)
    for a, b in zip(ex[::2], ex[1::2]):
        v = BY_TEXT[a["principles"][0]][0]
        assert a["_family"] == b["_family"] == v.family and a["_key"] == b["_key"] == v.principle.name


def test_verify_drops_and_counts_empty_and_truncated():
    pairs = [{"id": "e", "prompt": "q", "response_a": "", "response_b": LONG},
             {"id": "same", "prompt": "q", "response_a": SHORT, "response_b": SHORT + " "},
             # b is cut off while still short: every verdict on b could change, except "true is final" ones
             {"id": "t", "prompt": "q", "response_a": "Yes. Do you agree?", "response_b": "Sure! Here",
              "finished_b": False}]
    ex, counts = verify_examples(pairs, TRAIN, cfg())
    assert counts["verify_dropped:empty_side"] == 1 and counts["verify_dropped:no_differing_principle"] == 1
    for e in ex:  # only verdicts that more text could not change were used on the cut-off side
        assert e["pair_id"] == "t"
        fams = {BY_TEXT[t][0].checker for t in e["principles"]}
        assert "ends_with_question" not in fams  # b could still end with a question
    assert any("no_opener" in {BY_TEXT[t][0].checker for t in e["principles"]} for e in ex)  # "Sure!" is final


def test_contrast_filter_and_negation():
    pr = {"name": "Word limit 30", "definition": "At most 30 words.", "negation": "More than 30 words."}
    rows = [{"id": "ok", "prompt": "q", "response_a": SHORT, "response_b": LONG, "principle": pr,
             "checked": True, "has_checker": True},
            {"id": "wrong", "prompt": "q", "response_a": LONG, "response_b": SHORT, "principle": pr,
             "checked": False, "has_checker": True},
            {"id": "cut", "prompt": "q", "response_a": SHORT, "response_b": "x", "principle": pr,
             "checked": None, "has_checker": True},
            {"id": "harm", "prompt": "q", "response_a": "No.", "response_b": "Yes.", "principle": pr,
             "checked": None, "has_checker": False},
            {"id": "empty", "prompt": "q", "response_a": "", "response_b": "Yes.", "principle": pr}]
    ex, counts = contrast_examples(rows, cfg(passes=20))
    assert counts == {"contrast_dropped:wrong_direction": 1, "contrast_dropped:unconfirmed": 1,
                      "contrast_pairs_used": 2, "contrast_dropped:empty_side": 1}
    for e in ex:
        wins_a = e["chosen"] == next(r for r in rows if r["id"] == e["pair_id"])["response_a"]
        assert wins_a == (e["principles"] == [pr["definition"]])
        assert e["label_source"] == "contrast" and "30 words" in e["principles"][0]
    ex, counts = contrast_examples(rows, cfg(passes=1, contrast_filter="all"))
    assert counts["contrast_pairs_used"] == 4


def test_aggregate_mixes_sources_and_records_them(tmp_path):
    pp, jp = write_inputs(tmp_path, n_pairs=6)
    lines = [json.loads(x) for x in pp.read_text().splitlines()]
    for i, r in enumerate(lines):
        r["response_a"], r["response_b"] = (SHORT, LONG) if i % 2 else (LONG, SHORT)
    pp.write_text("".join(json.dumps(r) + "\n" for r in lines))
    cp = tmp_path / "contrast.jsonl"
    pr = {"name": "Word limit 30", "definition": "At most 30 words.", "negation": "More than 30 words."}
    cp.write_text(json.dumps({"id": "c1", "prompt": "q", "response_a": SHORT, "response_b": LONG,
                              "principle": pr, "checked": True, "has_checker": True}) + "\n")
    out = aggregate(_cfg(tmp_path, pp, jp, source_shares=["judge=1", "verify=1", "contrast=1"],
                         contrast=str(cp), consistency="mean"))
    ds = load_from_disk(str(out / "dataset"))
    summary = json.loads((out / "summary.json").read_text())
    srcs = set(ds["label_source"])
    assert {"verify", "contrast"} <= srcs and srcs & {"judge", "rule"}
    assert summary["label_sources"]["verify"]["used"] == sum(s == "verify" for s in ds["label_source"])
    assert summary["label_sources"]["contrast"]["used"] == 4  # one pair x 4 passes (the default)
    capped = aggregate(_cfg(tmp_path, pp, jp, out="capped", source_shares=["verify=1"], max_examples=5,
                            consistency="mean"))
    assert set(load_from_disk(str(capped / "dataset"))["label_source"]) == {"verify"}
    assert len(load_from_disk(str(capped / "dataset"))) == 5
    even = aggregate(_cfg(tmp_path, pp, jp, out="even", source_shares=["verify=1"], max_examples=5,
                          consistency="mean", verify_balance=0.0))
    assert len(load_from_disk(str(even / "dataset"))) == 5
    with pytest.raises(SalmonError, match="--contrast"):
        _cfg(tmp_path, pp, jp, out="bad", source_shares=["contrast=1"]).validate()
    for bad in (-0.5, 1.5):
        with pytest.raises(SalmonError, match="--verify-balance"):
            _cfg(tmp_path, pp, jp, out="bad", source_shares=["verify=1"], verify_balance=bad).validate()


def test_cross_pairs_pair_every_other_response_to_a_prompt():
    from salmon.label_sources import cross_pairs

    pr = {"name": "n", "definition": "d", "negation": "e"}
    rows = [{"id": "1", "prompt": "q", "response_a": "A", "response_b": "B", "principle": pr},
            {"id": "2", "prompt": "q", "response_a": "C", "response_b": "A", "principle": pr, "finished_a": False},
            {"id": "3", "prompt": "r", "response_a": "D", "response_b": "", "principle": pr}]
    got = {(p["response_a"], p["response_b"], p["finished_a"]) for p in cross_pairs(rows)}
    # responses to q: A, B, C; steered pairs A-B and C-A are left out, B-C is new; r has one response
    assert got == {("B", "C", True)}


def test_verify_alone_needs_no_judgments(tmp_path):
    pp, jp = write_inputs(tmp_path, n_pairs=4)
    lines = [json.loads(x) for x in pp.read_text().splitlines()]
    for r in lines:
        r["response_a"], r["response_b"] = SHORT, LONG
    pp.write_text("".join(json.dumps(r) + "\n" for r in lines))
    jp.write_text("")
    out = aggregate(_cfg(tmp_path, pp, jp, source_shares=["verify=1"]))
    assert set(load_from_disk(str(out / "dataset"))["label_source"]) == {"verify"}
    with pytest.raises(SalmonError, match="no judgments"):
        aggregate(_cfg(tmp_path, pp, jp, out="j"))


def test_conversation_prompts_are_checked_on_their_last_user_turn():
    from salmon.label_sources import cross_pairs

    es = "¿Cuál es la capital de Francia y por qué es tan famosa en todo el mundo?"
    conv = [{"role": "user", "content": "Hello there, how are you doing today my friend?"},
            {"role": "assistant", "content": "Fine."}, {"role": "user", "content": es}]
    pair = {"id": "c", "prompt": conv, "response_a": "La capital de Francia es París, famosa por sus museos y su arte.",
            "response_b": "The capital of France is Paris, famous for its museums and its art."}
    assert differing(pair, TRAIN)["User language"][0][1] == 1
    pr = {"name": "n", "definition": "d", "negation": "e"}
    rows = [{"id": "1", "prompt": conv, "response_a": "A", "response_b": "B", "principle": pr},
            {"id": "2", "prompt": conv, "response_a": "C", "response_b": "D", "principle": pr}]
    assert all(p["prompt"] == conv for p in cross_pairs(rows)) and len(cross_pairs(rows)) == 4


def test_relation_families_only_with_relations(tmp_path):
    pp, jp = write_inputs(tmp_path, n_pairs=4)
    plain = "Water the fern twice a week. Keep it in shade. Mist the leaves. Repot it in spring."
    lines = [json.loads(x) for x in pp.read_text().splitlines()]
    for r in lines:
        r["response_a"], r["response_b"] = plain, SHORT
    pp.write_text("".join(json.dumps(r) + "\n" for r in lines))
    covers = {t for v in TRAIN if v.checker == "covers_more" for t in (v.principle.definition, v.principle.negation)}

    def shown(**kw):
        out = aggregate(_cfg(tmp_path, pp, jp, source_shares=["verify=1"], edits=1, verify_per_pair=9, **kw))
        return {p for ps in load_from_disk(str(out / "dataset"))["principles"] for p in ps}

    assert not shown(out="off") & covers  # the default: no relation family, edits as before
    assert shown(out="on", relations=True) & covers  # the fern answer against its first sentences
    with pytest.raises(SalmonError, match="relation family: add --relations"):
        _cfg(tmp_path, pp, jp, out="bad", source_shares=["verify=1"], verify_families=["Covers more"]).validate()
