"""Self-Align: filters (hand-made cases), exemplar checking, prompt building, and the
stage on tiny random models (resume, context dropping, nothing left after filtering)."""

from __future__ import annotations

import json

import pytest

from salmon.errors import SalmonError
from salmon.self_align import (
    SelfAlignConfig,
    context_messages,
    header_text,
    load_exemplars,
    self_align,
    split_answer,
)
from salmon.sft_filters import (
    Candidate,
    FilterSettings,
    copied_span,
    first_failure,
    language,
    leak,
    repeated_ngram_ratio,
    repetition,
    units,
)
from salmon.sft_filters import empty as empty_filter
from salmon.sft_filters import truncated as truncated_filter
from salmon.sources import load_prompts

S = FilterSettings(rule_names=("Ethical", "Static Knowledge", "Step By Step", "Multi-Aspect"),
                   rule_texts=("The assistant should admit when it does not know something or cannot do it.",))


# --- filters -------------------------------------------------------------------------

def test_repeated_ngram_ratio_hand_computed():
    # 5 bigrams (ab ba ab ba ab), 2 distinct -> 1 - 2/5
    assert repeated_ngram_ratio("a b a b a b".split(), 2) == pytest.approx(0.6)
    assert repeated_ngram_ratio("a b c d".split(), 2) == 0.0
    assert repeated_ngram_ratio(["a"], 2) == 0.0
    # 3 trigrams all "x x x" -> 1 - 1/3
    assert repeated_ngram_ratio(["x"] * 5, 3) == pytest.approx(2 / 3)


def test_units_split_cjk_characters():
    assert units("我喜欢 tea, and 猫") == ["我", "喜", "欢", "tea,", "and", "猫"]


def test_empty_and_truncated():
    assert empty_filter(Candidate("", True), S)
    assert empty_filter(Candidate("   ", True), S)
    assert empty_filter(Candidate("Yes.", True), S) is None
    assert empty_filter(Candidate("two words", True), FilterSettings(min_words=3))
    assert empty_filter(Candidate("", True), FilterSettings(min_words=0)) is None
    assert truncated_filter(Candidate("cut off mid", False), S)
    assert truncated_filter(Candidate("done.", True), S) is None


def test_repetition_catches_loops_not_prose():
    loop = "I am sorry but I cannot. " * 8
    prose = ("Cooking at home is usually cheaper than takeaway. You control the salt and oil, "
             "and batch cooking on Sundays saves time during the week.")
    assert "ratio" in repetition(Candidate(loop, True), S)
    assert repetition(Candidate(prose, True), S) is None


@pytest.mark.parametrize("text, expected", [
    ("Sure.\n\nUser: and another question", "template marker"),
    ("### Assistant: hello", "template marker"),
    ("Internal thoughts: this needs care", "template marker"),
    ("Following Static Knowledge, I cannot know today's news.", "rule name"),
    ("This is covered by the ethical rule.", "rule name"),
    ("Multi-Aspect: cost, time and risk.", "rule name"),
    ("Honestly, the assistant should admit when it does not know something.", "copied rule text"),
])
def test_leak_detects_scaffolding(text, expected):
    assert expected in leak(Candidate(text, True), S)


@pytest.mark.parametrize("text", [
    "Let's go step by step: first add, then divide.",  # rule names match case-sensitively
    "That would not be an ethical choice.",  # a one-word name alone is an ordinary word
    "I don't know the current price; check the shop's website.",
])
def test_leak_keeps_ordinary_text(text):
    assert leak(Candidate(text, True), S) is None


def test_copied_span_hand_case():
    src = "one two three four five six seven eight nine"
    assert copied_span("x one two THREE four, five six seven eight y", src, 8) == "one two three four five six seven eight"
    assert copied_span("one two three four five six seven", src, 8) is None


def test_language_filter():
    english = "The capital of France is Paris, a city known for its museums and its river."
    spanish = "La capital de Francia es París, una ciudad conocida por sus museos y su río."
    assert "prompt in 'es'" in language(Candidate(english, True, "es"), S)
    assert language(Candidate(spanish, True, "es"), S) is None
    assert language(Candidate("Oui.", True, "en"), S) is None  # too short to judge
    assert language(Candidate(english, True, None), S) is None  # prompt language unknown
    code = "```python\nprint('hola mundo, esto es una prueba de codigo largo')\n```\nDone."
    assert language(Candidate(code, True, "en"), S) is None  # code is not prose


def test_first_failure_runs_in_order():
    c = Candidate("", False)
    assert first_failure(c, ["empty", "truncated"], S)[0] == "empty"
    assert first_failure(c, ["truncated", "empty"], S)[0] == "truncated"
    assert first_failure(Candidate("Fine answer here.", True), ["empty", "truncated", "leak"], S) is None


