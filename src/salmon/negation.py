"""Default negations of principle definitions: negate the main clause, or say it cannot.

A definition such as "When the question has a yes/no answer, the response gives that
answer first." is a condition, then the main clause about the response. Only the main
clause is negated ("..., the response does not give that answer first."): negating the
first verb anywhere would put "not" in the condition and train on labels that contradict
the text shown. The main clause must start with its subject (the response / reply /
answer / assistant / output / code, or "it"), then its verb:

    The response is concise.            -> The response is not concise.
    The answer should cite sources.     -> The answer should not cite sources.
    The response clearly states X.      -> The response does not clearly state X.
    The response has a clear structure. -> The response does not have a clear structure.
    The response does not use jargon.   -> The response does use jargon.

`negate_main_clause` returns None where it cannot tell (no such subject, a condition
without a comma, a verb it cannot inflect); a principle file must then give `negation:`.
"""

from __future__ import annotations

import re

SUBORDINATORS = {"when", "whenever", "if", "where", "wherever", "for", "unless", "while", "although",
                 "though", "because", "since", "once", "after", "before", "in", "on", "given", "as", "with"}
AUXILIARIES = {"should", "must", "will", "can", "could", "would", "may", "might", "shall", "does", "do",
               "is", "are", "was", "were", "has", "have"}
ADVERBS = {"always", "also", "only", "still", "first", "often", "usually", "directly"}
_SUBJECTS = [re.compile(
    rf"^(?:(?:the|its|this|each|every|any|a|an)\s+(?:[\w'/-]+\s+){{{n}}}"
    r"(?:response|responses|reply|replies|answer|answers|assistant|output|code|text)|it|they)\b\s+",
    re.IGNORECASE) for n in range(4)]  # the subject's noun after 0..3 other words
_WORD = re.compile(r"[A-Za-z'-]+")


def base_form(verb: str) -> str | None:
    """The plain form of a third-person singular verb ("gives" -> "give"), or None."""
    low = verb.lower()
    if not low.isalpha() or not low.endswith("s") or low.endswith("ss") or len(low) < 3:
        return None
    if low.endswith("ies") and len(low) > 4:
        return verb[:-3] + "y"
    if re.search(r"(?:sh|ch|x|z|ss|o)es$", low):
        return verb[:-2]
    return verb[:-1]


def _split_condition(text: str) -> tuple[str, str] | None:
    """(leading condition with its comma, main clause); None when a condition has no comma."""
    first = text.split(maxsplit=1)[0].lower().strip(",")
    if first not in SUBORDINATORS:
        return "", text
    comma = text.find(", ")
    return (text[: comma + 2], text[comma + 2:]) if comma > 0 else None


def _negate_verb(words: list[str]) -> list[str] | None:
    """Negate a clause given as words starting at the verb (adverbs allowed before it)."""
    i = 0
    while i < len(words) and (words[i].lower() in ADVERBS or words[i].lower().endswith("ly")):
        i += 1
    if i == len(words):
        return None
    verb, low = words[i], words[i].lower()
    following = words[i + 1].lower() if i + 1 < len(words) else ""
    if low in AUXILIARIES and i == 0:
        if following == "not":  # already negative: drop the "not"
            return [verb] + words[2:]
        if low in ("has", "have") and not (following == "been" or following.endswith("ed")):
            return ["does" if low == "has" else "do", "not", "have"] + words[1:]
        return [verb, "not"] + words[1:]
    if low == "never":
        return None
    base = base_form(verb) if _WORD.fullmatch(verb) else None
    if base is None or low in AUXILIARIES:
        return None
    return ["does", "not"] + words[:i] + [base] + words[i + 1:]


def negate_main_clause(definition: str) -> str | None:
    """The definition with its main clause negated, or None when that clause is unclear."""
    text = " ".join(definition.split())
    if not text:
        return None
    parts = _split_condition(text)
    if parts is None:
        return None
    lead, main = parts
    for subject in _SUBJECTS:  # "Any code in the response is ...": the shortest subject that fits
        m = subject.match(main)
        negated = _negate_verb(main[m.end():].split(" ")) if m else None
        if negated is not None:
            return lead + main[: m.end()] + " ".join(negated)
    return None


def derive_negation(definition: str) -> str:
    """The main-clause negation, or a plain denial of the whole sentence ("It is not the
    case that: ...") for free text whose clause cannot be told."""
    return negate_main_clause(definition) or f"It is not the case that: {definition.strip()}"
