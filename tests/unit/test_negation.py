"""Default negations negate the main clause (the part about the response), never a verb in a
leading condition; where the clause cannot be told, a principle file must say `negation:`."""

import pytest

from salmon.errors import SalmonError
from salmon.principles import derive_negation, load_principles


@pytest.mark.parametrize("definition,negation", [
    # the bug in issue 14: "has" in the condition was negated
    ("When the question has a yes/no answer, the response gives that answer first.",
     "When the question has a yes/no answer, the response does not give that answer first."),
    ("For problems involving calculation or logic, the response writes out the intermediate steps.",
     "For problems involving calculation or logic, the response does not write out the intermediate steps."),
    ("If the user asks for code, the response should include a test.",
     "If the user asks for code, the response should not include a test."),
    ("When the assistant declines a request, it says so briefly.",
     "When the assistant declines a request, it does not say so briefly."),
    ("The response carries out the request.", "The response does not carry out the request."),
    ("The response clearly states its assumptions.", "The response does not clearly state its assumptions."),
    ("The reply matches the user's language.", "The reply does not match the user's language."),
    ("Any code in the response is syntactically valid.", "Any code in the response is not syntactically valid."),
    ("The response does not use jargon.", "The response does use jargon."),
    ("The response has been checked.", "The response has not been checked."),
])
def test_main_clause_is_negated(definition, negation):
    assert derive_negation(definition) == negation


def _write(tmp_path, definition):
    f = tmp_path / "p.yaml"
    f.write_text(f"principles:\n  - name: A\n    definition: \"{definition}\"\n")
    return f


@pytest.mark.parametrize("definition", [
    "Avoid jargon.",                                      # no subject to negate
    "When the question has a yes/no answer give it first.",  # condition with no comma: clause unclear
])
def test_file_without_negation_is_refused_when_the_clause_is_unclear(tmp_path, definition):
    f = _write(tmp_path, definition)
    with pytest.raises(SalmonError, match="negation:") as e:
        load_principles(f)
    assert str(f) in str(e.value) and "\n" not in str(e.value)


def test_file_with_explicit_negation_is_accepted(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("principles:\n  - {name: A, definition: Avoid jargon., negation: Use jargon freely.}\n")
    assert load_principles(f)[0].negation == "Use jargon freely."


def test_free_text_principle_falls_back_to_a_plain_denial():
    # free text (API, RM scoring) never fails; the denial covers the whole sentence
    assert derive_negation("Avoid jargon.") == "It is not the case that: Avoid jargon."


def test_shipped_principles_without_negation_get_a_main_clause_negation():
    from salmon.negation import negate_main_clause
    from salmon.principles import builtin_names, builtin_path, read_yaml

    derived = 0
    for name in builtin_names():
        for raw in read_yaml(builtin_path(name))["principles"]:
            if not raw.get("negation"):
                derived += 1
                assert negate_main_clause(raw["definition"]) is not None, (name, raw["name"])
    assert derived >= 10  # self_align_rules relies on derived negations
