"""Contrastive scoring (salmon.reward.contrastive) and the contrastive objective's pieces."""

from types import SimpleNamespace

import pytest

from salmon.errors import SalmonError
from salmon.reward.contrastive import (
    contrastive_score,
    is_contrastive,
    known_negations,
    negate_list,
)
from salmon.reward.evaluate import rm_metrics, score_labeled
from salmon.reward.train import TrainRMConfig, contrastive_accuracy, contrastive_rewards
from salmon.reward.trainer import loss_weights
from salmon.verify import load_verifiable


def fake_raw(table):
    """A raw scorer: the score of (response, first principle) from `table`, recording calls."""
    calls = []

    def raw(prompts, responses, principles, *_, **__):
        calls.append(len(prompts))
        return [table[(r, ps[0])] for r, ps in zip(responses, principles, strict=True)]

    return raw, calls


def test_contrastive_score_subtracts_the_negation_in_one_raw_call():
    # A is long, B short; the raw scorer likes A everywhere (+5), and a bit more under "long"
    table = {("A", "long"): 7.0, ("A", "short"): 5.0, ("B", "long"): 1.0, ("B", "short"): 2.0}
    raw, calls = fake_raw(table)
    got = contrastive_score(raw, ["q", "q"], ["A", "B"], [["long"], ["long"]], negations=[["short"], ["short"]])
    assert got == [7.0 - 5.0, 1.0 - 2.0] and calls == [4]
    # raw prefers A under both texts (no flip); contrasted, A wins under "long" and loses under "short"
    under_short = contrastive_score(raw, ["q", "q"], ["A", "B"], [["short"]] * 2, negations=[["long"]] * 2)
    assert under_short == [-2.0, 1.0]
    with pytest.raises(SalmonError, match="negations"):
        contrastive_score(raw, ["q"], ["A"], [["long"]], negations=[])


def test_negate_list_uses_known_negations_then_derives():
    v = load_verifiable(None, "test")[0]
    assert negate_list([v.principle.definition]) == [v.principle.negation]
    assert negate_list([v.principle.negation]) == [v.principle.definition]
    assert negate_list(["Kind: The response is kind to the user."]) == ["The response is not kind to the user."]
    assert len(known_negations()) > 50


def test_contrastive_rewards_by_hand():
    # rows a=0 (A over B under P) and b=1 (B over A under not P) are twins (unit 7); row 2 has none
    chosen, rejected = [3.0, 1.5, 9.0], [1.0, 2.5, 9.0]
    # under P: A = raw(A|P) - raw(A|notP) = 3 - 2.5, B = 1 - 1.5; under not P: B = 1.5 - 1, A = 2.5 - 3
    assert contrastive_rewards(chosen, rejected, [7, 7, -1]) == [0.5, -0.5, 0.5, -0.5]
    assert contrastive_rewards(chosen, rejected, [-1, -1, -1]) == []


def test_contrastive_accuracy_by_hand():
    # unit 0 = rows 0, 1: margins (3 - 1) + (1 - 1) = 2 > 0 -> right; unit 1 = rows 3, 4:
    # (0 - 0) + (2 - 2) = 0 -> a tie, half; row 2 has no twin and is not counted.
    chosen, rejected = [3.0, 1.0, 0.0, 0.0, 2.0], [1.0, 1.0, 5.0, 0.0, 2.0]
    assert contrastive_accuracy(chosen, rejected, [0, 0, -1, 1, 1]) == 0.75
    # A raw margin that looks right on row a alone is outweighed by its twin's: (2 - 1) + (1 - 3) = -1.
    assert contrastive_accuracy([2.0, 1.0], [1.0, 3.0], [4, 4]) == 0.0
    assert contrastive_accuracy([1.0], [0.0], [-1]) is None


def test_objective_sets_the_loss_weights_and_is_checked():
    assert loss_weights(SimpleNamespace(objective="plain", flip_coefficient=0.0, share_prefix=True)) == (0.0, True, 1.0)
    assert loss_weights(SimpleNamespace(objective="contrastive", flip_coefficient=0.0, share_prefix=False)) == (1.0, False, 0.0)
    assert loss_weights(SimpleNamespace(objective="contrastive", flip_coefficient=2.0, share_prefix=True)) == (2.0, True, 0.0)
    with pytest.raises(SalmonError, match="--objective"):
        TrainRMConfig(objective="both").validate()
    with pytest.raises(SalmonError, match="--pmp-data"):
        TrainRMConfig(objective="contrastive", pmp_data="x.jsonl").validate()


def test_eval_scores_a_contrastive_rm_against_the_labelled_negation():
    # raw prefers the chosen response under P and even more under not P: a plain RM gets the
    # pair right under P, wrong under not P (no flip); contrasted it is wrong under both
    table = {("c", "P"): 2.0, ("r", "P"): 1.0, ("c", "notP"): 4.0, ("r", "notP"): 1.0}
    raw, _ = fake_raw(table)
    rm = SimpleNamespace(contrastive=True, raw_score=raw)
    rows = [{"id": "1", "prompt": "q", "chosen": "c", "rejected": "r", "definition": "P", "negation": "notP",
             "split": "s", "principle": "P"}]
    scored = score_labeled(rm, rows, batch_size=4)
    assert (scored[0]["rc"], scored[0]["rr"], scored[0]["rc_neg"], scored[0]["rr_neg"]) == (-2.0, 0.0, 2.0, 0.0)
    assert scored[0]["raw"] == {"rc": 2.0, "rr": 1.0, "rc_neg": 4.0, "rr_neg": 1.0}
    m = rm_metrics(scored)
    assert m["accuracy"] == 0.0 and m["flip_rate"] == 1.0 and m["negation_accuracy"] == 0.0
    raw_m = rm_metrics([{**r, **r["raw"]} for r in scored])
    assert raw_m["accuracy"] == 1.0 and raw_m["flip_rate"] == 0.0
    assert is_contrastive({"scoring": "contrastive"}) and not is_contrastive({})
