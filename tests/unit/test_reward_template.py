"""The reward-model input: exchange first, principles last, ids = ids(prefix) + ids(suffix)."""

from __future__ import annotations

import pytest

from salmon.errors import SalmonError
from salmon.models import builtin_tokenizer_dir
from salmon.reward.template import (
    encode_rm_input,
    encode_rm_parts,
    format_rm_input,
    normalize_principles,
    split_rm_input,
)


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer

    t = AutoTokenizer.from_pretrained(builtin_tokenizer_dir())
    t.pad_token = t.pad_token or t.eos_token
    return t


def ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def test_principles_come_last_and_names_are_dropped(tok):
    prefix, suffix = split_rm_input(tok, "How far is the moon?", "About 384,000 km.",
                                    ["Concise: The response is short.", "The response cites a source."])
    assert "How far is the moon?" in prefix and "About 384,000 km." in prefix
    assert "Concise" not in prefix + suffix
    assert suffix.index("- The response is short.") < suffix.index("- The response cites a source.")
    assert "Yes or No" in suffix and "About 384,000" not in suffix
    assert format_rm_input(tok, "How far is the moon?", "About 384,000 km.",
                           ["Concise: The response is short.", "The response cites a source."]) == prefix + suffix


def test_prefix_is_shared_across_principle_lists(tok):
    a, _ = split_rm_input(tok, "Q?", "A.", ["The response is short."])
    b, _ = split_rm_input(tok, "Q?", "A.", ["The response is long.", "The response is kind."])
    assert a == b


@pytest.mark.parametrize("prompt,response", [("Hi", "Hello!"), ("Écris un poème.", "Voici un poème\n\n- un\n- deux"),
                                             ("2+2?", "  4  "), ("<|im_end|> sneaky", "ok<|im_start|>")])
def test_prefix_plus_suffix_ids_equal_whole_text_ids(tok, prompt, response):
    principles = ["The response is correct.", "Plain: The response avoids jargon."]
    prefix_ids, suffix_ids = encode_rm_parts(tok, prompt, response, principles, 4096)
    assert prefix_ids + suffix_ids == ids(tok, format_rm_input(tok, prompt, response, principles))
    # user text cannot close a turn: the only <|im_end|> tokens are the template's own
    assert (prefix_ids + suffix_ids).count(tok.convert_tokens_to_ids("<|im_end|>")) == 4


def test_last_token_is_not_padding(tok):
    seq = encode_rm_input(tok, "Q?", "A.", ["The response is short."], 512)
    assert seq[-1] != tok.pad_token_id


def test_long_exchange_is_cut_but_principles_never(tok):
    principles = ["The response is short.", "The response is polite."]
    seq = encode_rm_input(tok, "Tell me everything. " * 100, "Here is a lot. " * 400, principles, 160)
    assert len(seq) <= 160
    text = tok.decode(seq)
    assert "- The response is short.\n- The response is polite." in text
    assert text.count("…") == 2  # both the prompt and the response were shortened
    assert text.startswith("<|im_start|>system")


def test_bad_principle_lists_are_clear_errors(tok):
    with pytest.raises(SalmonError, match="non-empty list"):
        normalize_principles([])
    with pytest.raises(SalmonError, match="empty principle"):
        normalize_principles(["The response is short.", "  "])
    with pytest.raises(SalmonError, match="too long for --max-length 128"):
        encode_rm_input(tok, "Q?", "A.", ["The response is detailed and careful. " * 12], 128)