# --- prompt building -----------------------------------------------------------------

def test_split_answer():
    assert split_answer(" Candor applies.\n\nAnswer: I don't know.", True) == ("Candor applies.", "I don't know.")
    assert split_answer("only thoughts, no answer", True) == ("only thoughts, no answer", None)
    assert split_answer("  direct answer ", False) == ("", "direct answer")


def test_shipped_exemplars_and_header():
    from salmon.principles import load_principles

    rules = load_principles("self_align_rules")
    exemplars = load_exemplars("self_align", need_thoughts=True)
    assert len(exemplars) == 6 and all(e.thoughts for e in exemplars)
    msgs = context_messages(rules, exemplars[:2], thoughts=True)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant"]
    assert all(r.name in msgs[0]["content"] and r.definition in msgs[0]["content"] for r in rules)
    assert msgs[2]["content"].startswith("Internal thoughts: ") and "\n\nAnswer: " in msgs[2]["content"]
    direct = context_messages(rules, exemplars[:1], thoughts=False)
    assert direct[2]["content"] == exemplars[0].answer
    assert "Answer:" in header_text(rules, True) and "Answer:" not in header_text(rules, False)


@pytest.mark.parametrize("body, message", [
    ("exemplars: [\n  - prompt: 'a'\n", "not valid YAML"),
    ("- prompt: a\n  answer: b\n", "one key 'exemplars'"),
    ("exemplars: []\n", "non-empty list"),
    ("exemplars:\n  - prompt: a\n    answer: b\n  - prompt: c\n", "exemplar 2: missing or empty 'answer'"),
    ("exemplars:\n  - prompt: a\n    answer: b\n    note: c\n", "exemplar 1: unknown key 'note'"),
    ("exemplars:\n  - just text\n", "exemplar 1: expected a mapping"),
    ("exemplars:\n  - prompt: a\n    answer: b\n    thoughts: [x]\n", "exemplar 1: 'thoughts' must be text"),
])
def test_bad_exemplar_files(tmp_path, body, message):
    path = tmp_path / "ex.yaml"
    path.write_text(body)
    with pytest.raises(SalmonError, match=message) as err:
        load_exemplars(str(path), need_thoughts=False)
    assert str(path) in str(err.value)


def test_thoughts_only_required_in_thoughts_mode(tmp_path):
    path = tmp_path / "ex.yaml"
    path.write_text("exemplars:\n  - prompt: a\n    answer: b\n")
    assert load_exemplars(str(path), need_thoughts=False)[0].answer == "b"
    with pytest.raises(SalmonError, match="--no-thoughts"):
        load_exemplars(str(path), need_thoughts=True)


