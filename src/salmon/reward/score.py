"""Stage: score responses with the instructable reward model.

    salmon score --rm rm/ --input items.jsonl --out scores.jsonl

Input, one record per line: {"prompt": str, "response": str, "principles": [str, ...]}
(each principle is free text: a definition sentence, optionally "Name: definition");
`prompt` may also be a conversation (a list of {"role", "content"} messages ending with
a user turn): the RM reads every turn, dropping the oldest ones when the input is longer
than its max_length (counted in the summary). Other fields are kept. Output: the same
records, in input order, with "reward" added.

Records are scored in chunks sorted so that identical (prompt, response) pairs sit
together (their prefix is computed once for all their principle lists) and lengths are
similar. Each finished chunk's rewards are appended to `<out>.partial`; a rerun after a
crash scores only what is missing, and the final file appears, whole, at the end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from salmon.config import opt
from salmon.conversation import parse_prompt, prompt_chars, prompt_key
from salmon.errors import SalmonError
from salmon.jsonl import ResumableJsonlWriter, iter_jsonl, write_jsonl
from salmon.progress import info, progress_bar
from salmon.reward.template import encode_rm_parts, normalize_principles
from salmon.stage import StageFiles


@dataclass
class ScoreConfig:
    rm: str = opt("rm", "Reward model folder written by `salmon train-rm`")
    input: str = opt("items.jsonl", "JSONL of {prompt, response, principles: [str, ...]}")
    out: str = opt("scores.jsonl", "Output JSONL: the input records with \"reward\" added")
    normalize: bool = opt(False, "Standardise rewards with the mean and std measured on the RM's training data")
    batch_size: int = opt(8, "Sequences per forward batch", resume_safe=True)
    chunk: int = opt(64, "Records scored and saved together (the resume granularity)", resume_safe=True)
    share_prefix: bool = opt(True, "Run each (prompt, response) once for all its principle lists", resume_safe=True)
    dtype: str = opt("auto", "auto, float32, bfloat16 or float16")
    device: str = opt("auto", "auto (cuda if present), cpu or cuda", resume_safe=True)
    progress: bool = opt(True, "Show a progress bar", resume_safe=True)

    def validate(self) -> None:
        if self.batch_size < 1 or self.chunk < 1:
            raise SalmonError("--batch-size and --chunk must be at least 1")


def read_items(path: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, record) for every input line, each checked; errors name the line."""
    items = []
    for lineno, rec in iter_jsonl(path):
        for key in ("prompt", "response"):
            if key not in rec:
                raise SalmonError(f"{path}:{lineno}: missing field '{key}'")
        if not isinstance(rec["response"], str):
            raise SalmonError(f"{path}:{lineno}: 'response' must be text")
        if not isinstance(rec["prompt"], (str, list)):
            raise SalmonError(f"{path}:{lineno}: 'prompt' must be text or a list of chat messages")
        parse_prompt(rec["prompt"], f"{path}:{lineno}")
        if "principles" not in rec:
            raise SalmonError(f"{path}:{lineno}: missing field 'principles' (a list of principle texts)")
        if not isinstance(rec["principles"], list) or not rec["principles"]:
            raise SalmonError(f"{path}:{lineno}: 'principles' must be a non-empty list of principle texts")
        normalize_principles(rec["principles"], f"{path}:{lineno}: principles")
        items.append((lineno, rec))
    if not items:
        raise SalmonError(f"{path}: no records to score")
    return items


def _chunks(items: list[tuple[int, dict[str, Any]]], size: int) -> list[list[tuple[int, dict[str, Any]]]]:
    """Chunks of similar length with identical (prompt, response) pairs next to each other."""
    order = sorted(items, key=lambda it: (prompt_chars(it[1]["prompt"]) + len(it[1]["response"]),
                                          prompt_key(it[1]["prompt"]), it[1]["response"], it[0]))
    return [order[s:s + size] for s in range(0, len(order), size)]


def _score_chunk(rm, chunk: list[tuple[int, dict[str, Any]]], cfg: ScoreConfig) -> list[float]:
    recs = [r for _, r in chunk]
    try:
        return rm.score([r["prompt"] for r in recs], [r["response"] for r in recs], [r["principles"] for r in recs],
                        batch_size=cfg.batch_size, share_prefix=cfg.share_prefix)
    except SalmonError:
        for lineno, r in chunk:  # find the record at fault, to name its line
            try:
                encode_rm_parts(rm.tokenizer, r["prompt"], r["response"], r["principles"], rm.max_length)
            except SalmonError as e:
                raise SalmonError(f"{cfg.input}:{lineno}: {e}") from None
        raise


def score(cfg: ScoreConfig) -> Path:
    files = StageFiles.for_file(cfg.out)
    items = read_items(cfg.input)
    if files.begin(cfg):
        return files.out
    from salmon.reward.model import InstructableRewardModel

    writer = ResumableJsonlWriter(files.out, key_fn=lambda r: r["line"])
    todo = [it for it in items if it[0] not in writer.done]
    if writer.done:
        info(f"resuming: {len(items) - len(todo)} of {len(items)} records already scored")
    rm = InstructableRewardModel.load(cfg.rm, device=cfg.device, dtype=cfg.dtype) if todo else None
    start = time.perf_counter()
    with writer, progress_bar(len(items), "score", "records", cfg.progress, completed=len(items) - len(todo)) as advance:
        for chunk in _chunks(todo, cfg.chunk):
            rewards = _score_chunk(rm, chunk, cfg)
            writer.write([{"line": lineno, "reward": r} for (lineno, _), r in zip(chunk, rewards, strict=True)])
            advance(len(chunk))
    elapsed = time.perf_counter() - start
    by_line = {r["line"]: r["reward"] for r in writer.records}
    mean, std = _norm(cfg, rm)
    out = [{**rec, "reward": (by_line[lineno] - mean) / std} for lineno, rec in items]
    rewards = [r["reward"] for r in out]
    files.write_summary({"records": len(out), "mean_reward": sum(rewards) / len(rewards),
                         "min_reward": min(rewards), "max_reward": max(rewards), "normalized": cfg.normalize,
                         "scored_this_run": len(todo), "records_per_s": len(todo) / elapsed if elapsed > 0 else None,
                         "truncated_turns_this_run": rm.truncations.get("truncated_turns", 0) if rm else 0,
                         "truncated_texts_this_run": rm.truncations.get("truncated_texts", 0) if rm else 0})
    write_jsonl(files.out, out)
    writer.partial.unlink(missing_ok=True)
    info(f"wrote {len(out)} scored records to {files.out}")
    return files.out


def _norm(cfg: ScoreConfig, rm) -> tuple[float, float]:
    if not cfg.normalize:
        return 0.0, 1.0
    if rm is None:
        from salmon.reward.model import read_meta

        meta = read_meta(Path(cfg.rm))
    else:
        meta = rm.meta
    return float(meta["reward_mean"]), float(meta["reward_std"] or 1.0)
