"""Stage: the run's headline figures (`metrics.json`) and a report (`report.md`, `report.html`).

    salmon report --run-dir runs/default --out runs/default/report

Reads what the other stages left in the run folder: manifests (timings, memory), the
aggregate statistics (judge label yield), the RL log (curves), the evaluation metrics and
the before/after examples. The HTML page is self-contained: plots are embedded PNGs.
`metrics.json` is written at the top of the run folder; its keys are stable (see README).
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from salmon.config import opt
from salmon.conversation import request_text
from salmon.jsonl import atomic_write_text, read_jsonl
from salmon.manifest import read_manifest
from salmon.stage import StageFiles
from salmon.stages import STAGE_ORDER

HEADLINE_SET = ("judge_test", "judge_dev")


@dataclass
class ReportConfig:
    run_dir: str = opt("runs/default", "Run folder to report on")
    out: str = opt("report", "Output folder for report.md / report.html")


def _load_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def collect_metrics(run_dir: Path) -> dict[str, Any]:
    """Flat headline metrics from a run folder; missing stages simply add nothing."""
    m: dict[str, Any] = {}
    ev = _load_json(run_dir / "evaluate" / "metrics.json")
    m.update({k: v for k, v in ev.items() if not k.startswith("timings.")})
    for name in HEADLINE_SET:  # the held-out test set gives the headline RM figures
        keys = {k[len(f"rm.{name}."):]: v for k, v in ev.items() if k.startswith(f"rm.{name}.")}
        if keys:
            m.update({f"rm.{k}": v for k, v in keys.items()})
            m["rm.headline_set"] = name
            break
    agg = _load_json(run_dir / "aggregate" / "summary.json")
    for key in ("label_yield", "examples", "consistency_rate"):
        if key in agg:
            m[f"judge.{key}"] = agg[key]
    for stage in STAGE_ORDER:
        man = read_manifest(run_dir / stage)
        if man:
            m[f"timings.{stage}"] = man.get("wall_s")
            m[f"memory.{stage}_peak_rss_mb"] = man.get("peak_rss_mb")
    if any(k.startswith("timings.") for k in m):
        m["timings.total"] = round(sum(v for k, v in m.items() if k.startswith("timings.") and v), 1)
    return m


def _plot_png(log: list[dict[str, Any]], keys: list[str]) -> str | None:
    """Line plots of RL log keys over steps, as a base64 PNG."""
    present = [k for k in keys if any(k in r for r in log)]
    if not present:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(present), figsize=(4 * len(present), 3), squeeze=False)
    for ax, k in zip(axes[0], present):
        pts = [(r.get("step", i), r[k]) for i, r in enumerate(log) if isinstance(r.get(k), (int, float))]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".")
        ax.set_title(k)
        ax.set_xlabel("step")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _table(rows: list[tuple[str, Any]]) -> tuple[str, str]:
    md = "| metric | value |\n|---|---|\n" + "".join(f"| {k} | {_fmt(v)} |\n" for k, v in rows)
    h = "<table><tr><th>metric</th><th>value</th></tr>" + "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(_fmt(v))}</td></tr>" for k, v in rows) + "</table>"
    return md, h


def _fmt(v: Any) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k} {_fmt(x)}" for k, x in v.items())
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def build_report(run_dir: Path, metrics: dict[str, Any]) -> tuple[str, str]:
    """(markdown, html) for a run."""
    sections: list[tuple[str, list[tuple[str, Any]]]] = [
        ("Judge labels", [(k, v) for k, v in metrics.items() if k.startswith("judge.")]),
        ("Reward model (vs raw judge and 'longer wins')", [(k, v) for k, v in metrics.items() if k.startswith("rm.") and k.count(".") == 1]),
        ("Policy before vs after RL", [(k, v) for k, v in metrics.items() if k.startswith("policy.")]),
        ("Timings (s) and peak memory (MB) per stage", [(k, v) for k, v in metrics.items() if k.startswith(("timings.", "memory."))]),
    ]
    md = [f"# SALMON run report: {run_dir}\n"]
    body = [f"<h1>SALMON run report: {html.escape(str(run_dir))}</h1>"]
    for title, rows in sections:
        if rows:
            t_md, t_html = _table(rows)
            md.append(f"## {title}\n\n{t_md}")
            body.append(f"<h2>{html.escape(title)}</h2>{t_html}")
    log_path = run_dir / "rl" / "log.jsonl"
    log = read_jsonl(log_path) if log_path.exists() else []
    png = _plot_png(log, ["rm_score", "reward", "kl", "response_length"])
    if png:
        md.append("## RL curves\n\nSee report.html for the plots (reward, KL, length over steps).\n")
        body.append(f'<h2>RL curves</h2><img alt="RL curves" src="data:image/png;base64,{png}">')
    ex_path = run_dir / "evaluate" / "examples.jsonl"
    if ex_path.exists():
        rows = read_jsonl(ex_path)
        md.append("## Before / after examples\n\n| prompt | before | after |\n|---|---|---|\n" + "".join(
            f"| {_cell(request_text(r['prompt']))} | {_cell(r['before'])} | {_cell(r.get('after') or '')} |\n"
            for r in rows))
        body.append("<h2>Before / after examples</h2><table><tr><th>prompt</th><th>before</th><th>after</th></tr>" + "".join(
            f"<tr><td>{html.escape(request_text(r['prompt']))}</td><td>{html.escape(r['before'])}</td>"
            f"<td>{html.escape(r.get('after') or '')}</td></tr>" for r in rows) + "</table>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;font-size:14px}th{background:#f0f0f0}")
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>SALMON report</title><style>{style}</style>"
            f"</head><body>{''.join(body)}</body></html>")
    return "\n".join(md), page


def _cell(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    text = text[:limit] + ("…" if len(text) > limit else "")
    return text.replace("|", "\\|")


def report(cfg: ReportConfig) -> Path:
    files = StageFiles.for_dir(cfg.out)
    run_dir = Path(cfg.run_dir)
    if files.begin(cfg):
        return files.out
    metrics = collect_metrics(run_dir)
    md, page = build_report(run_dir, metrics)
    atomic_write_text(files.out / "report.md", md)
    atomic_write_text(files.out / "report.html", page)
    atomic_write_text(run_dir / "report.html", page)
    atomic_write_text(run_dir / "report.md", md)
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    files.write_summary({"metrics": len(metrics)})
    return files.out
