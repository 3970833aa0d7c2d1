"""export-preferences: aggregate output -> TRL's preference format, loadable with `datasets`."""

import json

import pytest

from salmon.preferences import (
    ExportPreferencesConfig,
    export_preferences,
    label_flipped,
    principles_message,
    trl_row,
    vote_pairs,
)


def ex(pair, chosen, rejected, dominant="", rule="", principles=("P",), source="judge", prompt=None):
    return {"pair_id": pair, "prompt": prompt or f"question {pair}?", "chosen": chosen, "rejected": rejected,
            "principles": list(principles), "dominant_principle": dominant, "rule": rule, "pass": 0,
            "label_source": source}


ROWS = [
    ex("p0", "A0", "B0", dominant="Concise"),
    ex("p0", "B0", "A0", dominant="not Concise"),          # negated: under "Concise" A0 still wins
    ex("p0", "A0", "B0", dominant="Honest"),
    ex("p1", "A1", "B1", dominant="Concise"),
    ex("p1", "B1", "A1", dominant="Honest"),                # a tie: dropped
    ex("p2", "B2", "A2", rule="r", principles=["NEG"], source="rule"),  # rule label under a negation
]


def test_labels_are_mapped_back_to_unnegated_principles_then_voted():
    assert label_flipped(ROWS[1], {}) and not label_flipped(ROWS[0], {})
    assert label_flipped(ROWS[5], {"r": "NEG"}) and not label_flipped(ROWS[5], {"r": "other"})
    rows, ties = vote_pairs(ROWS, {"r": "NEG"})
    assert ties == 1
    assert [(r["pair_id"], r["chosen"], r["rejected"], r["votes"], r["labels"]) for r in rows] == [
        ("p0", "A0", "B0", 3, 3), ("p2", "A2", "B2", 1, 1)]


def test_trl_rows_standard_and_conversational():
    assert trl_row("q?", "a", "b", False) == {"prompt": "q?", "chosen": "a", "rejected": "b"}
    convo = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
             {"role": "user", "content": "and?"}]
    row = trl_row(convo, "a", "b", True, system="S")
    assert row["prompt"][0] == {"role": "system", "content": "S"} and row["prompt"][1:] == convo
    assert row["chosen"] == [{"role": "assistant", "content": "a"}]
    merged = trl_row([{"role": "system", "content": "Be kind."}] + convo, "a", "b", True, system="S")
    assert merged["prompt"][0]["content"] == "S\n\nBe kind." and len(merged["prompt"]) == 4


def save_aggregate(rows, folder):
    from datasets import Dataset

    Dataset.from_list(rows).save_to_disk(str(folder / "dataset"))
    (folder / "config.yaml").write_text("principles: judge\n")
    (folder / "summary.json").write_text("{}")
    return str(folder)


@pytest.mark.parametrize("in_system", [False, True])
def test_export_loads_with_datasets_both_ways(tmp_path, in_system):
    from datasets import load_dataset, load_from_disk

    data = save_aggregate(ROWS, tmp_path / "agg")
    out = export_preferences(ExportPreferencesConfig(data=data, out=str(tmp_path / "prefs"),
                                                     principles_in_system=in_system))
    disk = load_from_disk(str(out / "dataset"))
    js = load_dataset("json", data_files=str(out / "preferences.jsonl"), split="train")
    assert disk.to_list() == js.to_list()
    summary = json.loads((out / "summary.json").read_text())
    if in_system:
        assert len(disk) == len(ROWS) and summary["conversational"]
        first = disk[0]
        assert first["prompt"][0] == {"role": "system", "content": principles_message(["P"])}
        assert first["prompt"][1] == {"role": "user", "content": "question p0?"}
        assert first["chosen"] == [{"role": "assistant", "content": "A0"}]
    else:
        assert disk["prompt"] == ["question p0?", "question p2?"]
        assert disk["chosen"] == ["A0", "B2"] and disk["rejected"] == ["B0", "A2"]  # "r" is no real rule
        assert summary["tied_pairs_dropped"] == 1 and not summary["conversational"]


def test_conversational_prompts_export_as_message_lists(tmp_path):
    convo = [{"role": "user", "content": "first turn"}, {"role": "assistant", "content": "ok"},
             {"role": "user", "content": "second turn"}]
    rows = [ex("c0", "A", "B", dominant="Concise", prompt=convo)]
    out = export_preferences(ExportPreferencesConfig(data=save_aggregate(rows, tmp_path / "agg"),
                                                     out=str(tmp_path / "prefs")))
    from datasets import load_from_disk

    row = load_from_disk(str(out / "dataset"))[0]
    assert row["prompt"] == convo and row["rejected"] == [{"role": "assistant", "content": "B"}]


def test_cli_exports_and_a_bad_input_writes_nothing(cli, tmp_path):
    data = save_aggregate(ROWS, tmp_path / "agg")
    code, out, err = cli("export-preferences", "--data", data, "--out", tmp_path / "prefs")
    assert code == 0, err
    assert (tmp_path / "prefs" / "preferences.jsonl").exists()
    code, _, err = cli("export-preferences", "--data", tmp_path / "nosuch", "--out", tmp_path / "p2")
    assert code == 2 and "nosuch" in err and not (tmp_path / "p2").exists()
