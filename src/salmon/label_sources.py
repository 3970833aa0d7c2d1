"""Label sources for `salmon aggregate`: where a preference label comes from.

Every training example records its `label_source`:
- `judge` (and `rule`): the self-judge's scores, overridden by a symbolic rule where one
  fires (salmon.aggregate);
- `verify`: exact labels from verifiable principles (salmon.verify) on any pair of
  responses: for a principle whose checker gives the two responses different verdicts,
  the one that satisfies it wins under P and loses under not-P;
- `contrast`: pairs from `salmon contrast`: one response sampled with a user-turn
  instruction towards P, one towards not-P (or a refusal and a compliant answer to a
  red-team prompt under Harmless); the label is recorded against the principle, and
  the instruction never reaches the example (the prompt is the user's own);
- `degrade`: a sampled answer against a copy made worse in the one way a judge principle
  names (salmon.degrade): off topic, repeated, shuffled, cut to one sentence, boilerplate.

Principles shown per `verify` example: a deciding principle is drawn uniformly from those
whose verdicts differ on the pair (one per family; `verify_per_pair` different families per
pair and pass), its negation with `negation_prob`; then up to `verify_max_principles - 1`
more are drawn the same way from the other differing families and shown only if their
signed verdict agrees with the decider's, so every principle shown implies the label
(no principle is shown whose verdict on the pair is unknown or opposite).
`contrast` examples show their one principle (negated with `negation_prob`).

Pairs with an empty side are dropped and counted; a response cut off by the token limit
keeps a checker's verdict only where more text could not change it (see salmon.verify),
and a contrast pair whose checker does not confirm the intended direction is dropped and
counted under `contrast_filter: checked`. Mixing (`source_shares`, `max_examples`): see
`allocate`.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from salmon.config import opt
from salmon.conversation import last_user_text, parse_prompt, prompt_key
from salmon.degrade import NAMES as DEGRADE_NAMES
from salmon.degrade import degrade_pairs
from salmon.edits import edit_pairs
from salmon.errors import SalmonError
from salmon.jsonl import iter_jsonl
from salmon.principles import Principle, load_principles
from salmon.verify import Verifiable, load_verifiable, verdicts_differ

SOURCES = ("judge", "verify", "contrast", "degrade")
FILTERS = ("checked", "all")


@dataclass
class LabelSourcesConfig:
    """Fields `salmon aggregate` adds for label sources (defaults: the self-judge alone)."""
    source_shares: list[str] = opt(["judge=1"], "Label sources and their shares of the examples, name=share "
                                                "(judge, verify, contrast, degrade); a missing source is off")
    max_examples: int | None = opt(None, "Cap on examples over all sources, split by the shares "
                                         "(none: every example each enabled source yields)")
    contrast: str | None = opt(None, "Contrast pairs JSONL written by `salmon contrast` (contrast source; "
                                     "its pairs also feed the verify source)")
    contrast_filter: str = opt("checked", "checked: drop contrast pairs a checker contradicts or cannot "
                                          "confirm, where the principle has one; all: keep every pair")
    verify_principles: str | None = opt(None, "Verifiable principle family files: comma-separated paths "
                                                "or built-in names (builtin, extra; default: builtin)")
    verify_families: list[str] = opt([], "Use only these verifiable families (default: all)")
    verify_per_pair: int = opt(2, "Deciding verifiable principles (different families) per pair and pass")
    verify_max_principles: int = opt(2, "Most principles shown in one verify example")
    edits: int = opt(0, "Edited pairs per sampled response for the verify source (salmon.edits: the response "
                        "against a copy with one checkable property toggled, labelled by the checkers); 0: off")
    relations: bool = opt(False, "Also label by relation families (pairwise checks: covers_more, an answer "
                                 "against its own first sentences wins under completeness phrasings) and try "
                                 "the shorter edit first; off by default (tried, not adopted: "
                                 "docs/label-sources.md)")
    verify_balance: float = opt(1.0, "Under --max-examples, how the verify examples kept are spread over the "
                                     "verifiable families: each family's share is its supply to this power (1: in "
                                     "proportion, a plain random draw; 0: equal shares; between: between), and inside "
                                     "a family its principles (wording and parameter) take turns unless it is 1")
    degrade_per_response: int = opt(1, "Degraded copies per sampled answer for the degrade source (salmon.degrade), "
                                       "drawn among the degradations that apply")
    twins: bool = opt(False, "Emit every verify and contrast example with its negated twin (each shown "
                             "principle negated, chosen and rejected swapped) and a shared `twin` id, kept "
                             "together when mixing: what the reward model's flip term and contrastive "
                             "objective learn from (self-judge rows: --judge-twins)")

    def validate_sources(self) -> None:
        parse_shares(self.source_shares)
        if self.contrast_filter not in FILTERS:
            raise SalmonError(f"--contrast-filter must be one of {', '.join(FILTERS)}, got {self.contrast_filter!r}")
        if self.edits < 0:
            raise SalmonError("--edits must be 0 (off) or more")
        if self.degrade_per_response < 1:
            raise SalmonError("--degrade-per-response must be at least 1")
        if self.verify_per_pair < 1 or self.verify_max_principles < 1:
            raise SalmonError("--verify-per-pair and --verify-max-principles must be at least 1")
        if not 0.0 <= self.verify_balance <= 1.0:
            raise SalmonError(f"--verify-balance must be between 0 (equal family shares) and 1 (in proportion), "
                              f"got {self.verify_balance}")
        if self.max_examples is not None and self.max_examples < 1:
            raise SalmonError("--max-examples must be at least 1")
        shares = parse_shares(self.source_shares)
        if shares.get("contrast") and not self.contrast:
            raise SalmonError("--source-shares names contrast but --contrast (a `salmon contrast` file) is not set")
        if shares.get("degrade"):
            degrade_principles(getattr(self, "principles", "judge"))
        if shares.get("verify"):  # a bad family file fails here, before anything is written
            vps = load_verifiable(self.verify_principles, "train", self.verify_families or None)
            pairwise = sorted({v.family for v in vps if v.pairwise})
            if self.verify_families and pairwise and not self.relations:  # named, not just the built-in set
                raise SalmonError(f"--verify-families names '{pairwise[0]}', a relation family: add --relations")


def parse_shares(items: list[str]) -> dict[str, float]:
    """["judge=1", "verify=2"] -> {"judge": 1.0, "verify": 2.0}; zero shares are dropped."""
    out: dict[str, float] = {}
    for item in items:
        name, _, value = item.partition("=")
        name = name.strip()
        if name not in SOURCES:
            raise SalmonError(f"--source-shares: unknown source '{name}' (known: {', '.join(SOURCES)})")
        try:
            share = float(value) if value.strip() else 1.0
        except ValueError:
            raise SalmonError(f"--source-shares: '{item}' must be name=number") from None
        if share < 0:
            raise SalmonError(f"--source-shares: '{item}': a share must be >= 0")
        if share > 0:
            out[name] = share
    if not out:
        raise SalmonError("--source-shares: no source with a positive share")
    return out


def allocate(available: dict[str, int], shares: dict[str, float], total: int | None) -> dict[str, int]:
    """How many examples to take from each source.

    With no `total`, every example of every enabled source. Otherwise `total` (at most the
    supply) split in proportion to the shares; a source that runs short gives its unused
    quota to the others in proportion to their shares, until all is placed."""
    enabled = {s: available.get(s, 0) for s in shares}
    if total is None:
        return enabled
    left = min(total, sum(enabled.values()))
    take = dict.fromkeys(enabled, 0)
    while left > 0:
        open_ = [s for s in enabled if take[s] < enabled[s]]
        weight = sum(shares[s] for s in open_)
        quota = {s: int(left * shares[s] / weight) for s in open_}
        if not any(quota.values()):  # rounding: hand out the last few one by one, largest share first
            quota[max(open_, key=lambda s: (shares[s], s))] = 1
        for s in open_:
            add = min(quota[s], enabled[s] - take[s])
            take[s] += add
            left -= add
    return take


def _units(examples: list[dict[str, Any]]) -> list[list[int]]:
    """Positions of the examples of each `twin` id (an example and its negated twin); an
    example without one ("" or absent) is a group of its own."""
    groups: dict[Any, list[int]] = {}
    for i, e in enumerate(examples):
        groups.setdefault(e.get("twin") or i, []).append(i)
    return list(groups.values())


def pick_whole_groups(examples: list[dict[str, Any]], k: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """About `k` of `examples`, drawn at random but never splitting a `twin` group (an
    example and its negated twin); examples without a twin id are groups of one. Order is kept;
    with groups of two and an odd `k`, one example fewer than `k`."""
    units = _units(examples)
    keep: list[int] = []
    for u in rng.permutation(len(units)).tolist():
        if len(keep) + len(units[u]) <= k:
            keep += units[u]
    return [examples[i] for i in sorted(keep)]


def pick_balanced_groups(examples: list[dict[str, Any]], k: int, rng: np.random.Generator,
                         exponent: float = 0.0) -> list[dict[str, Any]]:
    """About `k` of `examples` as `pick_whole_groups`, spread over `_family`: each family's
    quota is split by `allocate` with share supply ** `exponent` (0: equal quotas, 1: in
    proportion to its supply), a family short of its quota passing the rest on; inside a
    family its `_key`s (a family's principles: wording and parameter) take turns. Room a
    twin could not fill is then filled from what is left. A group is keyed by its first
    example; order is kept."""
    units = _units(examples)
    tree: dict[Any, dict[Any, list[list[int]]]] = {}
    for u in rng.permutation(len(units)).tolist():
        first = examples[units[u][0]]
        tree.setdefault(first.get("_family") or "", {}).setdefault(first.get("_key") or "", []).append(units[u])
    supply = {f: sum(len(u) for us in keys.values() for u in us) for f, keys in tree.items()}
    quota = allocate(supply, {f: n ** exponent for f, n in supply.items()}, k)
    keep: list[int] = []
    left: list[list[int]] = []
    for fam, by_key in tree.items():
        keys, turn, taken = list(by_key), 0, 0
        while keys:
            key = keys[turn % len(keys)]
            unit = by_key[key].pop()
            if by_key[key]:
                turn += 1
            else:
                keys.remove(key)  # the next key moves into this turn's place
            if taken + len(unit) <= quota[fam]:
                keep += unit
                taken += len(unit)
            else:
                left.append(unit)
    for u in rng.permutation(len(left)).tolist():
        if len(keep) + len(left[u]) <= k:
            keep += left[u]
    return [examples[i] for i in sorted(keep)]


# --- verify source -----------------------------------------------------------------

def _example(pair: dict[str, Any], label: int, shown: list[Principle], source: str, pass_idx: int) -> dict[str, Any]:
    a, b = pair["response_a"], pair["response_b"]
    return {"pair_id": str(pair["id"]), "prompt": pair["prompt"], "chosen": a if label > 0 else b,
            "rejected": b if label > 0 else a, "principles": [p.definition for p in shown],
            "dominant_principle": shown[0].name, "rule": "", "pass": pass_idx, "label_source": source,
            "_noise": False, "_rule_agrees": None, "_shown": list(shown)}


def _signed(v: Verifiable, d: int, negate: bool) -> tuple[Principle, int]:
    return (v.principle.negated(), -d) if negate else (v.principle, d)


def differing(pair: dict[str, Any], vps: list[Verifiable]) -> dict[str, list[tuple[Verifiable, int]]]:
    """Per family, the principles whose verdicts differ on the pair (+1: a satisfies it)."""
    out: dict[str, list[tuple[Verifiable, int]]] = {}
    fa, fb = pair.get("finished_a", True) is not False, pair.get("finished_b", True) is not False
    request = last_user_text(pair["prompt"])  # the turn being answered (a prompt may be a conversation)
    for v in vps:
        d = verdicts_differ(v, request, pair["response_a"], pair["response_b"], fa, fb)
        if d:
            out.setdefault(v.family, []).append((v, d))
    return out


def verify_pair_examples(pair: dict[str, Any], known: dict[str, list[tuple[Verifiable, int]]],
                         rng: np.random.Generator, pass_idx: int, per_pair: int, max_shown: int,
                         negation_prob: float, twins: bool = False) -> list[dict[str, Any]]:
    """Examples for one pair and pass (see the module doc for which principles are shown)."""
    families = list(known)
    order = rng.permutation(len(families)).tolist()
    out = []
    for j in order[:per_pair]:
        v, d = known[families[j]][int(rng.integers(len(known[families[j]])))]
        principle, label = _signed(v, d, bool(rng.random() < negation_prob))
        shown = [principle]
        for k in order:
            if len(shown) >= max_shown:
                break
            if k == j:
                continue
            w, dw = known[families[k]][int(rng.integers(len(known[families[k]])))]
            p2, l2 = _signed(w, dw, bool(rng.random() < negation_prob))
            if l2 == label:
                shown.append(p2)
        extra = shown[1:]
        rng.shuffle(extra)  # the decider is named in dominant_principle; its position is not a cue
        example = _example(pair, label, shown[:1] + extra, "verify", pass_idx)
        out += with_twin({**example, "_family": v.family, "_key": v.principle.name}, twins)
    return out


def twin_id(group: str) -> str:
    """The `twin` id written for an example and its negated twin: 16 hex digits of the
    SHA-1 of their group key (stable across runs and processes)."""
    return hashlib.sha1(group.encode("utf-8")).hexdigest()[:16]


def with_twin(example: dict[str, Any], twins: bool, decider: int = 0) -> list[dict[str, Any]]:
    """[example], or [example, its negated twin] with `twins`: every shown principle
    negated and chosen/rejected swapped, the negation of the deciding principle (position
    `decider` among those shown) named as dominant. Both carry one `twin` id (the reward
    model pairs rows by it, and mixing keeps them together); the twin is marked
    `_twin_copy`. An example without a twin gets the id "". `example["_shown"]`
    (the shown principles) is consumed."""
    shown = example.pop("_shown")
    if not twins:
        return [{**example, "twin": ""}]
    group = f"{example['label_source']}:{example['pair_id']}:{example['pass']}:{example['principles']}"
    twin = {**example, "chosen": example["rejected"], "rejected": example["chosen"],
            "principles": [p.negated().definition for p in shown],
            "dominant_principle": shown[decider].negated().name, "_twin_copy": True}
    tid = twin_id(group)
    return [{**example, "twin": tid}, {**twin, "twin": tid}]


def verify_examples(pairs: list[dict[str, Any]], vps: list[Verifiable], cfg: Any) -> tuple[list[dict[str, Any]], Counter]:
    """The verify source over `pairs` (records with id, prompt, response_a/b, finished_a/b)."""
    examples, counts = [], Counter()
    for i, pair in enumerate(pairs):
        if not pair["response_a"].strip() or not pair["response_b"].strip():
            counts["verify_dropped:empty_side"] += 1
            continue
        truncated = pair.get("finished_a") is False or pair.get("finished_b") is False
        known = differing(pair, vps)
        if not known:
            counts["verify_dropped:" + ("truncated_unknown" if truncated else "no_differing_principle")] += 1
            continue
        counts["verify_pairs_labelled"] += 1
        counts["verify_pairs_labelled_truncated"] += truncated
        for p in range(cfg.passes):
            rng = np.random.default_rng([cfg.seed, 104_729, p, i])
            examples += verify_pair_examples(pair, known, rng, p, cfg.verify_per_pair, cfg.verify_max_principles,
                                             cfg.negation_prob, cfg.twins)
    return examples, counts


# --- contrast source ---------------------------------------------------------------

def read_contrast(path: str) -> list[dict[str, Any]]:
    """Records of `salmon contrast`: prompt, response_a (steered towards P), response_b
    (towards not-P), finished_a/b, principle {name, definition, negation}, checked."""
    rows = []
    for ln, rec in iter_jsonl(path):
        for key in ("id", "response_a", "response_b"):
            if not isinstance(rec.get(key), str):
                raise SalmonError(f"{path}:{ln}: missing text field '{key}' (expected a `salmon contrast` record)")
        rec["prompt"] = parse_prompt(rec.get("prompt"), f"{path}:{ln}")
        pr = rec.get("principle")
        if not isinstance(pr, dict) or not all(isinstance(pr.get(k), str) and pr[k] for k in ("name", "definition", "negation")):
            raise SalmonError(f"{path}:{ln}: 'principle' must have name, definition and negation")
        rows.append(rec)
    return rows


def contrast_examples(rows: list[dict[str, Any]], cfg: Any) -> tuple[list[dict[str, Any]], Counter]:
    """The contrast source: response_a wins under the record's principle (see module doc)."""
    examples, counts = [], Counter()
    for i, rec in enumerate(rows):
        if not rec["response_a"].strip() or not rec["response_b"].strip():
            counts["contrast_dropped:empty_side"] += 1
            continue
        if cfg.contrast_filter == "checked" and rec.get("checked") is not True:
            # None: a checker applies but cannot tell (e.g. cut off); False: the pair went the wrong way
            if rec.get("checked") is False or rec.get("has_checker"):
                counts["contrast_dropped:" + ("wrong_direction" if rec.get("checked") is False else "unconfirmed")] += 1
                continue
        pr = rec["principle"]
        principle = Principle(pr["name"], pr["definition"], pr["negation"])
        counts["contrast_pairs_used"] += 1
        for p in range(cfg.passes):
            rng = np.random.default_rng([cfg.seed, 130_363, p, i])
            negate = bool(rng.random() < cfg.negation_prob)
            examples += with_twin(_example(rec, -1 if negate else 1, [principle.negated() if negate else principle],
                                           "contrast", p), cfg.twins)
    return examples, counts


def cross_pairs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every other pair of distinct responses to one prompt among contrast records (the
    steered pairs themselves are already there): more pairs for the verify source, no
    more sampling. Ids are `x:<prompt>:<i>-<j>`."""
    by_prompt: dict[str, list[tuple[str, bool]]] = {}
    prompts: dict[str, Any] = {}
    steered = set()
    for r in rows:
        key = prompt_key(r["prompt"])
        prompts[key] = r["prompt"]
        seen = by_prompt.setdefault(key, [])
        for side in ("a", "b"):
            item = (r[f"response_{side}"], r.get(f"finished_{side}", True) is not False)
            if item[0].strip() and item[0] not in [t for t, _ in seen]:
                seen.append(item)
        steered.add((key, r["response_a"], r["response_b"]))
    out = []
    for n, (key, items) in enumerate(by_prompt.items()):
        for i in range(len(items)):
            for j in range(i + 1, len(items)):
                (a, fa), (b, fb) = items[i], items[j]
                if (key, a, b) not in steered and (key, b, a) not in steered:
                    out.append({"id": f"x:{n}:{i}-{j}", "prompt": prompts[key], "response_a": a, "response_b": b,
                                "finished_a": fa, "finished_b": fb})
    return out


# --- degrade source ----------------------------------------------------------------

def degrade_principles(spec: str) -> dict[str, Principle]:
    """The principles of file `spec` that a degradation exists for, by name (one line if none)."""
    found = {p.name: p for p in load_principles(spec) if p.name in DEGRADE_NAMES}
    if not found:
        raise SalmonError(f"--source-shares names degrade but --principles {spec} has none of its principles "
                          f"({', '.join(DEGRADE_NAMES)})")
    return found


def degrade_examples(pairs: list[dict[str, Any]], cfg: Any) -> tuple[list[dict[str, Any]], Counter]:
    """The degrade source over the sampled pairs: the original answer wins under the principle
    (its negation drawn with `negation_prob`, the twin with `twins`)."""
    principles = degrade_principles(getattr(cfg, "principles", "judge"))
    examples = []
    made, counts = degrade_pairs(pairs, principles, np.random.default_rng([cfg.seed, 48_611]),
                                 cfg.degrade_per_response)
    passes = 1 if cfg.twins else cfg.passes  # a twin already shows the pair under both texts: more passes only repeat it
    for i, (principle, pair) in enumerate(made):
        for p in range(passes):
            negate = bool(np.random.default_rng([cfg.seed, 48_619, p, i]).random() < cfg.negation_prob)
            examples += with_twin(_example(pair, -1 if negate else 1, [principle.negated() if negate else principle],
                                           "degrade", p), cfg.twins)
    return examples, counts


# --- the hook ----------------------------------------------------------------------

def add_label_sources(judge_examples: list[dict[str, Any]], pairs: list[dict[str, Any]], cfg: Any
                      ) -> tuple[list[dict[str, Any]], Counter, dict[str, Any]]:
    """All enabled sources' examples, mixed by `cfg.source_shares`; the counts of what each
    source dropped; and a summary {source: {available, used}}."""
    shares = parse_shares(cfg.source_shares)
    by_source: dict[str, list[dict[str, Any]]] = {"judge": judge_examples}
    counts: Counter = Counter()
    contrast_rows = read_contrast(cfg.contrast) if cfg.contrast else []
    if "verify" in shares:
        vps = [v for v in load_verifiable(cfg.verify_principles, "train", cfg.verify_families or None)
               if cfg.relations or not v.pairwise]
        sampled = pairs + contrast_rows + cross_pairs(contrast_rows)
        edited = edit_pairs(sampled, np.random.default_rng([cfg.seed, 7_919]), cfg.edits,
                            shorter_first=cfg.relations, checkers={v.checker for v in vps}) if cfg.edits else []
        by_source["verify"], c = verify_examples(sampled + edited, vps, cfg)
        counts.update(c, verify_edit_pairs=len(edited))
    if "contrast" in shares:
        by_source["contrast"], c = contrast_examples(contrast_rows, cfg)
        counts.update(c)
    if "degrade" in shares:
        by_source["degrade"], c = degrade_examples(pairs, cfg)
        counts.update(c)
    take = allocate({s: len(v) for s, v in by_source.items()}, shares, cfg.max_examples)
    rng = np.random.default_rng([cfg.seed, 15_485_863])
    mixed = []
    for s in SOURCES:
        if take.get(s):
            if s == "verify" and cfg.verify_balance != 1.0:
                mixed += pick_balanced_groups(by_source[s], take[s], rng, cfg.verify_balance)
            else:
                mixed += pick_whole_groups(by_source[s], take[s], rng)
    summary = {s: {"available": len(by_source.get(s, [])), "used": take.get(s, 0), "share": shares.get(s, 0.0)}
               for s in SOURCES}
    return mixed, counts, summary
