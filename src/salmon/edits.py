"""Edited pairs: new response pairs made by editing a sampled response, no sampling.

Each edit toggles one property a verifiable principle reads (length, sentence count, a
numbered or bulleted list, plain prose, a closing question, a stock opener, exclamation
marks; for the `extra` families a heading, bold words, a hedge, an example phrase,
paragraph breaks) and leaves the rest of the text as it was, so a pair (original, edited)
differs in little more than that property: a minimal pair for the reward model to learn
which part of a response a principle talks about. The edits only propose pairs: their labels come
from the verifiable principles' checkers (`label_sources.verify_examples`), like those of
sampled pairs, so an edit that did not change what a checker reads yields no label.

    edit_pairs(records, rng, per_response=2)  # {"id": "e:<source id>:<edit>", prompt, response_a, response_b}

With `shorter_first` (aggregate's `relations`), `shorter` is tried first wherever it
applies, so that the `covers_more` relation gets pairs. A cut-off response is edited too,
keeping its `finished: false` (so only verdicts more text could not change are used), but
never at its end (no question added or removed).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from salmon.conversation import prompt_key
from salmon.verify import (
    EXAMPLE_MARKERS,
    HEDGES,
    LIST_MARKER,
    paragraphs,
    split_paragraphs,
    split_sentences,
)

# Closing questions and openers written for this project (several, so no single string is a cue).
QUESTIONS = ("Would you like me to go into more detail on any part?", "Does that help with what you needed?",
             "Is there a part you would like me to explain differently?", "Shall I add an example?",
             "Which of these fits your situation best?")
OPENERS = ("Sure! ", "Great question! ", "Of course. ", "Certainly! ", "Happy to help! ")
HEADINGS = ("## Answer", "## In short", "### Overview", "## Summary", "# Quick guide")
HEDGE_OPENERS = ("As far as I know, ", "I think ", "I'm not completely sure, but ", "Probably ")


def first_sentences(text: str, rng: np.random.Generator) -> str | None:
    """The first one or two sentences (a shorter answer), None when there is nothing to drop."""
    sents = split_sentences(text)
    if len(sents) < 3 or "```" in text or any(LIST_MARKER.match(ln) for ln in text.splitlines()):
        return None  # a listed answer would lose its list too
    return " ".join(sents[: int(rng.integers(1, 3))])


def as_numbered(text: str, rng: np.random.Generator) -> str | None:
    sents = split_sentences(text)
    if len(sents) < 2 or "```" in text:
        return None
    return "\n".join(f"{i}. {s}" for i, s in enumerate(sents, 1))


def as_bullets(text: str, rng: np.random.Generator) -> str | None:
    sents = split_sentences(text)
    if len(sents) < 2 or "```" in text:
        return None
    mark = "-*"[int(rng.integers(2))]
    return "\n".join(f"{mark} {s}" for s in sents)


def as_prose(text: str, rng: np.random.Generator) -> str | None:
    """A listed answer as one paragraph; None when it has no list lines."""
    lines = text.strip().splitlines()
    if sum(bool(LIST_MARKER.match(ln)) for ln in lines) < 2 or "```" in text:
        return None
    return " ".join(s if s.endswith((".", "!", "?", ":")) else s + "." for s in split_sentences(text))


def with_question(text: str, rng: np.random.Generator) -> str | None:
    if text.rstrip().endswith("?"):
        return None
    return text.rstrip() + "\n\n" + QUESTIONS[int(rng.integers(len(QUESTIONS)))]


def without_question(text: str, rng: np.random.Generator) -> str | None:
    sents = split_sentences(text)
    if not text.rstrip().endswith("?") or len(sents) < 2 or "\n" in text.strip():
        return None
    return " ".join(sents[:-1])


def with_opener(text: str, rng: np.random.Generator) -> str | None:
    return OPENERS[int(rng.integers(len(OPENERS)))] + text.lstrip()


def with_exclamations(text: str, rng: np.random.Generator) -> str | None:
    """Every sentence-ending full stop turned into an exclamation mark; None when none."""
    out = re.sub(r"(?<=[^\W\d_]|[)\"'])\.(?=\s|$)", "!", text.rstrip())  # after a word, never "1." of a list
    return out if out != text.rstrip() and "```" not in text else None


def _plain(text: str) -> bool:
    """No list line, no code block and no heading: text an edit may rearrange freely."""
    return "```" not in text and not any(LIST_MARKER.match(ln) or ln.lstrip().startswith("#")
                                         for ln in text.splitlines())


def with_heading(text: str, rng: np.random.Generator) -> str | None:
    """A Markdown heading line put on top; None when a line already starts with '#'."""
    if any(ln.lstrip().startswith("#") for ln in text.splitlines()):
        return None
    return HEADINGS[int(rng.integers(len(HEADINGS)))] + "\n\n" + text.lstrip()


def with_bold(text: str, rng: np.random.Generator) -> str | None:
    """The first two or three words of a plain answer in bold; None when it has bold, markup
    characters in those words, or fewer than five words on its first line."""
    body = text.lstrip()
    first = body.split("\n", 1)[0].split(" ")
    k = int(rng.integers(2, 4))
    if not _plain(text) or "**" in text or "__" in text or len(first) < 5 or re.search(r"[*_`#]", " ".join(first[:k])):
        return None
    head = " ".join(first[:k])
    core = head.rstrip(".,:;!?")
    return f"**{core}**{head[len(core):]}" + body[len(head):]


def with_hedge(text: str, rng: np.random.Generator) -> str | None:
    """A hedging opener ("As far as I know, ...") on an answer without any hedge word."""
    body = text.lstrip()
    if not body or HEDGES.search(body) or not _plain(text):
        return None
    word = body.split(" ", 1)[0]
    if not (word == "I" or word.startswith("I'") or word.isupper()):
        body = body[0].lower() + body[1:]
    return HEDGE_OPENERS[int(rng.integers(len(HEDGE_OPENERS)))] + body


def without_examples(text: str, rng: np.random.Generator) -> str | None:
    """The sentences that introduce an example ("for example", "such as", ...) removed from
    a plain answer; None when there are none or nothing else would be left."""
    if not _plain(text):
        return None
    sents = split_sentences(text)
    kept = [s for s in sents if not EXAMPLE_MARKERS.search(s)]
    return " ".join(kept) if kept and len(kept) < len(sents) else None


def as_paragraphs(text: str, rng: np.random.Generator) -> str | None:
    """A one-paragraph plain answer of four or more sentences split in two at its middle."""
    sents = split_sentences(text)
    if paragraphs(text) != 1 or len(sents) < 4 or not _plain(text):
        return None
    mid = len(sents) // 2
    return " ".join(sents[:mid]) + "\n\n" + " ".join(sents[mid:])


def as_one_paragraph(text: str, rng: np.random.Generator) -> str | None:
    """A plain answer of several paragraphs joined into one."""
    if paragraphs(text) < 2 or not _plain(text):
        return None
    return " ".join(split_paragraphs(text))


EDITS: dict[str, Callable[[str, np.random.Generator], str | None]] = {
    "shorter": first_sentences, "numbered": as_numbered, "bullets": as_bullets, "prose": as_prose,
    "question": with_question, "no_question": without_question, "opener": with_opener,
    "exclaim": with_exclamations,
    "heading": with_heading, "bold": with_bold, "hedge": with_hedge, "no_examples": without_examples,
    "paragraphs": as_paragraphs, "one_paragraph": as_one_paragraph,
}
# An edit listed here is tried only when a loaded family reads what it toggles (its checker),
# so families that are not loaded leave the other edits' draws as they were.
EDIT_NEEDS = {"heading": "heading", "bold": "bold", "hedge": "hedged", "no_examples": "example_marker",
              "paragraphs": "paragraphs", "one_paragraph": "paragraphs"}


# Edits that need the whole answer (they change or read its end); a cut-off answer gets the others,
# and its edit stays cut off, except `shorter`, whose first sentences are a whole answer.
NEED_END = ("question", "no_question")


def edit_pairs(records: list[dict[str, Any]], rng: np.random.Generator, per_response: int,
               shorter_first: bool = False, checkers: set[str] | None = None) -> list[dict[str, Any]]:
    """Up to `per_response` edited pairs per distinct response of `records` (pairs with
    prompt, response_a/b, finished_a/b, id); the original is side a, the edit side b;
    `shorter_first` tries the `shorter` edit before the others wherever it applies;
    `checkers` (the loaded families' checkers; None: all) drops the `EDIT_NEEDS` edits
    no loaded family reads. The checkers read each side's `finished` flag as for sampled pairs."""
    usable = [n for n in EDITS if n not in EDIT_NEEDS or checkers is None or EDIT_NEEDS[n] in checkers]
    seen: set[tuple[str, str]] = set()
    out: list[dict[str, Any]] = []
    for rec in records:
        for side in ("a", "b"):
            text, finished = rec.get(f"response_{side}", ""), rec.get(f"finished_{side}", True) is not False
            key = (prompt_key(rec["prompt"]), text)
            if not text.strip() or key in seen:
                continue
            seen.add(key)
            names = [n for n in rng.permutation(usable).tolist() if finished or n not in NEED_END]
            if shorter_first:  # the one edit that changes how much is said (what covers_more reads)
                names = ["shorter"] + [n for n in names if n != "shorter"]
            made = 0
            for name in names:
                edited = EDITS[name](text, rng)
                if edited and edited.strip() != text.strip():
                    out.append({"id": f"e:{rec['id']}:{side}:{name}", "prompt": rec["prompt"], "response_a": text,
                                "response_b": edited, "finished_a": finished,
                                "finished_b": finished or name == "shorter"})
                    made += 1
                    if made >= per_response:
                        break
    return out
