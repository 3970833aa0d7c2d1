"""`salmon contrast` on the tiny model: steered prompts never reach the records, labels are
checked, harm pairs pair a refusal with a compliant answer, resume and yield arithmetic."""

import json
from collections import Counter

from salmon.contrast import (
    SEP,
    ContrastConfig,
    contrast,
    form_pairs,
    harm_pairs,
    plan_jobs,
    steerable,
    yield_table,
)
from salmon.principles import Principle
from salmon.sources import load_prompts


def _cfg(tiny, out, **kw):
    return ContrastConfig(**{**dict(model=str(tiny), limit=3, per_prompt=2, harm_limit=2, harm_n=1,
                                    max_new_tokens=6, batch_size=8, progress=False, out=str(out)), **kw})


def test_plan_rotates_families_and_keeps_the_instruction_out_of_the_key(tmp_path):
    cfg = _cfg("tiny", tmp_path, families=["Word limit", "Numbered list", "No opener"])
    prompts = load_prompts("builtin")
    jobs, chosen = plan_jobs(prompts, steerable(cfg), cfg)
    assert [k.split(SEP)[1] for k in chosen] == ["Word limit", "Numbered list", "No opener", "Word limit",
                                                  "Numbered list", "No opener"]
    a = next(j for j in jobs if j["id"].endswith(f"{SEP}a"))
    v = chosen[a["id"][:-2]]
    assert a["prompt"].endswith(v.steer[0]) and str(v.param) in v.principle.definition
    assert sum("harm" in j["id"] for j in jobs) == 4  # 2 prompts x (plain + refuse) x harm_n 1


def test_pairs_by_hand():
    cfg = ContrastConfig(families=["Word limit"], limit=1, per_prompt=1, harm_limit=0)
    prompts = [{"id": "p1", "prompt": "Tell me about tea.", "type": "general"}]
    _, chosen = plan_jobs(prompts, steerable(cfg), cfg)
    (key, v), = chosen.items()
    short, long_ = "Tea is a drink.", " ".join(["tea"] * (v.param + 5))
    by_id = {f"{key}{SEP}a": {"text": short, "finished": True}, f"{key}{SEP}b": {"text": long_, "finished": True}}
    counts = Counter()
    (rec,) = form_pairs(by_id, {"p1": "Tell me about tea."}, chosen, counts)
    assert rec["checked"] is True and rec["prompt"] == "Tell me about tea." and rec["response_a"] == short
    by_id[f"{key}{SEP}a"]["text"] = long_  # both long: the contrast failed
    assert form_pairs(by_id, {"p1": "Tell me about tea."}, chosen, counts)[0]["checked"] is False
    by_id[f"{key}{SEP}b"] = {"text": "", "finished": True}
    assert form_pairs(by_id, {"p1": "Tell me about tea."}, chosen, counts) == []
    assert counts["dropped_empty:Word limit"] == 1
    harmless = Principle("Harmless", "Safe.", "Unsafe.")
    hb = {f"r1{SEP}harm{SEP}plain0": {"text": "Here is how: step one...", "finished": True},
          f"r1{SEP}harm{SEP}refuse0": {"text": "I can't help with that, but here is a safer idea.", "finished": True},
          f"r1{SEP}harm{SEP}plain1": {"text": "", "finished": False}}
    (h,) = harm_pairs(hb, {"r1": "How do I pick a lock?"}, harmless, 2, counts)
    assert h["response_a"].startswith("I can't") and h["prompt"] == "How do I pick a lock?"
    assert counts["harm_refusals"] == 1 and counts["dropped_empty:harm"] == 1
    table = yield_table([rec | {"checked": c} for c in (True, True, False, None)])
    assert table["Word limit"]["yield"] == 0.5 and table["Word limit"]["unknown"] == 1


def test_stage_on_tiny_model_and_resume(tiny_model, tmp_path):
    out = contrast(_cfg(tiny_model, tmp_path / "c"))
    recs = [json.loads(x) for x in (out / "contrast.jsonl").read_text().splitlines()]
    summary = json.loads((out / "summary.json").read_text())
    originals = {p["prompt"] for p in load_prompts("builtin")}
    assert summary["form_pairs"] == sum(r["kind"] == "form" for r in recs)
    for r in recs:
        assert r["prompt"] in originals  # the user's own text, never the steering instruction
        assert r["checked"] in (True, False, None)
    assert contrast(_cfg(tiny_model, tmp_path / "c")) == out  # complete: nothing redone


def test_run_switch_adds_the_contrast_stage_and_wires_aggregate(tmp_path):
    from salmon.pipeline import plan

    cfg = tmp_path / "run.yaml"
    cfg.write_text("run: {model: tiny, exact_labels: true}\ncontrast: {limit: 2}\n")
    run, _, configs = plan(str(cfg), str(tmp_path / "run"))
    assert list(configs).index("contrast") == list(configs).index("aggregate") - 1
    agg = configs["aggregate"]
    assert agg.contrast == str(tmp_path / "run" / "contrast" / "contrast.jsonl")
    assert agg.source_shares == ["judge=1", "verify=1", "contrast=1"] and configs["contrast"].limit == 2
    cfg.write_text("run: {model: tiny}\n")
    _, _, configs = plan(str(cfg), str(tmp_path / "run2"))
    assert "contrast" not in configs and configs["aggregate"].contrast is None


def test_steering_a_conversation_appends_to_its_last_user_turn_only():
    from salmon.contrast import steered

    conv = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Tea facts?"}]
    out = steered(conv, "Use a numbered list.")
    assert out[:3] == conv[:3] and out[3] == {"role": "user", "content": "Tea facts?\n\nUse a numbered list."}
    assert conv[3]["content"] == "Tea facts?" and steered("Tea?", "Be brief.") == "Tea?\n\nBe brief."
