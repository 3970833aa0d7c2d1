"""The judge on the real embedded model: prefix sharing matches the reference, and the
judge reads the principle (a clear-cut pair flips with the principle's negation)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def _embedded() -> str:
    """Reuse the user's prepared model when there is one; otherwise prepare it."""
    from salmon.models import EMBEDDED, MARKER, prepare_default_model

    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "salmon" / "models" / EMBEDDED.folder
    return str(home) if (home / MARKER).exists() else str(prepare_default_model())


def test_real_model_shared_matches_reference():
    from salmon.judge.core import choice_token_ids, load_judge_template, score_pairs
    from salmon.models import load_causal_lm, load_tokenizer

    spec = _embedded()
    tok, model = load_tokenizer(spec), load_causal_lm(spec, dtype="float32", device="cpu")
    template = load_judge_template("parens")
    choices = choice_token_ids(tok, template, spec)
    jobs = [("What is the capital of France?", "The capital of France is Paris.",
             "France is a country in Europe with many cities, a long history and famous food.",
             ["The response does what the user asked and answers the question directly.",
              "The response is written in German."]),
            ("Say hello in Spanish.", "Hola.", "Hello!", ["The response is in Spanish."])]
    shared = score_pairs(model, tok, template, choices, jobs, "shared")
    ref = score_pairs(model, tok, template, choices, jobs, "reference")
    diffs = [abs(s[k] - r[k]) for vs, ws in zip(shared, ref, strict=True)
             for s, r in zip(vs, ws, strict=True) for k in ("score_ab", "score_ba")]
    assert max(diffs) < 1e-3
    assert shared[0][0]["score"] > 0  # the direct answer wins under "answers the question directly"
