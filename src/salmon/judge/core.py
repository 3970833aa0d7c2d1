"""The self-judge's scoring core: judge prompts, choice tokens, and two ways to score them.

A judge prompt (package data `prompts/judge_<variant>.txt`) shows the request (with a
conversation's earlier turns, `conversation.request_text`), two outputs and one
principle, rendered with the model's chat template; the assistant turn is pre-filled
(e.g. "Output (") so that the next token names the choice. The score of one prompt is
logit(first choice) - logit(second choice) at that position.

The principle is the last thing in the user turn, so a prompt splits into a *prefix*
(system, request, both outputs) shared by every principle and a short per-principle
*suffix* (principle text, end of turn, pre-fill). Two scorers:

- `score_shared`: run each prefix once, keep its KV cache, and run the suffixes of all
  its principles as one batch against copies of that cache (batched across prefixes).
- `score_reference`: run prefix + suffix in full for every principle.

Both see exactly the same token ids, so they agree to float rounding; the reference
exists for correctness checks and the speed benchmark (`salmon bench judge`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources

from salmon.chat import render_chat, special_token_strings
from salmon.conversation import (
    Prompt,
    drop_oldest,
    last_user_text,
    request_text,
    with_last_user_text,
)
from salmon.errors import SalmonError
from salmon.padding import left_pad
from salmon.templates import load_template, neutralize_special_tokens, render

# The variant with the best accuracy on the development sets (see README, "The self-judge").
DEFAULT_VARIANT = "parens"
VARIANT_HELP = "Judge prompt variant (prompts/judge_<variant>.txt): parens, terse, parens_bare, letters, numbers"
SECTION = re.compile(r"^\[(system|user|prefill|choices)\]\s*$", re.MULTILINE)
SENTINEL = "\u27e6PRINCIPLE\u27e7"
TRUNCATION_MARK = " [...]"


@dataclass(frozen=True)
class JudgeTemplate:
    """One judge prompt variant. `user` has {{instruction}}, {{first}}, {{second}} and
    {{principle}} (last); `prefill` starts the assistant turn; `choices` are the texts
    whose single tokens, right after the pre-fill, name the first and second output."""

    name: str
    system: str | None
    user: str
    prefill: str
    choices: tuple[str, str]


@dataclass
class PromptIds:
    """One (pair, order): the shared prefix and one suffix per principle, as token ids."""

    prefix: list[int]
    suffixes: list[list[int]]


def judge_variants() -> list[str]:
    folder = resources.files("salmon").joinpath("prompts")
    return sorted(p.name[len("judge_"):-4] for p in folder.iterdir()
                  if p.name.startswith("judge_") and p.name.endswith(".txt"))


def load_judge_template(variant: str) -> JudgeTemplate:
    """Parse `prompts/judge_<variant>.txt`: `#` comment lines, then [system] (optional),
    [user], [prefill] (a JSON string) and [choices] (a JSON list of two strings)."""
    if variant not in judge_variants():
        raise SalmonError(f"--variant {variant}: unknown judge prompt (available: {', '.join(judge_variants())})")
    text = load_template(f"judge_{variant}")
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    parts = SECTION.split(body)
    sections = {parts[i]: parts[i + 1].strip("\n") for i in range(1, len(parts) - 1, 2)}
    where = f"prompts/judge_{variant}.txt"
    try:
        prefill = json.loads(sections["prefill"])
        choices = json.loads(sections["choices"])
        user = sections["user"]
    except (KeyError, json.JSONDecodeError) as e:
        raise SalmonError(f"{where}: needs [user], [prefill] (JSON string) and [choices] (JSON list): {e}") from None
    if not (isinstance(choices, list) and len(choices) == 2 and all(isinstance(c, str) and c for c in choices)):
        raise SalmonError(f"{where}: [choices] must be a JSON list of two non-empty strings")
    if not user.rstrip().endswith("{{principle}}"):
        raise SalmonError(f"{where}: {{{{principle}}}} must be the last thing in [user] (prefix sharing)")
    return JudgeTemplate(variant, sections.get("system") or None, user, prefill, (choices[0], choices[1]))


def split_prompt(tokenizer, template: JudgeTemplate, instruction: Prompt, first: str,
                 second: str) -> tuple[str, str, str]:
    """Render the chat prompt and cut it at the principle: (prefix, lead, tail) texts.

    `lead` is the spaces just before the principle: they move into the suffix, so that
    " The" stays one token as it would in the full prompt. `tail` is everything after
    the principle: the end of the user turn, the assistant header and the pre-fill.
    """
    specials = special_token_strings(tokenizer)
    user = render(template.user, instruction=neutralize_special_tokens(request_text(instruction), specials),
                  first=neutralize_special_tokens(first, specials),
                  second=neutralize_special_tokens(second, specials), principle=SENTINEL)
    messages = ([{"role": "system", "content": template.system}] if template.system else [])
    messages.append({"role": "user", "content": user})
    # Contents are already neutralised above; the template text itself is trusted.
    text = render_chat(tokenizer, messages, add_generation_prompt=True, clean=False) + template.prefill
    prefix, found, tail = text.rpartition(SENTINEL)
    if not found:
        raise SalmonError("the chat template dropped the judge prompt's principle; use another --variant")
    stripped = prefix.rstrip(" ")
    return stripped, prefix[len(stripped):], tail


def encode(tokenizer, text: str, first: bool = False) -> list[int]:
    """Token ids of `text`; a BOS token only at the start of a plain (non-chat) prompt."""
    from salmon.chat import has_chat_template

    special = first and not has_chat_template(tokenizer)
    return tokenizer(text, add_special_tokens=special)["input_ids"]


def build_prompt_ids(tokenizer, template: JudgeTemplate, instruction: Prompt, first: str, second: str,
                     principles: list[str]) -> PromptIds:
    """Token ids for one (pair, order) and its principles (definition texts)."""
    prefix_text, lead, tail = split_prompt(tokenizer, template, instruction, first, second)
    specials = special_token_strings(tokenizer)
    suffixes = [encode(tokenizer, lead + neutralize_special_tokens(p, specials) + tail) for p in principles]
    return PromptIds(encode(tokenizer, prefix_text, first=True), suffixes)


def choice_token_ids(tokenizer, template: JudgeTemplate, model_name: str) -> tuple[int, int]:
    """The single token ids that name the first and second output right after the pre-fill.

    Encodes the end of a real prompt with and without each choice text and requires
    exactly one new token, known to the vocabulary, that decodes back to the choice.
    """
    _, lead, tail = split_prompt(tokenizer, template, "q", "x", "y")
    tail = lead + "The response is clear." + tail
    base = encode(tokenizer, tail)
    ids = []
    for choice in template.choices:
        full = encode(tokenizer, tail + choice)
        new = full[len(base):]
        unk = getattr(tokenizer, "unk_token_id", None)
        ok = (full[: len(base)] == base and len(new) == 1 and new[0] != unk
              and tokenizer.decode(new).strip() == choice.strip())
        if not ok:
            raise SalmonError(
                f"model {model_name}: its tokenizer cannot express the judge choice {choice!r} as one token "
                f"after the pre-fill {template.prefill!r}; try another --variant"
            )
        ids.append(new[0])
    if ids[0] == ids[1]:
        raise SalmonError(f"model {model_name}: the judge choices {template.choices} map to the same token")
    return ids[0], ids[1]


def truncate_text(tokenizer, text: str, max_tokens: int) -> tuple[str, bool]:
    """Keep the first `max_tokens` tokens of `text` (marked with " [...]")."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) <= max_tokens:
        return text, False
    return tokenizer.decode(ids[:max_tokens], skip_special_tokens=True).rstrip() + TRUNCATION_MARK, True


