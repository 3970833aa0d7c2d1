"""Stage: sample N responses per prompt.

    salmon generate --model default --prompts builtin --n 2 --out responses.jsonl

Batches are fixed by position after sorting prompts by length, and each batch is
seeded from (seed, batch index), so a rerun after a crash regenerates exactly the
missing records; the final file is then identical to an uninterrupted run's.
Output, one record per prompt, in input order:
    {"id", "prompt", "type", "responses": [str] * n, "finished": [bool] * n,
     "num_tokens": [int] * n}
A prompt may be a conversation (a list of chat messages ending with a user turn): every
turn goes through the chat template, the responses answer its last user turn, and the
record keeps the conversation as its "prompt".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from salmon.backends.base import BACKEND_HELP, SamplingParams
from salmon.backends.load import load_backend, resolve_backend
from salmon.chat import user_prompt
from salmon.config import opt
from salmon.errors import SalmonError
from salmon.jsonl import ResumableJsonlWriter
from salmon.progress import info, progress_bar
from salmon.sources import load_prompts
from salmon.stage import StageFiles


@dataclass
class GenerateConfig:
    model: str = opt("default", "Model: 'default' (embedded SmolLM2-135M-Instruct), a local folder or a hub id")
    prompts: str = opt("builtin", "Prompts: builtin, eval, redteam, or a .jsonl/.json/.parquet file, or a dataset name")
    out: str = opt("responses.jsonl", "Output JSONL file")
    n: int = opt(2, "Responses per prompt")
    max_new_tokens: int = opt(128, "Maximum new tokens per response")
    temperature: float = opt(0.7, "Sampling temperature (0 = greedy)")
    top_p: float = opt(0.9, "Nucleus sampling top-p")
    stop: list[str] = opt([], "Extra stop strings (comma-separated on the command line)")
    seed: int = opt(0, "Random seed")
    batch_size: int = opt(8, "Sequences per forward batch (prompts per batch = batch_size // n)")
    limit: int | None = opt(None, "Use only the first N prompts")
    max_prompt_tokens: int = opt(512, "Prompts longer than this (after the chat template) are skipped and counted")
    system_prompt: str | None = opt(None, "Optional system message")
    adapter: str | None = opt(None, "Optional LoRA adapter folder")
    backend: str = opt("auto", BACKEND_HELP)
    dtype: str = opt("auto", "auto, float32, bfloat16 or float16")
    device: str = opt("auto", "auto (cuda if present), cpu or cuda", resume_safe=True)
    trust_remote_code: bool = opt(False, "Allow model code from the hub (off by default)")
    progress: bool = opt(True, "Show a progress bar", resume_safe=True)

    def validate(self) -> None:
        for name in ("n", "max_new_tokens", "batch_size", "max_prompt_tokens"):
            if getattr(self, name) < 1:
                raise SalmonError(f"--{name.replace('_', '-')} must be at least 1")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise SalmonError("--temperature must be >= 0 and --top-p in (0, 1]")
        resolve_backend(self.backend, self.device)


def generate(cfg: GenerateConfig) -> Path:
    files = StageFiles.for_file(cfg.out)
    prompts = load_prompts(cfg.prompts, cfg.limit)
    if files.begin(cfg):
        return files.out
    from salmon.models import load_tokenizer

    tok = load_tokenizer(cfg.model, cfg.trust_remote_code)
    texts = [user_prompt(tok, p["prompt"], cfg.system_prompt) for p in prompts]
    lengths = [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]]
    keep = [i for i, n in enumerate(lengths) if n <= cfg.max_prompt_tokens]
    skipped = [prompts[i]["id"] for i in range(len(prompts)) if lengths[i] > cfg.max_prompt_tokens]
    if skipped:
        info(f"skipping {len(skipped)} prompt(s) longer than {cfg.max_prompt_tokens} tokens")
    order = sorted(keep, key=lambda i: lengths[i])
    per_batch = max(1, cfg.batch_size // cfg.n)
    batches = [order[s:s + per_batch] for s in range(0, len(order), per_batch)]

    writer = ResumableJsonlWriter(files.out)
    todo = [(b, idx) for b, idx in enumerate(batches) if any(prompts[i]["id"] not in writer.done for i in idx)]
    if writer.done:
        info(f"resuming: {len(writer.done)} of {len(keep)} prompts already done")
    backend = load_backend(cfg.backend, cfg.model, adapter=cfg.adapter, dtype=cfg.dtype, device=cfg.device,
                           trust_remote_code=cfg.trust_remote_code, tokenizer=tok) if todo else None
    with writer, progress_bar(len(keep), "generate", "prompts", cfg.progress, completed=len(keep) - sum(len(i) for _, i in todo)) as advance:
        for b, idx in todo:
            params = SamplingParams(n=cfg.n, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                                    top_p=cfg.top_p, stop=tuple(cfg.stop), seed=cfg.seed * 100_003 + b)
            samples = backend.generate([texts[i] for i in idx], params)
            records = [_record(prompts[i], s) for i, s in zip(idx, samples)]
            writer.write([r for r in records if r["id"] not in writer.done])
            advance(len(idx))
    by_id = {r["id"]: r for r in writer.records}
    ordered = [by_id[prompts[i]["id"]] for i in keep]
    files.write_summary(_summary(ordered, skipped) | {"backend": backend.name if backend else resolve_backend(cfg.backend, cfg.device)})
    writer.finish_ordered([r["id"] for r in ordered])
    info(f"wrote {len(ordered)} records to {files.out}")
    return files.out


def _record(prompt: dict[str, Any], samples: list[dict[str, Any]]) -> dict[str, Any]:
    rec = dict(prompt)
    rec["responses"] = [s["text"] for s in samples]
    rec["finished"] = [s["finished"] for s in samples]
    rec["num_tokens"] = [s["num_tokens"] for s in samples]
    return rec


def _summary(records: list[dict[str, Any]], skipped: list[str]) -> dict[str, Any]:
    flat = [(f, n) for r in records for f, n in zip(r["finished"], r["num_tokens"])]
    return {
        "prompts": len(records),
        "responses": len(flat),
        "skipped_too_long": len(skipped),
        "skipped_ids": skipped[:50],
        "finished_rate": sum(f for f, _ in flat) / max(1, len(flat)),
        "mean_tokens": sum(n for _, n in flat) / max(1, len(flat)),
    }
