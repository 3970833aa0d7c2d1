"""Verifiable principles: principles whose truth a program checks exactly.

Each *family* in `data/verify/principles.yaml` names a checker (a pure function
`check(prompt, response, n) -> True | False | None`, None meaning "cannot tell"), and
holds two splits, `train` and `test`, each with its own parameters (e.g. word limits
30/60 for training, 40/80 for testing) and its own phrasings (definition and negation
texts with `{n}` where the parameter goes). Training reads only the train split and
the `verify_test` dev set only the test split, so an RM that scores well there has
read the principle rather than memorised a phrasing or a threshold.

A family may name a *relation* instead (`RELATIONS`: a pure function of a pair's two
responses giving +1 / -1 / 0), for a property only a comparison decides: `covers_more`,
one answer says everything the other says and more (an answer against its own first
sentences), so it is the more complete of the two. The verify source uses relation
families only with `aggregate --relations` (off by default; tried, not adopted).

Two optional blocks serve choosing settings without the test split: `train:
more_phrasings` are trained on but not used to build `verify_dev` (so that set stays
comparable across versions), and a `dev` block (phrasings never trained on; the train
parameters unless it lists its own) builds `verify_dev_rephrased`, which measures
generalisation to new wordings on the development side.

Several family files can be read together: `load_verifiable("builtin,extra")` adds the
families of `data/verify/extra.yaml` (heading, bold text, hedges, example phrases,
paragraphs: measured, not in the default) to the built-in ones.

    from salmon.verify import load_verifiable
    vps = load_verifiable(split="train")        # concrete principles, parameter rendered
    vps[0].check(prompt, response)               # -> True / False / None

A response cut off by the token limit keeps a verdict only where more text could not
change it (`final` in CHECKERS: "true" = a True verdict is final, "false" = a False one
is, "both" = the checker reads only what is already there, e.g. the opening); otherwise
the verdict is None. Symbolic rules (`salmon.rules`) that check one of
these properties on a pair are the same idea with a fixed principle; `verdicts_differ`
gives the pairwise view.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from salmon.config import read_yaml
from salmon.errors import SalmonError
from salmon.principles import Principle
from salmon.rules import _CODE, _ITEM, count_list_items, detect_language, has_boilerplate

Check = Callable[[str, str, int | None], bool | None]
DATA = "data/verify/principles.yaml"
SPLITS = ("train", "test", "dev")  # dev: optional per family (held-out wordings for choosing settings)


@dataclass(frozen=True)
class CheckerInfo:
    fn: Check
    needs_param: bool  # the phrasings carry {n} and every split lists `params`
    final: str  # on a cut-off response: "true" | "false" (that verdict cannot change), "both", "none"


CHECKERS: dict[str, CheckerInfo] = {}


def checker(name: str, needs_param: bool = False, final: str = "none") -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        CHECKERS[name] = CheckerInfo(fn, needs_param, final)
        return fn
    return register


# --- the checkers (pure) -------------------------------------------------------------

def words(text: str) -> int:
    return len(text.split())


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
LIST_MARKER = re.compile(r"^\s*(?:\d{1,2}[.)]|[-*+•])\s+")  # "1." / "2)" / "-" / "*" / "+" / "•" opening a line


def split_sentences(text: str) -> list[str]:
    """Sentences: runs ending in . ! ? or a line end; list markers dropped, so each list
    line is one sentence (at least); runs without a word character are not sentences."""
    out = []
    for line in text.strip().splitlines():
        line = LIST_MARKER.sub("", line).strip()
        out += [s.strip() for s in _SENTENCE_END.split(line) if re.search(r"\w", s)]
    return out


def sentences(text: str) -> int:
    """Sentences (`split_sentences`), code blocks counting none."""
    return len(split_sentences(re.sub(r"```.*?(?:```|$)", " ", text.strip(), flags=re.DOTALL)))


@checker("max_words", needs_param=True, final="false")
def max_words(prompt: str, response: str, n: int | None) -> bool | None:
    return words(response) <= n


@checker("min_words", needs_param=True, final="true")
def min_words(prompt: str, response: str, n: int | None) -> bool | None:
    return words(response) >= n


@checker("max_sentences", needs_param=True, final="false")
def max_sentences(prompt: str, response: str, n: int | None) -> bool | None:
    return sentences(response) <= n


def list_lines(text: str) -> tuple[int, int]:
    """(numbered item lines, bulleted item lines) outside code."""
    numbered = bullets = 0
    for line in _CODE.sub(" ", text).splitlines():
        m = _ITEM.match(line)
        if m:
            numbered += bool(m.group(2))
            bullets += bool(m.group(3))
    return numbered, bullets


@checker("numbered_list", final="true")
def numbered_list(prompt: str, response: str, n: int | None) -> bool | None:
    return list_lines(response)[0] >= 2


@checker("bulleted_list", final="true")
def bulleted_list(prompt: str, response: str, n: int | None) -> bool | None:
    return list_lines(response)[1] >= 2


@checker("prose_only", final="false")
def prose_only(prompt: str, response: str, n: int | None) -> bool | None:
    """No list lines and no code block: plain paragraphs."""
    return list_lines(response) == (0, 0) and "```" not in response


@checker("exact_items", needs_param=True)
def exact_items(prompt: str, response: str, n: int | None) -> bool | None:
    """Exactly n top-level list items; None when there is no list (then "n items" is moot)."""
    count = count_list_items(response)
    return None if count is None else count == n


@checker("code_block", final="true")
def code_block(prompt: str, response: str, n: int | None) -> bool | None:
    return re.search(r"```[^\n`]*\n.*?\S.*?(```|$)", response, re.DOTALL) is not None


OPENERS = re.compile(
    r"^\W*(?:sure|certainly|of course|absolutely|great question|good question|what a (?:great|good|wonderful)"
    r"|happy to help|i'd be happy|i would be happy|i'm happy|glad you asked|thanks for (?:asking|your question)"
    r"|thank you for (?:asking|your question)|okay|ok|alright|hello|hi|claro|por supuesto|buena pregunta"
    r"|bien sûr|bonne question|avec plaisir|gute frage|natürlich|gerne|certo|ottima domanda)(?!\w)", re.IGNORECASE)


@checker("no_opener", final="both")  # reads only the opening, which more text does not change
def no_opener(prompt: str, response: str, n: int | None) -> bool | None:
    """The response does not open with a stock phrase ("Sure!", "Great question") or AI boilerplate."""
    head = response.strip()[:200]
    first = re.split(r"(?<=[.!?])\s", head, maxsplit=1)[0]
    return not (OPENERS.match(head) or has_boilerplate(first))


@checker("ends_with_question")
def ends_with_question(prompt: str, response: str, n: int | None) -> bool | None:
    """The response's last sentence is a question to the user."""
    tail = response.strip().rstrip("*_ )\"'”»")
    return tail.endswith(("?", "？"))


