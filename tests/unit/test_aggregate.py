"""Aggregation: policies, normalisation, draws and labels checked by hand; the stage on
small synthetic pairs/judgments files; bad inputs."""

import json
import math

import numpy as np
import pytest

from salmon.aggregate import (
    AggregateConfig,
    PairScores,
    aggregate,
    decide,
    draw_principles,
    make_example,
    mean_score,
    pair_rule,
    principle_scale,
    score_table,
    strict_score,
)
from salmon.errors import SalmonError
from salmon.principles import Principle, load_principles

JUDGE = load_principles("judge")
P = Principle("Concise", "The response is short.", "The response is long.")
Q = Principle("Thorough", "The response covers everything.", "The response skips things.")


# --- pure maths ------------------------------------------------------------------

def test_consistency_policies():
    assert strict_score(2.0, 1.0, 1.5) == 1.5
    assert strict_score(-2.0, -0.5, -1.25) == -1.25
    assert strict_score(2.0, -1.0, 0.5) is None  # the orders disagree
    assert strict_score(0.0, 1.0, 0.5) is None  # no preference in one order
    assert mean_score(2.0, -1.0, 0.5) == 0.5


def test_principle_scale_by_hand():
    # [1, 2, 3]: mean 2, population variance (1 + 0 + 1) / 3 = 2/3.
    assert principle_scale([1.0, 2.0, 3.0]) == pytest.approx(math.sqrt(2 / 3))
    assert principle_scale([4.0]) == 1.0
    assert principle_scale([2.0, 2.0]) == 1.0
    assert principle_scale([], fallback=0.5) == 0.5
    assert principle_scale([4.0], fallback=0.5) == 0.5


def test_score_table_strict_vs_mean_by_hand():
    pairs = {f"p{i}": {"id": f"p{i}", "prompt": "q", "response_a": "a", "response_b": "b"} for i in range(4)}
    judged = {"p0": {"Concise": (2.0, 1.0, 1.5)},     # consistent
              "p1": {"Concise": (1.0, -3.0, -1.0)},   # inconsistent
              "p2": {"Concise": (-2.0, -2.0, -2.0)}}  # consistent; p3 has no judgments
    of = {pid: {"Concise": P} for pid in judged}
    table, scales, rate = score_table(pairs, judged, of, "strict", normalize=True)
    # strict keeps [1.5, -2]: mean -0.25, deviations +-1.75, std 1.75.
    assert scales["Concise"] == pytest.approx(1.75)
    assert [t.pair["id"] for t in table] == ["p0", "p1", "p2"]
    assert table[0].scores[0] == pytest.approx(1.5 / 1.75)
    assert table[1].scores == [None]
    assert table[2].scores[0] == pytest.approx(-2 / 1.75)
    assert rate == {"Concise": pytest.approx(2 / 3)}
    table, scales, _ = score_table(pairs, judged, of, "mean", normalize=True)
    # mean keeps [1.5, -1, -2]: mean -0.5, deviations 2, -0.5, -1.5, variance 6.5 / 3.
    std = math.sqrt(6.5 / 3)
    assert scales["Concise"] == pytest.approx(std)
    assert [t.scores[0] for t in table] == pytest.approx([1.5 / std, -1 / std, -2 / std])
    table, scales, _ = score_table(pairs, judged, of, "mean", normalize=False)
    assert scales["Concise"] == 1.0 and table[1].scores == [-1.0]
    # A principle with one kept score borrows the pooled scale of all kept scores.
    judged["p0"]["Thorough"] = (3.0, 1.0, 2.0)
    of["p0"]["Thorough"] = Q
    table, scales, _ = score_table(pairs, judged, of, "strict", normalize=True)
    pooled = math.sqrt(((1.5 - 0.5) ** 2 + (-2 - 0.5) ** 2 + (2 - 0.5) ** 2) / 3)  # [1.5, -2, 2], mean 0.5
    assert scales["Thorough"] == pytest.approx(pooled) and scales["Concise"] == pytest.approx(1.75)
    assert table[0].scores == pytest.approx([1.5 / 1.75, 2 / pooled])


def test_draw_principles_matches_the_same_generator_calls():
    got_idx, got_neg = draw_principles(np.random.default_rng([7, 1, 3]), 10, 0.2, 8, 0.5)
    g = np.random.default_rng([7, 1, 3])
    k = min(int(g.geometric(0.2)), 8, 10)
    idx = g.permutation(10)[:k]
    neg = g.random(k) < 0.5
    assert got_idx.tolist() == idx.tolist() and got_neg.tolist() == neg.tolist()
    assert len(set(got_idx.tolist())) == len(got_idx)


