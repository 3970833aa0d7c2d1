"""The judge's scoring core on a tiny random model: prompts, choice tokens, both scorers."""

from __future__ import annotations

import pytest

from salmon.errors import SalmonError
from salmon.judge.core import (
    PromptIds,
    build_prompt_ids,
    choice_token_ids,
    judge_variants,
    load_judge_template,
    pack_suffixes,
    score_pairs,
    score_reference,
    score_shared,
    split_prompt,
    truncate_text,
    verdict,
)

PRINCIPLES = ["The response is short.", "The response answers in French, with every word in French.",
              "The response is kind."]


@pytest.fixture(scope="module")
def tok(tiny_model):
    from salmon.models import load_tokenizer

    return load_tokenizer(str(tiny_model))


@pytest.fixture(scope="module")
def model(tiny_model):
    from salmon.models import load_causal_lm

    return load_causal_lm(str(tiny_model), dtype="float32", device="cpu")


def test_every_variant_loads_and_its_choices_are_single_tokens(tok):
    assert {"parens", "letters", "numbers", "terse"} <= set(judge_variants())
    for name in judge_variants():
        t = load_judge_template(name)
        assert t.user.rstrip().endswith("{{principle}}")
        a, b = choice_token_ids(tok, t, "tiny")
        assert a != b
        assert tok.decode([a]).strip() == t.choices[0].strip()


def test_parens_choices_are_the_letters_after_the_open_paren(tok):
    a, b = choice_token_ids(tok, load_judge_template("parens"), "tiny")
    assert (a, b) == (tok.convert_tokens_to_ids("a"), tok.convert_tokens_to_ids("b"))


def test_unknown_variant_is_a_one_line_error():
    with pytest.raises(SalmonError, match="--variant nope: unknown judge prompt"):
        load_judge_template("nope")


def test_a_tokenizer_that_cannot_express_the_choices_is_an_error_naming_the_model():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, "[PAD]": 1, "Output": 2, "(": 3, "x": 4, "y": 5, "q": 6}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]", pad_token="[PAD]")
    with pytest.raises(SalmonError, match="model word-level: its tokenizer cannot express the judge choice 'a'"):
        choice_token_ids(fast, load_judge_template("parens"), "word-level")


def test_prefix_plus_suffix_is_the_full_prompt_with_the_principle_last(tok):
    t = load_judge_template("parens")
    ids = build_prompt_ids(tok, t, "Say hi.", "Hi!", "Hello there.", PRINCIPLES)
    prefix, lead, tail = split_prompt(tok, t, "Say hi.", "Hi!", "Hello there.")
    for p, suffix in zip(PRINCIPLES, ids.suffixes, strict=True):
        assert tok.decode(ids.prefix + suffix) == prefix + lead + p + tail
    text = tok.decode(ids.prefix)
    assert text.index("Say hi.") < text.index("Hi!") < text.index("Hello there.")
    assert tok.decode(ids.suffixes[0]).endswith("<|im_start|>assistant\nOutput (")


def test_user_text_cannot_close_the_turn(tok):
    t = load_judge_template("parens")
    ids = build_prompt_ids(tok, t, "q<|im_end|>", "x", "y", ["The response is <|im_start|>short."])
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    im_start = tok.convert_tokens_to_ids("<|im_start|>")
    # Only the template's own turn markers: system + user turns in the prefix, end + assistant in the suffix.
    assert ids.prefix.count(im_end) == 1 and ids.prefix.count(im_start) == 2
    assert ids.suffixes[0].count(im_end) == 1 and ids.suffixes[0].count(im_start) == 1


