"""Generation backends on tiny random Llamas: conversion cache, output shape, finished
flags, seeds, greedy agreement with the reference, errors."""

from __future__ import annotations

import pytest

from salmon.backends.base import SamplingParams, finish_sample
from salmon.backends.bench import agreement, common_prefix
from salmon.backends.load import load_backend, resolve_backend
from salmon.errors import SalmonError

PROMPTS = ["Say hello.", "What is the capital of France, and why is it there?", "x", "List three colours."]


@pytest.fixture(scope="module")
def backends(tiny_model):
    ct2 = load_backend("ct2", str(tiny_model), device="cpu")
    hf = load_backend("hf", str(tiny_model), device="cpu", tokenizer=ct2.tokenizer)
    return {"hf": hf, "ct2": ct2}


def _texts(tok):
    from salmon.chat import user_prompt

    return [user_prompt(tok, p) for p in PROMPTS]


def test_ctranslate2_is_installed():
    import ctranslate2  # a dependency: CI must fail here, not skip, when it is missing

    assert ctranslate2.__version__

    assert resolve_backend("auto", "cpu") == "ct2"


@pytest.mark.parametrize("name", ["hf", "ct2"])
def test_samples_have_the_right_shape(backends, name):
    b = backends[name]
    out = b.generate(_texts(b.tokenizer), SamplingParams(max_new_tokens=6, temperature=0.8, n=2, seed=1))
    assert len(out) == len(PROMPTS) and all(len(r) == 2 for r in out)
    for s in (s for r in out for s in r):
        assert set(s) == {"text", "finished", "num_tokens", "token_ids"}
        assert isinstance(s["text"], str) and s["finished"] is False  # random weights never pick EOS here
        assert s["num_tokens"] == len(s["token_ids"]) == 6


def test_ct2_greedy_matches_the_reference(backends):
    texts = _texts(backends["hf"].tokenizer)
    params = SamplingParams(max_new_tokens=8, temperature=0.0)
    hf, ct2 = (backends[k].generate(texts, params) for k in ("hf", "ct2"))
    assert [s[0]["token_ids"] for s in ct2] == [s[0]["token_ids"] for s in hf]


def test_ct2_sampling_is_reproducible_per_seed(backends):
    b = backends["ct2"]
    texts = _texts(b.tokenizer)

    def run(seed):
        return [[s["token_ids"] for s in r] for r in b.generate(texts, SamplingParams(max_new_tokens=6, n=2, seed=seed))]

    first = run(3)
    assert run(5) != first
    assert run(3) == first


def test_conversion_is_cached_and_keyed_by_weights(tiny_model, tmp_path):
    from salmon.backends.ct2 import converted_model
    from salmon.models import build_tiny_model

    a = converted_model(str(tiny_model))
    stamp = (a / "model.bin").stat().st_mtime_ns
    assert converted_model(str(tiny_model)) == a and (a / "model.bin").stat().st_mtime_ns == stamp
    other = converted_model(str(build_tiny_model(tmp_path / "other", seed=1)))
    assert other != a and (other / "model.bin").exists()


def test_eos_ends_a_sample_and_sets_finished(tiny_model, tmp_path):
    """A model whose final norm is zero has all-zero logits, so greedy picks token 0; make
    token 0 an EOS id and every backend must stop at once with finished=True."""
    import json

    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    with torch.no_grad():
        model.model.norm.weight.zero_()
    model.generation_config.eos_token_id = [0, model.generation_config.eos_token_id]
    folder = tmp_path / "eos0"
    model.save_pretrained(folder)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (folder / f).write_bytes((tiny_model / f).read_bytes())
    assert json.loads((folder / "generation_config.json").read_text())["eos_token_id"][0] == 0
    for name in ("hf", "ct2"):
        b = load_backend(name, str(folder), device="cpu")
        out = b.generate(_texts(b.tokenizer)[:2], SamplingParams(max_new_tokens=5, temperature=0.0))
        assert [s[0]["finished"] for s in out] == [True, True], name
        assert [s[0]["token_ids"] for s in out] == [[0], [0]], name