def test_draw_distribution_is_capped_geometric():
    rng = np.random.default_rng(0)
    ks, negs = [], []
    for _ in range(20000):
        idx, neg = draw_principles(rng, 20, 0.2, 8, 0.5)
        ks.append(len(idx))
        negs.extend(neg.tolist())
    ks = np.array(ks)
    # P(k=1) = 0.2; P(k=8) = P(G >= 8) = 0.8^7; E[min(G, 8)] = sum_{j<8} 0.8^j = (1 - 0.8^8) / 0.2.
    assert ks.min() == 1 and ks.max() == 8
    assert np.mean(ks == 1) == pytest.approx(0.2, abs=0.01)
    assert np.mean(ks == 8) == pytest.approx(0.8 ** 7, abs=0.01)
    assert ks.mean() == pytest.approx((1 - 0.8 ** 8) / 0.2, abs=0.05)
    assert np.mean(negs) == pytest.approx(0.5, abs=0.01)
    # Fewer principles than the draw: all of them.
    assert all(len(draw_principles(rng, 2, 0.01, 8, 0.5)[0]) == 2 for _ in range(20))


def test_decide():
    assert decide([0.5, None, -1.2]) == (2, -1, "")
    assert decide([0.5, 2.0, -1.2]) == (1, 1, "")
    assert decide([None, None]) == (None, 0, "all_dropped")
    assert decide([1.0, -1.0, 0.5]) == (None, 0, "tie")  # the top |score| has both signs
    assert decide([0.0, None]) == (None, 0, "tie")
    assert decide([1.0, 1.0]) == (0, 1, "")  # same sign: the first shown is named
    assert decide([0.3, -0.2], min_margin=0.3) == (None, 0, "tie")


# --- one example -----------------------------------------------------------------

def _item(scores, principles=(P, Q), response_a="A short answer.", response_b="A long answer."):
    pair = {"id": "x", "prompt": "Say something.", "response_a": response_a, "response_b": response_b}
    return PairScores(pair, list(principles), list(scores))


def test_make_example_negation_flips_label_and_text():
    item = _item([2.0, -0.5])
    cfg = AggregateConfig(geometric_p=1.0, negation_prob=0.0, rules=[])  # exactly one principle
    for seed in range(6):
        ex, _, _ = make_example(item, ("", 0), np.random.default_rng(seed), 0, cfg)
        first = P if ex["principles"] == [P.definition] else Q
        assert ex["dominant_principle"] == first.name and ex["label_source"] == "judge"
        assert ex["chosen"] == ("A short answer." if first is P else "A long answer.")
    cfg = AggregateConfig(geometric_p=1.0, negation_prob=1.0, rules=[])
    for seed in range(6):
        ex, _, _ = make_example(item, ("", 0), np.random.default_rng(seed), 0, cfg)
        first = P if ex["principles"] == [P.negation] else Q
        assert ex["principles"] == [first.negation]
        assert ex["dominant_principle"] == f"not {first.name}"
        assert ex["chosen"] == ("A long answer." if first is P else "A short answer.")


def test_make_example_largest_abs_score_decides():
    item = _item([2.0, -0.5])
    cfg = AggregateConfig(geometric_p=0.001, negation_prob=0.0, rules=[])  # both principles
    ex, _, _ = make_example(item, ("", 0), np.random.default_rng(0), 3, cfg)
    assert sorted(ex["principles"]) == sorted([P.definition, Q.definition])
    assert ex["dominant_principle"] == "Concise" and ex["chosen"] == "A short answer." and ex["pass"] == 3
    ex, reason, _ = make_example(_item([None, None]), ("", 0), np.random.default_rng(0), 0, cfg)
    assert ex is None and reason == "all_dropped"


