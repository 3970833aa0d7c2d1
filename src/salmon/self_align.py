"""Stage: Self-Align, principle-driven self-alignment (the SFT data SALMON starts from).

    salmon self-align --model M --prompts builtin --out sft_data/
    salmon sft --model M --data sft_data/ --out sft/

A model answers each prompt while shown the project's rules (`self_align_rules`) and up
to six in-context exemplars (`data/exemplars/self_align.yaml`); its answers, *without*
the rules and exemplars, become an SFT data set ("principle engraving" is `salmon sft`).
This needs no demonstration data, so it also works from a base model.

Format. The rules go into a header (`prompts/self_align_header.txt`) sent as the system
message; each exemplar is a user turn and an assistant turn. Chat models get the header
and exemplars through their chat template; base models without one get the plain
"### User:" / "### Assistant:" format of `salmon.chat`, stopping at the next "### User:".
With `--thoughts` each exemplar's assistant turn reads
    Internal thoughts: <which rules apply>\\n\\nAnswer: <the answer>
and the generated turn is started with "Internal thoughts:", so the model names the
rules that apply and then answers, as in Self-Align; only the text after "Answer:" is
kept (an output without "Answer:" is dropped and counted as `no_answer`). With
`--no-thoughts` (the default) exemplars show the answer alone and the model answers
directly: SmolLM2-135M, the embedded model, wrote no "Answer:" in 4 of 8 thoughts-mode
tries, so thoughts are for larger models.

Prompts whose full prompt (header + exemplars + prompt) plus `--max-new-tokens` exceeds
the model's context are dropped and counted. Batches are fixed after sorting prompts by
length and seeded from (seed, batch index), so a rerun after a crash regenerates exactly
the missing records. Answers then pass the filters of `salmon.sft_filters`
(`--filters`; with a tiny random model use e.g. `--filters empty --min-words 0`).

Output folder: `responses.jsonl` (raw generations with thoughts), `dataset/` (a
`datasets` folder with columns `id` and `messages` = [user prompt, assistant answer]),
`config.yaml`, and `summary.json` (filter counts), written last.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from salmon.chat import render_chat
from salmon.config import opt, read_yaml
from salmon.conversation import Prompt, as_messages, last_user_text
from salmon.errors import SalmonError
from salmon.jsonl import ResumableJsonlWriter, read_jsonl
from salmon.principles import Principle, load_principles
from salmon.progress import info, progress_bar
from salmon.sft_filters import FILTERS, Candidate, FilterSettings, detect_language, first_failure
from salmon.sources import load_prompts
from salmon.stage import StageFiles
from salmon.templates import load_template, render

THOUGHTS_LABEL = "Internal thoughts:"
ANSWER_LABEL = "Answer:"
EXEMPLAR_KEYS = {"prompt", "thoughts", "answer"}


@dataclass
class SelfAlignConfig:
    model: str = opt("default", "Model: 'default' (embedded SmolLM2-135M-Instruct), a local folder or a hub id")
    prompts: str = opt("builtin", "Prompts: builtin, eval, redteam, or a .jsonl/.json/.parquet file")
    out: str = opt("sft_data", "Output folder")
    rules: str = opt("self_align_rules", "Rule file (principle YAML) or built-in collection name")
    exemplars: str = opt("self_align", "Exemplar YAML file or built-in exemplar set name")
    num_exemplars: int = opt(6, "How many exemplars to show (the first N of the file)")
    thoughts: bool = opt(False, "Show internal thoughts in the exemplars and let the model write its own before "
                                "answering (Self-Align's format; too hard for 135M models, so off by default)")
    max_new_tokens: int = opt(256, "Maximum new tokens per answer (thoughts included)")
    temperature: float = opt(0.7, "Sampling temperature (0 = greedy)")
    top_p: float = opt(0.9, "Nucleus sampling top-p")
    seed: int = opt(0, "Random seed")
    batch_size: int = opt(8, "Prompts per generation batch")
    limit: int | None = opt(None, "Use only the first N prompts")
    context_length: int | None = opt(None, "Context size in tokens (default: the model's max_position_embeddings)")
    filters: list[str] = opt(list(FILTERS), f"Filters to apply, in order ({', '.join(FILTERS)})", resume_safe=True)
    min_words: int = opt(1, "Answers with fewer words are dropped by the 'empty' filter", resume_safe=True)
    max_repeat_ratio: float = opt(0.3, "Share of repeated 4-grams above which 'repetition' drops an answer",
                                  resume_safe=True)
    dtype: str = opt("auto", "auto, float32, bfloat16 or float16")
    device: str = opt("auto", "auto (cuda if present), cpu or cuda", resume_safe=True)
    trust_remote_code: bool = opt(False, "Allow model code from the hub (off by default)")
    progress: bool = opt(True, "Show a progress bar", resume_safe=True)

    def validate(self) -> None:
        for name in ("max_new_tokens", "batch_size"):
            if getattr(self, name) < 1:
                raise SalmonError(f"--{name.replace('_', '-')} must be at least 1")
        if self.num_exemplars < 0:
            raise SalmonError("--num-exemplars must be 0 or more")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise SalmonError("--temperature must be >= 0 and --top-p in (0, 1]")
        unknown = [f for f in self.filters if f not in FILTERS]
        if unknown:
            raise SalmonError(f"--filters: unknown filter '{unknown[0]}' (known: {', '.join(FILTERS)})")
        if self.context_length is not None and self.context_length < 1:
            raise SalmonError("--context-length must be at least 1")


@dataclass(frozen=True)
class Exemplar:
    prompt: str
    answer: str
    thoughts: str = ""


def exemplar_path(spec: str) -> Path:
    """A path, or the name of a built-in exemplar set (`data/exemplars/NAME.yaml`)."""
    p = Path(spec).expanduser()
    if p.exists() or p.suffix in (".yaml", ".yml") or "/" in spec:
        return p
    ref = resources.files("salmon").joinpath(f"data/exemplars/{spec}.yaml")
    if not ref.is_file():
        raise SalmonError(f"--exemplars {spec}: no such file or built-in exemplar set")
    return Path(str(ref))


def load_exemplars(spec: str, need_thoughts: bool) -> list[Exemplar]:
    """Read and strictly check an exemplar file; errors name the file, entry and field."""
    path = exemplar_path(spec)
    data = read_yaml(path)
    if not isinstance(data, dict) or set(data) != {"exemplars"}:
        raise SalmonError(f"{path}: expected a mapping with one key 'exemplars' holding a list")
    entries = data["exemplars"]
    if not isinstance(entries, list) or not entries:
        raise SalmonError(f"{path}: 'exemplars' must be a non-empty list")
    out = []
    for i, raw in enumerate(entries, 1):
        where = f"{path}: exemplar {i}"
        if not isinstance(raw, dict):
            raise SalmonError(f"{where}: expected a mapping with prompt, thoughts and answer")
        unknown = sorted(set(raw) - EXEMPLAR_KEYS)
        if unknown:
            raise SalmonError(f"{where}: unknown key '{unknown[0]}' (allowed: {', '.join(sorted(EXEMPLAR_KEYS))})")
        for key in ("prompt", "answer") + (("thoughts",) if need_thoughts else ()):
            if not isinstance(raw.get(key), str) or not raw[key].strip():
                hint = " (or run with --no-thoughts)" if key == "thoughts" else ""
                raise SalmonError(f"{where}: missing or empty '{key}'{hint}")
        thoughts = raw.get("thoughts", "")
        if not isinstance(thoughts, str):
            raise SalmonError(f"{where}: 'thoughts' must be text")
        out.append(Exemplar(raw["prompt"].strip(), raw["answer"].strip(), thoughts.strip()))
    return out


def header_text(rules: list[Principle], thoughts: bool) -> str:
    listed = "\n".join(f"{i}. {r.name}: {r.definition}" for i, r in enumerate(rules, 1))
    how = load_template("self_align_thoughts" if thoughts else "self_align_direct").strip()
    return render(load_template("self_align_header"), rules=listed, format=how).strip()


def assistant_turn(ex: Exemplar, thoughts: bool) -> str:
    return f"{THOUGHTS_LABEL} {ex.thoughts}\n\n{ANSWER_LABEL} {ex.answer}" if thoughts else ex.answer


def context_messages(rules: list[Principle], exemplars: list[Exemplar], thoughts: bool) -> list[dict[str, str]]:
    """The system header and the exemplar turns that precede every prompt."""
    messages = [{"role": "system", "content": header_text(rules, thoughts)}]
    for ex in exemplars:
        messages += [{"role": "user", "content": ex.prompt},
                     {"role": "assistant", "content": assistant_turn(ex, thoughts)}]
    return messages


def render_prompt(tok, context: list[dict[str, str]], prompt: Prompt) -> str:
    """The full generation prompt. Templates that refuse a system turn get the header at
    the top of the first user turn instead. A conversation's turns follow the exemplars;
    its own system message, if any, is added to the header."""
    from jinja2 import TemplateError

    own = as_messages(prompt)
    if own[0]["role"] == "system" and context and context[0]["role"] == "system":
        context = [{"role": "system", "content": f"{context[0]['content']}\n\n{own[0]['content']}"}, *context[1:]]
        own = own[1:]
    messages = context + own
    try:
        return render_chat(tok, messages)
    except TemplateError:
        if messages[0]["role"] != "system":
            raise
        head, first = messages[0], messages[1]
        merged = [{"role": "user", "content": f"{head['content']}\n\n{first['content']}"}] + messages[2:]
        return render_chat(tok, merged)


def split_answer(text: str, thoughts: bool) -> tuple[str, str | None]:
    """(thoughts, answer) from a generation that followed the "Internal thoughts:" start;
    answer is None when the model never wrote "Answer:"."""
    if not thoughts:
        return "", text.strip()
    head, sep, tail = text.partition(ANSWER_LABEL)
    return (head.strip(), tail.strip()) if sep else (text.strip(), None)


def _context_length(cfg: SelfAlignConfig, tok) -> int:
    if cfg.context_length:
        return cfg.context_length
    from transformers import AutoConfig

    from salmon.models import resolve_model

    try:
        mc = AutoConfig.from_pretrained(resolve_model(cfg.model), trust_remote_code=cfg.trust_remote_code)
        n = getattr(mc.get_text_config(), "max_position_embeddings", None)
    except (OSError, ValueError):
        n = None
    limit = getattr(tok, "model_max_length", None)
    return int(n or (limit if limit and limit < 1_000_000 else 2048))


def _prepare(cfg: SelfAlignConfig, tok, prompts: list[dict[str, Any]]):
    """Full prompt texts; indices that fit the context, and ids of those that do not."""
    rules = load_principles(cfg.rules)
    exemplars = load_exemplars(cfg.exemplars, cfg.thoughts)
    if cfg.num_exemplars > len(exemplars):
        raise SalmonError(f"--num-exemplars {cfg.num_exemplars}: {cfg.exemplars} has only {len(exemplars)} exemplars")
    context = context_messages(rules, exemplars[: cfg.num_exemplars], cfg.thoughts)
    start = THOUGHTS_LABEL if cfg.thoughts else ""
    texts = [render_prompt(tok, context, p["prompt"]) + start for p in prompts]
    lengths = [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]]
    room = _context_length(cfg, tok) - cfg.max_new_tokens
    keep = [i for i, n in enumerate(lengths) if n <= room]
    too_long = [prompts[i]["id"] for i, n in enumerate(lengths) if n > room]
    if not keep:
        raise SalmonError(f"all {len(prompts)} prompts exceed the context ({room + cfg.max_new_tokens} tokens) once "
                          f"the rules and {cfg.num_exemplars} exemplars are added (shortest: {min(lengths)} tokens "
                          f"+ {cfg.max_new_tokens} new); use fewer --num-exemplars or a smaller --max-new-tokens")
    if too_long:
        info(f"dropping {len(too_long)} prompt(s) that exceed the context with the rules and exemplars")
    settings = FilterSettings(min_words=cfg.min_words, max_repeat_ratio=cfg.max_repeat_ratio,
                              rule_names=tuple(r.name for r in rules),
                              rule_texts=tuple(r.definition for r in rules) + (header_text([], cfg.thoughts),))
    return texts, lengths, keep, too_long, settings


def _generate(cfg: SelfAlignConfig, tok, prompts, texts, lengths, keep, path: Path) -> list[dict[str, Any]]:
    """Raw generations for the prompts in `keep`, resumably; in the order of `keep`."""
    from salmon.generate import sample_batch
    from salmon.models import load_causal_lm

    if path.exists():  # generation finished in an earlier run that stopped later on
        return read_jsonl(path)
    order = sorted(keep, key=lambda i: lengths[i])
    batches = [order[s:s + cfg.batch_size] for s in range(0, len(order), cfg.batch_size)]
    writer = ResumableJsonlWriter(path)
    todo = [(b, idx) for b, idx in enumerate(batches) if any(prompts[i]["id"] not in writer.done for i in idx)]
    if writer.done:
        info(f"resuming: {len(writer.done)} of {len(keep)} prompts already answered")
    model = load_causal_lm(cfg.model, dtype=cfg.dtype, device=cfg.device,
                           trust_remote_code=cfg.trust_remote_code) if todo else None
    done = len(keep) - sum(len(i) for _, i in todo)
    with writer, progress_bar(len(keep), "self-align", "prompts", cfg.progress, completed=done) as advance:
        for b, idx in todo:
            samples = sample_batch(model, tok, [texts[i] for i in idx], n=1, max_new_tokens=cfg.max_new_tokens,
                                   temperature=cfg.temperature, top_p=cfg.top_p, seed=cfg.seed * 100_003 + b)
            records = [_raw_record(prompts[i], s[0], cfg.thoughts) for i, s in zip(idx, samples, strict=True)]
            writer.write([r for r in records if r["id"] not in writer.done])
            advance(len(idx))
    by_id = {r["id"]: r for r in writer.records}
    writer.finish_ordered([prompts[i]["id"] for i in keep])
    return [by_id[prompts[i]["id"]] for i in keep]


def _raw_record(prompt: dict[str, Any], sample: dict[str, Any], thoughts: bool) -> dict[str, Any]:
    thought, answer = split_answer(sample["text"], thoughts)
    return {"id": prompt["id"], "prompt": prompt["prompt"], "lang": prompt.get("lang"), "raw": sample["text"],
            "thoughts": thought, "answer": answer, "finished": sample["finished"],
            "num_tokens": sample["num_tokens"]}


def apply_filters(records: list[dict[str, Any]], names: list[str], settings: FilterSettings):
    """(kept records, drops per first failing reason, how many each filter alone would
    drop, a few dropped ids with reasons per filter)."""
    counts = {"no_answer": 0, **{n: 0 for n in names}}
    alone = dict.fromkeys(names, 0)
    examples: dict[str, list[dict[str, str]]] = {k: [] for k in counts}
    kept = []
    for r in records:
        if r["answer"] is None:
            failure = ("no_answer", "no 'Answer:' after the thoughts")
        else:
            c = Candidate(r["answer"], r["finished"], r.get("lang") or prompt_language(last_user_text(r["prompt"]), settings))
            for name in names:
                alone[name] += first_failure(c, [name], settings) is not None
            failure = first_failure(c, names, settings)
        if failure is None:
            kept.append(r)
            continue
        counts[failure[0]] += 1
        if len(examples[failure[0]]) < 5:
            examples[failure[0]].append({"id": r["id"], "reason": failure[1]})
    return kept, counts, alone, examples


def prompt_language(prompt: str, settings: FilterSettings) -> str | None:
    """The prompt's language when langid is confident, for prompt sets without `lang`."""
    found = detect_language(prompt, settings.min_lang_chars)
    return found[0] if found and found[1] >= settings.min_lang_prob else None