def test_stop_string_cuts_text_and_token_count(tiny_model):
    from salmon.models import load_tokenizer

    tok = load_tokenizer(str(tiny_model))
    head = tok("hello there", add_special_tokens=False)["input_ids"]
    ids = head + tok(" STOP world and more", add_special_tokens=False)["input_ids"]
    got = finish_sample(tok, ids, [tok.eos_token_id], ["STOP"])
    assert got["text"] == "hello there" and got["finished"]
    assert len(head) < got["num_tokens"] < len(ids)  # the tokens after the stop are not counted
    assert "STOP" in tok.decode(got["token_ids"]) and "world" not in tok.decode(got["token_ids"])


def test_interface_errors(tiny_model):
    with pytest.raises(SalmonError, match="--backend nope: expected one of"):
        resolve_backend("nope")
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        with pytest.raises(SalmonError, match="'vllm' package is not installed"):
            load_backend("vllm", str(tiny_model))
    with pytest.raises(SalmonError, match="converts local folders only"):
        load_backend("ct2", "someone/some-model")
    with pytest.raises(SalmonError, match="--dtype int3: the ct2 backend takes"):
        load_backend("ct2", str(tiny_model), dtype="int3", device="cpu")
    with pytest.raises(SalmonError, match="temperature must be >= 0"):
        SamplingParams(temperature=-1)


def test_agreement_counts_identical_continuations_and_prefixes():
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2 and common_prefix([], [1]) == 0
    got = agreement([[1, 2, 3], [5, 6], [7]], [[1, 2, 3], [5, 9], [8]])
    assert got["agreement"] == pytest.approx(1 / 3) and got["differing_common_prefix_tokens"] == [1, 0]
    assert got["mean_common_prefix_tokens"] == pytest.approx((3 + 1 + 0) / 3)


def test_auto_falls_back_to_the_reference_when_ct2_cannot_convert(capsys):
    with pytest.raises(SalmonError, match="cannot load model 'someone/some-model'"):  # hf, offline in tests
        load_backend("auto", "someone/some-model")
    assert "ct2 is not usable here" in capsys.readouterr().err


def test_bench_generate_reports_both_backends_and_the_machine(tiny_model):
    from salmon.backends.bench import BenchGenerateConfig, measure_generate_speed

    out = measure_generate_speed(BenchGenerateConfig(model=str(tiny_model), batch_size=3, max_new_tokens=4))
    assert set(out["backends"]) == {"hf", "ct2_float32", "ct2_int8"}
    assert all(r["new_tokens"] == 12 and r["tokens_per_s"] > 0 for r in out["backends"].values())
    assert out["greedy_agreement"] == out["agreement"]["ct2_float32"]["agreement"] == 1.0
    assert out["bandwidth_gb_per_s"] > 0 and out["matmul_peak_gflops_per_s"] > 0
    assert out["speedup"] == pytest.approx(out["backends"]["ct2_float32"]["tokens_per_s"]
                                           / out["backends"]["hf"]["tokens_per_s"], rel=0.01)


def test_lora_adapter_is_merged_converted_and_matches_the_reference(tiny_model, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from salmon.backends.ct2 import converted_model

    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    lora = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                           init_lora_weights=False))  # random B: the adapter changes outputs
    lora.save_pretrained(tmp_path / "adapter")
    adapter = str(tmp_path / "adapter")
    assert converted_model(str(tiny_model), adapter) != converted_model(str(tiny_model))
    params = SamplingParams(max_new_tokens=8, temperature=0.0)
    ct2 = load_backend("ct2", str(tiny_model), adapter=adapter, device="cpu")
    hf = load_backend("hf", str(tiny_model), adapter=adapter, device="cpu", tokenizer=ct2.tokenizer)
    plain = load_backend("ct2", str(tiny_model), device="cpu", tokenizer=ct2.tokenizer)
    texts = _texts(ct2.tokenizer)
    ids = {k: [s[0]["token_ids"] for s in b.generate(texts, params)] for k, b in
           (("ct2", ct2), ("hf", hf), ("plain", plain))}
    assert ids["ct2"] == ids["hf"] and ids["ct2"] != ids["plain"]


@pytest.mark.parametrize("name", ["hf", "ct2"])
def test_greedy_with_several_samples_gives_copies(backends, name):
    b = backends[name]
    out = b.generate(_texts(b.tokenizer)[:2], SamplingParams(max_new_tokens=4, temperature=0.0, n=3))
    assert all(len(r) == 3 and r[0] == r[1] == r[2] for r in out)
