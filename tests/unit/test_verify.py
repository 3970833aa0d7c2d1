"""Verifiable principles: every checker on hand-checked texts, the data file's splits, load errors."""

import pytest

from salmon.errors import SalmonError
from salmon.verify import CHECKERS, covers_more, load_verifiable, sentences, verdicts_differ, words

SHORT = "Paris is the capital of France."  # 6 words, 1 sentence
LONG = " ".join(["word"] * 70) + "."
NUMBERED = "Three tips:\n1. Sleep well.\n2. Drink water.\n3. Walk daily."
BULLETS = "Tips:\n- Sleep well.\n- Drink water."
CODE = "Use this:\n```python\nprint('hi')\n```\nThat prints hi."
ES_PROMPT = "¿Cuál es la capital de Francia y por qué es tan famosa en todo el mundo?"
ES_ANSWER = "La capital de Francia es París, famosa por sus museos, su arte y la torre Eiffel."
EN_ANSWER = "The capital of France is Paris, famous for its museums, its art and the Eiffel Tower."


def check(name, response, n=None, prompt="q"):
    return CHECKERS[name].fn(prompt, response, n)


def test_counts():
    assert words(SHORT) == 6 and words("") == 0
    assert sentences(SHORT) == 1
    assert sentences("One. Two! Three? Four") == 4
    assert sentences(NUMBERED) == 4  # the lead line and three items
    assert sentences(CODE) == 2  # the code block is no sentence


@pytest.mark.parametrize("name,text,n,want", [
    ("max_words", SHORT, 6, True), ("max_words", SHORT, 5, False), ("max_words", LONG, 60, False),
    ("min_words", SHORT, 6, True), ("min_words", SHORT, 7, False), ("min_words", LONG, 70, True),
    ("max_sentences", "One. Two. Three.", 3, True), ("max_sentences", "One. Two. Three.", 2, False),
    ("numbered_list", NUMBERED, None, True), ("numbered_list", BULLETS, None, False),
    ("numbered_list", "1. Only one item.", None, False),
    ("bulleted_list", BULLETS, None, True), ("bulleted_list", NUMBERED, None, False),
    ("prose_only", SHORT, None, True), ("prose_only", BULLETS, None, False), ("prose_only", CODE, None, False),
    ("exact_items", NUMBERED, 3, True), ("exact_items", NUMBERED, 4, False), ("exact_items", SHORT, 3, None),
    ("code_block", CODE, None, True), ("code_block", "Call `print()` inline.", None, False),
    ("no_opener", SHORT, None, True), ("no_opener", "Sure! Paris is the capital.", None, False),
    ("no_opener", "Great question. Paris.", None, False), ("no_opener", "Surely not: Paris.", None, True),
    ("no_opener", "¡Buena pregunta! París.", None, False), ("no_opener", "Bien sûr ! Paris.", None, False),
    ("no_opener", "As an AI language model, I say Paris.", None, False),
    ("ends_with_question", "Paris. Want more facts?", None, True), ("ends_with_question", SHORT, None, False),
    ("ends_with_question", "Is it Paris? Yes, it is.", None, False),
    ("no_exclamation", SHORT, None, True), ("no_exclamation", "Paris!", None, False),
    ("no_exclamation", "```js\nif (!x) {}\n```\nDone.", None, True),
    ("heading", "## Care\nWater weekly.", None, True), ("heading", "Use #hashtags sparingly.", None, False),
    ("heading", "```python\n# a comment\n```", None, False), ("heading", "#NoSpace", None, False),
    ("bold", "Water **weekly**, not daily.", None, True), ("bold", "2 ** 3 is 8.", None, False),
    ("bold", "It is __very__ dry.", None, True),
    ("hedged", "It is probably Paris.", None, True), ("hedged", "I\u2019m not sure it is Paris.", None, True),
    ("hedged", "I'm not completely certain.", None, True), ("hedged", SHORT, None, False),
    ("hedged", "Perhapsy is not a word.", None, False),
    ("example_marker", "Fruit such as apples.", None, True), ("example_marker", "Citrus, e.g. lemons.", None, True),
    ("example_marker", "For instance: pears.", None, True), ("example_marker", "Such a day!", None, False),
    ("paragraphs", "One.\n\nTwo.", None, True), ("paragraphs", "One.\nTwo.", None, False),
    ("paragraphs", "One.\n  \nTwo.", None, True), ("paragraphs", "One.\n\n\n", None, False),
])
def test_checker(name, text, n, want):
    assert check(name, text, n) is want


def test_covers_more_by_hand():
    full = "Water the fern twice a week. Keep it in shade. Mist the leaves. Repot it in spring."
    first = "Water the fern twice a week."
    assert covers_more("q", full, first, True, True) == 1  # 3 more sentences, all of `first` in `full`
    assert covers_more("q", first, full, True, True) == -1
    assert covers_more("q", full, "Water the fern twice a week! Keep it in shade.", True, True) == 1  # end marks ignored
    assert covers_more("q", full, "Water the fern twice a week. Keep it in shade. Mist the leaves.", True, True) == 0
    assert covers_more("q", full, "Water the fern daily.", True, True) == 0  # says something `full` does not
    assert covers_more("q", full, "", True, True) == 0 and covers_more("q", full, full, True, True) == 0
    assert covers_more("q", full, first, False, True) == 1  # a cut-off answer still says more


def test_relation_family_is_pairwise_only():
    v = next(v for v in load_verifiable(split="train") if v.checker == "covers_more")
    full = "One point. A second point. A third point."
    assert verdicts_differ(v, "q", "One point.", full) == -1
    with pytest.raises(SalmonError, match="compares two responses"):
        v.check("q", full)
    dev = [v.principle.definition for v in load_verifiable(split="dev") if v.checker == "covers_more"]
    assert dev and not set(dev) & {v.principle.definition for v in load_verifiable(split="train")}


