"""Stage: principle-driven synthetic preferences (the self-judge).

    salmon judge --model default --pairs pairs.jsonl --principles judge --out judgments.jsonl
    accelerate launch --num_processes 2 -m salmon.cli judge ...   # data-parallel

For every (pair, principle) the model reads a judge prompt (request, output (a),
output (b), then the principle; see `judge.core`) in both orders, and its score is
logit(a) - logit(b) right after the pre-filled answer. Output, one record per (pair,
principle), in pair order then principle order:
    {"pair_id", "principle", "score_ab", "score_ba", "score", "consistent"}
Positive always favours `response_a`; `score` is the mean of both orders and
`consistent` says whether both orders agree in sign.

Pairs are sorted by length and cut into fixed batches, so a rerun recomputes a batch
exactly; each batch is appended and flushed, a rerun after a crash (even kill -9)
skips what is done, and the final file equals an uninterrupted run's. Under
`accelerate launch`, batch b goes to process b % N, each process appends to its own
`<out>.rank<r>.partial`, and the main process merges them in input order at the end.
Responses longer than `max_response_tokens` (and requests over `max_prompt_tokens`) are
cut to that many tokens, marked " [...]", and counted; pairs with an empty response are
skipped and counted. A conversational prompt (a list of chat messages) is shown whole,
its earlier turns labelled by role; one over `max_prompt_tokens` loses its oldest turns
first (counted as `truncated_turns`), and only then is its last user text cut.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from salmon.config import opt
from salmon.conversation import Prompt, last_user_text, parse_prompt, request_text
from salmon.errors import SalmonError
from salmon.jsonl import ResumableJsonlWriter, iter_jsonl, write_jsonl
from salmon.judge.core import DEFAULT_VARIANT, VARIANT_HELP
from salmon.principles import Principle, load_principles, parse_principle
from salmon.progress import info, progress_bar
from salmon.stage import StageFiles


@dataclass
class JudgeConfig:
    model: str = opt("default", "Judge model: 'default' (embedded SmolLM2-135M-Instruct), a local folder or a hub id")
    pairs: str = opt("pairs.jsonl", "Pairs JSONL ({id?, prompt, response_a, response_b, principles?}), e.g. from `salmon pairs`")
    principles: str = opt("judge", "Principle file or built-in name; a pair's own 'principles' list replaces it")
    out: str = opt("judgments.jsonl", "Output JSONL, one record per (pair, principle)")
    variant: str = opt(DEFAULT_VARIANT, VARIANT_HELP)
    prefix_cache: bool = opt(True, "Share each (pair, order) prefix's KV cache across principles; "
                                   "--no-prefix-cache runs the full prompt per principle (reference)")
    batch_pairs: int = opt(4, "Pairs per forward batch (each gives 2 prefixes, one per order)")
    max_response_tokens: int = opt(384, "Responses longer than this are cut to this many tokens (counted)")
    max_prompt_tokens: int = opt(256, "Requests longer than this are cut to this many tokens (counted)")
    limit: int | None = opt(None, "Judge only the first N pairs")
    adapter: str | None = opt(None, "Optional LoRA adapter folder")
    dtype: str = opt("auto", "auto (bfloat16 on a GPU that has it, else float32), float32, bfloat16 or float16")
    device: str = opt("auto", "auto (cuda if present), cpu or cuda", resume_safe=True)
    trust_remote_code: bool = opt(False, "Allow model code from the hub (off by default)")
    progress: bool = opt(True, "Show a progress bar", resume_safe=True)

    def validate(self) -> None:
        for name in ("batch_pairs", "max_response_tokens", "max_prompt_tokens"):
            if getattr(self, name) < 1:
                raise SalmonError(f"--{name.replace('_', '-')} must be at least 1")
        if self.limit is not None and self.limit < 1:
            raise SalmonError("--limit must be at least 1")


@dataclass
class Pair:
    id: str
    prompt: Prompt  # text, or a conversation ending with the user turn both outputs answer
    a: str
    b: str
    principles: list[Principle]
    truncated: list[str] = field(default_factory=list)  # which fields were cut
    dropped_turns: int = 0  # conversation messages dropped to fit max_prompt_tokens


def read_pairs(path: str, default: list[Principle], limit: int | None = None) -> list[Pair]:
    """Validate the pairs file; errors name the file and line."""
    pairs: list[Pair] = []
    seen: dict[str, int] = {}
    for ln, rec in iter_jsonl(path):
        where = f"{path}:{ln}"
        for key in ("prompt", "response_a", "response_b"):
            if key not in rec:
                raise SalmonError(f"{where}: missing '{key}' (expected a pair with prompt, response_a, response_b)")
            if key != "prompt" and not isinstance(rec[key], str):
                raise SalmonError(f"{where}: '{key}' must be text, got {type(rec[key]).__name__}")
        if isinstance(rec["prompt"], list):
            rec["prompt"] = parse_prompt(rec["prompt"], where)
        elif not isinstance(rec["prompt"], str):
            raise SalmonError(f"{where}: 'prompt' must be text or a list of chat messages, "
                              f"got {type(rec['prompt']).__name__}")
        pid = str(rec.get("id", f"line{ln}"))
        if pid in seen:
            raise SalmonError(f"{where}: duplicate pair id '{pid}' (first at line {seen[pid]})")
        seen[pid] = ln
        pairs.append(Pair(pid, rec["prompt"], rec["response_a"], rec["response_b"],
                          _pair_principles(rec, default, where)))
        if limit is not None and len(pairs) >= limit:
            break
    if not pairs:
        raise SalmonError(f"{path}: no pairs")
    return pairs


def _pair_principles(rec: dict[str, Any], default: list[Principle], where: str) -> list[Principle]:
    raw = rec.get("principles")
    if raw is None:
        return default
    if not isinstance(raw, list) or not raw:
        raise SalmonError(f"{where}: 'principles' must be a non-empty list of {{name, definition}} or strings")
    out = [parse_principle(p, f"{where}: principle {i}") for i, p in enumerate(raw, 1)]
    names = [p.name.lower() for p in out]
    if len(set(names)) != len(names):
        raise SalmonError(f"{where}: two principles share a name; names must be unique per pair")
    return out


def prepare_pairs(pairs: list[Pair], tokenizer, max_prompt: int,
                  max_response: int) -> tuple[list[Pair], list[str]]:
    """Truncate over-long fields (recorded in `Pair.truncated`); return (kept, skipped ids),
    skipping pairs with an empty response."""
    from salmon.judge.core import truncate_prompt, truncate_text

    kept, skipped = [], []
    for p in pairs:
        if not p.a.strip() or not p.b.strip() or not last_user_text(p.prompt).strip():
            skipped.append(p.id)
            continue
        p.prompt, p.dropped_turns, cut = truncate_prompt(tokenizer, p.prompt, max_prompt)
        if cut:
            p.truncated.append("prompt")
        for name in ("a", "b"):
            text, cut = truncate_text(tokenizer, getattr(p, name), max_response)
            if cut:
                setattr(p, name, text)
                p.truncated.append(name)
        kept.append(p)
    return kept, skipped


def fixed_batches(pairs: list[Pair], tokenizer, batch_pairs: int) -> list[list[int]]:
    """Indices of `pairs` sorted by length (ties by position) cut into batches, so that a
    rerun, a resume or a different number of processes forms exactly the same batches."""
    lengths = [len(tokenizer(request_text(p.prompt) + p.a + p.b, add_special_tokens=False)["input_ids"])
               for p in pairs]
    order = sorted(range(len(pairs)), key=lambda i: (lengths[i], i))
    return [order[s:s + batch_pairs] for s in range(0, len(order), batch_pairs)]


def shard(batches: list[list[int]], rank: int, world: int) -> list[int]:
    """The batch numbers process `rank` of `world` judges: b % world == rank."""
    return [b for b in range(len(batches)) if b % world == rank]


def record_key(rec: dict[str, Any]) -> tuple[str, str]:
    return rec["pair_id"], rec["principle"]


def read_complete_records(path: Path) -> list[dict[str, Any]]:
    """Records of a partial file up to its first incomplete or broken line (read-only)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().split(b"\n")[:-1]:
        try:
            out.append(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError):
            break
    return out


