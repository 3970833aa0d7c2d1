"""verify_dev / verify_test: the shipped files are what the builder makes, every label is the
checker's, and the test set uses only phrasings and thresholds never used in training."""

import json
from importlib import resources
from pathlib import Path

from salmon.reward.evaluate import labeled_file, read_labeled
from salmon.verify import load_verifiable
from salmon.verify_devsets import build_all


def shipped(name):
    path = Path(str(resources.files("salmon").joinpath(f"data/dev/{name}.jsonl")))
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_shipped_files_match_the_builder_and_the_checkers():
    built = build_all()
    for name, split in (("verify_dev", "train"), ("verify_test", "test"), ("verify_dev_rephrased", "dev")):
        rows = shipped(name)
        assert rows == built[name] and len(rows) >= 60
        by_def = {v.principle.definition: v for v in load_verifiable(split=split, core=True)}
        for r in rows:
            v = by_def[r["principle"]["definition"]]  # KeyError = a phrasing from the other split
            assert v.check(r["prompt"], r["chosen"]) is True and v.check(r["prompt"], r["rejected"]) is False
        assert len({r["checker"] for r in rows}) >= 10
        longer = sum(len(r["chosen"].split()) > len(r["rejected"].split()) for r in rows) / len(rows)
        assert 0.4 <= longer <= 0.6  # "longer wins" is no shortcut on these sets


def test_test_split_shares_no_text_with_training():
    train = load_verifiable(split="train")
    train_texts = {t for v in train for t in (v.principle.definition, v.principle.negation)}
    for r in shipped("verify_test"):
        assert r["principle"]["definition"] not in train_texts and r["principle"]["negation"] not in train_texts


def test_dev_wordings_are_new_and_keep_the_train_thresholds():
    texts = {split: {t for v in load_verifiable(split=split) for t in (v.principle.definition, v.principle.negation)}
             for split in ("train", "test", "dev")}
    assert texts["dev"] and not texts["dev"] & (texts["train"] | texts["test"])
    assert {v.family for v in load_verifiable(split="dev")} == {v.family for v in load_verifiable(split="train")}
    train_params = {(v.family, v.param) for v in load_verifiable(split="train")}
    assert {(v.family, v.param) for v in load_verifiable(split="dev")} == train_params


def test_registered_for_eval_rm():
    for name in ("verify_dev", "verify_test", "verify_dev_rephrased"):
        rows = read_labeled(labeled_file(name))
        assert rows and all(r["negation"] for r in rows)
    from salmon.evaluate import labeled_path

    assert labeled_path("verify_test").exists()
