"""Chat formatting for every prompt a model sees.

Models with a chat template use it; base models without one get a documented plain-text
format (`PLAIN_FORMAT`). User-supplied text is passed through
`templates.neutralize_special_tokens` first, so it cannot open or close a turn.
"""

from __future__ import annotations

from salmon.conversation import Prompt, as_messages
from salmon.templates import neutralize_special_tokens

# For base models without a chat template.
PLAIN_SYSTEM = "{system}\n\n"
PLAIN_TURN = {"user": "### User:\n{content}\n\n", "assistant": "### Assistant:\n{content}\n\n"}
PLAIN_GENERATION_PROMPT = "### Assistant:\n"
PLAIN_STOP = "\n### User:"


def special_token_strings(tokenizer) -> list[str]:
    toks = set(tokenizer.all_special_tokens)
    for added in getattr(tokenizer, "added_tokens_decoder", {}).values():
        if getattr(added, "special", False):
            toks.add(added.content)
    return sorted((t for t in toks if t), key=len, reverse=True)


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def render_chat(tokenizer, messages: list[dict[str, str]], add_generation_prompt: bool = True,
                clean: bool = True) -> str:
    """Render messages to the model's prompt text. `clean` neutralises special tokens in
    the message contents (always on for user-supplied text)."""
    if clean:
        specials = special_token_strings(tokenizer)
        messages = [{"role": m["role"], "content": neutralize_special_tokens(m["content"], specials)}
                    for m in messages]
    if has_chat_template(tokenizer):
        return tokenizer.apply_chat_template(messages, tokenize=False,
                                             add_generation_prompt=add_generation_prompt)
    parts = []
    for m in messages:
        if m["role"] == "system":
            parts.append(PLAIN_SYSTEM.format(system=m["content"]))
        else:
            parts.append(PLAIN_TURN[m["role"]].format(content=m["content"]))
    if add_generation_prompt:
        parts.append(PLAIN_GENERATION_PROMPT)
    return "".join(parts)


def prompt_messages(prompt: Prompt, system: str | None = None) -> list[dict[str, str]]:
    """The messages of a prompt (text or conversation); `system` is added in front unless
    the conversation has a system message of its own."""
    messages = as_messages(prompt)
    if system and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system})
    return messages


def user_prompt(tokenizer, text: Prompt, system: str | None = None) -> str:
    """The generation prompt for `text`: one user turn, or a whole conversation."""
    return render_chat(tokenizer, prompt_messages(text, system))


def stop_strings(tokenizer) -> list[str]:
    """Stop strings implied by the chat format (besides the EOS token)."""
    return [] if has_chat_template(tokenizer) else [PLAIN_STOP]