def _save_dataset(kept: list[dict[str, Any]], target: Path) -> None:
    import datasets

    rows = [{"id": r["id"], "messages": [*as_messages(r["prompt"]),
                                         {"role": "assistant", "content": r["answer"]}]} for r in kept]
    tmp = target.with_name(f".{target.name}.tmp.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp))
    if target.exists():  # left by a run that stopped before its summary; derived, so safe to redo
        shutil.rmtree(target)
    os.replace(tmp, target)


def self_align(cfg: SelfAlignConfig) -> Path:
    files = StageFiles.for_dir(cfg.out)
    prompts = load_prompts(cfg.prompts, cfg.limit)
    if files.begin(cfg):
        return files.out
    from salmon.models import load_tokenizer

    tok = load_tokenizer(cfg.model, cfg.trust_remote_code)
    texts, lengths, keep, too_long, settings = _prepare(cfg, tok, prompts)
    records = _generate(cfg, tok, prompts, texts, lengths, keep, files.out / "responses.jsonl")
    kept, counts, alone, examples = apply_filters(records, cfg.filters, settings)
    if not kept:
        raise SalmonError(f"{files.out}: all {len(records)} answers were filtered out ({_counts_text(counts)}); "
                          "loosen --filters / --min-words / --max-repeat-ratio, or raise --max-new-tokens")
    _save_dataset(kept, files.out / "dataset")
    stats = {"filtered": counts, "failed_each_filter_alone": alone,
             "filtered_examples": {k: v for k, v in examples.items() if v}}
    files.write_summary(_summary(prompts, records, kept, too_long, [lengths[i] for i in keep], stats))
    info(f"kept {len(kept)} of {len(records)} answers ({_counts_text(counts)}); wrote {files.out / 'dataset'}")
    return files.out


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counts.items() if v) or "none dropped"


def _summary(prompts, records, kept, too_long, prompt_tokens, filter_stats) -> dict[str, Any]:
    words = [len(r["answer"].split()) for r in kept]
    return {
        "prompts": len(prompts),
        "dropped_too_long": len(too_long),
        "dropped_too_long_ids": too_long[:50],
        "generated": len(records),
        "kept": len(kept),
        "kept_rate": len(kept) / max(1, len(records)),
        "finished_rate": sum(r["finished"] for r in records) / max(1, len(records)),
        "mean_prompt_tokens": sum(prompt_tokens) / max(1, len(prompt_tokens)),
        "mean_new_tokens": sum(r["num_tokens"] for r in records) / max(1, len(records)),
        "mean_kept_answer_words": sum(words) / max(1, len(words)),
        **filter_stats,
    }
