"""Prompt sets: the built-in ones, JSONL / JSON / Parquet files, or HF dataset names.

Every prompt becomes `{"id": str, "prompt": str | messages, "type": str, ...}`; `type`
is one of `general`, `reasoning`, `redteam` (default `general`). Accepted text fields,
first found wins: `prompt`, `instruction` (+ `input`), `question`, `turns[0]` (MT-Bench:
only its first turn, since the later ones need the model's own earlier answers;
`salmon eval --mt-bench` answers every turn), `text`. `prompt` may also be a conversation
in TRL's format, a list of `{"role", "content"}` messages ending with a user turn
(`salmon.conversation`).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from salmon.conversation import parse_prompt, prompt_chars
from salmon.errors import SalmonError
from salmon.jsonl import iter_jsonl

BUILTIN_PROMPTS = ("builtin", "eval", "redteam")
PROMPT_TYPES = ("general", "reasoning", "redteam")
MAX_PROMPT_CHARS = 20_000


def builtin_prompt_path(name: str) -> Path:
    return Path(str(resources.files("salmon").joinpath(f"data/prompts/{name}.jsonl")))


def _text_of(rec: dict[str, Any]) -> Any:
    if "prompt" in rec:
        return rec["prompt"]
    if "instruction" in rec:
        inp = rec.get("input") or ""
        if not inp and isinstance(rec.get("instances"), list) and rec["instances"]:
            inp = rec["instances"][0].get("input", "") if isinstance(rec["instances"][0], dict) else ""
        return f"{rec['instruction']}\n\n{inp}".strip() if isinstance(inp, str) and inp else rec["instruction"]
    if "question" in rec:
        return rec["question"]
    if isinstance(rec.get("turns"), list) and rec["turns"]:
        return rec["turns"][0]
    return rec.get("text")


def normalize_prompt(rec: dict[str, Any], index: int, where: str) -> dict[str, Any]:
    text = _text_of(rec)
    if text is None:
        raise SalmonError(f"{where}: no prompt text (expected a 'prompt', 'instruction', 'question', 'turns' or 'text' field)")
    if not isinstance(text, (str, list)):
        raise SalmonError(f"{where}: prompt must be text or a list of chat messages, got {type(text).__name__}")
    text = parse_prompt(text, where)
    if prompt_chars(text) > MAX_PROMPT_CHARS:
        raise SalmonError(f"{where}: prompt is {prompt_chars(text)} characters (limit {MAX_PROMPT_CHARS})")
    ptype = rec.get("type") or rec.get("category_type") or "general"
    if ptype not in PROMPT_TYPES:
        raise SalmonError(f"{where}: unknown type {ptype!r} (expected one of {', '.join(PROMPT_TYPES)})")
    rid = rec.get("id", rec.get("question_id", f"row{index + 1}"))
    out = {k: v for k, v in rec.items() if k in ("lang", "tags", "category")}
    out.update({"id": str(rid), "prompt": text, "type": ptype})
    return out


def _records(spec: str) -> list[tuple[str, dict[str, Any]]]:
    """(where, raw record) pairs from a file path or dataset name."""
    path = builtin_prompt_path(spec) if spec in BUILTIN_PROMPTS else Path(spec).expanduser()
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return [(f"{path}:{ln}", rec) for ln, rec in iter_jsonl(path)]
    if suffix == ".json":
        if not path.exists():
            raise SalmonError(f"{path}: file not found")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SalmonError(f"{path}: malformed JSON ({getattr(e, 'msg', e)})") from None
        if isinstance(data, dict):
            data = data.get("prompts", data.get("data"))
        if not isinstance(data, list):
            raise SalmonError(f"{path}: expected a list of prompt objects")
        return [(f"{path}: item {i + 1}", r if isinstance(r, dict) else {"prompt": r}) for i, r in enumerate(data)]
    if suffix == ".parquet":
        if not path.exists():
            raise SalmonError(f"{path}: file not found")
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as e:  # pyarrow raises many types for a bad file
            raise SalmonError(f"{path}: cannot read Parquet ({e})") from None
        return [(f"{path}: row {i + 1}", r) for i, r in enumerate(rows)]
    if path.exists():
        raise SalmonError(f"{path}: unsupported prompt file type (use .jsonl, .json or .parquet)")
    if spec.startswith((".", "/", "~")) or suffix:
        raise SalmonError(f"{spec}: file not found")
    return _hub_records(spec)


def _hub_records(name: str) -> list[tuple[str, dict[str, Any]]]:
    import datasets

    dataset, _, split = name.partition(":")
    try:
        ds = datasets.load_dataset(dataset, split=split or "train")
    except Exception as e:  # network, missing dataset, bad split
        raise SalmonError(f"{name}: not a prompt file and cannot load it as a dataset ({str(e).splitlines()[0]})") from None
    return [(f"{name}: row {i + 1}", dict(r)) for i, r in enumerate(ds)]


def load_prompts(spec: str, limit: int | None = None) -> list[dict[str, Any]]:
    """Load and validate prompts; ids must be unique."""
    out = []
    seen: dict[str, str] = {}
    for i, (where, rec) in enumerate(_records(spec)):
        p = normalize_prompt(rec, i, where)
        if p["id"] in seen:
            raise SalmonError(f"{where}: duplicate id {p['id']!r} (first at {seen[p['id']]})")
        seen[p["id"]] = where
        out.append(p)
        if limit is not None and len(out) >= limit:
            break
    if not out:
        raise SalmonError(f"{spec}: no prompts")
    return out
