"""The generation backend interface every text-sampling stage uses.

A backend turns chat-rendered prompt texts into sampled continuations:

    backend = load_backend("ct2", "default")
    samples = backend.generate(texts, SamplingParams(max_new_tokens=96, temperature=0.8, n=2, seed=3))
    samples[i][j] -> {"text", "finished", "num_tokens", "token_ids"}   # prompt i, sample j

`finished` is true when the model emitted an end-of-sequence token or a stop string;
`token_ids` are the new tokens kept (the EOS token included, nothing after a stop) and
`num_tokens` their count.
Backends: `hf` (transformers `generate`, the reference), `ct2` (CTranslate2, the fast CPU
path), `vllm` (GPU; untested here). `auto` picks ct2 when it is installed, else hf.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from salmon.errors import SalmonError

BACKEND_NAMES = ("auto", "hf", "ct2", "vllm")
BACKEND_HELP = ("Generation backend: auto (ct2 when installed, else hf), hf (transformers, the reference), "
                "ct2 (CTranslate2, fast on CPU) or vllm (GPU, untested)")


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int = 128
    temperature: float = 0.7  # 0 = greedy
    top_p: float = 0.9
    n: int = 1
    seed: int = 0
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1 or self.n < 1:
            raise SalmonError("max_new_tokens and n must be at least 1")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise SalmonError("temperature must be >= 0 and top_p in (0, 1]")


class Backend(Protocol):
    name: str
    tokenizer: Any

    def generate(self, texts: list[str], params: SamplingParams) -> list[list[dict[str, Any]]]:
        """Per prompt text, `params.n` dicts {"text", "finished", "num_tokens", "token_ids"}."""
        ...


def eos_ids(generation_eos: int | list[int] | None, tokenizer) -> list[int]:
    """The model's end-of-sequence ids (generation config first, then the tokenizer's)."""
    ids = list(generation_eos) if isinstance(generation_eos, list) else \
        [generation_eos] if generation_eos is not None else []
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def generation_config(folder: Path) -> dict[str, Any]:
    """A model folder's generation_config.json (EOS ids, sampling defaults); {} when absent."""
    p = Path(folder) / "generation_config.json"
    return json.loads(p.read_text()) if p.exists() else {}


def finish_sample(tokenizer, ids: list[int], eos: list[int], stops: list[str]) -> dict[str, Any]:
    """One sample from its new token ids: cut at the first EOS (kept in the count) or at the
    first stop string (its tokens and everything after are not counted)."""
    end = next((i for i, t in enumerate(ids) if t in eos), None)
    finished = end is not None
    kept = ids[: end + 1] if finished else ids
    text = tokenizer.decode(ids[:end] if finished else ids, skip_special_tokens=True)
    for s in stops:
        if s in text:
            text, finished = text[: text.index(s)], True
            kept = kept[: _tokens_until(tokenizer, kept, s)]
    return {"text": text.strip(), "finished": finished, "num_tokens": len(kept), "token_ids": kept}


def _tokens_until(tokenizer, ids: list[int], stop: str) -> int:
    """Fewest leading tokens whose text contains `stop` (containment only grows with length)."""
    lo, hi = 1, len(ids)
    while lo < hi:
        mid = (lo + hi) // 2
        if stop in tokenizer.decode(ids[:mid], skip_special_tokens=True):
            hi = mid
        else:
            lo = mid + 1
    return hi
