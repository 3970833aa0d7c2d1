"""The judge stage on a tiny random model: output format, resume after a crash, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from salmon.errors import SalmonError
from salmon.judge.stage import JudgeConfig, fixed_batches, judge, merge_ranks, rank_files, shard

PRINCIPLES_YAML = """principles:
  - name: Short
    definition: The response is short.
  - name: Kind
    definition: The response is kind and polite.
  - name: French
    definition: The response is written in French.
"""


def write_pairs(path: Path, n: int, extra: list[dict] | None = None) -> Path:
    recs = [{"id": f"p{i}", "prompt": f"Question number {i}: what is {i} plus {i}?",
             "response_a": f"It is {2 * i}." + " Really." * (i % 3),
             "response_b": f"The answer, if I add {i} and {i}, is {2 * i}, I believe."} for i in range(n)]
    recs += extra or []
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


@pytest.fixture
def setup(tmp_path, tiny_model):
    principles = tmp_path / "p.yaml"
    principles.write_text(PRINCIPLES_YAML)
    pairs = write_pairs(tmp_path / "pairs.jsonl", 5)

    def cfg(out: str, **kw) -> JudgeConfig:
        return JudgeConfig(model=str(tiny_model), pairs=str(kw.pop("pairs", pairs)), principles=str(principles),
                           out=str(tmp_path / out), batch_pairs=kw.pop("batch_pairs", 2), progress=False, **kw)

    return cfg


def read(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_one_record_per_pair_and_principle_in_order(setup):
    out = judge(setup("j.jsonl"))
    recs = read(out)
    assert [(r["pair_id"], r["principle"]) for r in recs] == [
        (f"p{i}", name) for i in range(5) for name in ("Short", "Kind", "French")]
    for r in recs:
        assert set(r) == {"pair_id", "principle", "score_ab", "score_ba", "score", "consistent"}
        assert r["score"] == pytest.approx((r["score_ab"] + r["score_ba"]) / 2, abs=2e-6)
        assert r["consistent"] == (r["score_ab"] * r["score_ba"] > 0)
    summary = json.loads(out.with_name("j.summary.json").read_text())
    assert summary["pairs_judged"] == 5 and summary["judgments"] == 15 and summary["skipped_empty"] == 0
    assert not rank_files(out)


def test_reference_mode_gives_the_same_scores(setup):
    shared = read(judge(setup("s.jsonl")))
    ref = read(judge(setup("r.jsonl", prefix_cache=False)))
    assert [(r["pair_id"], r["principle"]) for r in ref] == [(r["pair_id"], r["principle"]) for r in shared]
    assert max(abs(a[k] - b[k]) for a, b in zip(shared, ref, strict=True) for k in ("score_ab", "score_ba")) < 1e-4


def test_crash_then_rerun_equals_an_uninterrupted_run(setup, monkeypatch):
    """Crash after two batches, leave a torn last line as a killed writer would, rerun."""
    import salmon.judge.core as core

    full = Path(judge(setup("full.jsonl"))).read_bytes()
    real, calls = core.score_pairs, {"n": 0}

    def crashing(*args, **kw):
        calls["n"] += 1
        if calls["n"] > 2:
            raise RuntimeError("simulated crash")
        return real(*args, **kw)

    monkeypatch.setattr(core, "score_pairs", crashing)
    with pytest.raises(RuntimeError):
        judge(setup("crash.jsonl"))
    monkeypatch.setattr(core, "score_pairs", real)
    out = Path(setup("crash.jsonl").out)
    (partial,) = rank_files(out)
    lines = partial.read_text().splitlines()
    assert 0 < len(lines) < 15 and not out.exists()
    with open(partial, "a") as fh:
        fh.write('{"pair_id": "p4", "principle": "Sh')  # torn write
    calls["n"] = 0
    judge(setup("crash.jsonl"))
    assert out.read_bytes() == full
    assert not rank_files(out)


def test_kill_9_then_rerun_equals_an_uninterrupted_run(tmp_path, tiny_model):
    pairs = write_pairs(tmp_path / "pairs.jsonl", 24)
    (tmp_path / "p.yaml").write_text(PRINCIPLES_YAML)
    args = [sys.executable, "-m", "salmon.cli", "judge", "--model", str(tiny_model), "--pairs", str(pairs),
            "--principles", str(tmp_path / "p.yaml"), "--batch-pairs", "1", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(args + ["--out", str(tmp_path / "full.jsonl")], env=env, check=True, capture_output=True)
    out = tmp_path / "killed.jsonl"
    proc = subprocess.Popen(args + ["--out", str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = tmp_path / "killed.jsonl.rank0.partial"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if partial.exists() and partial.read_bytes().count(b"\n") >= 3:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "the run finished before it could be killed"
    done = partial.read_bytes().count(b"\n")
    assert 3 <= done < 72
    subprocess.run(args + ["--out", str(out)], env=env, check=True, capture_output=True)
    assert out.read_bytes() == (tmp_path / "full.jsonl").read_bytes()


@pytest.mark.slow
def test_two_processes_under_accelerate_match_one(tmp_path, tiny_model):
    accelerate = Path(sys.executable).with_name("accelerate")
    pairs = write_pairs(tmp_path / "pairs.jsonl", 6)
    common = ["judge", "--model", str(tiny_model), "--pairs", str(pairs), "--principles", "judge",
              "--batch-pairs", "2", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "salmon.cli", *common, "--out", str(tmp_path / "one.jsonl")],
                   env=env, check=True, capture_output=True)
    res = subprocess.run([str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                          "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29541",
                          "-m", "salmon.cli", *common, "--out", str(tmp_path / "two.jsonl")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "two.jsonl").read_bytes() == (tmp_path / "one.jsonl").read_bytes()
    assert json.loads((tmp_path / "two.summary.json").read_text())["processes"] == 2


def test_shards_cover_every_batch_once_and_merge_in_input_order(tmp_path):
    batches = [[0], [1], [2], [3], [4]]
    parts = [shard(batches, r, 3) for r in range(3)]
    assert parts == [[0, 3], [1, 4], [2]]
    out = tmp_path / "j.jsonl"
    (tmp_path / "j.jsonl.rank1.partial").write_text(
        json.dumps({"pair_id": "b", "principle": "x"}) + "\n" + '{"pair_id": "c", "princ')
    (tmp_path / "j.jsonl.rank0.partial").write_text(
        json.dumps({"pair_id": "a", "principle": "x"}) + "\n" + json.dumps({"pair_id": "b", "principle": "x"}) + "\n")
    merged = merge_ranks(out, [("b", "x"), ("a", "x")])
    assert [r["pair_id"] for r in merged] == ["b", "a"]
    with pytest.raises(SalmonError, match="1 judgments missing"):
        merge_ranks(out, [("a", "x"), ("c", "x")])


def test_batches_are_fixed_by_length_then_position():
    class Tok:  # length = number of characters
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": list(text)}

    from salmon.judge.stage import Pair

    pairs = [Pair(str(i), "q" * n, "a", "b", []) for i, n in enumerate([5, 1, 3, 1])]
    assert fixed_batches(pairs, Tok(), 2) == [[1, 3], [2, 0]]


def test_empty_responses_are_skipped_and_counted_and_long_ones_cut(setup, tmp_path):
    pairs = write_pairs(tmp_path / "bad.jsonl", 2, [
        {"id": "empty", "prompt": "q", "response_a": "  ", "response_b": "fine"},
        {"id": "long", "prompt": "q", "response_a": "word " * 400, "response_b": "short"}])
    out = judge(setup("e.jsonl", pairs=pairs, max_response_tokens=50))
    assert {r["pair_id"] for r in read(out)} == {"p0", "p1", "long"}
    summary = json.loads(out.with_name("e.summary.json").read_text())
    assert summary["skipped_empty"] == 1 and summary["skipped_ids"] == ["empty"]
    assert summary["truncated_pairs"] == 1 and summary["truncated_responses"] == 1


def test_a_pair_may_carry_its_own_principles(setup, tmp_path):
    pairs = write_pairs(tmp_path / "own.jsonl", 1, [
        {"id": "own", "prompt": "q", "response_a": "x", "response_b": "y",
         "principles": ["Brief: The response is brief.", {"name": "Polite", "definition": "The response is polite."}]}])
    recs = read(judge(setup("o.jsonl", pairs=pairs)))
    assert [r["principle"] for r in recs if r["pair_id"] == "own"] == ["Brief", "Polite"]
    assert [r["principle"] for r in recs if r["pair_id"] == "p0"] == ["Short", "Kind", "French"]


@pytest.mark.parametrize("line, message", [
    ({"id": "x", "prompt": "q", "response_a": "a"}, r"bad.jsonl:2: missing 'response_b'"),
    ({"id": "x", "prompt": "q", "response_a": 3, "response_b": "b"}, r"bad.jsonl:2: 'response_a' must be text"),
    ({"id": "p0", "prompt": "q", "response_a": "a", "response_b": "b"}, r"bad.jsonl:2: duplicate pair id 'p0'"),
    ({"id": "x", "prompt": "q", "response_a": "a", "response_b": "b", "principles": []},
     r"bad.jsonl:2: 'principles' must be a non-empty list"),
])
def test_bad_pair_lines_are_one_line_errors_with_line_numbers(cli, tmp_path, tiny_model, line, message):
    bad = write_pairs(tmp_path / "bad.jsonl", 1, [line])
    code, _, err = cli("judge", "--model", tiny_model, "--pairs", bad, "--out", tmp_path / "o.jsonl", "--no-progress")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert __import__("re").search(message, err), err


def test_empty_principle_file_is_an_error(cli, tmp_path, tiny_model):
    (tmp_path / "empty.yaml").write_text("principles: []\n")
    pairs = write_pairs(tmp_path / "pairs.jsonl", 1)
    code, _, err = cli("judge", "--model", tiny_model, "--pairs", pairs, "--principles", tmp_path / "empty.yaml",
                       "--out", tmp_path / "o.jsonl")
    assert code == 2 and "must be a non-empty list" in err


def test_rerun_of_a_finished_output_changes_nothing(setup):
    out = Path(judge(setup("done.jsonl")))
    before = out.read_bytes()
    judge(setup("done.jsonl"))
    assert out.read_bytes() == before
    with pytest.raises(SalmonError, match="variant"):
        judge(setup("done.jsonl", variant="letters"))


def test_nothing_left_to_judge_is_an_error_before_any_output(cli, tmp_path, tiny_model):
    pairs = tmp_path / "empty.jsonl"
    pairs.write_text(json.dumps({"id": "e", "prompt": "q", "response_a": "", "response_b": "b"}) + "\n")
    code, _, err = cli("judge", "--model", tiny_model, "--pairs", pairs, "--out", tmp_path / "o.jsonl")
    assert code == 2 and "nothing to judge" in err
    assert not list(tmp_path.glob("o.*"))