def test_rule_overrides_judge_and_its_principle_negation_flips_it():
    boiler = Principle("No Boilerplate", "The response has no AI boilerplate.", "The response is full of AI boilerplate.")
    item = _item([5.0, 3.0], principles=(boiler, Q))  # the judge strongly prefers response_a
    for neg_prob, expect in [(0.0, "A long answer."), (1.0, "A short answer.")]:
        cfg = AggregateConfig(geometric_p=0.001, negation_prob=neg_prob)
        ex, _, judge_label = make_example(item, ("banned_phrase", -1), np.random.default_rng(0), 0, cfg)
        assert ex["chosen"] == expect
        assert ex["rule"] == "banned_phrase" and ex["label_source"] == "rule" and ex["dominant_principle"] == ""
    # The rule decides even when strict dropped every shown principle.
    ex, _, judge_label = make_example(_item([None, None]), ("list_count", 1), np.random.default_rng(0), 0,
                                      AggregateConfig())
    assert ex["chosen"] == "A short answer." and judge_label == 0


def test_judge_twins_negate_every_shown_principle_and_flip_the_label():
    """Negating every shown principle flips each signed score: the same principle decides
    (largest |score|) and the label flips, so a self-judge example's twin is exact."""
    from salmon.aggregate import build_examples

    boiler = Principle("No Boilerplate", "The response has no AI boilerplate.", "The response is full of AI boilerplate.")
    plain = _item([2.0, -0.5])  # both shown (p ~ 0): Concise decides, |2.0| > |-0.5|
    cfg = AggregateConfig(geometric_p=0.001, negation_prob=0.5, rules=[], passes=3, judge_twins=True)
    exs, _ = build_examples([plain], cfg)
    assert len(exs) == 6
    for a, b in zip(exs[::2], exs[1::2], strict=True):
        assert a["twin"] == b["twin"] != "" and b.get("_twin_copy")
        assert (a["chosen"], a["rejected"]) == (b["rejected"], b["chosen"])
        flip = {P.definition: P.negation, P.negation: P.definition, Q.definition: Q.negation, Q.negation: Q.definition}
        assert b["principles"] == [flip[t] for t in a["principles"]]
        # Concise (or its negation) decides both: under "not Concise" the long answer wins
        negated = P.negation in a["principles"]
        assert a["dominant_principle"] == ("not Concise" if negated else "Concise")
        assert b["dominant_principle"] == ("Concise" if negated else "not Concise")
        assert a["chosen"] == ("A long answer." if negated else "A short answer.")
    assert len({e["twin"] for e in exs}) == 3  # one id per pass
    # without --judge-twins (--twins is for verify and contrast): the same examples, one each, no id
    alone, _ = build_examples([plain], AggregateConfig(geometric_p=0.001, negation_prob=0.5, rules=[], passes=3,
                                                       twins=True))
    assert [(e["chosen"], e["twin"]) for e in alone] == [(e["chosen"], "") for e in exs[::2]]
    # a rule-labelled row gets no twin: its label need not follow principles it does not check
    ruled = _item([5.0, 3.0], principles=(boiler, Q), response_a="As an AI language model, I can't say.",
                  response_b="Paris is the capital of France.")
    exs, _ = build_examples([ruled], AggregateConfig(geometric_p=0.001, rules=["banned_phrase"], passes=2,
                                                     judge_twins=True))
    assert [(e["label_source"], e["twin"]) for e in exs] == [("rule", ""), ("rule", "")]


# --- the stage on files ------------------------------------------------------------

def write_inputs(tmp_path, n_pairs=40, consistency=0.4, seed=0, principles=JUDGE, extra_pairs=()):
    """Pairs and judge-style judgments where each (pair, principle) is consistent with
    probability `consistency` (score_ba is in response_a's favour, like `salmon judge`)."""
    rng = np.random.default_rng(seed)
    pairs = [{"id": f"p{i}", "prompt": f"Question {i}?", "response_a": f"Answer a{i}.",
              "response_b": f"Answer b{i}.", "type": "general"} for i in range(n_pairs)]
    pairs += list(extra_pairs)
    judgments = []
    for pair in pairs[:n_pairs]:
        for p in principles:
            x, y = np.abs(rng.normal(size=2)) + 0.01
            sign = rng.choice([-1.0, 1.0])
            ab, ba = (sign * x, sign * y) if rng.random() < consistency else (sign * x, -sign * y)
            judgments.append({"pair_id": pair["id"], "principle": p.name, "score_ab": ab, "score_ba": ba,
                              "score": (ab + ba) / 2, "consistent": bool(ab * ba > 0)})
    pp, jp = tmp_path / "pairs.jsonl", tmp_path / "judgments.jsonl"
    pp.write_text("".join(json.dumps(r) + "\n" for r in pairs))
    jp.write_text("".join(json.dumps(r) + "\n" for r in judgments))
    return pp, jp


