"""Prompt templates (package data under `salmon/prompts/`) and safe rendering.

Templates use `{{name}}` placeholders. Rendering is one pass over the *template*: the
values are inserted verbatim and never re-read, so braces, `{{...}}` or Jinja syntax
inside a user's prompt, a response or a principle cannot inject into the template.
Chat-template special tokens inside user text (e.g. `<|im_end|>`) are broken up by
`neutralize_special_tokens` so that user text cannot close a turn.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from salmon.errors import SalmonError

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@cache
def load_template(name: str) -> str:
    """Read `salmon/prompts/<name>.txt`."""
    try:
        return resources.files("salmon").joinpath(f"prompts/{name}.txt").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SalmonError(f"unknown prompt template '{name}'") from None


def placeholders(template: str) -> set[str]:
    return set(PLACEHOLDER.findall(template))


def render(template: str, **values: str) -> str:
    """Fill `{{name}}` placeholders; every placeholder must be given and every value used."""
    needed = placeholders(template)
    missing = needed - set(values)
    if missing:
        raise SalmonError(f"template needs a value for {sorted(missing)[0]!r}")
    extra = set(values) - needed
    if extra:
        raise SalmonError(f"template has no placeholder {sorted(extra)[0]!r}")
    return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), template)


def neutralize_special_tokens(text: str, special_tokens: list[str]) -> str:
    """Break up special-token strings in untrusted text (insert a space after the first
    character) so the tokenizer reads them as ordinary characters."""
    for tok in special_tokens:
        if len(tok) > 1 and tok in text:
            text = text.replace(tok, tok[0] + " " + tok[1:])
    return text
