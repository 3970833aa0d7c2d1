"""Contrastive scoring: the reward of a response under a principle list is its raw score
under the list minus its raw score under the list's negation,

    r(x, y | P) = s(x, y | P) - s(x, y | not P)

so anything the raw score `s` gives a response whatever the principles say (its length,
its style, the model's taste) cancels, and negating the principles flips every
preference exactly. What is left to learn is how the score moves with the principle text;
`train-rm --objective contrastive` trains only that (the flip term of `reward.losses`,
on each row and its negated twin), and writes `"scoring": "contrastive"` in
`salmon_rm.json`, which makes every scorer (standalone RM, the RL reward, the server)
score this way. The flip rate of such a model is 1 by construction; its accuracy under
the principle is what tells whether it reads the principle.

A principle's negation: the one given by the caller (`salmon eval-rm` passes its labelled
negation), else the built-in collections' and verifiable phrasings' own negation of that
sentence, else the main-clause negation of `salmon.negation`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from salmon.errors import SalmonError

SCORING_KEY = "scoring"
CONTRASTIVE = "contrastive"


def is_contrastive(meta: dict[str, Any]) -> bool:
    return meta.get(SCORING_KEY) == CONTRASTIVE


@lru_cache(maxsize=1)
def known_negations() -> dict[str, str]:
    """definition -> negation (and back) for every built-in principle and verifiable phrasing."""
    from salmon.principles import builtin_names, load_principles
    from salmon.verify import SPLITS, load_verifiable

    pairs = [(p.definition, p.negation) for name in builtin_names() for p in load_principles(name)]
    pairs += [(v.principle.definition, v.principle.negation) for s in SPLITS for v in load_verifiable(None, s)]
    out: dict[str, str] = {}
    for d, n in pairs:
        out.setdefault(d, n)
        out.setdefault(n, d)
    return out


def negate_list(principles: Sequence[str]) -> list[str]:
    """Each principle's negation (names dropped, as the RM template drops them)."""
    from salmon.negation import derive_negation
    from salmon.reward.template import normalize_principles

    known = known_negations()
    return [known.get(d) or derive_negation(d) for d in normalize_principles(list(principles))]


def contrastive_score(raw: Callable[[list, list, list], list[float]], prompts: Sequence, responses: Sequence[str],
                      principles: Sequence[Sequence[str]],
                      negations: Sequence[Sequence[str]] | None = None) -> list[float]:
    """raw(principles) - raw(negations), one raw call over both (so a scorer that shares
    each (prompt, response) prefix runs it once for the two)."""
    if negations is None:
        negations = [negate_list(ps) for ps in principles]
    if len(negations) != len(principles):
        raise SalmonError(f"score: got {len(principles)} principle lists and {len(negations)} negations; they must match")
    n = len(principles)
    scores = raw([*prompts, *prompts], [*responses, *responses], [*map(list, principles), *map(list, negations)])
    return [a - b for a, b in zip(scores[:n], scores[n:], strict=True)]
