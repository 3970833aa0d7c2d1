"""Stage: turn N responses per prompt into pairs for judging.

    salmon pairs responses.jsonl --out pairs.jsonl

Drops degenerate responses (empty, shorter than `min_words`, identical to another after
normalising case and whitespace) and writes, per prompt, up to `max_pairs_per_prompt`
pairs (i, j), i < j, in order:
    {"id", "prompt_id", "prompt", "type", "response_a", "response_b",
     "finished_a", "finished_b"}
`prompt` is copied as generated: text, or a conversation (a list of chat messages).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

from salmon.config import opt
from salmon.conversation import parse_prompt
from salmon.errors import SalmonError
from salmon.jsonl import iter_jsonl, write_jsonl
from salmon.progress import info
from salmon.stage import StageFiles


@dataclass
class PairsConfig:
    responses: str = opt("responses.jsonl", "Responses JSONL written by `salmon generate`")
    out: str = opt("pairs.jsonl", "Output pairs JSONL")
    min_words: int = opt(3, "Drop responses with fewer words than this")
    max_pairs_per_prompt: int = opt(1, "Pairs kept per prompt (all i<j combinations, in order)")
    require_finished: bool = opt(False, "Drop responses that stopped without an end-of-sequence token")


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def pairs_for_record(rec: dict[str, Any], cfg: PairsConfig) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Pairs from one generate record, and counts of what was dropped and why."""
    drops = {"empty": 0, "too_short": 0, "duplicate": 0, "unfinished": 0}
    finished = rec.get("finished") or [True] * len(rec["responses"])
    kept: list[tuple[str, bool]] = []
    seen: set[str] = set()
    for text, fin in zip(rec["responses"], finished):
        if not text.strip():
            drops["empty"] += 1
        elif len(text.split()) < cfg.min_words:
            drops["too_short"] += 1
        elif _norm(text) in seen:
            drops["duplicate"] += 1
        elif cfg.require_finished and not fin:
            drops["unfinished"] += 1
        else:
            seen.add(_norm(text))
            kept.append((text, bool(fin)))
    out = []
    for i, j in list(combinations(range(len(kept)), 2))[: cfg.max_pairs_per_prompt]:
        out.append({
            "id": f"{rec['id']}:{i}-{j}", "prompt_id": rec["id"], "prompt": rec["prompt"],
            "type": rec.get("type", "general"), "response_a": kept[i][0], "response_b": kept[j][0],
            "finished_a": kept[i][1], "finished_b": kept[j][1],
        })
    return out, drops


def make_pairs(cfg: PairsConfig) -> Path:
    files = StageFiles.for_file(cfg.out)
    if Path(cfg.responses).resolve() == files.out.resolve():
        raise SalmonError("--out must differ from the responses file")
    records = []
    for ln, rec in iter_jsonl(cfg.responses):
        if not isinstance(rec.get("responses"), list) or "prompt" not in rec or "id" not in rec:
            raise SalmonError(f"{cfg.responses}:{ln}: expected a generate record with id, prompt and responses")
        if not all(isinstance(r, str) for r in rec["responses"]):
            raise SalmonError(f"{cfg.responses}:{ln}: responses must be a list of strings")
        if not isinstance(rec["prompt"], str):
            parse_prompt(rec["prompt"], f"{cfg.responses}:{ln}")  # a conversation: checked, kept as is
        records.append(rec)
    if files.begin(cfg):
        return files.out
    pairs: list[dict[str, Any]] = []
    totals = {"empty": 0, "too_short": 0, "duplicate": 0, "unfinished": 0}
    for rec in records:
        new, drops = pairs_for_record(rec, cfg)
        pairs.extend(new)
        for k, v in drops.items():
            totals[k] += v
    if not pairs:
        raise SalmonError(f"{cfg.responses}: no usable pairs (dropped: {totals}); generate more responses per prompt")
    files.write_summary({"prompts": len(records), "pairs": len(pairs), "dropped": totals})
    write_jsonl(files.out, pairs)
    info(f"wrote {len(pairs)} pairs from {len(records)} prompts to {files.out} (dropped {totals})")
    return files.out