def test_bad_rule_file_and_flags(tiny_model, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("principles:\n  - name: A\n")
    with pytest.raises(SalmonError, match="principle 1 \\(A\\): missing or empty 'definition'"):
        self_align(_cfg(tiny_model, tmp_path / "o1", rules=str(rules)))
    with pytest.raises(SalmonError, match="--num-exemplars 7"):
        self_align(_cfg(tiny_model, tmp_path / "o2", num_exemplars=7))
    with pytest.raises(SalmonError, match="unknown filter 'loops'"):
        SelfAlignConfig(filters=["loops"]).validate()


# --- the stage on a tiny random model ------------------------------------------------

def _cfg(model, out, **kw) -> SelfAlignConfig:
    base = dict(model=str(model), out=str(out), prompts="builtin", limit=6, max_new_tokens=6, batch_size=2,
                filters=["empty"], min_words=0, num_exemplars=2, progress=False, device="cpu")
    base.update(kw)
    return SelfAlignConfig(**base)


@pytest.mark.slow
def test_resume_after_crash_gives_identical_output(tiny_model, tmp_path, monkeypatch):
    import salmon.generate as gen

    full = self_align(_cfg(tiny_model, tmp_path / "full"))
    real, calls = gen.sample_batch, []

    def crash_after_one(*a, **kw):
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(gen, "sample_batch", crash_after_one)
    with pytest.raises(KeyboardInterrupt):
        self_align(_cfg(tiny_model, tmp_path / "resumed"))
    assert not (tmp_path / "resumed" / "summary.json").exists()
    monkeypatch.setattr(gen, "sample_batch", lambda *a, **kw: (calls.append(1), real(*a, **kw))[1])
    calls.clear()
    resumed = self_align(_cfg(tiny_model, tmp_path / "resumed"))
    assert len(calls) == 2  # 6 prompts in batches of 2: one batch was already done
    assert (resumed / "responses.jsonl").read_bytes() == (full / "responses.jsonl").read_bytes()
    import datasets

    assert list(datasets.load_from_disk(str(resumed / "dataset"))) == list(datasets.load_from_disk(str(full / "dataset")))


def test_prompts_over_the_context_are_dropped_and_counted(tiny_model, tmp_path):
    with pytest.raises(SalmonError, match="all 6 prompts exceed the context"):
        self_align(_cfg(tiny_model, tmp_path / "none", context_length=300))
    from salmon.models import load_tokenizer
    from salmon.self_align import _prepare

    cfg = _cfg(tiny_model, tmp_path / "some")
    tok = load_tokenizer(str(tiny_model))
    _, lengths, _, _, _ = _prepare(cfg, tok, load_prompts("builtin", 6))
    cut = sorted(lengths)[2]  # room for the three shortest prompts (plus ties)
    out = self_align(_cfg(tiny_model, tmp_path / "some", context_length=cut + 6))
    summary = json.loads((out / "summary.json").read_text())
    expected_dropped = sum(n > cut for n in lengths)
    assert summary["dropped_too_long"] == expected_dropped and summary["generated"] == 6 - expected_dropped


def test_nothing_left_after_filtering_is_an_error(tiny_model, tmp_path, cli):
    out = tmp_path / "sa"
    code, _, err = cli("self-align", "--model", tiny_model, "--out", out, "--limit", "2", "--max-new-tokens", "4",
                       "--filters", "empty", "--min-words", "1000", "--no-progress", "--device", "cpu")
    assert code == 2 and "all 2 answers were filtered out (empty: 2)" in err
    assert (out / "responses.jsonl").exists() and not (out / "summary.json").exists()
    code, _, err = cli("sft", "--model", tiny_model, "--data", out, "--out", tmp_path / "sft")
    assert code == 2 and "self-align has not finished" in err


def test_template_without_system_role_gets_header_in_first_user_turn(tiny_model):
    from salmon.models import load_tokenizer
    from salmon.principles import load_principles
    from salmon.self_align import render_prompt

    tok = load_tokenizer(str(tiny_model))
    tok.chat_template = ("{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
                         "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
                         "{% if add_generation_prompt %}<assistant>{% endif %}")
    context = context_messages(load_principles("self_align_rules"), load_exemplars("self_align", False)[:1], False)
    text = render_prompt(tok, context, "What is 2+2?")
    assert text.startswith("<user>" + context[0]["content"] + "\n\n" + context[1]["content"] + "<assistant>")
    assert text.endswith("<user>What is 2+2?<assistant>")


def test_conversation_follows_the_exemplars_and_its_system_joins_the_header(tiny_model):
    from salmon.models import load_tokenizer
    from salmon.principles import load_principles
    from salmon.self_align import render_prompt

    tok = load_tokenizer(str(tiny_model))
    tok.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
                         "{% if add_generation_prompt %}<assistant>{% endif %}")
    context = context_messages(load_principles("self_align_rules"), load_exemplars("self_align", False)[:1], False)
    talk = [{"role": "system", "content": "Reply in French."}, {"role": "user", "content": "I have two cats."},
            {"role": "assistant", "content": "Lovely."}, {"role": "user", "content": "How many cats do I have?"}]
    text = render_prompt(tok, context, talk)
    assert text.startswith("<system>" + context[0]["content"] + "\n\nReply in French.<user>")
    assert text.endswith("<user>I have two cats.<assistant>Lovely.<user>How many cats do I have?<assistant>")
    assert text.count("<system>") == 1


def test_prompt_language_when_the_prompt_set_has_none():
    from salmon.self_align import prompt_language

    assert prompt_language("¿Cuál es la capital de Francia y por qué es tan famosa en el mundo?", S) == "es"
    assert prompt_language("Hi?", S) is None


def test_apply_filters_counts_first_failure_and_each_filter_alone():
    from salmon.self_align import apply_filters

    recs = [{"id": "a", "prompt": "p", "lang": "en", "answer": None, "finished": True},
            {"id": "b", "prompt": "p", "lang": "en", "answer": "", "finished": False},
            {"id": "c", "prompt": "p", "lang": "en", "answer": "A fine answer.", "finished": True}]
    kept, counts, alone, examples = apply_filters(recs, ["empty", "truncated"], S)
    assert [r["id"] for r in kept] == ["c"]
    assert counts == {"no_answer": 1, "empty": 1, "truncated": 0}
    assert alone == {"empty": 1, "truncated": 1}
    assert examples["empty"] == [{"id": "b", "reason": "0 words < 1"}]
