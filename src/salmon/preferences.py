"""Stage: the self-judged preferences in TRL's preference format, for DPO and friends.

    salmon export-preferences --data runs/default/aggregate --out prefs/
    salmon export-preferences --data runs/default/aggregate --out prefs_p/ --principles-in-system

Rows are `prompt` / `chosen` / `rejected`: plain strings when the prompts are text, chat
message lists (TRL's conversational format) when a prompt is a conversation or when the
principles go in a system turn. Two variants:

- plain (default): one row per pair. Aggregate labels a pair under sampled principle
  lists, some of them negated ("the response is not concise"), so the same pair can be
  labelled both ways; each label is first mapped back to the un-negated principles, then
  the pair's labels vote (ties are dropped and counted).
- `--principles-in-system`: every aggregate example, its shown principle list (negations
  included) in a system turn, so the label is right for the principles the model sees.

Writes `dataset/` (`datasets.load_from_disk`), `preferences.jsonl`
(`load_dataset("json", data_files=...)`), `config.yaml`, and `summary.json` last.
"""

from __future__ import annotations

import os
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from salmon.config import opt, read_yaml
from salmon.conversation import as_messages
from salmon.errors import SalmonError
from salmon.jsonl import write_jsonl
from salmon.progress import info
from salmon.stage import StageFiles

SYSTEM_HEADER = "Write the reply that best satisfies each of these principles:"


@dataclass
class ExportPreferencesConfig:
    data: str = opt("rm_data", "A `salmon aggregate` output folder (or its dataset/ folder, or a JSONL with its columns)")
    out: str = opt("preferences", "Output folder: dataset/, preferences.jsonl, config.yaml, summary.json")
    principles_in_system: bool = opt(False, "Keep every example with its principle list in a system turn "
                                            "(principle-conditioned); off: one row per pair, labels voted")
    principles: str | None = opt(None, "Principle file aggregate used (to undo negated rule labels); "
                                       "default: read from the aggregate folder's config.yaml")


def principles_message(principles: list[str]) -> str:
    return SYSTEM_HEADER + "\n" + "\n".join(f"- {p}" for p in principles)


def with_system(messages: list[dict[str, str]], text: str) -> list[dict[str, str]]:
    """`text` as the system turn, before any system text the conversation already had."""
    if messages and messages[0]["role"] == "system":
        return [{"role": "system", "content": f"{text}\n\n{messages[0]['content']}"}] + messages[1:]
    return [{"role": "system", "content": text}] + messages


def trl_row(prompt: Any, chosen: Any, rejected: Any, conversational: bool,
            system: str | None = None) -> dict[str, Any]:
    """One row in TRL's preference format (standard strings or conversational lists)."""
    if not conversational:
        return {"prompt": prompt, "chosen": chosen, "rejected": rejected}
    messages = as_messages(prompt)
    if system:
        messages = with_system(messages, system)

    def reply(x: Any) -> list[dict[str, str]]:
        return [dict(m) for m in x] if isinstance(x, list) else [{"role": "assistant", "content": x}]

    return {"prompt": messages, "chosen": reply(chosen), "rejected": reply(rejected)}


def label_flipped(row: dict[str, Any], negation_of: dict[str, str]) -> bool:
    """True when the example's label was decided under a negated principle, so the label
    under the principles as written is the opposite. `negation_of` maps a rule name to the
    negation text of the principle it checks (a rule's label flips when that is shown)."""
    if row.get("label_source") == "rule":
        text = negation_of.get(row.get("rule") or "")
        return text is not None and text in (row.get("principles") or [])
    return str(row.get("dominant_principle", "")).startswith("not ")


def vote_pairs(rows: list[dict[str, Any]], negation_of: dict[str, str]) -> tuple[list[dict[str, Any]], int]:
    """One (prompt, chosen, rejected, votes) per pair_id by majority of un-negated labels,
    in first-seen order; returns the rows and the number of tied pairs dropped."""
    votes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    first: dict[str, dict[str, Any]] = {}
    for r in rows:
        key = str(r.get("pair_id", r["prompt"]))
        winner = r["rejected"] if label_flipped(r, negation_of) else r["chosen"]
        votes[key][_key(winner)] += 1
        first.setdefault(key, r)
    out, ties = [], 0
    for key, r in first.items():
        a, b = _key(r["chosen"]), _key(r["rejected"])
        va, vb = votes[key].get(a, 0), votes[key].get(b, 0)
        if va == vb:
            ties += 1
            continue
        chosen, rejected = (r["chosen"], r["rejected"]) if va > vb else (r["rejected"], r["chosen"])
        out.append({"pair_id": key, "prompt": r["prompt"], "chosen": chosen, "rejected": rejected,
                    "votes": max(va, vb), "labels": va + vb})
    return out, ties


