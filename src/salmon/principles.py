"""Principles: the user's main input.

A principle collection is a YAML file:

    principles:
      - name: Concise
        definition: The response is short and to the point.
        negation: The response is long-winded.      # optional, derived if absent (salmon.negation)
        weight: 1.0                                  # optional, RL-time sampling weight
        tags: [general]                              # optional, prompt-type boosts

`load_principles` validates strictly and names the file, the entry and the field in
every error. Names of the built-in collections (`judge`, `rl`, `intervention`,
`heldout`, `self_align_rules`, `brevity`, `thoroughness`) can be used in place of a path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import numpy as np

from salmon.config import read_yaml
from salmon.errors import SalmonError
from salmon.negation import derive_negation, negate_main_clause

__all__ = ["Principle", "derive_negation", "load_principles", "parse_principle", "principle_from_text",
           "sample_principles"]

ALLOWED_KEYS = {"name", "definition", "negation", "weight", "tags"}
BUILTIN_DIR = "data/principles"
MAX_DEFINITION_CHARS = 1000


@dataclass(frozen=True)
class Principle:
    name: str
    definition: str
    negation: str = ""
    weight: float = 1.0
    tags: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not self.negation:
            object.__setattr__(self, "negation", derive_negation(self.definition))

    def negated(self) -> Principle:
        """The same principle with definition and negation swapped ("not X" becomes "X")."""
        name = self.name[4:] if self.name.startswith("not ") else f"not {self.name}"
        return replace(self, name=name, definition=self.negation, negation=self.definition)

    def render(self, with_name: bool = True) -> str:
        return f"{self.name}: {self.definition}" if with_name else self.definition


def parse_principle(raw: object, where: str) -> Principle:
    """Validate one YAML entry (a mapping, or a plain string taken as a definition)."""
    if isinstance(raw, str):
        return principle_from_text(raw, where)
    if not isinstance(raw, dict):
        raise SalmonError(f"{where}: expected a mapping with name and definition, got {type(raw).__name__}")
    unknown = sorted(set(raw) - ALLOWED_KEYS)
    if unknown:
        raise SalmonError(f"{where}: unknown key '{unknown[0]}' (allowed: {', '.join(sorted(ALLOWED_KEYS))})")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise SalmonError(f"{where}: missing or empty 'name'")
    where = f"{where} ({name})"
    definition = raw.get("definition")
    if not isinstance(definition, str) or not definition.strip():
        raise SalmonError(f"{where}: missing or empty 'definition'")
    if len(definition) > MAX_DEFINITION_CHARS:
        raise SalmonError(f"{where}: 'definition' is {len(definition)} characters; keep it under {MAX_DEFINITION_CHARS}")
    negation = raw.get("negation", "")
    if negation is None or not isinstance(negation, str):
        raise SalmonError(f"{where}: 'negation' must be text")
    weight = raw.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
        raise SalmonError(f"{where}: 'weight' must be a positive number, got {weight!r}")
    tags = raw.get("tags", [])
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, list) or not all(isinstance(t, str) and t.strip() for t in tags):
        raise SalmonError(f"{where}: 'tags' must be a list of words")
    if not negation.strip() and negate_main_clause(definition) is None:
        raise SalmonError(f"{where}: cannot tell which clause of the definition to negate; "
                          "add an explicit 'negation:' (the definition's opposite)")
    return Principle(
        name=name.strip(), definition=" ".join(definition.split()), negation=" ".join(negation.split()),
        weight=float(weight), tags=tuple(t.strip().lower() for t in tags),
    )


def principle_from_text(text: str, where: str = "principle") -> Principle:
    """Free text principle: "Name: definition" or just a definition sentence."""
    if not isinstance(text, str) or not text.strip():
        raise SalmonError(f"{where}: empty principle text")
    text = " ".join(text.split())
    if len(text) > MAX_DEFINITION_CHARS:
        raise SalmonError(f"{where}: principle is {len(text)} characters; keep it under {MAX_DEFINITION_CHARS}")
    m = re.match(r"^([A-Z][\w\- ]{0,40}):\s+(.+)$", text)
    if m:
        return Principle(name=m.group(1).strip(), definition=m.group(2).strip())
    return Principle(name=text[:40], definition=text)


def builtin_path(name: str) -> Path | None:
    ref = resources.files("salmon").joinpath(f"{BUILTIN_DIR}/{name}.yaml")
    return Path(str(ref)) if ref.is_file() else None


def builtin_names() -> list[str]:
    d = resources.files("salmon").joinpath(BUILTIN_DIR)
    return sorted(p.name[:-5] for p in d.iterdir() if p.name.endswith(".yaml"))


def resolve_path(spec: str | Path) -> Path:
    """A path, or the name of a built-in collection."""
    p = Path(spec)
    if p.exists() or p.suffix in (".yaml", ".yml") or "/" in str(spec):
        return p
    bp = builtin_path(str(spec))
    if bp is None:
        raise SalmonError(
            f"{spec}: no such principle file or built-in collection (built-in: {', '.join(builtin_names())})"
        )
    return bp


def load_principles(spec: str | Path) -> list[Principle]:
    path = resolve_path(spec)
    data = read_yaml(path)
    if data is None:
        raise SalmonError(f"{path}: empty file; expected 'principles:' with a list of entries")
    if isinstance(data, list):
        entries = data
    elif isinstance(data, dict):
        unknown = sorted(set(data) - {"principles"})
        if unknown:
            raise SalmonError(f"{path}: unknown top-level key '{unknown[0]}' (expected 'principles')")
        entries = data.get("principles")
    else:
        raise SalmonError(f"{path}: expected 'principles:' with a list of entries")
    if not isinstance(entries, list) or not entries:
        raise SalmonError(f"{path}: 'principles' must be a non-empty list")
    out: list[Principle] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(entries, 1):
        p = parse_principle(raw, f"{path}: principle {i}")
        key = p.name.lower()
        if key in seen:
            raise SalmonError(f"{path}: principle {i} ({p.name}): duplicate name (first at principle {seen[key]})")
        seen[key] = i
        out.append(p)
    return out


def sample_principles(
    principles: list[Principle], k: int, rng: np.random.Generator,
    prompt_type: str | None = None, boost: float = 2.0, boost_mode: str = "multiply",
) -> list[Principle]:
    """Draw `k` distinct principles with probability proportional to weight, boosting
    principles tagged with `prompt_type` (SALMON's RL-time sampling): `boost_mode`
    "multiply" multiplies their weight by `boost`, "add" adds `boost` to it (the reference
    adds 128, which makes their selection near-certain). Returns all of them (in file
    order) when there are at most `k`."""
    if k >= len(principles):
        return list(principles)
    w = np.array([boosted_weight(p.weight, bool(prompt_type and prompt_type in p.tags), boost, boost_mode)
                  for p in principles])
    idx = rng.choice(len(principles), size=k, replace=False, p=w / w.sum())
    return [principles[i] for i in sorted(idx)]


BOOST_MODES = ("multiply", "add")


def boosted_weight(weight: float, tagged: bool, boost: float, mode: str = "multiply") -> float:
    """A principle's sampling weight after the prompt-type boost (untagged: unchanged)."""
    if mode not in BOOST_MODES:
        raise ValueError(f"unknown boost mode {mode!r} (expected one of {BOOST_MODES})")
    if not tagged:
        return weight
    return weight + boost if mode == "add" else weight * boost


def describe(principles: list[Principle]) -> str:
    """A readable listing for `salmon principles show`."""
    lines = []
    for p in principles:
        tags = f"  [{', '.join(p.tags)}]" if p.tags else ""
        lines.append(f"{p.name}  (weight {p.weight:g}){tags}")
        lines.append(f"  + {p.definition}")
        lines.append(f"  - {p.negation}")
    return "\n".join(lines)
