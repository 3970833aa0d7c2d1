import json

import pytest

from salmon.generate import GenerateConfig, generate
from salmon.jsonl import read_jsonl


def _cfg(tiny_model, out, **kw):
    base = dict(model=str(tiny_model), prompts="builtin", limit=6, n=2, max_new_tokens=8,
                batch_size=4, out=str(out), progress=False)
    base.update(kw)
    return GenerateConfig(**base)


def test_generate_writes_records_in_input_order(tiny_model, tmp_path):
    out = generate(_cfg(tiny_model, tmp_path / "r.jsonl"))
    recs = read_jsonl(out)
    assert [r["id"] for r in recs] == [f"b{i:03d}" for i in range(1, 7)]
    for r in recs:
        assert len(r["responses"]) == 2 and len(r["finished"]) == 2 and len(r["num_tokens"]) == 2
        assert all(1 <= n <= 8 for n in r["num_tokens"])
    summary = json.loads((tmp_path / "r.summary.json").read_text())
    assert summary["prompts"] == 6 and summary["responses"] == 12
    assert (tmp_path / "r.config.yaml").exists() and not (tmp_path / "r.jsonl.partial").exists()


def test_same_seed_same_output_and_resume_from_torn_partial(tiny_model, tmp_path):
    full = read_jsonl(generate(_cfg(tiny_model, tmp_path / "a.jsonl")))
    # Simulate a crash: two complete records and a torn third line in the partial file.
    partial = tmp_path / "b.jsonl.partial"
    lines = [json.dumps(r, ensure_ascii=False) for r in full[:2]]
    partial.write_text("\n".join(lines) + "\n" + lines[0][:20])
    resumed = read_jsonl(generate(_cfg(tiny_model, tmp_path / "b.jsonl")))
    assert resumed == full


def test_finished_output_is_never_regenerated_or_overwritten(tiny_model, tmp_path):
    out = generate(_cfg(tiny_model, tmp_path / "r.jsonl"))
    before = out.read_bytes()
    generate(_cfg(tiny_model, tmp_path / "r.jsonl"))
    assert out.read_bytes() == before


def test_changed_settings_refuse_to_mix(tiny_model, tmp_path):
    from salmon.errors import SalmonError

    generate(_cfg(tiny_model, tmp_path / "r.jsonl"))
    with pytest.raises(SalmonError, match="started with n=2, now n=3"):
        generate(_cfg(tiny_model, tmp_path / "r.jsonl", n=3))


def test_too_long_prompts_are_skipped_and_counted(tiny_model, tmp_path):
    out = generate(_cfg(tiny_model, tmp_path / "r.jsonl", max_prompt_tokens=40))
    summary = json.loads((tmp_path / "r.summary.json").read_text())
    assert summary["skipped_too_long"] >= 1
    assert summary["prompts"] == len(read_jsonl(out)) == 6 - summary["skipped_too_long"]


def test_greedy_is_deterministic_across_batch_settings(tiny_model, tmp_path):
    a = read_jsonl(generate(_cfg(tiny_model, tmp_path / "a.jsonl", n=1, temperature=0, batch_size=1)))
    b = read_jsonl(generate(_cfg(tiny_model, tmp_path / "b.jsonl", n=1, temperature=0, batch_size=1)))
    assert a == b


def test_stop_strings_cut_and_mark_finished(tiny_model):
    from salmon.backends.base import finish_sample as _decode
    from salmon.models import load_tokenizer

    tok = load_tokenizer(str(tiny_model))
    ids = tok("hello STOP world", add_special_tokens=False)["input_ids"]
    got = _decode(tok, ids, [tok.eos_token_id], ["STOP"])
    assert got == {"text": "hello", "finished": True, "num_tokens": len(ids) - 1, "token_ids": ids[:-1]}
    got = _decode(tok, ids + [tok.eos_token_id, 5, 6], [tok.eos_token_id], [])
    assert got["finished"] and got["num_tokens"] == len(ids) + 1 and got["text"] == "hello STOP world"
