"""MT-Bench answers in FastChat's answer format, for judging with your own judge.

Each question has two user turns; the model answers the first, then the second with the
first exchange in context. One JSON line per question:
    {"question_id", "answer_id", "model_id", "choices": [{"index": 0, "turns": [a1, a2]}], "tstamp"}
The question file itself is not shipped (pass FastChat's `question.jsonl`).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from salmon.chat import render_chat
from salmon.errors import SalmonError
from salmon.generate import sample_batch
from salmon.jsonl import iter_jsonl, write_jsonl


def read_questions(path: str | Path, limit: int | None = None) -> list[dict]:
    out = []
    for ln, rec in iter_jsonl(path):
        turns = rec.get("turns")
        if "question_id" not in rec or not isinstance(turns, list) or not turns or \
                not all(isinstance(t, str) and t.strip() for t in turns):
            raise SalmonError(f"{path}:{ln}: expected an MT-Bench question with question_id and non-empty turns")
        out.append(rec)
        if limit is not None and len(out) >= limit:
            break
    return out


def turn_items(turns: list[str], answers: list[str]) -> list[tuple[list[dict[str, str]], str]]:
    """(conversation, response) per turn, for scoring every turn with the reward model:
    turn k's prompt holds the questions and the model's own answers before it."""
    items, history = [], []
    for question, answer in zip(turns, answers, strict=True):
        history = [*history, {"role": "user", "content": question}]
        items.append((history, answer))
        history = [*history, {"role": "assistant", "content": answer}]
    return items


def write_mt_bench_answers(model_spec: str, questions: str | Path, out: str | Path, model_id: str,
                           max_new_tokens: int = 256, batch_size: int = 8, limit: int | None = None) -> Path:
    from salmon.models import load_causal_lm, load_tokenizer

    qs = read_questions(questions, limit)
    tok = load_tokenizer(model_spec)
    model = load_causal_lm(model_spec)
    histories: list[list[dict[str, str]]] = [[] for _ in qs]
    answers: list[list[str]] = [[] for _ in qs]
    for turn in range(max(len(q["turns"]) for q in qs)):
        idx = [i for i, q in enumerate(qs) if turn < len(q["turns"])]
        for i in idx:
            histories[i].append({"role": "user", "content": qs[i]["turns"][turn]})
        for s in range(0, len(idx), batch_size):
            chunk = idx[s:s + batch_size]
            texts = [render_chat(tok, histories[i]) for i in chunk]
            res = sample_batch(model, tok, texts, n=1, max_new_tokens=max_new_tokens, temperature=0.0)
            for i, r in zip(chunk, res):
                answers[i].append(r[0]["text"])
                histories[i].append({"role": "assistant", "content": r[0]["text"]})
    now = time.time()
    rows = [{"question_id": q["question_id"],
             "answer_id": hashlib.sha256(f"{model_id}:{q['question_id']}".encode()).hexdigest()[:22],
             "model_id": model_id, "choices": [{"index": 0, "turns": a}], "tstamp": now}
            for q, a in zip(qs, answers)]
    write_jsonl(out, rows)
    return Path(out)
