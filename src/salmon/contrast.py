"""Stage: principle-contrast pairs (the RLCD idea) for the reward model's training set.

    salmon contrast --model default --prompts builtin --limit 16 --out contrast/

For a prompt and a verifiable principle P (a family of `salmon.verify` with `steer`
instructions), one response is sampled with an instruction towards P appended to the
user turn, and one with the matching instruction towards not-P (the two differ only in
what they ask). The record keeps the user's own prompt: the instruction never reaches
the reward model's text, and the label is recorded against the principle (a training
phrasing of the family, parameter rendered), never the instruction. Each pair is checked
by P's checker: `checked` is true when the P-response satisfies P and the other does not,
false when the contrast did not come out that way, null when a checker cannot tell (a
response cut off before its verdict is final). The share of true per family is the
*contrast yield* (summary.json), which says where steering works on this model.

Harmlessness: red-team prompts (type `redteam` in `prompts`) are answered `harm_n` times
plainly and `harm_n` times with a user-turn request to refuse harmful help; refusals found
by `salmon.refusal` are paired with compliant answers (the refusal wins under Harmless).

Sampling goes through `salmon generate` (same backend, resumable by its partial file);
`contrast.jsonl` is assembled afterwards and `summary.json` is written last. Records:
    {"id", "prompt", "response_a" (towards P), "response_b", "finished_a", "finished_b",
     "principle": {name, definition, negation}, "family", "checker", "param", "kind"
     ("form" | "harm"), "checked", "has_checker"}
Empty responses are dropped and counted.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from salmon.config import opt
from salmon.conversation import last_user_text, with_last_user_text
from salmon.errors import SalmonError
from salmon.generate import GenerateConfig, generate
from salmon.jsonl import read_jsonl, write_jsonl
from salmon.principles import load_principles
from salmon.progress import info
from salmon.refusal import is_refusal
from salmon.sources import load_prompts
from salmon.stage import StageFiles
from salmon.verify import Verifiable, load_verifiable, verdicts_differ, words

SEP = "~"  # in generated ids: prompt id ~ family index ~ side; prompt ids must not contain it
REFUSE = "If answering could help someone cause harm, refuse briefly, say why, and suggest a safe alternative."
# Item count is steerable too, but at 96 tokens its 5 measured pairs were all undecidable (docs/label-sources.md).
DEFAULT_FAMILIES = ["Word limit", "Word floor", "Numbered list", "Bullet points", "Ends with a question",
                    "No opener", "Code block", "No exclamation"]


@dataclass
class ContrastConfig:
    model: str = opt("default", "Model that writes both responses (the policy)")
    prompts: str = opt("builtin", "Prompts (general/reasoning ones get form contrasts, redteam ones harm pairs)")
    out: str = opt("contrast", "Output folder (contrast.jsonl, responses.jsonl, summary.json)")
    limit: int | None = opt(16, "Form-contrast prompts (the first N non-redteam prompts)")
    families: list[str] = opt(DEFAULT_FAMILIES, "Verifiable families to steer (those with `steer` instructions)")
    per_prompt: int = opt(2, "Families per prompt (rotating through `families`)")
    verify_principles: str | None = opt(None, "Verifiable principle family files: comma-separated paths "
                                                "or built-in names (builtin, extra; default: builtin)")
    harm_limit: int = opt(8, "Red-team prompts for harm pairs (0: none)")
    harm_n: int = opt(2, "Answers per red-team prompt, plain and again with a request to refuse")
    harm_pairs_per_prompt: int = opt(2, "At most this many refusal/compliant pairs per red-team prompt")
    harm_principle: str = opt("Harmless", "Principle (from `judge_principles`) the harm pairs are labelled under")
    judge_principles: str = opt("judge", "Principle file holding `harm_principle`")
    max_new_tokens: int = opt(96, "Tokens per response")
    temperature: float = opt(0.7, "Sampling temperature")
    batch_size: int = opt(16, "Sequences per generation batch")
    seed: int = opt(0, "Seed")
    progress: bool = opt(True, "Show progress", resume_safe=True)

    def validate(self) -> None:
        if self.per_prompt < 1 or self.harm_n < 1 or self.harm_limit < 0 or self.harm_pairs_per_prompt < 1:
            raise SalmonError("--per-prompt, --harm-n and --harm-pairs-per-prompt must be >= 1, --harm-limit >= 0")
        if not self.families and not self.harm_limit:
            raise SalmonError("--families is empty and --harm-limit is 0: nothing to contrast")


def steerable(cfg: ContrastConfig) -> dict[str, list[Verifiable]]:
    """Training instances of each requested family, which must have steer instructions."""
    vps = load_verifiable(cfg.verify_principles, "train", cfg.families or None) if cfg.families else []
    out: dict[str, list[Verifiable]] = {}
    for v in vps:
        if v.steer is None:
            raise SalmonError(f"--families: '{v.family}' has no 'steer' instructions in its principle file")
        out.setdefault(v.family, []).append(v)
    return out


def steered(prompt, instruction: str):
    """The prompt with `instruction` appended to its last user turn (text or conversation)."""
    return with_last_user_text(prompt, f"{last_user_text(prompt)}\n\n{instruction}")


def plan_jobs(prompts: list[dict[str, Any]], fams: dict[str, list[Verifiable]], cfg: ContrastConfig
              ) -> tuple[list[dict[str, Any]], dict[str, Verifiable]]:
    """Prompt records for `generate` (steered texts) and, per contrast key, its principle instance."""
    form = [p for p in prompts if p["type"] != "redteam"][: cfg.limit]
    harm = [p for p in prompts if p["type"] == "redteam"][: cfg.harm_limit]
    names = list(fams)
    jobs, chosen = [], {}
    for i, p in enumerate(form):
        if SEP in p["id"]:
            raise SalmonError(f"--prompts: id {p['id']!r} contains '{SEP}'")
        for k in range(min(cfg.per_prompt, len(names))):
            fam = names[(i * cfg.per_prompt + k) % len(names)]
            rng = np.random.default_rng([cfg.seed, i, k])
            v = fams[fam][int(rng.integers(len(fams[fam])))]
            key = f"{p['id']}{SEP}{fam}"
            chosen[key] = v
            for side, instr in (("a", v.steer[0]), ("b", v.steer[1])):
                jobs.append({"id": f"{key}{SEP}{side}", "prompt": steered(p["prompt"], instr), "type": p["type"]})
    for p in harm:
        for k in range(cfg.harm_n):
            jobs.append({"id": f"{p['id']}{SEP}harm{SEP}plain{k}", "prompt": p["prompt"], "type": "redteam"})
            jobs.append({"id": f"{p['id']}{SEP}harm{SEP}refuse{k}", "prompt": steered(p["prompt"], REFUSE),
                         "type": "redteam"})
    return jobs, chosen


def form_pairs(by_id: dict[str, dict[str, Any]], originals: dict[str, str], chosen: dict[str, Verifiable],
               counts: Counter) -> list[dict[str, Any]]:
    out = []
    for key, v in chosen.items():
        pid = key.split(SEP)[0]
        a, b = by_id[f"{key}{SEP}a"], by_id[f"{key}{SEP}b"]
        if not a["text"].strip() or not b["text"].strip():
            counts[f"dropped_empty:{v.family}"] += 1
            continue
        request = last_user_text(originals[pid])
        d = verdicts_differ(v, request, a["text"], b["text"], a["finished"], b["finished"])
        known = v.check(request, a["text"], a["finished"]) is not None and \
            v.check(request, b["text"], b["finished"]) is not None
        checked = True if d > 0 else (False if known else None)
        p = v.principle
        out.append({"id": key, "prompt": originals[pid], "response_a": a["text"], "response_b": b["text"],
                    "finished_a": a["finished"], "finished_b": b["finished"],
                    "principle": {"name": p.name, "definition": p.definition, "negation": p.negation},
                    "family": v.family, "checker": v.checker, "param": v.param, "kind": "form",
                    "checked": checked, "has_checker": True})
    return out


def harm_pairs(by_id: dict[str, dict[str, Any]], originals: dict[str, str], principle, per_prompt: int,
               counts: Counter) -> list[dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rid, r in by_id.items():
        parts = rid.split(SEP)
        if len(parts) == 3 and parts[1] == "harm":
            groups[parts[0]].append(r)
    out = []
    for pid in sorted(groups):
        answers = [r for r in groups[pid] if r["text"].strip()]
        counts["dropped_empty:harm"] += len(groups[pid]) - len(answers)
        refusals = [r for r in answers if is_refusal(r["text"])]
        compliant = [r for r in answers if not is_refusal(r["text"])]
        counts["harm_answers"] += len(answers)
        counts["harm_refusals"] += len(refusals)
        for j, (r, c) in enumerate(list(zip(refusals, compliant))[:per_prompt]):
            out.append({"id": f"{pid}{SEP}harm{j}", "prompt": originals[pid], "response_a": r["text"],
                        "response_b": c["text"], "finished_a": r["finished"], "finished_b": c["finished"],
                        "principle": {"name": principle.name, "definition": principle.definition,
                                      "negation": principle.negation},
                        "family": "Harmless", "checker": "refusal", "param": None, "kind": "harm",
                        "checked": True, "has_checker": True})
    return out


def yield_table(pairs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per family: pairs, confirmed (checked true), wrong (false), unknown (null), yield,
    and mean words of the towards / away responses."""
    out: dict[str, dict[str, Any]] = {}
    for fam in sorted({p["family"] for p in pairs if p["kind"] == "form"}):
        sub = [p for p in pairs if p["family"] == fam]
        conf = sum(p["checked"] is True for p in sub)
        out[fam] = {"pairs": len(sub), "confirmed": conf, "wrong": sum(p["checked"] is False for p in sub),
                    "unknown": sum(p["checked"] is None for p in sub), "yield": conf / len(sub),
                    "words_towards": float(np.mean([words(p["response_a"]) for p in sub])),
                    "words_away": float(np.mean([words(p["response_b"]) for p in sub]))}
    return out


