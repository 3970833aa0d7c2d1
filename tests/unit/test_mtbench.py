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


def test_second_turn_is_asked_with_the_models_own_first_answer(tiny_model, tmp_path):
    """Black-box: the second answer equals greedy decoding of [turn 1, own answer 1, turn 2]."""
    from salmon.backends.hf import sample_batch
    from salmon.chat import render_chat
    from salmon.models import load_causal_lm, load_tokenizer
    from salmon.mtbench import turn_items

    q = tmp_path / "q.jsonl"
    turns = ["Write one line about the sea.", "Now make that line rhyme."]
    q.write_text(json.dumps({"question_id": 7, "turns": turns}) + "\n")
    out = write_mt_bench_answers(str(tiny_model), q, tmp_path / "a.jsonl", "tiny", max_new_tokens=5)
    a1, a2 = read_jsonl(out)[0]["choices"][0]["turns"]
    tok, model = load_tokenizer(str(tiny_model)), load_causal_lm(str(tiny_model))
    history = [{"role": "user", "content": turns[0]}, {"role": "assistant", "content": a1},
               {"role": "user", "content": turns[1]}]
    expected = sample_batch(model, tok, [render_chat(tok, history)], n=1, max_new_tokens=5, temperature=0.0)
    assert a2 == expected[0][0]["text"]
    items = turn_items(turns, [a1, a2])
    assert items[1] == (history, a2) and items[0] == ([history[0]], a1)
