"""Labelled pair sets for checking the judge: the built-in one and one built from human harm ratings.

    salmon devset-harm --src ../shared/data/pyrit_harm --out harm_pairs.jsonl

The harm set comes from CSV files of assistant responses to risky requests, each with
one or more human harm scores in [0, 1] (PyRIT's scorer evaluation data). Two responses
to the same request (`objective`) whose mean human scores differ by at least `min_gap`
form a pair; the less harmful one is `chosen` under the built-in Harmless principle.
Selection is deterministic: per request at most `per_request` pairs (largest score gap
first, then file order), requests interleaved across source files, capped at `cap`.
The folder is an argument: salmon never reads it at run time.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from importlib import resources
from itertools import combinations
from pathlib import Path
from typing import Any

from salmon.config import opt
from salmon.errors import SalmonError
from salmon.jsonl import write_jsonl
from salmon.principles import load_principles
from salmon.progress import info

BUILTIN_DEV = "data/dev/judge_dev.jsonl"


def builtin_dev_path() -> Path:
    return Path(str(resources.files("salmon").joinpath(BUILTIN_DEV)))


@dataclass
class DevsetHarmConfig:
    src: str = opt("../shared/data/pyrit_harm", "Folder of PyRIT harm CSV files (objective, assistant_response, human_score*)")
    out: str = opt("harm_pairs.jsonl", "Output labelled pairs JSONL (eval-judge format)")
    min_gap: float = opt(0.5, "Minimum difference of mean human harm scores within a pair")
    per_request: int = opt(2, "At most this many pairs per request")
    cap: int = opt(120, "At most this many pairs in all")

    def validate(self) -> None:
        if not 0 < self.min_gap <= 1:
            raise SalmonError("--min-gap must be in (0, 1]")
        if self.per_request < 1 or self.cap < 1:
            raise SalmonError("--per-request and --cap must be at least 1")


def read_text(path: Path) -> str:
    """UTF-8 (with or without BOM); files saved as Windows-1252 are read as such."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def read_harm_rows(path: Path) -> list[dict[str, Any]]:
    """Rows {file, objective, response, harm, category} of one CSV; the `# dataset_version`
    comment line is skipped and annotators' scores are averaged."""
    text = read_text(path)
    if text.startswith("#"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
    reader = csv.DictReader(io.StringIO(text))
    fields = reader.fieldnames or []
    score_cols = [f for f in fields if f.startswith("human_score")]
    if "objective" not in fields or "assistant_response" not in fields or not score_cols:
        raise SalmonError(f"{path}: expected columns objective, assistant_response and human_score*")
    rows = []
    for n, rec in enumerate(reader, 2):
        try:
            scores = [float(rec[c]) for c in score_cols if (rec.get(c) or "").strip()]
        except ValueError:
            raise SalmonError(f"{path}: row {n}: a human score is not a number") from None
        if not scores or not (rec.get("assistant_response") or "").strip():
            continue
        rows.append({"file": path.name, "objective": rec["objective"].strip(),
                     "response": rec["assistant_response"].strip(), "harm": sum(scores) / len(scores),
                     "category": (rec.get("harm_category") or "").strip().lower()})
    return rows


def harm_pairs(rows: list[dict[str, Any]], min_gap: float, per_request: int, cap: int) -> list[tuple[dict, dict]]:
    """(less harmful, more harmful) row pairs, chosen deterministically (see module doc)."""
    groups: dict[str, list[dict]] = defaultdict(list)
    seen = set()
    for r in rows:
        key = (r["objective"], r["response"])
        if key not in seen:  # some files repeat rows of others
            seen.add(key)
            groups[r["objective"]].append(r)
    by_file: dict[str, list[list[tuple[dict, dict]]]] = defaultdict(list)
    for group in groups.values():
        cands = [(x, y) if x["harm"] < y["harm"] else (y, x) for x, y in combinations(group, 2)
                 if abs(x["harm"] - y["harm"]) >= min_gap]
        cands.sort(key=lambda p: -(p[1]["harm"] - p[0]["harm"]))  # stable: file order breaks ties
        if cands:
            by_file[group[0]["file"]].append(cands[:per_request])
    out: list[tuple[dict, dict]] = []
    queues = [sum(by_file[f], []) for f in sorted(by_file)]
    while len(out) < cap and any(queues):
        for q in queues:
            if q and len(out) < cap:
                out.append(q.pop(0))
    return out


def devset_harm(cfg: DevsetHarmConfig) -> Path:
    src = Path(cfg.src)
    if not src.is_dir():
        raise SalmonError(f"--src {src}: folder not found")
    files = sorted(src.glob("*.csv"))
    if not files:
        raise SalmonError(f"--src {src}: no .csv files")
    rows = [r for f in files for r in read_harm_rows(f)]
    harmless = next(p for p in load_principles("judge") if p.name == "Harmless")
    principle = {"name": harmless.name, "definition": harmless.definition, "negation": harmless.negation}
    pairs = harm_pairs(rows, cfg.min_gap, cfg.per_request, cfg.cap)
    if not pairs:
        raise SalmonError(f"--src {src}: no two responses to one request differ by {cfg.min_gap} in harm")
    records = [{"id": f"harm{i:03d}", "prompt": lo["objective"], "chosen": lo["response"],
                "rejected": hi["response"], "principle": principle, "lang": "en", "split": "train_principle",
                "source": lo["file"], "category": lo["category"], "harm_chosen": round(lo["harm"], 4),
                "harm_rejected": round(hi["harm"], 4)} for i, (lo, hi) in enumerate(pairs, 1)]
    write_jsonl(cfg.out, records)
    info(f"wrote {len(records)} harm pairs from {len(rows)} rated responses in {len(files)} files to {cfg.out}")
    return Path(cfg.out)
