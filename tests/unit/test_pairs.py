import json

import pytest

from salmon.errors import SalmonError
from salmon.jsonl import read_jsonl
from salmon.pairs import PairsConfig, make_pairs, pairs_for_record


def test_pairs_drop_degenerate_responses():
    rec = {"id": "p", "prompt": "q", "responses": ["", "ok", "A good answer here", "a GOOD  answer here", "Another fine answer"],
           "finished": [True, True, True, True, False]}
    pairs, drops = pairs_for_record(rec, PairsConfig(max_pairs_per_prompt=3))
    assert drops == {"empty": 1, "too_short": 1, "duplicate": 1, "unfinished": 0}
    assert [(p["response_a"], p["response_b"]) for p in pairs] == [("A good answer here", "Another fine answer")]
    assert pairs[0]["finished_b"] is False and pairs[0]["id"] == "p:0-1"
    _, drops = pairs_for_record(rec, PairsConfig(require_finished=True))
    assert drops["unfinished"] == 1


def test_make_pairs_file(tmp_path):
    resp = tmp_path / "r.jsonl"
    resp.write_text(json.dumps({"id": "1", "prompt": "q", "type": "reasoning",
                                "responses": ["one two three", "four five six", "seven eight nine"]}) + "\n")
    out = make_pairs(PairsConfig(responses=str(resp), out=str(tmp_path / "p.jsonl"), max_pairs_per_prompt=5))
    got = read_jsonl(out)
    assert len(got) == 3 and got[0]["type"] == "reasoning"


def test_no_usable_pairs_is_an_error(tmp_path):
    resp = tmp_path / "r.jsonl"
    resp.write_text(json.dumps({"id": "1", "prompt": "q", "responses": ["same words here", "same words here"]}) + "\n")
    with pytest.raises(SalmonError, match="no usable pairs"):
        make_pairs(PairsConfig(responses=str(resp), out=str(tmp_path / "p.jsonl")))


def test_bad_record_names_line(tmp_path):
    resp = tmp_path / "r.jsonl"
    resp.write_text('{"id": "1", "prompt": "q", "responses": ["a b c", "d e f"]}\n{"id": "2"}\n')
    with pytest.raises(SalmonError, match=r"r.jsonl:2: expected a generate record"):
        make_pairs(PairsConfig(responses=str(resp), out=str(tmp_path / "p.jsonl")))
