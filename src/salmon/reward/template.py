"""The reward model's input: a (prompt, response) exchange, then the principles, last.

    text = chat(*prompt turns, assistant: response)         # the shared prefix
         + chat(user: rm.txt with the bulleted principles)  # the suffix
         + assistant header                                  # the reward is read here

The exchange goes through the model's chat template (`chat.render_chat`), so user text
cannot open or close a turn. The prompt is text (one user turn) or a whole conversation
(`salmon.conversation`); every turn of it is in the exchange. The principles come after
the response, as in SALMON, so one (prompt, response) prefix can be computed once and
reused under many principle lists. The reward is read at the last token, the start of
the assistant's answer to "Does the reply follow them? Answer Yes or No." (see
`train.init_yes_no_head`).

Token ids are always built as `ids(prefix) + ids(suffix)`, in training and in scoring,
so prefix sharing gives exactly the inputs of plain scoring. Principle strings may be
"Name: definition"; the name is dropped, because training data carries definitions only.
"""

from __future__ import annotations

from salmon.chat import render_chat
from salmon.conversation import (
    Prompt,
    as_messages,
    drop_oldest,
    last_user_text,
    with_last_user_text,
)
from salmon.errors import SalmonError
from salmon.principles import principle_from_text
from salmon.templates import load_template, render

TEMPLATE = "rm"
MIN_PREFIX_TOKENS = 32  # room the exchange keeps however long the principle list is
ELLIPSIS = " …"


def normalize_principles(principles: list[str], where: str = "principles") -> list[str]:
    """Check a principle list and return its definition sentences (names dropped)."""
    if isinstance(principles, str):
        principles = [principles]
    if not isinstance(principles, (list, tuple)) or not principles:
        raise SalmonError(f"{where}: expected a non-empty list of principle texts")
    return [principle_from_text(p, f"{where}[{i}]").definition for i, p in enumerate(principles)]


def bullet_list(principles: list[str]) -> str:
    return "\n".join(f"- {p}" for p in principles)


def split_rm_input(tokenizer, prompt: Prompt, response: str, principles: list[str]) -> tuple[str, str]:
    """(prefix, suffix): the rendered exchange, and the principles turn with the cue.

    For chat templates that rewrite earlier turns (so the exchange is not a text prefix of
    the whole), the prefix is empty and the suffix holds everything; sharing is then off.
    """
    exchange = [*as_messages(prompt), {"role": "assistant", "content": response}]
    ask = {"role": "user", "content": render(load_template(TEMPLATE).strip(),
                                              principles=bullet_list(normalize_principles(principles)))}
    prefix = render_chat(tokenizer, exchange, add_generation_prompt=False)
    whole = render_chat(tokenizer, [*exchange, ask], add_generation_prompt=True)
    if not whole.startswith(prefix):
        return "", whole
    return prefix, whole[len(prefix):]


def format_rm_input(tokenizer, prompt: Prompt, response: str, principles: list[str]) -> str:
    """The whole reward-model input text."""
    prefix, suffix = split_rm_input(tokenizer, prompt, response, principles)
    return prefix + suffix


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []


def _cut(tokenizer, text: str, keep: int) -> str:
    ids = _ids(tokenizer, text)
    return text if len(ids) <= keep else tokenizer.decode(ids[:keep]) + ELLIPSIS


def encode_rm_parts(tokenizer, prompt: Prompt, response: str, principles: list[str], max_length: int,
                    stats: dict[str, int] | None = None) -> tuple[list[int], list[int]]:
    """Token ids (prefix, suffix), at most `max_length` together.

    The principles are never cut: a list too long for `max_length` is an error. A long
    exchange first loses the conversation's oldest turns (`conversation.drop_oldest`),
    then the response's end, then the last user turn's. `stats`, when given, counts
    what was shortened: "truncated_turns" (messages dropped), "truncated_texts" (items
    whose response or last user text was cut).
    """
    prefix, suffix = split_rm_input(tokenizer, prompt, response, principles)
    suffix_ids = _ids(tokenizer, suffix)
    room = max_length - len(suffix_ids)
    if room < MIN_PREFIX_TOKENS:
        raise SalmonError(
            f"principles list is {len(suffix_ids)} tokens, too long for --max-length {max_length}: "
            f"use fewer or shorter principles, or raise --max-length")
    prefix_ids = _ids(tokenizer, prefix)
    if len(prefix_ids) > room and prefix:
        prompt, dropped = drop_oldest(
            prompt, lambda p: len(_ids(tokenizer, split_rm_input(tokenizer, p, response, principles)[0])) <= room)
        if dropped:
            _count(stats, "truncated_turns", dropped)
            prefix_ids = _ids(tokenizer, split_rm_input(tokenizer, prompt, response, principles)[0])
        if len(prefix_ids) > room:
            _count(stats, "truncated_texts", 1)
            prefix_ids = _shorten_exchange(tokenizer, prompt, response, principles, len(prefix_ids), room)
    if len(prefix_ids) > room:  # a template with no separate prefix, or odd tokenisation
        prefix_ids = prefix_ids[:room]
    return prefix_ids, suffix_ids


def _count(stats: dict[str, int] | None, key: str, n: int) -> None:
    if stats is not None:
        stats[key] = stats.get(key, 0) + n


def _shorten_exchange(tokenizer, prompt: Prompt, response: str, principles: list[str],
                      have: int, room: int) -> list[int]:
    """Prefix ids of the exchange with the response (then the last user text) cut to fit `room`."""
    p_len, r_len = len(_ids(tokenizer, last_user_text(prompt))), len(_ids(tokenizer, response))
    overhead = have - p_len - r_len + 4  # chat markup and earlier turns, plus slack for the ellipsis
    budget = max(0, room - overhead)
    p_keep = min(p_len, max(budget - r_len, budget // 2))
    r_keep = max(0, min(r_len, budget - p_keep))
    cut_prompt = with_last_user_text(prompt, _cut(tokenizer, last_user_text(prompt), p_keep))
    prefix, _ = split_rm_input(tokenizer, cut_prompt, _cut(tokenizer, response, r_keep), principles)
    return _ids(tokenizer, prefix)


def encode_rm_input(tokenizer, prompt: Prompt, response: str, principles: list[str],
                    max_length: int, stats: dict[str, int] | None = None) -> list[int]:
    """Token ids of the whole input (prefix + suffix); the reward is read at the last one."""
    prefix_ids, suffix_ids = encode_rm_parts(tokenizer, prompt, response, principles, max_length, stats)
    return prefix_ids + suffix_ids