def _cfg(tmp_path, pp, jp, out="rm_data", **kw):
    return AggregateConfig(pairs=str(pp), judgments=str(jp), principles="judge", out=str(tmp_path / out), **kw)


def test_aggregate_writes_contract_dataset_deterministically(tmp_path):
    from datasets import load_from_disk

    extra = [{"id": "lonely", "prompt": "q", "response_a": "a", "response_b": "b"}]
    pp, jp = write_inputs(tmp_path, extra_pairs=extra)
    out = aggregate(_cfg(tmp_path, pp, jp))
    assert (out / "config.yaml").exists()
    summary = json.loads((out / "summary.json").read_text())
    ds = load_from_disk(str(out / "dataset"))
    assert set(ds.column_names) == {"pair_id", "prompt", "chosen", "rejected", "principles",
                                    "dominant_principle", "rule", "pass", "label_source", "twin"}
    assert summary["examples"] == len(ds) and summary["judged_pairs"] == 40
    assert summary["pairs_without_judgments"] == 1 and summary["passes"] == 4
    assert summary["label_yield"] == pytest.approx(len(ds) / 160)
    assert sorted(set(ds["pass"])) == [0, 1, 2, 3]
    texts = {p.definition for p in JUDGE} | {p.negation for p in JUDGE}
    for row in ds:
        assert row["principles"] and set(row["principles"]) <= texts and len(row["principles"]) <= 8
        assert {row["chosen"], row["rejected"]} == {f"Answer a{row['pair_id'][1:]}.", f"Answer b{row['pair_id'][1:]}."}
        assert row["label_source"] == "judge" and row["dominant_principle"]
    assert sum(summary["decided_by_principle"].values()) == pytest.approx(1.0)
    again = load_from_disk(str(aggregate(_cfg(tmp_path, pp, jp, out="again")) / "dataset"))
    assert again.to_list() == ds.to_list()
    other = load_from_disk(str(aggregate(_cfg(tmp_path, pp, jp, out="seed1", seed=1)) / "dataset"))
    assert other.to_list() != ds.to_list()


def test_aggregate_rerun_and_changed_settings(tmp_path):
    pp, jp = write_inputs(tmp_path, n_pairs=5)
    out = aggregate(_cfg(tmp_path, pp, jp))
    stamp = (out / "summary.json").stat().st_mtime_ns
    assert aggregate(_cfg(tmp_path, pp, jp)) == out
    assert (out / "summary.json").stat().st_mtime_ns == stamp  # already complete: untouched
    with pytest.raises(SalmonError, match="consistency='strict', now consistency='mean'"):
        aggregate(_cfg(tmp_path, pp, jp, consistency="mean"))


def test_strict_yield_is_lower_than_mean_as_predicted(tmp_path):
    """With a 40%-consistent judge, strict skips an example when every shown principle was
    dropped: expected yield 1 - E[0.6^k], k = min(Geometric(0.2), 8)."""
    pp, jp = write_inputs(tmp_path, n_pairs=200, consistency=0.4)
    strict = json.loads((aggregate(_cfg(tmp_path, pp, jp, out="s")) / "summary.json").read_text())
    mean = json.loads((aggregate(_cfg(tmp_path, pp, jp, out="m", consistency="mean")) / "summary.json").read_text())
    pk = [0.2 * 0.8 ** (k - 1) for k in range(1, 8)] + [0.8 ** 7]
    expected = 1 - sum(p * 0.6 ** k for k, p in enumerate(pk, 1))
    assert strict["label_yield"] == pytest.approx(expected, abs=0.04)
    assert mean["label_yield"] == 1.0
    assert strict["skipped"]["all_dropped"] == 800 - strict["examples"]
    rates = strict["consistency_rate"].values()
    assert all(0.3 < r < 0.5 for r in rates)