@checker("user_language", final="both")  # a reply does not switch language mid-way
def user_language(prompt: str, response: str, n: int | None) -> bool | None:
    """The response is in the prompt's language; None when either language is unsure."""
    want, got = detect_language(prompt), detect_language(response)
    if want is None or got is None:
        return None
    from salmon.rules import same_language

    return same_language(want, got)


@checker("no_exclamation", final="false")
def no_exclamation(prompt: str, response: str, n: int | None) -> bool | None:
    return "!" not in _CODE.sub(" ", response)


_HEADING = re.compile(r"^ {0,3}#{1,4}[ \t]+\S", re.MULTILINE)
_BOLD = re.compile(r"\*\*[^*\n]*\w[^*\n]*\*\*|__[^_\n]*\w[^_\n]*__")
HEDGES = re.compile(
    r"\b(?:probably|perhaps|maybe|possibly|i think|i believe|i suspect|it seems|as far as i know"
    "|i[\u2019']?m not (?:entirely |completely |totally )?(?:sure|certain)"
    r"|i am not (?:entirely |completely |totally )?(?:sure|certain)|might be wrong)\b", re.IGNORECASE)
EXAMPLE_MARKERS = re.compile(r"\b(?:for example|for instance|such as|e\.g\.)", re.IGNORECASE)


def split_paragraphs(text: str) -> list[str]:
    """The text cut at its blank lines."""
    return re.split(r"\n[ \t]*\n", text.strip())


def paragraphs(text: str) -> int:
    """Blocks of text separated by blank lines (a code block is a block like any other)."""
    return sum(bool(re.search(r"\w", b)) for b in split_paragraphs(text))


def _found_outside_code(pattern: re.Pattern[str]) -> Check:
    def check(prompt: str, response: str, n: int | None) -> bool | None:
        return pattern.search(_CODE.sub(" ", response)) is not None
    return check


# A Markdown heading line ("# ..." to "#### "), bold words (**...** / __...__), a word of
# uncertainty from HEDGES, an example phrase ("for example", "such as", "e.g."): outside code.
for _name, _pattern in (("heading", _HEADING), ("bold", _BOLD), ("hedged", HEDGES),
                        ("example_marker", EXAMPLE_MARKERS)):
    checker(_name, final="true")(_found_outside_code(_pattern))


