"""Build the verify_dev / verify_test labelled sets from hand-written responses.

    python -m salmon.verify_devsets          # rewrites salmon/data/dev/verify_{dev,test,dev_rephrased}.jsonl

`data/verify/devset_sources.yaml` holds prompts with several responses each, written for
this project. Every pair of responses to one prompt becomes at most one labelled pair:
among the verifiable principles whose checkers give the two responses different verdicts
(dev: the train phrasings and thresholds; test: the test ones, never used in training),
the family used least so far is taken, ties broken towards keeping "the longer response
wins" near 50%; `chosen` is the response that satisfies it. `verify_dev_rephrased` pairs
the dev prompts' responses under the `dev` phrasings (never trained on, train thresholds):
the development-side measure of reading a new wording. Output is the `eval-rm` /
`eval-judge` labelled-pair format, deterministic, with the checker named in each record.
"""

from __future__ import annotations

import sys
from collections import Counter
from importlib import resources
from itertools import combinations
from pathlib import Path
from typing import Any

from salmon.config import read_yaml
from salmon.errors import SalmonError
from salmon.jsonl import write_jsonl
from salmon.verify import Verifiable, load_verifiable, verdicts_differ, words

SOURCES = "data/verify/devset_sources.yaml"
# set name: (items in the sources file, phrasings' split, split tag in each record)
SETS = {"verify_dev": ("dev", "train", "train_principle"), "verify_test": ("test", "test", "heldout_principle"),
        "verify_dev_rephrased": ("dev", "dev", "heldout_principle")}


def _pick(cands: list[tuple[Verifiable, int]], used: Counter, longer: list[int], a: str, b: str
          ) -> tuple[Verifiable, int]:
    """The least used family; then the choice that keeps longer-wins nearest half; then file order."""
    def key(c: tuple[Verifiable, int]) -> tuple[int, float, int]:
        v, d = c
        chosen_longer = (words(a) > words(b)) == (d > 0)
        share = (sum(longer) + chosen_longer) / (len(longer) + 1)
        return used[v.family], abs(share - 0.5), used[v.principle.name]
    return min(cands, key=key)


def build_set(items: list[dict[str, Any]], vps: list[Verifiable], split_tag: str) -> list[dict[str, Any]]:
    used: Counter = Counter()
    longer: list[int] = []
    out = []
    for item in items:
        for i, j in combinations(range(len(item["responses"])), 2):
            a, b = item["responses"][i].strip(), item["responses"][j].strip()
            cands = [(v, d) for v in vps if (d := verdicts_differ(v, item["prompt"], a, b))]
            if not cands:
                continue
            v, d = _pick(cands, used, longer, a, b)
            used[v.family] += 1
            used[v.principle.name] += 1
            chosen, rejected = (a, b) if d > 0 else (b, a)
            longer.append(int(words(chosen) > words(rejected)))
            p = v.principle
            out.append({"id": f"{item['id']}-{i}{j}", "prompt": item["prompt"], "chosen": chosen,
                        "rejected": rejected, "principle": {"name": p.name, "definition": p.definition,
                                                            "negation": p.negation},
                        "split": split_tag, "checker": v.checker, "param": v.param})
    return out


def build_all(sources: str | Path | None = None) -> dict[str, list[dict[str, Any]]]:
    path = sources or Path(str(resources.files("salmon").joinpath(SOURCES)))
    data = read_yaml(path)
    out = {}
    for name, (key, split, tag) in SETS.items():
        items = data.get(key) if isinstance(data, dict) else None
        if not isinstance(items, list) or not items:
            raise SalmonError(f"{path}: '{key}' must be a list of prompts with responses")
        # relation families (pairwise, e.g. covers_more) stay out: these sets predate them and
        # stay comparable across versions; a relation is checked by its own tests
        vps = [v for v in load_verifiable(split=split, core=True) if not v.pairwise]
        out[name] = build_set(items, vps, tag)
    return out


def main(argv: list[str]) -> None:
    folder = Path(argv[0]) if argv else Path(str(resources.files("salmon").joinpath("data/dev")))
    for name, rows in build_all().items():
        write_jsonl(folder / f"{name}.jsonl", rows)
        fams = Counter(r["checker"] for r in rows)
        longer = sum(words(r["chosen"]) > words(r["rejected"]) for r in rows) / len(rows)
        print(f"{name}: {len(rows)} pairs, longer chosen {longer:.0%}, checkers {dict(fams)}")


if __name__ == "__main__":
    main(sys.argv[1:])