def test_rules_override_and_skip_types(tmp_path):
    prompt = "What is the capital of France?"
    boiler = {"prompt": prompt, "response_a": "As an AI language model, I can say it is Paris.",
              "response_b": "It is Paris."}
    extra = [dict(boiler, id="r1", type="general"), dict(boiler, id="r2", type="redteam")]
    pp, jp = write_inputs(tmp_path, n_pairs=3, extra_pairs=extra)
    judgments = [json.loads(line) for line in jp.read_text().splitlines()]
    for pid in ("r1", "r2"):  # the judge likes the boilerplate answer under every principle
        judgments += [{"pair_id": pid, "principle": p.name, "score_ab": 2.0, "score_ba": 1.0, "score": 1.5,
                       "consistent": True} for p in JUDGE]
    jp.write_text("".join(json.dumps(r) + "\n" for r in judgments))
    from datasets import load_from_disk

    out = aggregate(_cfg(tmp_path, pp, jp, passes=8))
    ds = load_from_disk(str(out / "dataset"))
    r1 = [r for r in ds if r["pair_id"] == "r1"]
    assert len(r1) == 8 and all(r["rule"] == "banned_phrase" and r["label_source"] == "rule" for r in r1)
    for r in r1:  # the clean answer wins unless "No Boilerplate" is shown negated
        no_bp = next(p for p in JUDGE if p.name == "No Boilerplate")
        expect = boiler["response_a"] if no_bp.negation in r["principles"] else "It is Paris."
        assert r["chosen"] == expect
    assert all(r["label_source"] == "judge" for r in ds if r["pair_id"] == "r2")  # redteam: judge decides
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rule_fired_pairs"] == {"banned_phrase": 1}
    assert summary["decided_by_rule"]["banned_phrase"] == pytest.approx(8 / summary["examples"])


def test_pair_rule_skips_cut_off_lists_and_skip_types():
    pair = {"prompt": "List three fruits.", "response_a": "1. Kiwi\n2. Lime\n3. Fig", "response_b": "- Kiwi\n- Lime",
            "type": "general", "finished_a": True, "finished_b": True}
    cfg = AggregateConfig()
    assert pair_rule(pair, cfg) == ("list_count", 1)
    assert pair_rule(dict(pair, finished_b=False), cfg) == ("", 0)  # b may have had a third item
    assert pair_rule(dict(pair, type="redteam"), cfg) == ("", 0)
    assert pair_rule(pair, AggregateConfig(rules=["banned_phrase"])) == ("", 0)


def test_label_noise_flips_about_that_share(tmp_path):
    from datasets import load_from_disk

    pp, jp = write_inputs(tmp_path, n_pairs=100, consistency=1.0)
    clean = load_from_disk(str(aggregate(_cfg(tmp_path, pp, jp, out="c")) / "dataset"))
    out = aggregate(_cfg(tmp_path, pp, jp, out="n", label_noise=0.25))
    noisy = load_from_disk(str(out / "dataset"))
    assert clean["principles"] == noisy["principles"]  # same draws; only labels differ
    flipped = sum(a != b for a, b in zip(clean["chosen"], noisy["chosen"], strict=True))
    assert flipped == json.loads((out / "summary.json").read_text())["label_noise_flips"]
    assert flipped / len(noisy) == pytest.approx(0.25, abs=0.05)


def test_pairs_with_own_principles_and_without_ids(tmp_path):
    """Like `salmon judge`: a pair may carry its own principles; an id-less pair is `line<N>`."""
    from datasets import load_from_disk

    pp, jp = tmp_path / "pairs.jsonl", tmp_path / "judgments.jsonl"
    own = ["Rhymes: The response rhymes.", {"name": "Polite", "definition": "The response is polite."}]
    pp.write_text(json.dumps({"prompt": "Write a poem.", "response_a": "Roses are red.", "response_b": "No.",
                              "principles": own}) + "\n")
    jp.write_text("".join(json.dumps({"pair_id": "line1", "principle": n, "score_ab": s, "score_ba": s, "score": s,
                                      "consistent": True}) + "\n" for n, s in [("Rhymes", 2.0), ("Polite", 1.0)]))
    out = aggregate(_cfg(tmp_path, pp, jp, passes=3, negation_prob=0.0))
    rows = load_from_disk(str(out / "dataset")).to_list()
    assert len(rows) == 3 and all(r["pair_id"] == "line1" and r["chosen"] == "Roses are red." for r in rows)
    assert {t for r in rows for t in r["principles"]} <= {"The response rhymes.", "The response is polite."}
    jp.write_text(json.dumps({"pair_id": "line1", "principle": "Helpful", "score_ab": 1, "score_ba": 1,
                              "score": 1, "consistent": True}) + "\n")
    with pytest.raises(SalmonError, match="principle 'Helpful' is not in the principle file"):
        aggregate(_cfg(tmp_path, pp, jp, out="other"))


# --- bad inputs ----------------------------------------------------------------------