def truncate_prompt(tokenizer, prompt: Prompt, max_tokens: int) -> tuple[Prompt, int, bool]:
    """Fit a request into `max_tokens` tokens as the judge shows it (`request_text`):
    (prompt, messages dropped, whether the last user text was cut). A conversation loses
    its oldest turns first (`conversation.drop_oldest`); then the last user text is cut
    at its end, marked " [...]"."""
    def n_tokens(p: Prompt) -> int:
        return len(tokenizer(request_text(p), add_special_tokens=False)["input_ids"])

    prompt, dropped = drop_oldest(prompt, lambda p: n_tokens(p) <= max_tokens)
    over = n_tokens(prompt) - max_tokens
    if over <= 0:
        return prompt, dropped, False
    last = last_user_text(prompt)
    keep = max(1, len(tokenizer(last, add_special_tokens=False)["input_ids"]) - over)
    text, cut = truncate_text(tokenizer, last, keep)
    return with_last_user_text(prompt, text), dropped, cut


# ---------------------------------------------------------------- scoring


def keep_freed_memory() -> bool:
    """Let glibc keep freed memory for reuse instead of returning it to the system.

    A forward pass allocates and frees many tensors of a few MB; by default glibc serves
    the larger ones with fresh mmap'd pages and trims the heap after frees, so every
    batch pays page faults on first touch. On the 2-core development VM this made the
    judge 3-4x slower than its matmuls allow. Keeping blocks up to 32 MB on the heap and
    not trimming below 1 GB removes that cost. Process-wide, called by the judge's stage
    functions (never at import); a no-op where glibc's `mallopt` is unavailable.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 32 << 20)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):
        return False


def _positions(mask, start=None):
    """Position ids that skip left padding; `start` offsets rows that continue a cache."""
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    return pos if start is None else pos + start[:, None]


def _margins(logits, choices: tuple[int, int]) -> list[float]:
    last = logits[:, -1, :].float()
    return (last[:, choices[0]] - last[:, choices[1]]).tolist()


def _device(model):
    return next(model.parameters()).device


def score_reference(model, items: list[PromptIds], choices: tuple[int, int], pad_id: int,
                    batch_rows: int = 16) -> list[list[float]]:
    """Margins per item and suffix, running prefix + suffix in full for every suffix."""
    import torch

    rows = [(i, item.prefix + s) for i, item in enumerate(items) for s in item.suffixes]
    out: list[float] = []
    dev = _device(model)
    with torch.no_grad():
        for start in range(0, len(rows), batch_rows):
            ids, mask = left_pad([r for _, r in rows[start:start + batch_rows]], pad_id)
            res = model(input_ids=ids.to(dev), attention_mask=mask.to(dev),
                        position_ids=_positions(mask).to(dev), use_cache=False, logits_to_keep=1)
            out.extend(_margins(res.logits, choices))
    return _regroup(out, items)


def score_shared(model, items: list[PromptIds], choices: tuple[int, int], pad_id: int) -> list[list[float]]:
    """Margins per item and suffix, running each prefix once.

    Pass 1 runs the left-padded prefixes and keeps their KV cache. Pass 2 packs all
    suffixes of an item one after another into one row that continues that cache; a 4D
    attention mask lets each suffix token see its own prefix and the earlier tokens of
    its own suffix only, and each suffix's positions restart where the prefix ended. So
    every suffix sees exactly the context it has in the full prompt, without copying
    the cache once per principle.
    """
    import torch

    dev = _device(model)
    ids, mask = left_pad([item.prefix for item in items], pad_id)
    ids, mask = ids.to(dev), mask.to(dev)
    with torch.no_grad():
        res = model(input_ids=ids, attention_mask=mask, position_ids=_positions(mask),
                    use_cache=True, logits_to_keep=1)
        packed = pack_suffixes(items, pad_id, mask.sum(-1).tolist())
        sees_prefix = mask.bool()[:, None, :].expand(-1, packed["ids"].shape[1], -1)
        attn = torch.cat([sees_prefix, packed["own"].to(dev)], dim=2)[:, None]  # (B, 1, T, P + T)
        if model.config._attn_implementation == "eager":
            attn = torch.zeros(attn.shape, dtype=model.dtype).masked_fill(~attn, torch.finfo(model.dtype).min)
        res = model(input_ids=packed["ids"].to(dev), attention_mask=attn.to(dev),
                    position_ids=packed["positions"].to(dev), use_cache=True,
                    logits_to_keep=packed["ends"].to(dev), **{_cache_arg(model): res.past_key_values})
        logits = res.logits.float()
    margins = (logits[..., choices[0]] - logits[..., choices[1]]).tolist()
    return [row[: len(item.suffixes)] for row, item in zip(margins, items, strict=True)]


def pack_suffixes(items: list[PromptIds], pad_id: int, prefix_lens: list[int]) -> dict:
    """Lay out each item's suffixes end to end in one right-padded row.

    Returns `ids` (B, T); `positions` (B, T): each suffix continues at its prefix length;
    `own` (B, T, T): token t may see token u of the same suffix with u <= t (padding sees
    only itself); `ends` (B, K): the index of the last token of each suffix (rows with
    fewer suffixes repeat their last end).
    """
    import torch

    width = max(sum(len(s) for s in item.suffixes) for item in items)
    most = max(len(item.suffixes) for item in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    positions = torch.zeros((len(items), width), dtype=torch.long)
    segment = torch.full((len(items), width), -1, dtype=torch.long)
    ends = torch.zeros((len(items), most), dtype=torch.long)
    for b, item in enumerate(items):
        k = 0
        for j, suffix in enumerate(item.suffixes):
            n = len(suffix)
            ids[b, k:k + n] = torch.tensor(suffix, dtype=torch.long)
            positions[b, k:k + n] = torch.arange(prefix_lens[b], prefix_lens[b] + n)
            segment[b, k:k + n] = j
            k += n
            ends[b, j] = k - 1
        ends[b, len(item.suffixes):] = k - 1
        segment[b, k:] = torch.arange(-2, -2 - (width - k), -1)  # padding: a segment of its own
    causal = torch.ones((width, width), dtype=torch.bool).tril()
    own = (segment[:, :, None] == segment[:, None, :]) & causal
    return {"ids": ids, "positions": positions, "own": own, "ends": ends}


def _cache_arg(model) -> str:
    """transformers >= 5.x calls the forward argument `cache`; older versions `past_key_values`."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def _regroup(flat: list[float], items: list[PromptIds]) -> list[list[float]]:
    out, k = [], 0
    for item in items:
        out.append(flat[k:k + len(item.suffixes)])
        k += len(item.suffixes)
    return out


