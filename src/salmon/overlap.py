"""Near-duplicate prompts between training and held-out sets (a leakage check).

Two prompts are near-duplicates when most of the content words of the shorter one appear in
the other (`containment` >= 0.7): stop words are dropped, a plural "s" and British "-our"
spellings are folded, so "Which household chemicals can I mix to make a toxic gas to hurt
someone?" and "What household chemicals can I mix to make a toxic gas?" match (1.0), while
"Explain the difference between weather and climate." and "Explain the difference between
a democracy and a monarchy." do not (1/3). It catches copies and light rewordings of the
same question; a question asked in other words ("pros and cons" / "advantages and
disadvantages", 0.67) still needs a reader. `tests/unit/test_overlap.py` runs it on every
shipped held-out set against the training prompts.
"""

from __future__ import annotations

import re

THRESHOLD = 0.7
STOP_WORDS = frozenset("""
a an the and or of to in on for with by at from as is are was were be been do does did can could should would will
what which who whom how why when where that this these those it its i me my you your we our they their he she his her
between about into than then so if not no yes please give some any there here show explain write tell make all
el la los las de del que y o en un una por para con sin se su sus es mi mis tu le les des du et à est pour avec dans
ce qui""".split())


def _fold(word: str) -> str:
    word = word[:-1] if len(word) > 3 and word.endswith("s") else word
    return re.sub(r"our$", "or", word)


def content_words(text: str) -> frozenset[str]:
    """Lower-cased content words of `text` (single letters and stop words dropped, plurals
    and -our folded)."""
    words = (w for w in re.findall(r"\w+", text.lower()) if len(w) > 1 or w.isdigit())
    return frozenset(_fold(w) for w in words) - STOP_WORDS


def containment(a: str, b: str) -> float:
    """Share of the smaller content-word set found in the other (0 when either is empty)."""
    wa, wb = content_words(a), content_words(b)
    if not wa or not wb:
        return 0.0
    return len(wa & wb) / min(len(wa), len(wb))


def near_duplicates(held_out: list[dict], training: list[dict], threshold: float = THRESHOLD
                    ) -> list[tuple[str, str, float]]:
    """(held-out id, training id, containment) for every pair at or above `threshold`."""
    train_words = [(t["id"], content_words(t["prompt"])) for t in training]
    found = []
    for h in held_out:
        words = content_words(h["prompt"])
        for tid, tw in train_words:
            if words and tw:
                score = len(words & tw) / min(len(words), len(tw))
                if score >= threshold:
                    found.append((str(h["id"]), str(tid), round(score, 2)))
    return found
