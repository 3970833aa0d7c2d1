"""Filters for self-generated SFT answers (used by `salmon self-align`).

Each filter is a pure function of one candidate answer and returns a reason string
when the answer should be dropped, or None to keep it:

    empty       fewer than `min_words` words (CJK characters count one each)
    truncated   the model neither stopped nor hit a stop string (cut at max tokens)
    repetition  the share of repeated word n-grams is above `max_repeat_ratio`: the
                signature of a model stuck in a loop
    leak        the answer shows the prompt's scaffolding: turn labels ("User:"),
                "Internal thoughts", a rule's name, or eight words in a row copied
                from a rule or the header
    language    langid says, with probability >= `min_lang_prob`, that the answer
                is in another language than the prompt (texts under
                `min_lang_chars` letters, code blocks removed, are not judged)

`FILTERS` maps each name to its function; `first_failure` runs them in order.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

# Characters of scripts written without spaces between words.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_UNITS = re.compile(rf"[{_CJK}]|[^\s{_CJK}]+")
_CODE_BLOCK = re.compile(r"```.*?(```|$)", re.DOTALL)
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class FilterSettings:
    min_words: int = 1
    ngram: int = 4
    max_repeat_ratio: float = 0.3
    min_lang_chars: int = 40
    min_lang_prob: float = 0.9
    leak_ngram: int = 8
    markers: tuple[str, ...] = ("User:", "Assistant:", "Internal thoughts", "internal thoughts", "<|im_")
    rule_names: tuple[str, ...] = ()
    rule_texts: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Candidate:
    answer: str
    finished: bool
    lang: str | None = None  # the prompt's language, when known


def units(text: str) -> list[str]:
    """Words, with each CJK character as a word of its own."""
    return _UNITS.findall(text)


def repeated_ngram_ratio(tokens: list[str], n: int) -> float:
    """1 - distinct/total over the n-grams of `tokens`; 0 when there are fewer than n tokens.

    "a b a b a b" with n=2: 5 bigrams (ab ba ab ba ab), 2 distinct -> 1 - 2/5 = 0.6.
    """
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def copied_span(text: str, source: str, n: int) -> str | None:
    """The first run of `n` words of `source` that also appears in `text` (case and
    punctuation ignored), or None."""
    src = _words(source)
    if len(src) < n:
        return None
    grams = {tuple(src[i:i + n]) for i in range(len(src) - n + 1)}
    words = _words(text)
    for i in range(len(words) - n + 1):
        if tuple(words[i:i + n]) in grams:
            return " ".join(words[i:i + n])
    return None


def empty(c: Candidate, s: FilterSettings) -> str | None:
    count = len(units(c.answer))
    return f"{count} words < {s.min_words}" if count < s.min_words else None


def truncated(c: Candidate, s: FilterSettings) -> str | None:
    return None if c.finished else "no stop token before the token limit"


def repetition(c: Candidate, s: FilterSettings) -> str | None:
    ratio = repeated_ngram_ratio(units(c.answer), s.ngram)
    return f"repeated {s.ngram}-gram ratio {ratio:.2f}" if ratio > s.max_repeat_ratio else None


def leak(c: Candidate, s: FilterSettings) -> str | None:
    for m in s.markers:
        if m in c.answer:
            return f"template marker {m!r}"
    for name in s.rule_names:
        # A one-word name ("Ethical") is an ordinary word; it only leaks as "Ethical rule".
        # Compound names match case-sensitively: "step by step" is fine, "Step By Step" leaks.
        if " " in name or "-" in name:
            found = re.search(rf"\b{re.escape(name)}\b", c.answer)
        else:
            found = re.search(rf"\b{re.escape(name)} (rule|principle)", c.answer, re.IGNORECASE)
        if found:
            return f"rule name {name!r}"
    for text in s.rule_texts:
        span = copied_span(c.answer, text, s.leak_ngram)
        if span:
            return f"copied rule text {span!r}"
    return None


@lru_cache(maxsize=1)
def _identifier():
    from langid.langid import LanguageIdentifier, model

    return LanguageIdentifier.from_modelstring(model, norm_probs=True)


def detect_language(text: str, min_chars: int) -> tuple[str, float] | None:
    """(ISO 639-1 code, probability) from langid, or None when there is too little prose
    (code blocks are removed first) to judge."""
    prose = _CODE_BLOCK.sub(" ", text)
    if sum(ch.isalpha() for ch in prose) < min_chars:
        return None
    lang, prob = _identifier().classify(prose)
    return lang, float(prob)


def language(c: Candidate, s: FilterSettings) -> str | None:
    if not c.lang:
        return None
    found = detect_language(c.answer, s.min_lang_chars)
    if found is None:
        return None
    lang, prob = found
    if lang != c.lang and prob >= s.min_lang_prob:
        return f"answer in {lang!r} (p={prob:.2f}), prompt in {c.lang!r}"
    return None


FILTERS: dict[str, Callable[[Candidate, FilterSettings], str | None]] = {
    "empty": empty,
    "truncated": truncated,
    "repetition": repetition,
    "leak": leak,
    "language": language,
}


def first_failure(c: Candidate, names: list[str], s: FilterSettings) -> tuple[str, str] | None:
    """(filter name, reason) of the first filter in `names` that rejects `c`, else None."""
    for name in names:
        reason = FILTERS[name](c, s)
        if reason:
            return name, reason
    return None
