"""`salmon run` on the smoke config: every stage, manifests, metrics, report, resume, --from."""

from __future__ import annotations

import json
import subprocess
import sys
from html.parser import HTMLParser

from tests.conftest import REPO

STAGES = ["self_align", "sft", "generate", "pairs", "judge", "contrast", "aggregate", "train_rm", "rl", "evaluate",
          "report"]


def _run(out, *extra):
    return subprocess.run([sys.executable, "-m", "salmon.cli", "run", "--config", str(REPO / "configs/smoke.yaml"),
                           "--out", str(out), *extra], capture_output=True, text=True)


def test_every_stage_leaves_a_manifest(smoke_run):
    for stage in STAGES:
        man = json.loads((smoke_run / stage / "manifest.json").read_text())
        assert man["stage"] == stage and man["wall_s"] >= 0 and man["peak_rss_mb"] > 0
        assert man["versions"]["torch"]


def test_metrics_json_has_stable_keys(smoke_run):
    m = json.loads((smoke_run / "metrics.json").read_text())
    for key in ["rm.accuracy", "rm.flip_rate", "policy.before.length", "policy.after.length",
                "policy.before.rm_score", "policy.after.rm_score", "policy.redteam_refusal_before",
                "policy.redteam_refusal_after", "judge.label_yield", "timings.judge", "timings.total",
                "rm.accuracy_ci_low", "rm.flip_rate_ci_high", "policy.diff.rm_score", "policy.diff.rm_score_ci_low",
                "policy.redteam_refusal_after_ci_high", "machine.matmul_gflops"]:
        assert key in m, key
    assert m["machine.matmul_gflops"] > 0 and m["machine.measured_by"] == "run"


def test_report_html_parses_and_embeds_plots(smoke_run):
    page = (smoke_run / "report.html").read_text()
    tags: list[str] = []

    class P(HTMLParser):
        def handle_starttag(self, tag, attrs):
            tags.append(tag)
            if tag == "img":
                assert dict(attrs)["src"].startswith("data:image/png;base64,")

    P().feed(page)
    assert tags.count("table") >= 3 and "img" in tags and "h1" in tags
    assert (smoke_run / "report.md").read_text().startswith("# SALMON run report")


def test_rerun_skips_finished_stages(smoke_run):
    before = (smoke_run / "metrics.json").read_bytes()
    proc = _run(smoke_run)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.count("done (manifest matches); skipping") == len(STAGES)
    assert (smoke_run / "metrics.json").read_bytes() == before


def test_from_stage_moves_later_stages_aside_and_redoes_them(smoke_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(smoke_run, run)
    proc = _run(run, "--from", "evaluate")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (run / "evaluate.old-1" / "manifest.json").exists() and (run / "report.old-1").exists()
    assert (run / "evaluate" / "manifest.json").exists() and (run / "metrics.json").exists()
    assert "[rl] done (manifest matches); skipping" in proc.stderr
