"""Symbolic rules: each fires only where its check is certain, in several languages."""

import pytest

from salmon.rules import (
    RULES,
    RuleInfo,
    apply_rules,
    banned_phrase,
    count_list_items,
    detect_language,
    language_mismatch,
    list_count,
    requested_count,
    requested_language,
)

ES = "En julio Madrid suele ser muy caluroso y seco: las máximas rondan los 33 grados y casi no llueve."
EN = "In July Madrid is usually very hot and dry: highs are around 33 degrees and it hardly rains."
FR = "En juillet, Madrid est en général très chaude et sèche, avec des maximales autour de 33 degrés."
PT = "Em julho, Madri costuma ser muito quente e seca, com máximas em torno de 33 graus e pouca chuva."
ZH = "光合作用是植物利用光能，把二氧化碳和水转化为糖并释放氧气的过程。"


# --- banned_phrase ---------------------------------------------------------------

@pytest.mark.parametrize("bad", [
    "As an AI language model, I think the capital of France is Paris.",
    "I'm just an AI, but the capital of France is Paris.",
    "En tant qu'IA, je peux dire que la capitale de la France est Paris.",
    "Als KI-Sprachmodell kann ich sagen: Die Hauptstadt ist Paris.",
    "Como modelo de lenguaje, puedo decir que la capital es París.",
    "作为一个人工智能语言模型，我认为法国的首都是巴黎。",
])
def test_banned_phrase_prefers_the_clean_response(bad):
    clean = "The capital of France is Paris."
    assert banned_phrase("What is the capital of France?", clean, bad) == 1
    assert banned_phrase("What is the capital of France?", bad, clean) == -1


def test_banned_phrase_silent_when_both_or_neither_or_prompt_about_ai():
    bad = "As an AI language model, I cannot have opinions, but Paris is lovely."
    assert banned_phrase("Capital of France?", bad, bad + " Really.") == 0
    assert banned_phrase("Capital of France?", "Paris.", "It is Paris.") == 0
    # The user asks about the assistant itself: saying it is an AI may be the honest answer.
    assert banned_phrase("Are you an AI or a person?", bad, "I am a person.") == 0
    assert banned_phrase("What is a language model?", bad, "A model of text.") == 0


# --- language_mismatch -------------------------------------------------------------

def test_detect_language_on_prose_and_refuses_unreliable_text():
    assert detect_language(ES) == "es"
    assert detect_language(ZH) == "zh"
    assert detect_language("Sure!") is None  # too short
    assert detect_language("def f(x):\n    return {x: x + 1}") is None  # code
    # Quoted foreign words and parenthesised asides are not the writer's language.
    assert detect_language("'Mas' means 'but'; 'mais' means 'more'.") is None
    assert detect_language("Man sagt „arigatō“ (ありがとう). Höflicher ist „arigatō gozaimasu“.") is None


@pytest.mark.parametrize("prompt,right", [
    ("¿Qué tiempo hace normalmente en Madrid en julio?", ES),
    ("Quel temps fait-il en général à Madrid au mois de juillet ?", FR),
    ("请用一句话解释什么是光合作用。", ZH),
])
def test_language_mismatch_prefers_the_prompt_language(prompt, right):
    assert language_mismatch(prompt, right, EN) == 1
    assert language_mismatch(prompt, EN, right) == -1


def test_language_mismatch_follows_an_explicit_request():
    prompt = "Reply in French, please: what is the weather like in Madrid in July?"
    assert requested_language(prompt) == ("fr", True)
    assert language_mismatch(prompt, EN, FR) == -1
    assert requested_language("Réponds en anglais : qu'est-ce qu'un volcan ?") == ("en", True)
    assert requested_language("请用英文回答：什么是光合作用？") == ("en", True)
    assert requested_language("Ответь по-русски: что такое вулкан?") == ("ru", True)