SCORERS = {"shared": score_shared, "reference": score_reference}


def verdict(margin_ab: float, margin_ba: float) -> dict[str, float | bool]:
    """Combine the two orders into one record's numbers; positive favours output a.

    `margin_ab` is logit(first) - logit(second) with a shown first; `margin_ba` the same
    with b shown first, so its sign is flipped back to favour a.
    """
    score_ab, score_ba = round(margin_ab, 6), round(-margin_ba, 6)
    return {"score_ab": score_ab, "score_ba": score_ba, "score": round((score_ab + score_ba) / 2, 6),
            "consistent": (score_ab > 0 and score_ba > 0) or (score_ab < 0 and score_ba < 0)}


def score_pairs(model, tokenizer, template: JudgeTemplate, choices: tuple[int, int],
                pairs: list[tuple[str, str, str, list[str]]], mode: str = "shared") -> list[list[dict]]:
    """Judge (instruction, output a, output b, principle texts) tuples in both orders.

    Returns, per pair, one `verdict` per principle. `mode` is "shared" (prefix cache)
    or "reference" (full prompt per principle).
    """
    items = []
    for instruction, a, b, principles in pairs:
        items.append(build_prompt_ids(tokenizer, template, instruction, a, b, principles))
        items.append(build_prompt_ids(tokenizer, template, instruction, b, a, principles))
    margins = SCORERS[mode](model, items, choices, tokenizer.pad_token_id)
    return [[verdict(ab, ba) for ab, ba in zip(margins[2 * i], margins[2 * i + 1], strict=True)]
            for i in range(len(pairs))]
