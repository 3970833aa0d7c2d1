"""The reference backend: transformers `generate` (any model transformers loads, LoRA
adapters applied with PEFT). Slow on CPU (per-layer Python overhead on every decode step),
but it defines what the other backends must reproduce.
"""

from __future__ import annotations

from typing import Any

from salmon.backends.base import SamplingParams, eos_ids, finish_sample
from salmon.chat import has_chat_template, stop_strings


def sample_batch(model, tokenizer, texts: list[str], *, n: int = 1, max_new_tokens: int = 128,
                 temperature: float = 0.7, top_p: float = 0.9, stop: list[str] | None = None,
                 seed: int = 0) -> list[list[dict[str, Any]]]:
    """Sample `n` continuations of each already-formatted prompt text with a loaded model.

    Returns, per prompt, n dicts {"text", "finished", "num_tokens"}; `finished` is true when
    the model emitted an end-of-sequence token or a stop string.
    """
    import torch

    stops = list(stop or []) + stop_strings(tokenizer)
    enc = tokenizer(texts, return_tensors="pt", padding=True,
                    add_special_tokens=not has_chat_template(tokenizer)).to(model.device)
    eos = eos_ids(getattr(getattr(model, "generation_config", None), "eos_token_id", None), tokenizer)
    torch.manual_seed(seed)
    kwargs: dict[str, Any] = dict(max_new_tokens=max_new_tokens, num_return_sequences=n,
                                  pad_token_id=tokenizer.pad_token_id, eos_token_id=eos)
    if temperature > 0:
        kwargs.update(do_sample=True, temperature=temperature, top_p=top_p)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    if stops:
        kwargs.update(stop_strings=stops, tokenizer=tokenizer)
    with torch.no_grad():
        out = model.generate(**enc, **kwargs)
    new = out[:, enc["input_ids"].shape[1]:].tolist()
    results = [finish_sample(tokenizer, ids, eos, stops) for ids in new]
    return [results[i * n:(i + 1) * n] for i in range(len(texts))]


class HFBackend:
    name = "hf"

    def __init__(self, model: str, *, adapter: str | None = None, dtype: str = "auto", device: str = "auto",
                 trust_remote_code: bool = False, tokenizer=None) -> None:
        from salmon.models import load_causal_lm, load_tokenizer

        self.tokenizer = tokenizer or load_tokenizer(model, trust_remote_code)
        self.model = load_causal_lm(model, adapter=adapter, dtype=dtype, device=device,
                                    trust_remote_code=trust_remote_code)

    def generate(self, texts: list[str], params: SamplingParams) -> list[list[dict[str, Any]]]:
        greedy_copies = params.n if params.temperature == 0 else 1  # transformers refuses n > 1 when greedy
        out = sample_batch(self.model, self.tokenizer, texts, n=params.n // greedy_copies,
                           max_new_tokens=params.max_new_tokens, temperature=params.temperature,
                           top_p=params.top_p, stop=list(params.stop), seed=params.seed)
        return [r * greedy_copies for r in out]