def _rewrite_line(path, lineno, **changes):
    lines = path.read_text().splitlines()
    rec = json.loads(lines[lineno - 1])
    rec.update(changes)
    lines[lineno - 1] = json.dumps(rec)
    path.write_text("\n".join(lines) + "\n")


def test_judgment_for_unknown_pair_names_the_line(tmp_path):
    pp, jp = write_inputs(tmp_path, n_pairs=2)
    _rewrite_line(jp, 3, pair_id="nope")
    with pytest.raises(SalmonError, match=r"judgments.jsonl:3: pair_id 'nope' is not in"):
        aggregate(_cfg(tmp_path, pp, jp))
    assert not (tmp_path / "rm_data").exists()


def test_unknown_principle_is_named(tmp_path):
    pp, jp = write_inputs(tmp_path, n_pairs=2)
    _rewrite_line(jp, 2, principle="Witty")
    with pytest.raises(SalmonError, match=r"judgments.jsonl:2: principle 'Witty' is not in the principle file"):
        aggregate(_cfg(tmp_path, pp, jp))


@pytest.mark.parametrize("change,message", [
    ({"score": None}, r":1: 'score' must be a finite number"),
    ({"score_ab": "high"}, r":1: 'score_ab' must be a finite number"),
    ({"pair_id": None}, r":1: missing 'pair_id' or 'principle'"),
])
def test_bad_judgment_fields(tmp_path, change, message):
    pp, jp = write_inputs(tmp_path, n_pairs=2)
    _rewrite_line(jp, 1, **change)
    with pytest.raises(SalmonError, match=message):
        aggregate(_cfg(tmp_path, pp, jp))


def test_nan_score_and_duplicate_judgment(tmp_path):
    pp, jp = write_inputs(tmp_path, n_pairs=2)
    lines = jp.read_text().splitlines()
    jp.write_text("\n".join(lines + [lines[0]]) + "\n")
    with pytest.raises(SalmonError, match=rf":{len(lines) + 1}: second judgment for pair 'p0'"):
        aggregate(_cfg(tmp_path, pp, jp))
    jp.write_text(lines[0].replace('"score": ', '"score": NaN, "x": ') + "\n")
    with pytest.raises(SalmonError, match=r":1: 'score' must be a finite number, got nan"):
        aggregate(_cfg(tmp_path, pp, jp))


def test_bad_pairs_and_empty_results(tmp_path):
    pp, jp = write_inputs(tmp_path, n_pairs=3, consistency=0.0)
    with pytest.raises(SalmonError, match="no training examples left after filtering.*all_dropped"):
        aggregate(_cfg(tmp_path, pp, jp))  # strict drops everything from an always-inconsistent judge
    assert not (tmp_path / "rm_data" / "summary.json").exists()
    assert aggregate(_cfg(tmp_path, pp, jp, out="mean", consistency="mean")).exists()
    _rewrite_line(pp, 2, response_b=None)
    with pytest.raises(SalmonError, match=r"pairs.jsonl:2: missing or non-text field 'response_b'"):
        aggregate(_cfg(tmp_path, pp, jp, out="x"))
    pp, jp = write_inputs(tmp_path, n_pairs=3)
    jp.write_text("\n")
    with pytest.raises(SalmonError, match="no judgments"):
        aggregate(_cfg(tmp_path, pp, jp, out="y"))


@pytest.mark.parametrize("kw,message", [
    ({"consistency": "vote"}, "--consistency must be one of strict, mean"),
    ({"rules": ["magic"]}, "--rules: unknown rule 'magic'"),
    ({"geometric_p": 0.0}, "--geometric-p must be in"),
    ({"label_noise": 0.9}, "--label-noise"),
])
def test_bad_settings(kw, message):
    from salmon.config import from_dict

    with pytest.raises(SalmonError, match=message):
        from_dict(AggregateConfig, kw, "flags")


def test_cli_runs_and_reports_errors_in_one_line(tmp_path, cli):
    pp, jp = write_inputs(tmp_path, n_pairs=6)
    code, out, err = cli("aggregate", "--pairs", pp, "--judgments", jp, "--out", tmp_path / "rm", "--passes", "2")
    assert code == 0, err
    assert out.strip() == str(tmp_path / "rm") and "label yield" in err and "decided by principle" in err
    code, _, err = cli("aggregate", "--pairs", pp, "--judgments", tmp_path / "missing.jsonl", "--out", tmp_path / "r2")
    assert code == 2 and err.strip().count("\n") == 0 and "missing.jsonl: file not found" in err
