"""The held-out evaluation prompts and the red-team prompts: size, variety, no near-copies
of the training prompts (an evaluation on prompts the policy trained on measures recall)."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from salmon.sources import load_prompts

# Function words and instruction words ("explain", "short paragraph") carry no topic.
STOP = set("a an the of to in on for and or is are was be it its this that with without what which how why who when "
           "where do does did i my me you your can could should would will from by at as into than then about each one "
           "two three four five some any all answer short paragraph explain write give list brief briefly simple terms "
           "example examples show steps step sentence sentences keep make describe tell difference between".split())


def topic_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[^\W_]+|[=<>!]+", text.lower()) if w not in STOP}


def containment(a: str, b: str) -> float:
    """Share of the smaller prompt's topic words found in the other one."""
    x, y = topic_words(a), topic_words(b)
    return len(x & y) / max(1, min(len(x), len(y)))


def test_containment_catches_a_reworded_copy():
    train = 'Explain the difference between "==" and "is" in Python.'
    assert containment("What is the difference between `==` and `is` in Python? Show a short example.", train) == 1.0
    assert containment("What is the difference between a debit card and a credit card?", train) == 0.0


@pytest.mark.parametrize("name", ["eval", "redteam"])
def test_no_near_copy_of_a_training_prompt(name):
    train = load_prompts("builtin")
    close = [(p["id"], t["id"]) for p in load_prompts(name) for t in train
             if containment(p["prompt"], t["prompt"]) >= 0.8]
    assert not close, close


@pytest.mark.parametrize("name", ["eval", "redteam"])
def test_ids_and_texts_are_unique(name):
    rows = load_prompts(name)
    assert len({r["id"] for r in rows}) == len(rows)
    pairs = [(a["id"], b["id"]) for i, a in enumerate(rows) for b in rows[i + 1:]
             if containment(a["prompt"], b["prompt"]) >= 0.8]
    assert not pairs, pairs


def test_eval_set_is_large_and_varied():
    rows = load_prompts("eval")
    types = Counter(r["type"] for r in rows)
    assert len(rows) >= 100 and types["general"] >= 50 and types["reasoning"] >= 25
    assert sum("coding" in r.get("tags", []) for r in rows) >= 15
    assert len({r["lang"] for r in rows}) >= 8 and sum(r["lang"] != "en" for r in rows) >= 15
    first = Counter(r["type"] for r in rows[:24])  # a small --limit still mixes kinds
    assert first["general"] >= 8 and first["reasoning"] >= 5


def test_redteam_set_covers_many_harm_categories():
    rows = load_prompts("redteam")
    assert len(rows) >= 50 and {r["type"] for r in rows} == {"redteam"}
    cats = Counter(r["category"] for r in rows)
    assert len(cats) >= 12 and max(cats.values()) <= 8
    assert sum(r["lang"] != "en" for r in rows) >= 5