def rank_files(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f"{out.name}.rank*.partial"))


def merge_ranks(out: Path, key_order: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """The records of every process's partial file, in `key_order` (first copy of a key
    wins). A missing key is an error: the partial files are kept for a rerun."""
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    for path in rank_files(out):
        for rec in read_complete_records(path):
            by_key.setdefault(record_key(rec), rec)
    missing = [k for k in key_order if k not in by_key]
    if missing:
        raise SalmonError(f"{out}: {len(missing)} judgments missing after the run (e.g. {missing[0]}); rerun to finish")
    return [by_key[k] for k in key_order]


def _world(device: str):
    """(rank, world size, accelerate state or None, device); plain runs are rank 0 of 1.

    Without a GPU (or with --device cpu) accelerate only starts its gloo process group
    when asked for CPU explicitly, hence `cpu=`.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1, None, device
    import torch
    from accelerate import PartialState

    cpu = device == "cpu" or not torch.cuda.is_available()
    state = PartialState(cpu=cpu)
    if device == "auto":
        device = "cpu" if cpu else str(state.device)
    return state.process_index, state.num_processes, state, device


@dataclass
class JudgePlan:
    """Everything decided before the model is loaded: prompts, choice tokens, batches."""

    tokenizer: Any
    template: Any
    choices: tuple[int, int]
    pairs: list[Pair]
    skipped: list[str]
    batches: list[list[int]]

    def keys(self) -> list[tuple[str, str]]:
        return [(p.id, pr.name) for p in self.pairs for pr in p.principles]


def plan_judging(cfg: JudgeConfig) -> JudgePlan:
    """Validate the inputs and fix the batches; user errors surface here, before any work."""
    from salmon.judge.core import choice_token_ids, load_judge_template
    from salmon.models import load_tokenizer

    template = load_judge_template(cfg.variant)
    pairs = read_pairs(cfg.pairs, load_principles(cfg.principles), cfg.limit)
    tok = load_tokenizer(cfg.model, cfg.trust_remote_code)
    choices = choice_token_ids(tok, template, cfg.model)
    pairs, skipped = prepare_pairs(pairs, tok, cfg.max_prompt_tokens, cfg.max_response_tokens)
    if not pairs:
        raise SalmonError(f"{cfg.pairs}: nothing to judge: all {len(skipped)} pairs have an empty response")
    return JudgePlan(tok, template, choices, pairs, skipped, fixed_batches(pairs, tok, cfg.batch_pairs))


def judge_shard(cfg: JudgeConfig, plan: JudgePlan, out: Path, rank: int, world: int, device: str) -> None:
    """Judge this process's batches that are not done yet, appending each batch to
    `<out>.rank<rank>.partial`."""
    from salmon.judge.core import keep_freed_memory, score_pairs
    from salmon.models import load_causal_lm

    keep_freed_memory()
    writer = ResumableJsonlWriter(out.with_name(f"{out.name}.rank{rank}"), record_key)
    done = set(writer.done)
    for path in rank_files(out):  # work finished under another number of processes
        done.update(record_key(r) for r in read_complete_records(path))
    pairs, batches = plan.pairs, plan.batches
    ours = shard(batches, rank, world)
    todo = [b for b in ours if any((pairs[i].id, pr.name) not in done for i in batches[b] for pr in pairs[i].principles)]
    if done and rank == 0:
        info(f"resuming: {len(done)} of {len(plan.keys())} judgments already done")
    model = load_causal_lm(cfg.model, adapter=cfg.adapter, dtype=cfg.dtype, device=device,
                           trust_remote_code=cfg.trust_remote_code) if todo else None
    mode = "shared" if cfg.prefix_cache else "reference"
    total = sum(len(batches[b]) for b in ours)
    with writer, progress_bar(total, "judge", "pairs", cfg.progress and rank == 0,
                              completed=total - sum(len(batches[b]) for b in todo)) as advance:
        for b in todo:
            batch = [pairs[i] for i in batches[b]]
            jobs = [(p.prompt, p.a, p.b, [pr.definition for pr in p.principles]) for p in batch]
            verdicts = score_pairs(model, plan.tokenizer, plan.template, plan.choices, jobs, mode)
            records = [{"pair_id": p.id, "principle": pr.name, **v}
                       for p, vs in zip(batch, verdicts, strict=True)
                       for pr, v in zip(p.principles, vs, strict=True)]
            writer.write([r for r in records if record_key(r) not in writer.done])
            advance(len(batch))


def judge(cfg: JudgeConfig) -> Path:
    files = StageFiles.for_file(cfg.out)
    plan = plan_judging(cfg)
    rank, world, state, device = _world(cfg.device)
    if files.begin(cfg):
        return files.out
    start = time.perf_counter()
    judge_shard(cfg, plan, files.out, rank, world, device)
    if state is not None:
        state.wait_for_everyone()
    if rank != 0:
        return files.out
    records = merge_ranks(files.out, plan.keys())
    files.write_summary(_summary(cfg, plan, records, world, time.perf_counter() - start))
    write_jsonl(files.out, records)  # the final file appears last, complete (atomic rename)
    for path in rank_files(files.out):
        path.unlink(missing_ok=True)
    skipped = f" (skipped {len(plan.skipped)} with an empty response)" if plan.skipped else ""
    info(f"wrote {len(records)} judgments for {len(plan.pairs)} pairs to {files.out}{skipped}")
    return files.out


def _summary(cfg: JudgeConfig, plan: JudgePlan, records: list[dict[str, Any]], world: int,
             seconds: float) -> dict[str, Any]:
    pairs, skipped = plan.pairs, plan.skipped
    n = max(1, len(records))
    first_wins = sum(r["score_ab"] > 0 for r in records) + sum(r["score_ba"] < 0 for r in records)
    return {
        "pairs_judged": len(pairs),
        "judgments": len(records),
        "skipped_empty": len(skipped),
        "skipped_ids": skipped[:50],
        "truncated_pairs": sum(bool(p.truncated) for p in pairs),
        "truncated_responses": sum(p.truncated.count("a") + p.truncated.count("b") for p in pairs),
        "truncated_prompts": sum("prompt" in p.truncated for p in pairs),
        "truncated_turns": sum(p.dropped_turns for p in pairs),
        "truncated_conversations": sum(p.dropped_turns > 0 for p in pairs),
        "truncation": f"responses cut to {cfg.max_response_tokens} tokens, requests to "
                      f"{cfg.max_prompt_tokens} (a conversation's oldest turns dropped first), marked ' [...]'",
        "consistent_rate": sum(r["consistent"] for r in records) / n,
        "first_shown_wins_rate": first_wins / (2 * n),
        "mean_order_bias": sum(r["score_ab"] - r["score_ba"] for r in records) / (2 * n),
        "variant": cfg.variant,
        "mode": "prefix-shared" if cfg.prefix_cache else "reference",
        "processes": world,
        "seconds_this_run": round(seconds, 2),
    }
