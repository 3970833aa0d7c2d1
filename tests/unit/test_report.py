"""The run report from synthetic run folders: plain labels, intervals, verdicts, charts,
normalised times; and, where Chromium is installed, a real screenshot of the page."""

from __future__ import annotations

import json
import re
import struct
from html.parser import HTMLParser
from pathlib import Path

import pytest

from salmon.errors import SalmonError
from salmon.evaluate import before_after
from salmon.reward.evaluate import rm_metrics
from salmon.screenshot import find_chromium, parse_size


def rm_rows(n_right: int, n_wrong: int) -> list[dict]:
    right = {"rc": 2.0, "rr": 1.0, "rc_neg": 0.0, "rr_neg": 1.0, "chosen": "a b", "rejected": "c d e",
             "split": "heldout_principle", "principle": "P"}
    return [dict(right) for _ in range(n_right)] + [{**right, "rc": 0.0} for _ in range(n_wrong)]


def flat(prefix: str, d: dict) -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and k != "by_principle":
            out.update(flat(f"{prefix}{k}.", v))
        elif not isinstance(v, dict):
            out[f"{prefix}{k}"] = v
    return out


def make_run(tmp_path: Path, peak: float | None = 100.0) -> Path:
    run = tmp_path / "run"
    ev = {**flat("rm.judge_dev.", rm_metrics(rm_rows(40, 20))), **flat("rm.judge_test.", rm_metrics(rm_rows(30, 30)))}
    n = 40
    values = {"before": {"rm_score": [0.1 * (i % 7) for i in range(n)], "length": [60.0 + i % 5 for i in range(n)],
                         "stop_rate": [float(i % 2) for i in range(n)]},
              "after": {"rm_score": [0.1 * (i % 7) + 0.5 for i in range(n)],  # +0.5 on every prompt
                        "length": [60.0 + (i + 2) % 5 for i in range(n)], "stop_rate": [float(i % 2) for i in range(n)]}}
    ev.update(before_after(values))
    ev.update({"policy.n_prompts": n, "policy.n_redteam": 20, "timings.evaluate_inner_s": 1.0})
    (run / "evaluate").mkdir(parents=True)
    (run / "evaluate" / "metrics.json").write_text(json.dumps(ev))
    (run / "evaluate" / "examples.jsonl").write_text(json.dumps({"id": "e1", "prompt": "Hi?", "before": "Hello.",
                                                                "after": "Hello there."}) + "\n")
    (run / "aggregate").mkdir()
    (run / "aggregate" / "summary.json").write_text(json.dumps({"label_yield": 0.5, "examples": 96,
                                                                "consistency_rate": {"a": 0.5, "b": 0.7}}))
    for stage, wall in (("judge", 100.0), ("rl", 50.0)):
        (run / stage).mkdir()
        (run / stage / "manifest.json").write_text(json.dumps({"stage": stage, "wall_s": wall, "peak_rss_mb": 900}))
    (run / "rl" / "log.jsonl").write_text("".join(json.dumps({"step": i, "reward": i * 0.1, "kl": 0.01 * i}) + "\n"
                                                  for i in range(4)))
    if peak:
        (run / "machine.json").write_text(json.dumps({"matmul_gflops": peak}))
    return run


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.imgs, self.text, self.h2 = [], [], [], []
        self._in_h2 = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self._in_h2 = tag == "h2"
        if tag == "img":
            self.imgs.append(dict(attrs))

    def handle_data(self, data):
        self.text.append(data)
        if self._in_h2:
            self.h2.append(data)
            self._in_h2 = False


@pytest.fixture
def reported(tmp_path):
    from salmon.report import ReportConfig, report

    run = make_run(tmp_path)
    report(ReportConfig(run_dir=str(run), out=str(run / "report")))
    return run


def test_metrics_json_records_the_machine_and_normalised_total(reported):
    m = json.loads((reported / "metrics.json").read_text())
    assert m["machine.matmul_gflops"] == 100.0 and m["machine.measured_by"] == "run"
    assert m["timings.total"] == 150.0 and m["machine.total_s_at_200_gflops"] == 75.0
    assert m["rm.accuracy"] == 0.5 and "rm.accuracy_ci_low" in m  # the headline (test) set, with its interval
    assert m["policy.diff.rm_score"] == pytest.approx(0.5) and m["policy.diff.rm_score_ci_low"] == pytest.approx(0.5)


