import json

import pytest

from salmon.errors import SalmonError
from salmon.jsonl import read_jsonl
from salmon.mtbench import read_questions, write_mt_bench_answers
from tests.conftest import shared_data


def test_answers_in_fastchat_format(tiny_model, tmp_path):
    q = shared_data("mt_bench", "question.jsonl")
    out = write_mt_bench_answers(str(tiny_model), q, tmp_path / "a.jsonl", "tiny", max_new_tokens=4, limit=3)
    rows = read_jsonl(out)
    qs = read_questions(q, limit=3)
    assert [r["question_id"] for r in rows] == [x["question_id"] for x in qs]
    for r, x in zip(rows, qs):
        assert set(r) == {"question_id", "answer_id", "model_id", "choices", "tstamp"}
        assert len(r["choices"][0]["turns"]) == len(x["turns"]) == 2


def test_bad_question_file(tmp_path):
    f = tmp_path / "q.jsonl"
    f.write_text(json.dumps({"question_id": 1, "turns": []}) + "\n")
    with pytest.raises(SalmonError, match=":1: expected an MT-Bench question"):
        read_questions(f)
