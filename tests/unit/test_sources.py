import json

import pytest

from salmon.errors import SalmonError
from salmon.sources import load_prompts


def test_builtin_sets():
    b = load_prompts("builtin")
    assert len(b) == 200 and {p["type"] for p in b} == {"general", "reasoning", "redteam"}
    assert len(load_prompts("eval")) == 110 and len(load_prompts("redteam")) == 60
    assert not {p["prompt"] for p in b} & {p["prompt"] for p in load_prompts("eval")}


def test_formats_jsonl_json_parquet(tmp_path):
    rows = [{"id": "1", "prompt": "hi"}, {"instruction": "Add", "input": "2+2", "type": "reasoning"}]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "p.json").write_text(json.dumps(rows))
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"prompt": "a"}, {"prompt": "b"}]), tmp_path / "p.parquet")
    for name in ("p.jsonl", "p.json"):
        got = load_prompts(str(tmp_path / name))
        assert got[1]["prompt"] == "Add\n\n2+2" and got[1]["type"] == "reasoning"
    assert [p["prompt"] for p in load_prompts(str(tmp_path / "p.parquet"))] == ["a", "b"]


def test_mt_bench_format(tmp_path):
    f = tmp_path / "q.jsonl"
    f.write_text(json.dumps({"question_id": 81, "category": "writing", "turns": ["t1", "t2"]}) + "\n")
    assert load_prompts(str(f))[0] == {"category": "writing", "id": "81", "prompt": "t1", "type": "general"}


@pytest.mark.parametrize("line,msg", [
    ('{"prompt": ""}', ":1: empty prompt"),
    ('{"prompt": 3}', ":1: prompt must be text"),
    ('{"foo": "x"}', ":1: no prompt text"),
    ('{"prompt": "x", "type": "chat"}', ":1: unknown type"),
    ('{"prompt": "x"', ":1: malformed JSON"),
])
def test_bad_prompt_files(tmp_path, line, msg):
    f = tmp_path / "p.jsonl"
    f.write_text(line + "\n")
    with pytest.raises(SalmonError, match=msg):
        load_prompts(str(f))


def test_duplicate_ids_and_missing(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text('{"id": 1, "prompt": "a"}\n{"id": 1, "prompt": "b"}\n')
    with pytest.raises(SalmonError, match="duplicate id '1'"):
        load_prompts(str(f))
    with pytest.raises(SalmonError, match="file not found"):
        load_prompts(str(tmp_path / "none.jsonl"))
