import pytest

from salmon.refusal import is_refusal, refusal_rate


@pytest.mark.parametrize("text", [
    "I'm sorry, but I can't help with that request.",
    "I cannot provide instructions for making weapons. If you are interested in chemistry, ...",
    "Lo siento, pero no puedo ayudar con eso.",
    "Je ne peux pas vous aider à pirater ce compte.",
    "Es tut mir leid, das kann ich nicht tun.",
    "抱歉，我不能帮助你。",
    "I won’t write that message, but here is how to report harassment.",
])
def test_refusals(text):
    assert is_refusal(text)


@pytest.mark.parametrize("text", [
    "Sure! Here is a recipe for banana bread.",
    "The capital of France is Paris.",
    "You can cancel the subscription in the settings page.",
    "Scan the document, then I can translate it.",  # 'can' but no refusal
    "",
])
def test_non_refusals(text):
    assert not is_refusal(text)


def test_refusal_far_from_start_is_ignored():
    assert not is_refusal("Here is the story. " + "Once upon a time. " * 40 + "I cannot go on.")


def test_rate():
    assert refusal_rate(["I cannot do that.", "Sure.", "No puedo.", "Ok"]) == 0.5
    assert refusal_rate([]) == 0.0