def test_language_mismatch_abstains_when_unsure():
    # A language is mentioned but not requested for the answer: expected language unsure.
    assert requested_language("How do you say 'thank you' in Japanese?") == (None, True)
    assert requested_language("Explain the differences in French and English grammar.") == (None, True)
    assert requested_language("Write a story about a French chef.") == (None, True)
    assert language_mismatch("Explain the differences in French and English grammar.", FR, EN) == 0
    # Both in the prompt's language, both wrong, one too short, or near languages.
    assert language_mismatch("What is the weather like in Madrid in July?", EN, EN) == 0
    assert language_mismatch("¿Qué tiempo hace normalmente en Madrid en julio?", FR, EN) == 0
    assert language_mismatch("¿Qué tiempo hace normalmente en Madrid en julio?", ES, "Hot.") == 0
    assert language_mismatch("¿Qué tiempo hace normalmente en Madrid en julio?", ES, PT) == 0
    # Garbled Russian from the embedded model that langid calls Bulgarian: a near language.
    garbled = 'Прогножное, это написано на объясник. Вы, это написано на объясника "эта подраздника" эксерсиния. Объясника'
    assert detect_language(garbled) == "bg"
    assert language_mismatch("Объясни, почему важно пить достаточно воды каждый день.", garbled,
                             "Вода нужна организму каждый день, потому что она регулирует температуру тела.") == 0
    # A prompt that is mostly quoted material has no language of its own to go by.
    assert language_mismatch(f'Summarize: "{FR}"', EN, FR) == 0


# --- list_count --------------------------------------------------------------------

@pytest.mark.parametrize("prompt,n", [
    ("List three vegetarian dinner ideas that take under 30 minutes.", 3),
    ("Give me 5 tips for sleeping better.", 5),
    ("Summarize this text in two bullet points: \"Bees use 3 dances.\"", 2),
    ("Explain how to make tea in 4 steps.", 4),
    ("Donne-moi trois conseils pour mieux organiser ma semaine.", 3),
    ("Nenne vier Vorteile des Radfahrens.", 4),
    ("Dame dos ejemplos de energía renovable.", 2),
    ("Quali sono i piatti tipici del nord Italia? Elencane tre.", 3),
    ("Geef drie ideeën voor een goedkoop weekend.", 3),
    ("Write a two-line birthday message.", None),  # lines are not list items
    ("Erkläre in zwei Sätzen, was eine Demokratie ist.", None),
    ("Give two examples of metals and three examples of gases.", None),  # ambiguous
    ("I have 2 kids and need some ideas.", None),
    ("What is 2 + 2?", None),
])
def test_requested_count(prompt, n):
    assert requested_count(prompt) == n


def test_count_list_items():
    assert count_list_items("Here:\n1. a\n   - detail\n   - detail\n2. b\n3. c") == 3
    assert count_list_items("- a\n- b\n  - nested\n* c") == 3
    assert count_list_items("**1. Bold** x\n**2. Two** y") == 2
    assert count_list_items("1) a\n2) b") == 2
    assert count_list_items("Just prose, no list.") is None
    assert count_list_items("1. a\n2. b\n1. c") is None  # two lists: count unsure
    assert count_list_items("**Note:** not a bullet\n- one") == 1


def test_list_count_rule():
    prompt = "List three fruits that are high in vitamin C."
    three = "1. Orange\n2. Kiwi\n3. Strawberry"
    two = "- Orange\n- Kiwi"
    assert list_count(prompt, three, two) == 1
    assert list_count(prompt, two, three) == -1
    assert list_count(prompt, three, "1. Guava\n2. Lemon\n3. Papaya") == 0
    assert list_count(prompt, two, "- Orange\n- Kiwi\n- Guava\n- Lemon") == 0  # both wrong
    assert list_count(prompt, three, "Oranges, kiwis and strawberries.") == 0  # no list: unsure
    assert list_count("Name some fruits.", three, two) == 0


# --- the registry ------------------------------------------------------------------

def test_apply_rules_first_fired_and_conflicts(monkeypatch):
    prompt = "¿Qué tiempo hace normalmente en Madrid en julio?"
    boiler = "As an AI language model, " + ES
    assert apply_rules(list(RULES), prompt, ES, EN) == ("language_mismatch", 1)
    assert apply_rules(["list_count"], prompt, ES, EN) == ("", 0)
    # banned_phrase favours b, language_mismatch favours a: no check is certain.
    assert apply_rules(["banned_phrase", "language_mismatch"], prompt, boiler, EN) == ("", 0)
    monkeypatch.setitem(RULES, "always_a", RuleInfo(lambda p, a, b: 1, None))
    assert apply_rules(["always_a", "language_mismatch"], prompt, ES, EN) == ("always_a", 1)
