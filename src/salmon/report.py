"""Stage: the run's headline figures (`metrics.json`) and a report (`report.md`, `report.html`).

    salmon report --run-dir runs/default --out runs/default/report

Reads what the other stages left in the run folder: manifests (timings, memory), the
aggregate statistics (judge label yield), the RL log (curves), the evaluation metrics and
the before/after examples. The HTML page is self-contained: plots are embedded PNGs.
`metrics.json` is written at the top of the run folder; its keys are stable (see README).
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from salmon import report_page as page
from salmon.config import opt
from salmon.jsonl import atomic_write_text, read_jsonl
from salmon.manifest import read_manifest
from salmon.progress import info
from salmon.stage import StageFiles

HEADLINE_SET = ("judge_test", "judge_dev")


@dataclass
class ReportConfig:
    run_dir: str = opt("runs/default", "Run folder to report on")
    out: str = opt("report", "Output folder for report.md / report.html")
    screenshot: str | None = opt(None, "Also draw report.html in headless Chromium to this PNG", resume_safe=True)
    screenshot_size: str = opt("1200x3000", "Screenshot WIDTHxHEIGHT in pixels", resume_safe=True)


def _load_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def collect_metrics(run_dir: Path) -> dict[str, Any]:
    """Flat headline metrics from a run folder; missing stages simply add nothing."""
    from salmon.pipeline import STAGE_ORDER

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
    m.update(machine_metrics(run_dir, m.get("timings.total")))
    return m


def machine_metrics(run_dir: Path, total_s: float | None) -> dict[str, Any]:
    """The matmul peak `salmon run` measured (or, for a folder without one, measured now)
    and the run's total time normalised to a 200 GFLOP/s machine."""
    from salmon.machine import REFERENCE_GFLOPS, measure_machine, normalised_seconds, read_machine

    info = read_machine(run_dir)
    measured_by = "run"
    if info is None:
        info, measured_by = measure_machine(), "report"
    out: dict[str, Any] = {"machine.matmul_gflops": info["matmul_gflops"], "machine.measured_by": measured_by}
    if total_s:
        out[f"machine.total_s_at_{REFERENCE_GFLOPS:.0f}_gflops"] = round(
            normalised_seconds(total_s, info["matmul_gflops"]), 1)
    return out


def build_report(run_dir: Path, metrics: dict[str, Any]) -> tuple[str, str]:
    """(markdown, html) for a run: plain-language sections (salmon/report_page.py)."""
    log_path, ex_path = run_dir / "rl" / "log.jsonl", run_dir / "evaluate" / "examples.jsonl"
    sections = [page.rm_section(metrics), page.policy_section(metrics), page.judge_section(metrics),
                page.timing_section(metrics), page.curves_section(read_jsonl(log_path) if log_path.exists() else []),
                page.examples_section(read_jsonl(ex_path) if ex_path.exists() else []), page.raw_section(metrics)]
    kept = [s for s in sections if s is not None]
    glance = [s.headline for s in kept if s.headline]
    peak = metrics.get("machine.matmul_gflops")
    sub = f"Run folder {run_dir}" + (f"; machine matmul peak {peak:.0f} GFLOP/s" if peak else "")
    title = "SALMON run report"
    return render_md(title, sub, glance, kept), render_html(title, sub, glance, kept)


def render_md(title: str, sub: str, glance: list[str], sections: list[page.Section]) -> str:
    out = [f"# {title}\n\n{sub}\n"]
    if glance:
        out.append("## At a glance\n\n" + "".join(f"- {g}\n" for g in glance))
    for s in sections:
        out.append(f"## {s.title}\n\n" + " ".join(s.sentences) + "\n")
        if s.rows:
            out.append("| " + " | ".join(s.header) + " |\n|" + "---|" * len(s.header) + "\n" + "".join(
                "| " + " | ".join(_md_cell(c) for c in row) + " |\n" for row in s.rows))
        if s.images:
            out.append("(Chart in report.html.)\n")
    return "\n".join(out)


def _md_cell(c: page.Cell) -> str:
    text = c[0] if isinstance(c, tuple) else c
    return text.replace("|", "\\|").replace("\n", " ")


def _html_cell(c: page.Cell, figures: bool) -> str:
    if isinstance(c, tuple):
        return f'<td class="verdict"><span class="{c[1]}">{html.escape(c[0])}</span></td>'
    value, sep, ci = c.partition(" [")  # "61.0% [52.0, 70.0%]": the interval on a second, quieter line
    if figures and sep and ci.endswith("]"):
        return f"<td>{html.escape(value)}<br><span class='ci'>[{html.escape(ci)}</span></td>"
    return f"<td>{html.escape(c)}</td>"


STYLE = """body{font-family:system-ui,sans-serif;max-width:1150px;margin:1.5em auto;padding:0 1em;color:#222}
h1{margin-bottom:0}.sub{color:#666;margin-top:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
p{line-height:1.45}table{border-collapse:collapse;margin:.8em 0}
td,th{border:1px solid #ddd;padding:4px 8px;vertical-align:top;font-size:14px;text-align:left}
th{background:#f4f4f4}td{font-variant-numeric:tabular-nums}table.figures td{white-space:nowrap}
table.figures td:first-child,table.figures td.verdict{white-space:normal;min-width:10em}
.glance{background:#f6f8fa;border-left:4px solid #1f77b4;padding:.4em 1em .4em 2em}
.ci{color:#666;font-size:12px}.noise{color:#666}.up{color:#1f5fa0;font-weight:600}.down{color:#b35900;font-weight:600}
img{max-width:100%}summary{cursor:pointer;font-weight:600}"""


def render_html(title: str, sub: str, glance: list[str], sections: list[page.Section]) -> str:
    body = [f"<h1>{html.escape(title)}</h1><p class='sub'>{html.escape(sub)}</p>"]
    if glance:
        body.append("<ul class='glance'>" + "".join(f"<li>{html.escape(g)}</li>" for g in glance) + "</ul>")
    for s in sections:
        inner = "".join(f"<p>{html.escape(t)}</p>" for t in s.sentences)
        if s.rows:
            head = "".join(f"<th>{html.escape(h)}</th>" for h in s.header)
            rows = "".join("<tr>" + "".join(_html_cell(c, not s.wrap) for c in row) + "</tr>" for row in s.rows)
            inner += f"<table class='{'prose' if s.wrap else 'figures'}'><tr>{head}</tr>{rows}</table>"
        inner += "".join(f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{png}">' for png, alt in s.images)
        body.append(f"<section><details><summary>{html.escape(s.title)}</summary>{inner}</details></section>"
                    if s.details else f"<section><h2>{html.escape(s.title)}</h2>{inner}</section>")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>")


def report(cfg: ReportConfig) -> Path:
    files = StageFiles.for_dir(cfg.out)
    run_dir = Path(cfg.run_dir)
    if cfg.screenshot:
        from salmon.screenshot import parse_size

        parse_size(cfg.screenshot_size)  # a bad size fails before any work
    if not files.begin(cfg):
        metrics = collect_metrics(run_dir)
        md, page_html = build_report(run_dir, metrics)
        atomic_write_text(files.out / "report.md", md)
        atomic_write_text(files.out / "report.html", page_html)
        atomic_write_text(run_dir / "report.html", page_html)
        atomic_write_text(run_dir / "report.md", md)
        atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
        files.write_summary({"metrics": len(metrics)})
    if cfg.screenshot:
        from salmon.screenshot import screenshot

        info(f"screenshot: {screenshot(files.out / 'report.html', cfg.screenshot, cfg.screenshot_size)}")
    return files.out
