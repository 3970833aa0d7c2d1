"""Conversational prompts: validation, the oldest-turn-first truncation rule, and every
reader (sources, judge, reward model, RL query fitting) seeing the whole conversation."""

from __future__ import annotations

import json

import pytest

from salmon.conversation import drop_oldest, parse_prompt, request_text, simplify
from salmon.errors import SalmonError
from salmon.models import builtin_tokenizer_dir

TALK = [{"role": "system", "content": "Answer like a pirate."},
        {"role": "user", "content": "My cat is called Pepper."},
        {"role": "assistant", "content": "Arr, a fine name for a cat."},
        {"role": "user", "content": "What is my cat called?"}]
OTHER_FIRST = [TALK[0], {"role": "user", "content": "My cat is called Biscuit."}, *TALK[2:]]


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer

    t = AutoTokenizer.from_pretrained(builtin_tokenizer_dir())
    t.pad_token = t.pad_token or t.eos_token
    return t


def u(text):
    return {"role": "user", "content": text}


def a(text):
    return {"role": "assistant", "content": text}


@pytest.mark.parametrize("value,needle", [
    ([], "empty conversation"),
    ([a("hi")], "last message must be a user turn"),
    ([u("hi"), a("there")], "last message must be a user turn"),
    ([u("hi"), {"role": "system", "content": "x"}, u("q")], "message 2 is a system message"),
    ([{"role": "tool", "content": "x"}], "message 1 must be"),
    ([{"role": "user", "content": 3}], "message 1 must be"),
    ([u("  ")], "last user message is empty"),
    (3, "prompt must be text or a list of chat messages"),
    (["a"], "got a list holding str"),
    ("", "empty prompt"),
])
def test_bad_prompts_are_one_line_errors(value, needle):
    with pytest.raises(SalmonError, match=needle) as e:
        parse_prompt(value, "f.jsonl:3")
    assert str(e.value).startswith("f.jsonl:3: ") and "\n" not in str(e.value)


def test_parse_keeps_role_and_content_only():
    got = parse_prompt([{"role": "user", "content": "q", "name": "x"}])
    assert got == [u("q")] and simplify(got) == "q"


def test_drop_oldest_drops_whole_turns_system_last():
    # "fits" when at most n messages remain: a hand-checkable budget
    def fits_at_most(n):
        return lambda p: (1 if isinstance(p, str) else len(p)) <= n

    long = [TALK[0], u("u1"), a("a1"), a("a1b"), u("u2"), a("a2"), u("u3")]
    assert drop_oldest(long, fits_at_most(7)) == (long, 0)
    # u1 goes with both assistant turns that answered it: 3 dropped, 4 left
    assert drop_oldest(long, fits_at_most(5)) == ([TALK[0], u("u2"), a("a2"), u("u3")], 3)
    assert drop_oldest(long, fits_at_most(2)) == ([TALK[0], u("u3")], 5)
    # nothing fits: the system message goes last, the final user turn always stays
    assert drop_oldest(long, fits_at_most(0)) == ("u3", 6)
    assert drop_oldest("plain text", fits_at_most(0)) == ("plain text", 0)


def test_request_text_shows_earlier_turns_and_text_stays_as_is():
    assert request_text("Just text") == "Just text" and request_text([u("One turn")]) == "One turn"
    shown = request_text(TALK)
    for m in TALK:
        assert m["content"] in shown
    assert shown.index("Pepper") < shown.index("What is my cat called?")
    assert shown.rstrip().endswith("What is my cat called?")


def test_sources_load_conversations(tmp_path):
    from salmon.sources import load_prompts

    f = tmp_path / "p.jsonl"
    f.write_text(json.dumps({"id": "c1", "prompt": TALK}) + "\n" + json.dumps({"id": "t", "prompt": "text"}) + "\n")
    got = load_prompts(str(f))
    assert got[0]["prompt"] == TALK and got[1]["prompt"] == "text"
    f.write_text(json.dumps({"prompt": [u("q"), a("r")]}) + "\n")
    with pytest.raises(SalmonError, match=r"p.jsonl:1: the last message must be a user turn"):
        load_prompts(str(f))


def test_generation_prompt_renders_every_turn(tok):
    from salmon.chat import user_prompt

    text = user_prompt(tok, TALK, system="ignored: the conversation has its own")
    assert all(m["content"] in text for m in TALK) and "ignored" not in text
    assert text.index("Pepper") < text.index("Arr, a fine") < text.index("What is my cat")
    assert user_prompt(tok, [u("hello")]) == user_prompt(tok, "hello")


