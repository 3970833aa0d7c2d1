"""Rollouts for PPO: which prompts, which principles, and the sampled responses.

Every random choice is a function of (seed, step, prompt position), so a run resumed
from a checkpoint draws exactly the prompts, principles and samples it would have drawn
without the interruption, and the processes of a DDP run each take their own slice:

    prompts     epoch-wise permutations of the prompt set, `batch_size` per process
    principles  `sample_principles` (k by weight, boosted for the prompt's type) plus
                every intervention principle, for each prompt
    responses   HF `generate` with left padding, sampling at `temperature`

Prompts whose chat-formatted tokens exceed the query budget are shortened (the user's
text is cut at its end) and counted. Only HF generation is implemented: there is no
vLLM backend (it needs adapter weights synced into the engine after every update).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from salmon.chat import has_chat_template, stop_strings, user_prompt
from salmon.conversation import Prompt, drop_oldest, last_user_text, with_last_user_text
from salmon.padding import left_pad
from salmon.principles import Principle, sample_principles
from salmon.rl.models import Role, active


def batch_indices(n: int, step: int, per_process: int, rank: int, world: int, seed: int) -> list[int]:
    """Prompt indices for `rank` at `step`: consecutive slices of a stream of epoch-wise
    permutations of range(n), each epoch shuffled by (seed, epoch)."""
    start = (step * world + rank) * per_process
    out = []
    for pos in range(start, start + per_process):
        epoch, offset = divmod(pos, n)
        out.append(int(np.random.default_rng([seed, epoch]).permutation(n)[offset]))
    return out


def draw_principles(principles: list[Principle], interventions: list[Principle], k: int,
                    prompt_type: str, boost: float, seed: int, step: int, index: int) -> list[Principle]:
    """k sampled principles for one prompt, then the intervention principles (always)."""
    rng = np.random.default_rng([seed, step, index])
    drawn = sample_principles(principles, k, rng, prompt_type=prompt_type, boost=boost)
    names = {p.name for p in drawn}
    return drawn + [p for p in interventions if p.name not in names]


def fit_prompt(tokenizer, text: Prompt, budget: int, system: str | None = None) -> tuple[Prompt, list[int], bool]:
    """The prompt (shortened if needed) and its query ids, at most `budget` tokens.

    A conversation first loses its oldest turns (`conversation.drop_oldest`); then the
    text of the last user turn is cut at its end. Returns (prompt used, query token ids,
    whether it was shortened)."""
    special = not has_chat_template(tokenizer)

    def ids_of(t: Prompt) -> list[int]:
        return tokenizer(user_prompt(tokenizer, t, system), add_special_tokens=special)["input_ids"]

    ids = ids_of(text)
    if len(ids) <= budget:
        return text, ids, False
    text, _ = drop_oldest(text, lambda t: len(ids_of(t)) <= budget)
    ids = ids_of(text)
    if len(ids) <= budget:
        return text, ids, True
    words = tokenizer(last_user_text(text), add_special_tokens=False)["input_ids"]
    keep = max(0, len(words) - (len(ids) - budget))
    while True:
        cut = with_last_user_text(text, tokenizer.decode(words[:keep], skip_special_tokens=True))
        ids = ids_of(cut)
        if len(ids) <= budget or keep == 0:
            return cut, ids[-budget:], True
        keep = max(0, keep - (len(ids) - budget))


def stop_ids(model, tokenizer) -> list[int]:
    ids = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = list(ids) if isinstance(ids, (list, tuple)) else [ids] if ids is not None else []
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def response_mask(tokens: torch.Tensor, stops: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask, finished): mask is 1 up to and including the first stop token of each row."""
    is_stop = torch.isin(tokens, torch.tensor(stops, dtype=tokens.dtype, device=tokens.device))
    finished = is_stop.any(dim=1)
    # count the stop tokens strictly before each position; 0 means still inside the response
    before = torch.cumsum(is_stop.long(), dim=1) - is_stop.long()
    return (before == 0).long(), finished


@dataclass
class Samples:
    input_ids: torch.Tensor       # [B, Q + T] left-padded query, then the response
    attention_mask: torch.Tensor  # [B, Q + T] 0 on query padding and after the stop token
    start: int                    # Q: where responses begin
    response_mask: torch.Tensor   # [B, T]
    finished: torch.Tensor        # [B] bool: ended with a stop token
    texts: list[str]              # cleaned responses (stop token and special tokens removed)

    @property
    def response_tokens(self) -> torch.Tensor:
        return self.input_ids[:, self.start:]

    @property
    def lengths(self) -> torch.Tensor:
        return self.response_mask.sum(dim=1)


@torch.no_grad()
def sample_responses(policy: Role, tokenizer, queries: list[list[int]], *, max_new_tokens: int,
                     temperature: float, seed: int) -> Samples:
    """Sample one response per query with the policy adapters on."""
    ids, mask = left_pad(queries, tokenizer.pad_token_id)
    device = next(policy.lm.parameters()).device
    ids, mask = ids.to(device), mask.to(device)
    torch.manual_seed(seed)
    with active(policy) as lm:
        stops = stop_ids(lm, tokenizer)
        out = lm.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=temperature,
                          top_k=0, top_p=1.0, max_new_tokens=max_new_tokens,
                          pad_token_id=tokenizer.pad_token_id, eos_token_id=stops)
    tokens = out[:, ids.shape[1]:]
    rmask, finished = response_mask(tokens, stops)
    texts = [clean_response(tokenizer, row[: int(m.sum())].tolist(), stops)
             for row, m in zip(tokens, rmask, strict=True)]
    return Samples(out, torch.cat([mask, rmask], dim=1), ids.shape[1], rmask, finished, texts)


def clean_response(tokenizer, ids: list[int], stops: list[int]) -> str:
    """The response as the reward model should read it: no stop token, no special
    tokens, cut at a chat-format stop string, stripped."""
    if ids and ids[-1] in stops:
        ids = ids[:-1]
    text = tokenizer.decode(ids, skip_special_tokens=True)
    for s in stop_strings(tokenizer):
        if s in text:
            text = text[: text.index(s)]
    return text.strip()


@dataclass
class PromptPool:
    """The prompt set, fitted to the query budget once up front."""

    prompts: list[dict[str, Any]]
    texts: list[Prompt]  # the prompts as fitted: text, or a conversation
    queries: list[list[int]]
    truncated: list[bool]

    @classmethod
    def build(cls, tokenizer, prompts: list[dict[str, Any]], budget: int,
              system: str | None = None) -> PromptPool:
        fitted = [fit_prompt(tokenizer, p["prompt"], budget, system) for p in prompts]
        return cls(prompts, [f[0] for f in fitted], [f[1] for f in fitted], [f[2] for f in fitted])
