"""The `degrade` label source: a sampled answer against a copy made worse in the one way a
judge principle names, so the label is right by construction, not by a judge.

    Helpful               the answer to another prompt of the run (off topic)
    Concise               two of its own sentences said again at the end
    Clear And Structured  its sentences in a shuffled order, as one paragraph
    Thorough              its first sentence only
    No Boilerplate        an AI remark, a stock disclaimer or the question restated, in front

The original wins under the principle and loses under its negation (`negation_prob`, and
the negated twin with `twins`). The principle's text is the one in the aggregate's
`--principles` file with that name; a degradation whose principle is not in the file is not
used. What the label claims is only the direction of one edit ("the same answer with a
disclaimer in front is less free of boilerplate"), never that the original is good.
Red-team prompts are left out: "answer the question asked" is not what Harmless wants there.
Measured: docs/label-sources.md ("Degraded answers for five judge principles").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from salmon.conversation import last_user_text, prompt_key
from salmon.principles import Principle
from salmon.verify import split_sentences

BOILERPLATE = ("As an AI language model, I do not have personal opinions, but I can share some general information. ",
               "Disclaimer: the following is general information only and may not fit your situation. ",
               "You are asking: \"{question}\" That is a good question, so let me answer it. ")


def _plain_sentences(text: str, least: int) -> list[str] | None:
    """The sentences of a text without code, when it has at least `least` of them."""
    if "```" in text:
        return None
    sents = split_sentences(text)
    return sents if len(sents) >= least else None


def repeated(text: str, rng: np.random.Generator) -> str | None:
    """The answer, then two of its sentences again (its own format kept): repetition."""
    sents = _plain_sentences(text, 2)
    if sents is None:
        return None
    k = int(rng.integers(1, len(sents)))
    return text.rstrip() + "\n\n" + f"{sents[k]} {sents[0]}"


def shuffled(text: str, rng: np.random.Generator) -> str | None:
    """Its sentences in another order, never starting with the first one: a jumbled order."""
    sents = _plain_sentences(text, 4)
    if sents is None:
        return None
    order = rng.permutation(len(sents)).tolist()
    if order[0] == 0:  # rotate so the first sentence is not first (the order stays a permutation)
        order = order[1:] + order[:1]
    return " ".join(sents[i] for i in order)


def first_sentence(text: str, rng: np.random.Generator) -> str | None:
    """Its first sentence only, from an answer of four sentences or more: superficial."""
    sents = _plain_sentences(text, 4)
    return sents[0] if sents else None


def with_boilerplate(text: str, rng: np.random.Generator, question: str = "") -> str | None:
    """One of BOILERPLATE in front (the question restated only when there is one)."""
    choices = [b for b in BOILERPLATE if question.strip() or "{question}" not in b]
    pick = choices[int(rng.integers(len(choices)))]
    return pick.format(question=" ".join(question.split())) + text.lstrip()


# principle name -> edit; Helpful (another prompt's answer) is made in `degrade_pairs`
EDITS: dict[str, Callable[..., str | None]] = {
    "Concise": repeated, "Clear And Structured": shuffled, "Thorough": first_sentence,
    "No Boilerplate": with_boilerplate,
}
OFF_TOPIC = "Helpful"
NAMES = (OFF_TOPIC, *EDITS)


def _responses(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each distinct (prompt, response) of the pairs once, red-team prompts left out."""
    seen, out = set(), []
    for pair in pairs:
        if pair.get("type") == "redteam":
            continue
        for side in ("a", "b"):
            text = pair.get(f"response_{side}", "")
            key = prompt_key(pair["prompt"])
            if (key, text) not in seen:
                seen.add((key, text))
                out.append({"id": f"{pair['id']}:{side}", "prompt": pair["prompt"], "key": key, "text": text})
    return out


def degrade_pairs(pairs: list[dict[str, Any]], principles: dict[str, Principle], rng: np.random.Generator,
                  per_response: int) -> tuple[list[tuple[Principle, dict[str, Any]]], Counter]:
    """(principle, pair with response_a the original and response_b the worse copy) for up to
    `per_response` degradations per distinct answer, drawn among those that apply; and counts
    of what was dropped (empty answers, degradations that do not apply)."""
    counts: Counter = Counter()
    responses = _responses(pairs)
    names = [n for n in NAMES if n in principles]
    out = []
    for r in responses:
        if not r["text"].strip():
            counts["degrade_dropped:empty"] += 1
            continue
        worse = {}
        for name in names:
            if name == OFF_TOPIC:
                others = [o for o in responses if o["text"].strip() and o["text"].strip() != r["text"].strip()
                          and o["key"] != r["key"]]
                w = others[int(rng.integers(len(others)))]["text"] if others else None
            elif name == "No Boilerplate":
                w = with_boilerplate(r["text"], rng, last_user_text(r["prompt"]))
            else:
                w = EDITS[name](r["text"], rng)
            if w is None or w.strip() == r["text"].strip():
                counts[f"degrade_not_applicable:{name}"] += 1
            else:
                worse[name] = w
        keys = list(worse)
        for name in (keys[j] for j in rng.permutation(len(keys))[:per_response]):
            out.append((principles[name], {"id": f"{r['id']}:{name}", "prompt": r["prompt"],
                                           "response_a": r["text"], "response_b": worse[name]}))
    counts["degrade_pairs"] = len(out)
    return out, counts