def test_first_turn_changes_the_rm_input_ids(tok):
    from salmon.reward.template import encode_rm_input

    principles = ["The response answers the last question."]
    ids = encode_rm_input(tok, TALK, "Pepper, matey.", principles, 512)
    other = encode_rm_input(tok, OTHER_FIRST, "Pepper, matey.", principles, 512)
    assert ids != other
    assert "My cat is called Pepper." in tok.decode(ids) and "Biscuit" in tok.decode(other)
    # one user turn as a list is the same input as the plain text
    assert encode_rm_input(tok, [u("Q?")], "A.", principles, 512) == encode_rm_input(tok, "Q?", "A.", principles, 512)


def test_rm_truncates_the_oldest_turn_first_and_counts_it(tok):
    from salmon.reward.template import encode_rm_input

    principles = ["The response is short."]
    old = "An old story about a lighthouse keeper. " * 30
    talk = [u(old), a("I see."), u("Now the real question: what is two plus two?")]
    full = encode_rm_input(tok, talk, "Four.", principles, 1024)
    stats: dict[str, int] = {}
    cut = encode_rm_input(tok, talk, "Four.", principles, len(full) - 20, stats)
    text = tok.decode(cut)
    assert len(cut) <= len(full) - 20
    assert "lighthouse" not in text and "what is two plus two?" in text and "Four." in text
    assert "The response is short." in text  # principles are never cut
    assert stats == {"truncated_turns": 2}
    # when the last turn alone is too long, its text is cut too (and counted)
    stats = {}
    encode_rm_input(tok, [u("hi"), a("ho"), u(old)], "Four.", principles, 120, stats)
    assert stats == {"truncated_turns": 2, "truncated_texts": 1}


def test_first_turn_changes_the_judge_input_ids(tok):
    from salmon.judge.core import build_prompt_ids, load_judge_template

    template = load_judge_template("parens")
    one = build_prompt_ids(tok, template, TALK, "Pepper.", "No idea.", ["The response is correct."])
    two = build_prompt_ids(tok, template, OTHER_FIRST, "Pepper.", "No idea.", ["The response is correct."])
    assert one.prefix != two.prefix and one.suffixes == two.suffixes
    assert "Pepper" in tok.decode(one.prefix) and "Biscuit" in tok.decode(two.prefix)
    # a text prompt gives exactly the ids it gave before conversations existed
    plain = build_prompt_ids(tok, template, "Q?", "x", "y", ["p"])
    assert plain.prefix == build_prompt_ids(tok, template, [u("Q?")], "x", "y", ["p"]).prefix


def test_judge_truncation_drops_oldest_turns_then_cuts(tok):
    from salmon.judge.core import truncate_prompt

    old = "words " * 100
    talk = [u(old), a("ok"), u("short question?")]
    kept, dropped, cut = truncate_prompt(tok, talk, 40)
    assert kept == "short question?" and dropped == 2 and not cut
    kept, dropped, cut = truncate_prompt(tok, [u("hi"), a("ho"), u(old)], 20)
    assert dropped == 2 and cut and kept.endswith("[...]")
    assert truncate_prompt(tok, "fits", 40) == ("fits", 0, False)


def test_rl_query_fitting_keeps_the_latest_turns(tok):
    from salmon.rl.rollout import fit_prompt

    talk = [u("An old story. " * 40), a("I see."), u("What is two plus two?")]
    kept, ids, cut = fit_prompt(tok, talk, 64)
    assert cut and len(ids) <= 64 and kept == "What is two plus two?"
    kept, ids, cut = fit_prompt(tok, TALK, 256)
    assert not cut and kept == TALK and "Pepper" in tok.decode(ids)


def test_reward_fn_scores_the_whole_conversation(random_rm):
    from salmon.reward import InstructableRewardModel, make_reward_fn

    rm = InstructableRewardModel.load(random_rm, device="cpu")
    fn = make_reward_fn(rm, default_principles=["The response is correct."])
    completion = [[a("Pepper.")]]
    r1, r2 = fn([TALK], completion)[0], fn([OTHER_FIRST], completion)[0]
    assert r1 != r2  # the first turn reaches the reward
    assert fn([[u("Q?")]], [[a("A.")]]) == fn(["Q?"], ["A."])
    with pytest.raises(SalmonError, match="prompt 0: the last message must be a user turn"):
        fn([[u("q"), a("r")]], ["x"])


def test_grpo_dataset_keeps_the_conversation(tok, tmp_path):
    from salmon.rl.ppo import RLConfig
    from salmon.rl.trl_algos import build_dataset

    f = tmp_path / "p.jsonl"
    f.write_text(json.dumps({"id": "c", "prompt": TALK}) + "\n" + json.dumps({"id": "t", "prompt": "Hi"}) + "\n")
    ds, truncated = build_dataset(RLConfig(prompts=str(f), system_prompt="Be kind."), tok, 2)
    rows = ds.to_list()
    assert truncated == 0
    assert rows[0]["prompt"] == TALK  # its own system message wins over --system-prompt
    assert rows[1]["prompt"] == [{"role": "system", "content": "Be kind."}, u("Hi")]
