"""Training rows for the reward model: loading, the held-out split, negated twins and the
batches that keep them together, and token ids.

- `load_rm_rows`: a `salmon aggregate` folder (or a JSONL file) -> rows {prompt, chosen,
  rejected, principles, pair_id}; `load_pmp_rows`: principle-free preference pairs.
- `split_by_pair_id`: held-out rows chosen by a hash of pair_id, so no row of a held-out
  pair leaks into training.
- `twin_units` / `pack_units` / `TwinBatchSampler`: a row and its negated twin (the same
  `twin` id where the data has one; chosen and rejected swapped, another principle list)
  go into one batch.
- `tokenize_rows`: RewardTrainer's pre-tokenised columns, plus the twin unit of each row
  (for the flip term) and an optional cap on response tokens (principles never cut).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from salmon.errors import SalmonError
from salmon.jsonl import iter_jsonl
from salmon.reward.template import TEMPLATE, _cut, encode_rm_parts, template_for

REQUIRED_COLUMNS = ("prompt", "chosen", "rejected", "principles")


def heldout_fraction_of(pair_id: str) -> float:
    """A stable number in [0, 1) for a pair id (the same in every pass and process)."""
    return int(hashlib.sha256(str(pair_id).encode("utf-8")).hexdigest()[:12], 16) / 16**12


def split_by_pair_id(pair_ids: list[str], fraction: float) -> tuple[list[int], list[int]]:
    """(train indices, held-out indices); every row of a pair id lands on the same side."""
    held = [heldout_fraction_of(p) < fraction for p in pair_ids]
    return [i for i, h in enumerate(held) if not h], [i for i, h in enumerate(held) if h]


def load_rm_rows(spec: str, limit: int | None = None) -> list[dict[str, Any]]:
    """Rows of a `salmon aggregate` folder (or its dataset folder, or a JSONL file)."""
    path = Path(spec)
    if path.suffix == ".jsonl":
        rows = [rec for _, rec in iter_jsonl(path)]
    else:
        from datasets import load_from_disk

        if not path.exists():
            raise SalmonError(f"--data {spec}: not found (expected a `salmon aggregate` output folder)")
        if (path / "dataset").exists():
            if not (path / "summary.json").exists():
                raise SalmonError(f"--data {spec}: unfinished (no summary.json); rerun `salmon aggregate`")
            path = path / "dataset"
        try:
            rows = load_from_disk(str(path)).to_list()
        except (FileNotFoundError, ValueError) as e:
            raise SalmonError(f"--data {spec}: not a saved dataset ({str(e).splitlines()[0]})") from None
    rows = rows[:limit] if limit is not None else rows
    if not rows:
        raise SalmonError(f"--data {spec}: no training pairs; check the aggregate summary (label yield)")
    missing = [c for c in REQUIRED_COLUMNS if c not in rows[0]]
    if missing:
        raise SalmonError(f"--data {spec}: missing column '{missing[0]}' (needs {', '.join(REQUIRED_COLUMNS)})")
    return rows


def load_pmp_rows(path: str, principle: str) -> list[dict[str, Any]]:
    rows = []
    for lineno, rec in iter_jsonl(path):
        for key in ("prompt", "chosen", "rejected"):
            if not isinstance(rec.get(key), str):
                raise SalmonError(f"{path}:{lineno}: missing text field '{key}'")
        rows.append({"pair_id": rec.get("id", rec["prompt"]), "prompt": rec["prompt"], "chosen": rec["chosen"],
                     "rejected": rec["rejected"], "principles": [principle]})
    if not rows:
        raise SalmonError(f"--pmp-data {path}: no pairs")
    return rows


def _negated_pair(ra: dict[str, Any], rb: dict[str, Any]) -> bool:
    """Row b is row a with chosen and rejected swapped under another principle list."""
    return (ra["chosen"] == rb["rejected"] and ra["rejected"] == rb["chosen"] and ra["chosen"] != ra["rejected"]
            and list(ra["principles"]) != list(rb["principles"]))


def twin_units(rows: list[dict[str, Any]]) -> list[list[int]]:
    """Row indices grouped into units: [i, j] when row j is row i's negated twin, else [i].

    Candidates: when any row carries a `twin` id (`salmon aggregate --twins` writes one,
    shared by an example and its twin), only rows with the same pair_id and id; rows
    without an id are then units of their own. Data without ids (older aggregates, JSONL)
    falls back to rows of the same pair_id, label_source and pass (two passes' draws of one
    pair are not twins). Among candidates, a twin has chosen and rejected swapped and a
    different principle list; matching is greedy in row order. Every index appears in
    exactly one unit; units are in first-row order.
    """
    explicit = any(r.get("twin") for r in rows)
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(rows):
        pair = str(r.get("pair_id", r["prompt"]))
        if explicit and not r.get("twin"):
            continue
        key = (pair, r["twin"]) if explicit else (pair, r.get("label_source"), r.get("pass"))
        groups.setdefault(key, []).append(i)
    partner: dict[int, int] = {}
    for idx in groups.values():
        for a_pos, a in enumerate(idx):
            if a in partner:
                continue
            for b in idx[a_pos + 1:]:
                if b not in partner and _negated_pair(rows[a], rows[b]):
                    partner[a], partner[b] = b, a
                    break
    units, seen = [], set()
    for i in range(len(rows)):
        if i in seen:
            continue
        unit = [i, partner[i]] if i in partner else [i]
        seen.update(unit)
        units.append(unit)
    return units


def pack_units(units: list[list[int]], batch_size: int, seed: int) -> list[int]:
    """A flat order of row indices whose consecutive `batch_size` chunks never split a
    twin unit (unless `batch_size` is odd and no single row is left to fill a gap).

    Units are shuffled with `seed`; each batch takes pairs while two slots are free, and
    single rows for a last odd slot (or when no pair is left).
    """
    import random

    rng = random.Random(seed)
    pairs = [u for u in units if len(u) == 2]
    singles = [u for u in units if len(u) == 1]
    rng.shuffle(pairs)
    rng.shuffle(singles)
    # interleave singles among the pairs' batches rather than all at the end
    order: list[int] = []
    total = sum(len(u) for u in units)
    while len(order) < total:
        room = batch_size - len(order) % batch_size  # less after a split pair spilled over
        batch: list[int] = []
        while room > 0 and (pairs or singles):
            if room % 2 == 1 and singles:  # an odd slot: a single row keeps the pairs aligned
                batch += singles.pop()
                room -= 1
            elif pairs and (len(singles) < 2 or rng.random() >= len(singles) / (len(singles) + 2 * len(pairs))):
                unit = pairs.pop()
                batch += unit  # room == 1 here only when no single row is left: the pair is split
                room -= len(unit)
            else:  # two single rows (the second on the next, odd, slot)
                batch += singles.pop()
                room -= 1
        order += batch
    return order


class TwinBatchSampler:
    """A torch Sampler over `pack_units` orders, reshuffled each epoch (`set_epoch`)."""

    def __init__(self, units: list[list[int]], batch_size: int, seed: int):
        self.units, self.batch_size, self.seed, self.epoch = units, batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        return iter(pack_units(self.units, self.batch_size, self.seed * 1_000_003 + self.epoch))

    def __len__(self) -> int:
        return sum(len(u) for u in self.units)


def cap_response(tokenizer, text: str, max_tokens: int | None) -> str:
    """`text` cut to its first `max_tokens` tokens (with an ellipsis), or unchanged."""
    return text if not max_tokens else _cut(tokenizer, text, max_tokens)


def twin_ids(units: list[list[int]], n: int) -> list[int]:
    """Per row: the index of its twin unit, or -1 for a row without a twin."""
    out = [-1] * n
    for k, unit in enumerate(units):
        if len(unit) == 2:
            out[unit[0]] = out[unit[1]] = k
    return out


def tokenize_rows(rows: list[dict[str, Any]], tokenizer, max_length: int, max_response_tokens: int | None = None,
                  twins: list[int] | None = None, templates: list[str] | None = None):
    """A `datasets.Dataset` of {chosen_ids, rejected_ids} (RewardTrainer's pre-tokenised form),
    {chosen_split, rejected_split} (where the exchange ends and the principles begin: see
    `reward.shared`), and a `twin` column (see `twin_ids`) when `twins` is given."""
    from datasets import Dataset

    data: dict[str, list] = {"chosen_ids": [], "rejected_ids": [], "chosen_split": [], "rejected_split": []}
    for n, r in enumerate(rows):
        where = f"training row {n} (pair_id {r.get('pair_id', '?')})"
        template = template_for(str(r.get("pair_id", n)), templates or [TEMPLATE])
        try:
            for side in ("chosen", "rejected"):
                response = cap_response(tokenizer, r[side], max_response_tokens)
                prefix, suffix = encode_rm_parts(tokenizer, r["prompt"], response, r["principles"], max_length,
                                                 template=template)
                data[f"{side}_ids"].append(prefix + suffix)
                data[f"{side}_split"].append(len(prefix))
        except SalmonError as e:
            raise SalmonError(f"{where}: {e}") from None
    if twins is not None:
        data["twin"] = list(twins)
    return Dataset.from_dict(data)
