"""`salmon bench generate`: the reference (transformers) and the fast (CTranslate2)
backend on the same prompts, greedy, in one run, with the machine's limits beside them.

    salmon bench generate --json

Measured side by side, per repeat: a memory-bandwidth probe (summing a 256 MB fp32
array), a dense fp32 matmul probe, then each backend on the whole batch. Each keeps
its best time over the repeats, so a busy moment on a shared CPU favours neither.
Reported:
- tokens_per_s per backend (new tokens kept / seconds, prefill included) and `speedup`
  (ct2 float32 over hf);
- the bandwidth bound: a decode step reads every weight once, so a batch advances at
  most bandwidth / weight_bytes steps per second; `fraction_of_bandwidth_bound` is the
  measured steps/s (longest continuation / seconds) over that;
- the compute bound: a token costs 2 x parameters FLOPs, so at most matmul peak /
  (2 x parameters) tokens/s; at batch 16 on a small CPU this bound, not bandwidth, binds;
- `greedy_agreement`: the share of prompts whose greedy continuation (token ids) is
  identical in ct2 float32 and hf, with the common-prefix lengths where they differ;
  quantised modes (`--quantized int8`) are reported beside it, never instead of it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from salmon.backends.base import SamplingParams
from salmon.backends.load import load_backend
from salmon.config import opt
from salmon.errors import SalmonError

TARGETS = {"speedup": 5.0, "greedy_agreement": 0.9}


@dataclass
class BenchGenerateConfig:
    model: str = opt("default", "Model: 'default' (embedded SmolLM2-135M-Instruct) or a local folder")
    prompts: str = opt("builtin", "Prompts: builtin, eval, redteam or a .jsonl/.json/.parquet file")
    batch_size: int = opt(16, "Prompts decoded together in one batch")
    max_new_tokens: int = opt(64, "Greedy tokens per prompt")
    quantized: list[str] = opt(["int8"], "CTranslate2 compute types reported beside float32 (comma-separated)")
    batching: str = opt("sorted", "sorted: the middle batch of the prompts sorted by length, as the stages batch "
                                  "them; first: the first prompts as listed (mixed lengths)")
    repeats: int = opt(1, "Timed repeats per backend (the best time is kept)")
    json: bool = opt(False, "Print only the JSON object")

    def validate(self) -> None:
        for name in ("batch_size", "max_new_tokens", "repeats"):
            if getattr(self, name) < 1:
                raise SalmonError(f"--{name.replace('_', '-')} must be at least 1")
        if self.batching not in ("sorted", "first"):
            raise SalmonError(f"--batching {self.batching}: expected sorted or first")


def bandwidth_probe(mbytes: int = 256, seconds: float = 0.5) -> float:
    """Best GB/s reading a large fp32 array (a sum touches every byte once, as a decode
    step touches every weight)."""
    import torch

    x = torch.ones(mbytes * (1 << 20) // 4)
    x.sum()
    best, stop = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < stop:
        t = time.perf_counter()
        x.sum()
        best = max(best, x.numel() * 4 / (time.perf_counter() - t) / 1e9)
    return best


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def agreement(ref: list[list[int]], other: list[list[int]]) -> dict[str, Any]:
    """Identical continuations (share), and the common prefix in tokens of those that differ."""
    same = [a == b for a, b in zip(ref, other, strict=True)]
    prefixes = [common_prefix(a, b) for a, b, s in zip(ref, other, same) if not s]
    return {"agreement": sum(same) / len(same), "prompts": len(same),
            "differing_common_prefix_tokens": prefixes,
            "mean_common_prefix_tokens": sum(common_prefix(a, b) for a, b in zip(ref, other)) / len(ref)}


def _timed_run(backend, texts: list[str], params: SamplingParams) -> tuple[float, list[list[int]]]:
    start = time.perf_counter()
    out = backend.generate(texts, params)
    return time.perf_counter() - start, [s[0]["token_ids"] for s in out]


def _rates(seconds: float, ids: list[list[int]], steps_bound: float) -> dict[str, Any]:
    tokens, steps = sum(map(len, ids)), max(map(len, ids))
    return {"seconds": round(seconds, 3), "new_tokens": tokens, "tokens_per_s": round(tokens / seconds, 2),
            "steps_per_s": round(steps / seconds, 3),
            "fraction_of_bandwidth_bound": round(steps / seconds / steps_bound, 3)}


def bench_batch(texts: list[str], tok, cfg: BenchGenerateConfig) -> list[str]:
    """The prompts of the benchmark's one batch. CTranslate2 forwards a batch's prompts at
    once only up to the shortest one and feeds the rest one token per decode step, so a
    batch of mixed lengths costs it extra steps; the stages sort prompts by length before
    batching, and `sorted` measures such a batch (the middle one of the sorted set)."""
    if cfg.batching == "first" or len(texts) <= cfg.batch_size:
        return texts[: cfg.batch_size]
    lengths = [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]]
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    start = (len(order) - cfg.batch_size) // 2
    return [texts[i] for i in order[start:start + cfg.batch_size]]


def _reload_seconds(backend) -> float:
    """What a sampled batch pays to reseed CTranslate2 (a fresh Generator, see ct2.py)."""
    import ctranslate2

    start = time.perf_counter()
    ctranslate2.Generator(**backend._load)
    return time.perf_counter() - start


def measure_generate_speed(cfg: BenchGenerateConfig) -> dict[str, Any]:
    import torch

    from salmon.chat import user_prompt
    from salmon.machine import matmul_peak
    from salmon.models import load_tokenizer
    from salmon.sources import load_prompts

    tok = load_tokenizer(cfg.model)
    texts = bench_batch([user_prompt(tok, p["prompt"]) for p in load_prompts(cfg.prompts, None)], tok, cfg)
    prompt_tokens = [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]]
    backends = {"hf": load_backend("hf", cfg.model, dtype="float32", device="cpu", tokenizer=tok),
                "ct2_float32": load_backend("ct2", cfg.model, dtype="float32", device="cpu", tokenizer=tok)}
    for q in cfg.quantized:
        backends[f"ct2_{q}"] = load_backend("ct2", cfg.model, dtype=q, device="cpu", tokenizer=tok)
    model = backends["hf"].model
    params = sum(p.numel() for p in model.parameters())  # tied embedding once: it is the output layer's matmul
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    shape = (512, model.config.hidden_size, getattr(model.config, "intermediate_size", 4 * model.config.hidden_size))
    greedy = SamplingParams(max_new_tokens=cfg.max_new_tokens, temperature=0.0)
    for b in backends.values():  # warm-up: first-call allocations and thread start-up
        b.generate(texts[:2], SamplingParams(max_new_tokens=2, temperature=0.0))
    best = {k: float("inf") for k in backends}
    ids: dict[str, list[list[int]]] = {}
    bw = peak = 0.0
    for _ in range(cfg.repeats):
        bw, peak = max(bw, bandwidth_probe()), max(peak, matmul_peak(*shape, seconds=1.0))
        for name, b in backends.items():
            seconds, ids[name] = _timed_run(b, texts, greedy)
            best[name] = min(best[name], seconds)
    steps_bound = bw * 1e9 / weight_bytes
    compute_bound = peak * 1e9 / (2 * params)  # tokens/s if every matmul ran at the probe's rate
    out: dict[str, Any] = {
        "model": cfg.model, "prompts": len(texts), "batch_size": len(texts), "max_new_tokens": cfg.max_new_tokens,
        "batching": cfg.batching, "prompt_tokens_min_mean_max": [min(prompt_tokens),
                                                                 round(sum(prompt_tokens) / len(texts), 1),
                                                                 max(prompt_tokens)],
        "threads": torch.get_num_threads(), "repeats": cfg.repeats,
        "backends": {k: _rates(best[k], ids[k], steps_bound) | {
            "fraction_of_compute_bound": round(sum(map(len, ids[k])) / best[k] / compute_bound, 3)} for k in backends},
        "bandwidth_gb_per_s": round(bw, 2), "weight_bytes_per_step": weight_bytes,
        "bandwidth_bound_steps_per_s": round(steps_bound, 2),
        "bandwidth_bound_tokens_per_s": round(steps_bound * len(texts), 1),
        "compute_bound_tokens_per_s": round(compute_bound, 1), "flop_per_token": 2 * params,
        "matmul_peak_gflops_per_s": round(peak, 1), "matmul_shape": list(shape),
    }
    out["ct2_reload_seconds"] = round(_reload_seconds(backends["ct2_float32"]), 3)
    out["speedup"] = round(out["backends"]["ct2_float32"]["tokens_per_s"] / out["backends"]["hf"]["tokens_per_s"], 2)
    agree = {k: agreement(ids["hf"], ids[k]) for k in backends if k != "hf"}
    out["greedy_agreement"] = agree["ct2_float32"]["agreement"]
    out["agreement"] = agree
    out["speedup_quantized"] = {k: round(out["backends"][k]["tokens_per_s"] / out["backends"]["hf"]["tokens_per_s"], 2)
                                for k in backends if k not in ("hf", "ct2_float32")}
    out["targets_met"] = {k: out[k] >= v for k, v in TARGETS.items()}
    return out


def bench_generate(cfg: BenchGenerateConfig) -> None:
    """Print the benchmark's JSON object (with --json, nothing else)."""
    result = measure_generate_speed(cfg)
    if not cfg.json:
        for name, r in result["backends"].items():
            print(f"{name:<16}{r['tokens_per_s']:>9} tok/s  bound fraction {r['fraction_of_bandwidth_bound']}")
        for key in ("speedup", "greedy_agreement", "bandwidth_gb_per_s", "bandwidth_bound_tokens_per_s",
                    "compute_bound_tokens_per_s", "matmul_peak_gflops_per_s"):
            print(f"{key:<30}{result[key]}")
    print(json.dumps(result))
