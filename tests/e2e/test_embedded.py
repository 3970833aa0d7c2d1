"""End to end on the real embedded model (SmolLM2-135M-Instruct): prepare, then generate."""

import json

import pytest

pytestmark = pytest.mark.e2e


def test_prepare_and_generate_with_embedded_model(tmp_path):
    from salmon.generate import GenerateConfig, generate
    from salmon.models import MARKER, prepare_default_model

    folder = prepare_default_model()
    assert (folder / MARKER).exists() and (folder / "model.safetensors").exists()
    assert prepare_default_model() == folder  # cached: no second conversion
    out = generate(GenerateConfig(prompts="eval", limit=2, n=1, max_new_tokens=24, temperature=0,
                                  out=str(tmp_path / "r.jsonl"), progress=False))
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(recs) == 2
    # A real instruct model writes words, not token soup.
    words = " ".join(r["responses"][0] for r in recs).split()
    assert len(words) >= 10 and sum(w.isalpha() for w in words) / len(words) > 0.5