def _key(x: Any) -> str:
    return x if isinstance(x, str) else repr(x)


def rule_negations(principles_spec: str | None) -> dict[str, str]:
    """rule name -> negation text of the principle it checks, for a principle collection."""
    from salmon.principles import load_principles
    from salmon.rules import RULES

    if not principles_spec:
        return {}
    by_name = {p.name.lower(): p for p in load_principles(principles_spec)}
    return {name: by_name[r.principle.lower()].negation for name, r in RULES.items()
            if r.principle and r.principle.lower() in by_name}


def load_aggregate(spec: str) -> list[dict[str, Any]]:
    from salmon.reward.data import load_rm_rows

    return load_rm_rows(spec)


def _principles_of(cfg: ExportPreferencesConfig) -> str | None:
    if cfg.principles:
        return cfg.principles
    saved = Path(cfg.data) / "config.yaml"
    return (read_yaml(saved) or {}).get("principles") if saved.exists() else "judge"


def preference_rows(data: str, principles_in_system: bool, principles: str | None = None
                    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """TRL rows from an aggregate output, and counts for the summary."""
    rows = load_aggregate(data)
    conversational = principles_in_system or any(isinstance(r["prompt"], list) for r in rows)
    if principles_in_system:
        out = [{**trl_row(r["prompt"], r["chosen"], r["rejected"], True, principles_message(list(r["principles"]))),
                "pair_id": str(r.get("pair_id", ""))} for r in rows]
        return out, {"examples": len(rows), "rows": len(out), "conversational": True}
    voted, ties = vote_pairs(rows, rule_negations(principles))
    out = [{**trl_row(v["prompt"], v["chosen"], v["rejected"], conversational), "pair_id": v["pair_id"]}
           for v in voted]
    agree = sum(v["votes"] for v in voted) / max(1, sum(v["labels"] for v in voted))
    return out, {"examples": len(rows), "pairs": len(voted) + ties, "rows": len(out), "tied_pairs_dropped": ties,
                 "label_agreement": round(agree, 4), "conversational": conversational}


def save_rows(rows: list[dict[str, Any]], out: Path) -> None:
    """`out/dataset/` and `out/preferences.jsonl`, each written whole or not at all."""
    from datasets import Dataset

    tmp = out / f".dataset.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    Dataset.from_list(rows).save_to_disk(str(tmp))
    shutil.rmtree(out / "dataset", ignore_errors=True)
    os.replace(tmp, out / "dataset")
    write_jsonl(out / "preferences.jsonl", rows)


def export_preferences(cfg: ExportPreferencesConfig) -> Path:
    files = StageFiles.for_dir(cfg.out)
    rows, counts = preference_rows(cfg.data, cfg.principles_in_system, _principles_of(cfg))
    if not rows:
        raise SalmonError(f"--data {cfg.data}: every pair was a tie; nothing to export "
                          "(try --principles-in-system, which keeps every example)")
    if files.begin(cfg):
        return files.out
    save_rows(rows, files.out)
    files.write_summary({**counts, "variant": "principles_in_system" if cfg.principles_in_system else "plain"})
    info(f"{len(rows)} preference rows ({'conversational' if counts['conversational'] else 'text'}) "
         f"in {files.out}")
    return files.out


def load_preferences(spec: str, principles_in_system: bool = False) -> list[dict[str, Any]]:
    """TRL rows from an `export-preferences` folder (as exported) or an aggregate output
    (converted here), for `salmon rl --algo dpo`."""
    path = Path(spec)
    if (path / "preferences.jsonl").exists() and (path / "summary.json").exists():
        from salmon.jsonl import read_jsonl

        return read_jsonl(path / "preferences.jsonl")
    if path.suffix == ".jsonl" and path.exists():
        from salmon.jsonl import read_jsonl

        rows = read_jsonl(path)
        if rows and "principles" not in rows[0]:  # already in TRL's format
            return rows
    saved = path / "config.yaml"
    principles = (read_yaml(saved) or {}).get("principles") if saved.exists() else "judge"
    return preference_rows(spec, principles_in_system, principles)[0]