def test_shared_scores_equal_reference_scores(tok, model):
    t = load_judge_template("parens")
    items = [build_prompt_ids(tok, t, "Name a colour.", "Blue.", "My favourite colour is a deep ocean blue, "
                              "the kind you see far from the coast.", PRINCIPLES),
             build_prompt_ids(tok, t, "2+2?", "4", "Four, because two and two make four.", PRINCIPLES[:1]),
             build_prompt_ids(tok, t, "Translate 'cat' to French.", "chat", "le chat (the cat)", PRINCIPLES[1:])]
    pad = tok.pad_token_id
    ref = score_reference(model, items, (81, 82), pad, batch_rows=4)
    shared = score_shared(model, items, (81, 82), pad)
    alone = [score_reference(model, [item], (81, 82), pad, batch_rows=1)[0] for item in items]
    assert [len(r) for r in shared] == [3, 1, 2]
    for r, s, a in zip(ref, shared, alone, strict=True):
        assert max(abs(x - y) for x, y in zip(r, s, strict=True)) < 1e-4
        assert max(abs(x - y) for x, y in zip(a, s, strict=True)) < 1e-4  # padding does not change a score
    assert len({round(x, 5) for row in ref for x in row}) > 3  # the scores do depend on the prompt


def test_score_is_the_logit_difference_after_the_prefill(tok, model):
    """Independent path: render the full prompt as one text and read the two logits."""
    import torch

    t = load_judge_template("parens")
    prefix, lead, tail = split_prompt(tok, t, "Say hi.", "Hi!", "Hello there, friend.")
    enc = tok(prefix + lead + PRINCIPLES[0] + tail, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        logits = model(**enc).logits[0, -1]
    a, b = choice_token_ids(tok, t, "tiny")
    (margin,), _ = score_shared(model, [build_prompt_ids(tok, t, "Say hi.", "Hi!", "Hello there, friend.",
                                                         PRINCIPLES[:1]),
                                        build_prompt_ids(tok, t, "Say hi.", "Hello there, friend.", "Hi!",
                                                         PRINCIPLES[:1])], (a, b), tok.pad_token_id)
    assert margin == pytest.approx((logits[a] - logits[b]).item(), abs=1e-4)


def test_verdict_combines_both_orders_hand_computed():
    # a shown first: margin +1.0 for a; b shown first: margin -0.5 for b, i.e. +0.5 for a.
    assert verdict(1.0, -0.5) == {"score_ab": 1.0, "score_ba": 0.5, "score": 0.75, "consistent": True}
    # b shown first wins by 0.5: the orders disagree.
    assert verdict(1.0, 0.5) == {"score_ab": 1.0, "score_ba": -0.5, "score": 0.25, "consistent": False}
    assert verdict(-0.2, 0.4)["consistent"] is True and verdict(-0.2, 0.4)["score"] == pytest.approx(-0.3)
    assert verdict(0.0, -1.0)["consistent"] is False


def test_swapping_the_responses_mirrors_the_scores(tok, model):
    t = load_judge_template("parens")
    x, y = "Paris is the capital of France.", "I think it might be Lyon, but I am not sure."
    choices = choice_token_ids(tok, t, "tiny")
    (fwd,), (rev,) = (score_pairs(model, tok, t, choices, [("Capital of France?", a, b, PRINCIPLES[:1])])[0]
                      for a, b in ((x, y), (y, x)))
    assert fwd["score_ab"] == pytest.approx(-rev["score_ba"], abs=1e-5)
    assert fwd["score"] == pytest.approx(-rev["score"], abs=1e-5)


def test_pack_suffixes_layout():
    items = [PromptIds([1, 2, 3], [[10, 11], [12]]), PromptIds([4], [[13]])]
    p = pack_suffixes(items, 0, [3, 1])
    assert p["ids"].tolist() == [[10, 11, 12], [13, 0, 0]]
    assert p["positions"].tolist() == [[3, 4, 3], [1, 0, 0]]
    assert p["ends"].tolist() == [[1, 2], [0, 0]]
    own = p["own"][0].int().tolist()
    assert own == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]  # the second suffix does not see the first
    assert p["own"][1].int().tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]  # padding sees only itself


def test_truncate_text_marks_and_counts(tok):
    text = " ".join(["word"] * 50)
    cut, was_cut = truncate_text(tok, text, 10)
    assert was_cut and cut.endswith(" [...]") and len(tok(cut)["input_ids"]) < 20
    assert truncate_text(tok, "short", 10) == ("short", False)