def test_html_reads_at_a_glance(reported):
    page_html = (reported / "report.html").read_text()
    p = Page()
    p.feed(page_html)
    text = " ".join(p.text)
    assert p.h2[:2] == ["Reward model: does it follow the principle it is given?", "The policy before and after RL"]
    assert {"Self-judge labels", "Time and memory per stage", "RL training curves"} <= set(p.h2)
    # three charts (RM vs baseline, before/after differences, RL curves), all embedded
    assert len(p.imgs) == 3 and all(i["src"].startswith("data:image/png;base64,") for i in p.imgs)
    for label in ("before RL", "after RL", "difference", '"longer wins"', "RM minus baseline",
                  "Reward-model score under the RL principles (40)", "Answer length in tokens (40)"):
        assert label in text, label
    # rm_score rose by 0.5 on every prompt: beyond noise; stop rate did not change: noise
    assert "+0.500 [+0.500, +0.500]" in text and "higher after RL" in text
    assert "no change distinguishable from noise" in text
    assert "Changed beyond noise: reward-model score under the RL principles (+0.500" in text
    # judge_test: 30 right, 30 wrong, rejected always longer -> RM 50%, longer wins 0%
    assert re.search(r"On judge_test \(60 labelled pairs\) the reward model prefers the better answer in "
                     r"50\.0% \[\d+\.\d, \d+\.\d%\]", text)
    assert "better than the length baseline beyond noise" in text
    # stage times normalised: 100 s at 100 GFLOP/s is 50 s at 200
    assert re.search(r"judge\s+100 s\s+50 s\s+900 MB", " ".join(text.split()))
    # raw key names only inside the collapsed "All metrics" table
    visible = page_html.split("<details>")[0]
    assert "rm.judge_test.longer_wins_negation" not in visible and "rm.judge_test.longer_wins_negation" in page_html


def test_markdown_has_the_same_sections(reported):
    md = (reported / "report.md").read_text()
    assert md.startswith("# SALMON run report") and "## At a glance" in md
    assert "| figure (n) | before RL | after RL | difference | what it means |" in md


def test_report_without_after_policy_or_machine_file(tmp_path, monkeypatch):
    from salmon import machine
    from salmon.report import build_report, collect_metrics

    run = make_run(tmp_path, peak=None)
    ev = json.loads((run / "evaluate" / "metrics.json").read_text())
    ev = {k: v for k, v in ev.items() if not k.startswith(("policy.after.", "policy.diff."))}
    (run / "evaluate" / "metrics.json").write_text(json.dumps(ev))
    monkeypatch.setattr(machine, "measure_machine", lambda seconds=1.5: {"matmul_gflops": 400.0})
    m = collect_metrics(run)
    assert m["machine.matmul_gflops"] == 400.0 and m["machine.measured_by"] == "report"
    md, page_html = build_report(run, m)
    assert "| figure (n) | before RL |\n" in md and "| judge | 100 s | 200 s |" in md


def test_screenshot_size_is_checked():
    assert parse_size("1200x3000") == (1200, 3000)
    for bad in ("1200", "ax3", "10x10"):
        with pytest.raises(SalmonError):
            parse_size(bad)


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


@pytest.mark.skipif(find_chromium() is None, reason="no Chromium installed (apt-get install chromium)")
def test_screenshot_in_headless_chromium(tmp_path):
    from PIL import Image

    from salmon.report import ReportConfig, report

    run = make_run(tmp_path)
    shot = tmp_path / "shot.png"
    report(ReportConfig(run_dir=str(run), out=str(run / "report"), screenshot=str(shot), screenshot_size="900x1400"))
    assert png_size(shot) == (900, 1400)
    colours = Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # text and charts drawn, not a blank page


def test_rm_sets_leave_out_the_headline_copies():
    from salmon.report_page import rm_sets

    m = {"rm.accuracy": 0.4, "rm.raw.accuracy": 0.5, "rm.by_split.heldout_principle.accuracy": 0.4,
         "rm.judge_test.accuracy": 0.4, "rm.judge_test.raw.accuracy": 0.5,
         "rm.judge_test.by_split.heldout_principle.accuracy": 0.3, "rm.verify_test.accuracy": 0.7}
    assert rm_sets(m) == ["judge_test", "judge_test.raw", "verify_test"]