@checker("paragraphs", final="true")
def multi_paragraph(prompt: str, response: str, n: int | None) -> bool | None:
    """Two or more blocks of text separated by a blank line."""
    return paragraphs(response) >= 2


# --- relations: checkers that compare the two responses of a pair (pure) -----------

Relation = Callable[[str, str, str, bool, bool], int]
RELATIONS: dict[str, Relation] = {}
COVERS_MORE_BY = 2  # sentences the fuller response must add


def relation(name: str) -> Callable[[Relation], Relation]:
    def register(fn: Relation) -> Relation:
        RELATIONS[name] = fn
        return fn
    return register


def _sentence_keys(text: str) -> list[str]:
    return [s.rstrip(".!?\u2026 ").lower() for s in split_sentences(text)]


@relation("covers_more")
def covers_more(prompt: str, a: str, b: str, finished_a: bool, finished_b: bool) -> int:
    """+1 when response a says every sentence of b and at least COVERS_MORE_BY more; -1
    the other way; else 0. True by construction for an answer against its own first
    sentences (`edits.first_sentences`), also when the answer was cut off: it still says
    more (the flags are part of the relation signature but not read here)."""
    ka, kb = _sentence_keys(a), _sentence_keys(b)
    for sign, big, small in ((1, ka, kb), (-1, kb, ka)):
        if small and set(small) <= set(big) and len(big) >= len(small) + COVERS_MORE_BY:
            return sign
    return 0


# --- principles built from the data file ---------------------------------------------

@dataclass(frozen=True)
class Verifiable:
    """One concrete principle (parameter rendered into its text) and its checker."""
    principle: Principle
    family: str
    checker: str
    param: int | None
    split: str
    steer: tuple[str, str] | None = None  # user-turn instructions towards P / towards not-P

    @property
    def pairwise(self) -> bool:
        """A relation family: decided only by comparing two responses (`verdicts_differ`)."""
        return self.checker in RELATIONS

    def check(self, prompt: str, response: str, finished: bool = True) -> bool | None:
        """The checker's verdict, or None when it cannot tell (empty text, cut-off text
        whose verdict could still change)."""
        if not response.strip():
            return None
        if self.pairwise:
            raise SalmonError(f"'{self.family}' compares two responses ({self.checker}): use verdicts_differ")
        info = CHECKERS[self.checker]
        v = info.fn(prompt, response, self.param)
        if v is None or finished:
            return v
        keep = info.final == "both" or (info.final == "true" and v) or (info.final == "false" and not v)
        return v if keep else None


