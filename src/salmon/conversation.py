"""Prompts as text or as conversations (TRL's conversational format).

A prompt is either a string (one user turn) or a list of messages

    [{"role": "system" | "user" | "assistant", "content": str}, ...]

with at most one system message, first, and a user turn last: the response being
generated, judged or scored answers that last user turn, with everything before it as
context. Every stage that reads prompts accepts both; records keep the prompt as given.

When a conversation does not fit a token budget, whole turns are dropped from the oldest
on (a user turn together with the assistant turns that answered it), the system message
last; only then is the text of the last user turn cut. `drop_oldest` implements the rule,
and the stages count what it dropped. Principles are never part of a prompt, so this
never touches them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from salmon.errors import SalmonError
from salmon.templates import load_template, render

Message = dict[str, str]
Prompt = str | list[Message]
ROLES = ("system", "user", "assistant")
ROLE_LABELS = {"system": "System", "user": "User", "assistant": "Assistant"}


def is_conversation(prompt: Any) -> bool:
    return isinstance(prompt, list)


def parse_prompt(value: Any, where: str = "prompt") -> Prompt:
    """Check a prompt and return it in canonical form: text as is, a conversation as a new
    list of {"role", "content"} dicts (other keys dropped). Errors are one line naming `where`."""
    if isinstance(value, str):
        if not value.strip():
            raise SalmonError(f"{where}: empty prompt")
        return value
    if not isinstance(value, list):
        raise SalmonError(f"{where}: prompt must be text or a list of chat messages, got {type(value).__name__}")
    if not value:
        raise SalmonError(f"{where}: empty conversation (expected at least one user message)")
    odd = next((m for m in value if not isinstance(m, dict)), None)
    if odd is not None:
        raise SalmonError(f"{where}: prompt must be text or a list of chat messages "
                          f"({{\"role\", \"content\"}} objects), got a list holding {type(odd).__name__}")
    out: list[Message] = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise SalmonError(f"{where}: message {i + 1} must be {{\"role\": system|user|assistant, "
                              f"\"content\": text}}, got {_short(m)}")
        if m["role"] == "system" and i > 0:
            raise SalmonError(f"{where}: message {i + 1} is a system message; only the first message may be one")
        out.append({"role": m["role"], "content": m["content"]})
    if out[-1]["role"] != "user":
        raise SalmonError(f"{where}: the last message must be a user turn (the one to answer), "
                          f"got {out[-1]['role']!r}")
    if not out[-1]["content"].strip():
        raise SalmonError(f"{where}: the last user message is empty")
    return out


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)  # ASCII: safe in any error channel
    return text if len(text) <= 60 else text[:57] + "..."


def as_messages(prompt: Prompt) -> list[Message]:
    """The prompt as a message list (text becomes one user message)."""
    return [dict(m) for m in prompt] if isinstance(prompt, list) else [{"role": "user", "content": prompt}]


def simplify(messages: list[Message]) -> Prompt:
    """A conversation of a single user message as its text, anything else unchanged."""
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    return messages


def last_user_text(prompt: Prompt) -> str:
    """The text of the turn being answered."""
    return prompt if isinstance(prompt, str) else prompt[-1]["content"]


def with_last_user_text(prompt: Prompt, text: str) -> Prompt:
    """The prompt with the text of its last user turn replaced (used to cut it)."""
    if isinstance(prompt, str):
        return text
    return [*prompt[:-1], {"role": "user", "content": text}]


def prompt_chars(prompt: Prompt) -> int:
    return len(prompt) if isinstance(prompt, str) else sum(len(m["content"]) for m in prompt)


def prompt_key(prompt: Prompt) -> str:
    """A string that identifies the prompt (for sorting, grouping and ids)."""
    return prompt if isinstance(prompt, str) else json.dumps(prompt, ensure_ascii=False, sort_keys=True)


def count_turns(prompt: Prompt) -> int:
    """Messages in the prompt (1 for text)."""
    return 1 if isinstance(prompt, str) else len(prompt)


def drop_oldest(prompt: Prompt, fits: Callable[[Prompt], bool]) -> tuple[Prompt, int]:
    """Drop the oldest turns until `fits(prompt)` holds; (kept prompt, messages dropped).

    A dropped user turn takes the assistant turns that followed it along, so the kept part
    starts with a user turn; the system message goes after every earlier turn; the last
    user turn is always kept (cutting its text is the caller's job).
    """
    if isinstance(prompt, str) or fits(prompt):
        return prompt, 0
    system = prompt[:1] if prompt[0]["role"] == "system" else []
    turns = prompt[len(system):]
    dropped = 0
    while len(turns) > 1:
        turns, dropped = turns[1:], dropped + 1
        while len(turns) > 1 and turns[0]["role"] != "user":
            turns, dropped = turns[1:], dropped + 1
        if fits(simplify(system + turns)):
            return simplify(system + turns), dropped
    if system:
        dropped += 1
    return simplify(turns), dropped


def request_text(prompt: Prompt) -> str:
    """The prompt as one text for a reader that sees it inside another prompt (the judge):
    text as is; a conversation as its earlier turns, labelled by role, then the request
    to answer now (`prompts/conversation.txt`)."""
    if isinstance(prompt, str):
        return prompt
    if len(prompt) == 1:
        return prompt[0]["content"]
    history = "\n\n".join(f"{ROLE_LABELS[m['role']]}: {m['content']}" for m in prompt[:-1])
    return render(load_template("conversation").strip(), history=history, request=prompt[-1]["content"])
