"""Chat-formatted prompts back into turns, for the reward server (`salmon serve`).

OpenRLHF sends each sample as one string, prompt + response, the prompt already run
through the policy's chat template. `ChatMarkers` finds how the reward model's chat
template marks turns (by rendering sentinel conversations), `split_query` cuts a query
into prompt and response, and `parse_chat` turns the prompt back into messages, so the
reward model reads the whole conversation and not only the last user turn.
"""

import re
from dataclasses import dataclass

from salmon.conversation import Prompt, simplify


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ChatMarkers:
    """How the chat template marks turns, found by rendering sentinel conversations:
    where a user turn opens (`user_open`) and closes (`user_close`), the text after a user
    turn up to the assistant's answer (`assistant`), and the openers of system and
    assistant turns (empty when the template has none)."""

    user_open: str
    user_close: str
    assistant: str
    specials: tuple[str, ...]
    system_open: str = ""
    assistant_open: str = ""

    @classmethod
    def from_tokenizer(cls, tokenizer) -> "ChatMarkers":
        from salmon.chat import render_chat, special_token_strings

        specials = tuple(special_token_strings(tokenizer))
        s = [f"\u2063S{i}\u2063" for i in range(4)]
        talk = [{"role": "user", "content": s[1]}, {"role": "assistant", "content": s[2]},
                {"role": "user", "content": s[3]}]
        text = render_chat(tokenizer, talk, clean=False)
        to_assistant, to_user, after = _between(text, s[1], s[2]), _between(text, s[2], s[3]), text.split(s[3], 1)[1]
        close, user_open = _split_separator(to_user, specials)
        system_open = ""
        try:
            with_system = render_chat(tokenizer, [{"role": "system", "content": s[0]}, talk[0]], clean=False)
            if s[0] in with_system:
                system_open = with_system.split(s[0], 1)[0]
                bos = getattr(tokenizer, "bos_token", None)
                system_open = system_open[len(bos):] if bos and system_open.startswith(bos) else system_open
        except Exception:  # noqa: BLE001 - templates that refuse a system turn
            system_open = ""
        return cls(user_open, close or after, after, specials, system_open.lstrip(),
                   _split_separator(to_assistant, specials)[1])


def _between(text: str, a: str, b: str) -> str:
    return text.split(a, 1)[1].split(b, 1)[0]


def _split_separator(sep: str, specials: tuple[str, ...]) -> tuple[str, str]:
    """(close, open) from the text between two turns: the end-of-turn token, if the
    separator starts with a special token, then the next turn's opener."""
    for tok in specials:
        if sep.lstrip().startswith(tok):
            return tok, sep.lstrip()[len(tok):].lstrip()
    return "", sep.lstrip()


def split_query(query: str, prompt: str | None, markers: ChatMarkers) -> tuple[Prompt, str]:
    """(prompt, response) from OpenRLHF's query (prompt + response as one string).

    The prompt is normally a prefix of the query; when it is not (special tokens dropped
    or added by the trainer), the query is split after the last assistant header.
    Chat-formatted prompts are parsed back into their turns (`parse_chat`), so the RM
    sees the whole conversation; special tokens (end of turn, padding) are stripped from
    the response.
    """
    specials = markers.specials
    if prompt is not None and query.startswith(prompt):
        head, response = prompt, query[len(prompt):]
    elif prompt is not None and _strip(query, specials).startswith(_strip(prompt, specials)) and _strip(prompt, specials):
        head, response = prompt, _strip(query, specials)[len(_strip(prompt, specials)):]
    elif markers.assistant and markers.assistant in query:
        cut = query.rindex(markers.assistant) + len(markers.assistant)
        head, response = query[:cut], query[cut:]
    else:
        raise BadRequest(422, "cannot split query into prompt and response: the prompt is not a prefix of the query")
    return parse_chat(head, markers), _strip(response, specials).strip()


def _strip(text: str, specials: tuple[str, ...] | list[str]) -> str:
    for s in specials:
        text = text.replace(s, "")
    return text


def parse_chat(prompt: str, markers: ChatMarkers) -> Prompt:
    """The turns of a chat-formatted prompt: its text when it has no user-turn marker (a
    plain prompt), else the messages between the role markers, the empty assistant header
    at the end (the generation prompt) dropped. Text before the first marker, if any is
    left once special tokens are removed, is a system message."""
    openers = {o: r for o, r in ((markers.system_open, "system"), (markers.user_open, "user"),
                                 (markers.assistant_open, "assistant")) if o.strip()}
    if markers.user_open not in openers or markers.user_open not in prompt:
        return _strip(prompt, markers.specials).strip()
    found = list(re.finditer("|".join(re.escape(o) for o in sorted(openers, key=len, reverse=True)), prompt))
    messages = []
    lead = _strip(prompt[:found[0].start()], markers.specials).strip()
    if lead:
        messages.append({"role": "system", "content": lead})
    for m, nxt in zip(found, [*found[1:], None]):
        content = prompt[m.end(): nxt.start() if nxt else len(prompt)]
        if markers.user_close and markers.user_close in content:
            content = content[: content.index(markers.user_close)]
        messages.append({"role": openers[m.group(0)], "content": _strip(content, markers.specials).strip()})
    while messages and messages[-1]["role"] == "assistant" and not messages[-1]["content"]:
        messages.pop()
    if not messages or messages[-1]["role"] != "user":
        raise BadRequest(422, "the prompt's last turn is not a user turn; cannot tell what the response answers")
    return simplify(messages)