def contrast(cfg: ContrastConfig) -> Path:
    files = StageFiles.for_dir(cfg.out)
    prompts = load_prompts(cfg.prompts)
    fams = steerable(cfg)
    principle = None
    if cfg.harm_limit:
        principle = next((p for p in load_principles(cfg.judge_principles) if p.name == cfg.harm_principle), None)
        if principle is None:
            raise SalmonError(f"--harm-principle {cfg.harm_principle!r} is not in {cfg.judge_principles}")
    jobs, chosen = plan_jobs(prompts, fams, cfg)
    if not jobs:
        raise SalmonError(f"--prompts {cfg.prompts}: no prompts to contrast")
    if files.begin(cfg):
        return files.out
    files.out.mkdir(parents=True, exist_ok=True)
    job_file = files.out / "steered_prompts.jsonl"
    write_jsonl(job_file, jobs)
    responses = generate(GenerateConfig(model=cfg.model, prompts=str(job_file), out=str(files.out / "responses.jsonl"),
                                        n=1, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                                        batch_size=cfg.batch_size, seed=cfg.seed, progress=cfg.progress))
    by_id = {r["id"]: {"text": r["responses"][0], "finished": r["finished"][0]} for r in read_jsonl(responses)}
    originals = {p["id"]: p["prompt"] for p in prompts}
    counts: Counter = Counter()
    chosen = {k: v for k, v in chosen.items() if f"{k}{SEP}a" in by_id and f"{k}{SEP}b" in by_id}
    pairs = form_pairs(by_id, originals, chosen, counts)
    if principle is not None:
        pairs += harm_pairs(by_id, originals, principle, cfg.harm_pairs_per_prompt, counts)
    write_jsonl(files.out / "contrast.jsonl", pairs)
    table = yield_table(pairs)
    summary = {"pairs": len(pairs), "form_pairs": sum(p["kind"] == "form" for p in pairs),
               "harm_pairs": sum(p["kind"] == "harm" for p in pairs), "yield_by_family": table,
               "yield": (sum(t["confirmed"] for t in table.values()) / max(1, sum(t["pairs"] for t in table.values()))),
               "counts": dict(counts)}
    files.write_summary(summary)
    info(f"contrast: {summary['form_pairs']} form pairs (yield {summary['yield']:.0%}), {summary['harm_pairs']} harm "
         f"pairs; " + ", ".join(f"{k} {v['confirmed']}/{v['pairs']}" for k, v in table.items()))
    return files.out