def test_user_language():
    assert check("user_language", ES_ANSWER, prompt=ES_PROMPT) is True
    assert check("user_language", EN_ANSWER, prompt=ES_PROMPT) is False
    assert check("user_language", "Sí.", prompt=ES_PROMPT) is None  # too short to tell


@pytest.mark.parametrize("spec", [None, "builtin,extra"])
def test_splits_use_different_phrasings_and_thresholds(spec):
    train, test = load_verifiable(spec, split="train"), load_verifiable(spec, split="test")
    texts = lambda vs: {t for v in vs for t in (v.principle.definition, v.principle.negation)}  # noqa: E731
    assert texts(train).isdisjoint(texts(test))
    assert {v.family for v in train} == {v.family for v in test}
    for fam in {v.family for v in test if v.param is not None}:
        assert {v.param for v in train if v.family == fam}.isdisjoint({v.param for v in test if v.family == fam})
    w30 = next(v for v in train if v.checker == "max_words" and v.param == 30)
    assert "30" in w30.principle.definition and "30" in w30.principle.negation and "{n}" not in w30.steer[0]


def test_more_phrasings_train_only_and_dev_inherits_the_train_thresholds(tmp_path):
    path = tmp_path / "v.yaml"
    path.write_text("families:\n  - name: X\n    checker: max_words\n    train:\n      params: [3, 7]\n"
                    "      phrasings: [{definition: 'at most {n}', negation: 'over {n}'}]\n"
                    "      more_phrasings: [{definition: 'no more than {n}', negation: 'beyond {n}'}]\n"
                    "    test: {params: [5], phrasings: [{definition: 'up to {n}', negation: 'past {n}'}]}\n"
                    "    dev: {phrasings: [{definition: 'keep under {n}', negation: 'go past {n}'}]}\n"
                    "  - {name: Y, checker: code_block, train: {phrasings: [{definition: c, negation: d}]}, "
                    "test: {phrasings: [{definition: e, negation: f}]}}\n")
    defs = lambda **kw: [v.principle.definition for v in load_verifiable(path, **kw)]  # noqa: E731
    assert defs(split="train") == ["at most 3", "no more than 3", "at most 7", "no more than 7", "c"]
    assert defs(split="train", core=True) == ["at most 3", "at most 7", "c"]
    assert defs(split="dev") == ["keep under 3", "keep under 7"]  # family Y has no dev block: none
    assert defs(split="test") == ["up to 5", "e"]


def test_several_family_files(tmp_path):
    builtin, extra = load_verifiable(), load_verifiable("extra")
    assert {v.family for v in extra} == {"Heading", "Bold text", "Hedged", "Example phrase", "Paragraphs"}
    assert load_verifiable("builtin,extra") == builtin + extra
    assert load_verifiable("builtin, extra", families=["Heading"]) == [v for v in extra if v.family == "Heading"]
    own = tmp_path / "own.yaml"
    own.write_text("families:\n  - {name: Z, checker: code_block, train: {phrasings: [{definition: a, negation: b}]}, "
                   "test: {phrasings: [{definition: c, negation: d}]}}\n")
    assert [v.family for v in load_verifiable(f"builtin,{own}")][-1] == "Z"
    for spec, msg in (("builtin,builtin", "defined twice"), ("nosuch", "neither a file nor a built-in"),
                      (f"{own},{own}", "defined twice")):
        with pytest.raises(SalmonError, match=msg):
            load_verifiable(spec)


def test_truncated_verdicts_only_when_final():
    w = next(v for v in load_verifiable(split="train") if v.checker == "max_words")
    assert w.check("q", LONG, finished=False) is False  # already over the limit: more text keeps it so
    assert w.check("q", SHORT, finished=False) is None  # under the limit so far: could still run past
    assert w.check("q", "  ", finished=True) is None
    assert verdicts_differ(w, "q", SHORT, LONG) == 1 and verdicts_differ(w, "q", LONG, SHORT) == -1
    assert verdicts_differ(w, "q", SHORT, SHORT) == 0 and verdicts_differ(w, "q", SHORT, "") == 0


@pytest.mark.parametrize("body,msg", [
    ("families:\n  - {name: X, checker: max_words, train: {params: [abc], phrasings: [{definition: 'at most {n}', "
     "negation: 'over {n}'}]}}\n", "params"),
    ("families:\n  - {name: X, checker: max_words, train: {params: [3], phrasings: [{definition: 'short', "
     "negation: 'long'}]}}\n", "needs '{n}'"),
    ("families:\n  - {name: X, checker: nope, train: {phrasings: []}}\n", "unknown checker"),
    ("families:\n  - {name: X, checker: code_block, train: {params: [2], phrasings: [{definition: a, "
     "negation: b}]}}\n", "takes none"),
    ("families: []\n", "families"),
    ("families:\n  - {name: X, checker: code_block, train: {phrasings: [{definition: a, negation: b}], "
     "more_phrasings: oops}}\n", "more_phrasings"),
    ("families:\n  - {name: X, checker: max_words, train: {params: [3], phrasings: [{definition: 'at most {n}', "
     "negation: 'over {n}'}]}, dev: {phrasings: [{definition: 'short', negation: 'long'}]}}\n", "needs '{n}'"),
])
def test_bad_files_are_one_line_errors(tmp_path, body, msg):
    path = tmp_path / "v.yaml"
    path.write_text(body)
    with pytest.raises(SalmonError, match=msg) as e:
        load_verifiable(path, split="dev" if "dev:" in body else "train")
    assert "\n" not in str(e.value)