def _render(text: object, n: int | None, where: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise SalmonError(f"{where}: missing or empty text")
    if n is not None and "{n}" not in text:
        raise SalmonError(f"{where}: '{text[:40]}...' needs '{{n}}' where the parameter goes")
    if n is None and "{n}" in text:
        raise SalmonError(f"{where}: '{{n}}' in a family whose checker takes no parameter")
    return " ".join(text.replace("{n}", str(n) if n is not None else "").split())


def _params(raw: dict, needs: bool, where: str) -> list[int | None]:
    params = raw.get("params")
    if not needs:
        if params:
            raise SalmonError(f"{where}: 'params' given but this checker takes none")
        return [None]
    if not isinstance(params, list) or not params or not all(isinstance(p, int) and not isinstance(p, bool)
                                                             and p > 0 for p in params):
        raise SalmonError(f"{where}: 'params' must be a non-empty list of positive whole numbers, got {params!r}")
    return params


def _family(raw: object, where: str, split: str, core: bool = False) -> list[Verifiable]:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise SalmonError(f"{where}: expected a mapping with name, checker, train and test")
    name, check = raw["name"], raw.get("checker")
    where = f"{where} ({name})"
    if check not in CHECKERS and check not in RELATIONS:
        raise SalmonError(f"{where}: unknown checker {check!r} (known: {', '.join([*CHECKERS, *RELATIONS])})")
    needs_param = check in CHECKERS and CHECKERS[check].needs_param  # a relation takes no parameter
    block = raw.get(split)
    if split == "dev":
        if block is None:
            return []
        if isinstance(block, dict) and "params" not in block and isinstance(raw.get("train"), dict):
            block = {**block, "params": raw["train"].get("params")}
    if not isinstance(block, dict) or not isinstance(block.get("phrasings"), list) or not block["phrasings"]:
        raise SalmonError(f"{where}: '{split}' needs 'phrasings' (a list of definition/negation pairs)")
    more = block.get("more_phrasings") if split == "train" and not core else None
    if more is not None and not isinstance(more, list):
        raise SalmonError(f"{where}: 'train: more_phrasings' must be a list of definition/negation pairs")
    phrasings = [*block["phrasings"], *(more or [])]
    out = []
    for n in _params(block, needs_param, f"{where}: {split}"):
        steer = raw.get("steer")
        steer_pair = None
        if steer is not None:
            if not isinstance(steer, dict):
                raise SalmonError(f"{where}: 'steer' must have 'towards' and 'away' instructions")
            steer_pair = (_render(steer.get("towards"), n, f"{where}: steer.towards"),
                          _render(steer.get("away"), n, f"{where}: steer.away"))
        for i, ph in enumerate(phrasings, 1):
            w = f"{where}: {split} phrasing {i}"
            if not isinstance(ph, dict):
                raise SalmonError(f"{w}: expected definition and negation")
            label = str(ph.get("name") or name)
            if n is not None:
                label = label.replace("{n}", str(n)) if "{n}" in label else f"{label} {n}"
            p = Principle(name=label, definition=_render(ph.get("definition"), n, f"{w}: definition"),
                          negation=_render(ph.get("negation"), n, f"{w}: negation"))
            out.append(Verifiable(p, name, check, n, split, steer_pair))
    return out


def load_verifiable(path: str | Path | None = None, split: str = "train",
                    families: list[str] | None = None, core: bool = False) -> list[Verifiable]:
    """Every concrete principle of `split` (one per family x parameter x phrasing); the
    `dev` split has only the families with a `dev` block. `core` leaves out the train
    split's `more_phrasings` (the phrasings `verify_dev` is built from)."""
    if split not in SPLITS:
        raise SalmonError(f"verifiable split must be one of {', '.join(SPLITS)}, got {split!r}")
    files = tuple(str(f) for f in family_files(path))
    return list(_load(files, split, tuple(families) if families else None, core))


def family_files(spec: str | Path | None) -> list[Path]:
    """The family files of `spec`: None is the built-in file; otherwise comma-separated
    parts, each a path or the name of a built-in file (`builtin`, or `extra`: families
    measured but not in the default; see `data/verify/`), read one after another."""
    if spec is None:
        return [_builtin()]
    out = []
    for part in (str(spec).split(",") if not Path(spec).exists() else [str(spec)]):
        part = part.strip()
        if not part or Path(part).exists() or not re.fullmatch(r"[\w-]+", part):
            out += [Path(part)] if part else []
        elif part in BUILTIN_FILES:
            out.append(_builtin(part))
        else:
            raise SalmonError(f"--verify-principles: {part!r} is neither a file nor a built-in family file "
                              f"({', '.join(BUILTIN_FILES)})")
    if not out:
        raise SalmonError(f"--verify-principles {spec!r}: expected a family file or a built-in name")
    return out


@lru_cache(maxsize=8)
def _load(files: tuple[str, ...], split: str, families: tuple[str, ...] | None,
          core: bool = False) -> tuple[Verifiable, ...]:
    raws: list[tuple[str, object]] = []
    for path in files:
        data = read_yaml(path)
        if not isinstance(data, dict) or not isinstance(data.get("families"), list) or not data["families"]:
            raise SalmonError(f"{path}: expected 'families:' with a list of verifiable principle families")
        raws += [(f"{path}: family {i}", raw) for i, raw in enumerate(data["families"], 1)]
    names = [raw.get("name") for _, raw in raws if isinstance(raw, dict)]
    where = ", ".join(files)
    twice = sorted({n for n in names if names.count(n) > 1}, key=str)
    if twice:
        raise SalmonError(f"{where}: verifiable family '{twice[0]}' is defined twice")
    if families:
        unknown = [f for f in families if f not in names]
        if unknown:
            raise SalmonError(f"{where}: unknown verifiable family '{unknown[0]}' (known: {', '.join(map(str, names))})")
    out: list[Verifiable] = []
    for at, raw in raws:
        vs = _family(raw, at, split, core)
        if vs and (not families or vs[0].family in families):
            out.extend(vs)
    return tuple(out)


def _builtin(name: str = "builtin") -> Path:
    return Path(str(resources.files("salmon").joinpath(BUILTIN_FILES[name])))


BUILTIN_FILES = {"builtin": DATA, "extra": "data/verify/extra.yaml"}


def verdicts_differ(v: Verifiable, prompt: str, a: str, b: str, finished_a: bool = True,
                    finished_b: bool = True) -> int:
    """+1 when only response a satisfies v, -1 when only b does, 0 when equal or unknown
    (for a relation family: the relation's own +1 / -1 / 0)."""
    if v.pairwise:
        return RELATIONS[v.checker](prompt, a, b, finished_a, finished_b)
    va, vb = v.check(prompt, a, finished_a), v.check(prompt, b, finished_b)
    if va is None or vb is None or va == vb:
        return 0
    return 1 if va else -1
