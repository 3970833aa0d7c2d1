import json

import pytest

from salmon.errors import SalmonError
from salmon.jsonl import ResumableJsonlWriter, atomic_write_text, read_jsonl


def test_read_reports_line_numbers(tmp_path):
    f = tmp_path / "x.jsonl"
    f.write_text('{"a": 1}\n\n{"a": 2\n')
    with pytest.raises(SalmonError, match=r"x.jsonl:3: malformed JSON"):
        read_jsonl(f)


def test_read_rejects_non_objects_and_bad_utf8(tmp_path):
    f = tmp_path / "x.jsonl"
    f.write_text('[1, 2]\n')
    with pytest.raises(SalmonError, match=":1: expected a JSON object"):
        read_jsonl(f)
    f.write_bytes(b'{"a": "\xff"}\n')
    with pytest.raises(SalmonError, match="not valid UTF-8"):
        read_jsonl(f)


def test_missing_file(tmp_path):
    with pytest.raises(SalmonError, match="file not found"):
        read_jsonl(tmp_path / "none.jsonl")


def test_writer_recovers_from_torn_last_line(tmp_path):
    out = tmp_path / "o.jsonl"
    partial = tmp_path / "o.jsonl.partial"
    partial.write_text('{"id": "1"}\n{"id": "2"}\n{"id": "3", "tor')
    w = ResumableJsonlWriter(out)
    assert w.done == {"1", "2"}
    w.write([{"id": "3"}])
    w.finish()
    assert [r["id"] for r in read_jsonl(out)] == ["1", "2", "3"]
    assert not partial.exists()


def test_finish_ordered_and_records(tmp_path):
    out = tmp_path / "o.jsonl"
    with ResumableJsonlWriter(out) as w:
        w.write([{"id": "b"}, {"id": "a"}])
    w2 = ResumableJsonlWriter(out)
    assert [r["id"] for r in w2.records] == ["b", "a"]
    w2.finish_ordered(["a", "b"])
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == ["a", "b"]


def test_atomic_write_leaves_no_temp(tmp_path):
    atomic_write_text(tmp_path / "f.txt", "hello")
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]
