"""JSONL reading and crash-safe, resumable writing.

Stage outputs are written as `<out>.partial` (append + flush + fsync per batch) and
renamed to `<out>` when the stage finishes, so a file at the final path is always
complete. A rerun after a crash (even `kill -9`) reads the partial file, drops a torn
last line, and continues; the final file then has exactly the records of an
uninterrupted run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from salmon.errors import SalmonError


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, record) for each non-blank line; errors name file and line."""
    path = Path(path)
    if not path.exists():
        raise SalmonError(f"{path}: file not found")
    if path.is_dir():
        raise SalmonError(f"{path}: is a directory, expected a JSONL file")
    try:
        fh = open(path, encoding="utf-8")
    except OSError as e:
        raise SalmonError(f"{path}: cannot read ({e.strerror})") from None
    with fh:
        lineno = 0
        while True:
            try:
                line = fh.readline()
            except UnicodeDecodeError:
                raise SalmonError(f"{path}:{lineno + 1}: not valid UTF-8") from None
            if not line:
                break
            lineno += 1
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise SalmonError(f"{path}:{lineno}: malformed JSON ({e.msg})") from None
            if not isinstance(rec, dict):
                raise SalmonError(f"{path}:{lineno}: expected a JSON object, got {type(rec).__name__}")
            yield lineno, rec


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    return [rec for _, rec in iter_jsonl(path)]


def dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a whole file via a temp file + rename, so readers never see half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(dumps(r) + "\n" for r in records))


def recover_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The records of an append-only JSONL file that a killed process may have left, with
    the file cut back to its last complete record (a torn or malformed tail is dropped)."""
    raw = Path(path).read_bytes()
    lines = raw.split(b"\n")
    # Everything after the last newline is a torn write from a killed process.
    complete, torn = lines[:-1], lines[-1]
    records = []
    good_bytes = 0
    for line in complete:
        try:
            records.append(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError):
            break
        good_bytes += len(line) + 1
    if torn or good_bytes != len(raw):
        with open(path, "r+b") as fh:
            fh.truncate(good_bytes)
    return records


class ResumableJsonlWriter:
    """Append-only JSONL output that survives crashes.

    `done` holds the keys (``key_fn(record)``) already in the partial file. Call
    `write(records)` per batch and `finish()` (or `finish_ordered`) at the end, which
    puts the records at the final path; `records` holds everything written so far.
    """

    def __init__(self, path: str | Path, key_fn=lambda r: r["id"]):
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.key_fn = key_fn
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records: list[dict[str, Any]] = self._recover()
        self.done = {key_fn(r) for r in self.records}
        self._fh = open(self.partial, "a", encoding="utf-8")

    def _recover(self) -> list[dict[str, Any]]:
        return recover_jsonl(self.partial) if self.partial.exists() else []

    def write(self, records: list[dict[str, Any]]) -> None:
        text = "".join(dumps(r) + "\n" for r in records)
        if not text:
            return
        self._fh.write(text)
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.records.extend(records)
        self.done.update(self.key_fn(r) for r in records)

    def finish(self) -> Path:
        self._fh.close()
        os.replace(self.partial, self.path)
        return self.path

    def finish_ordered(self, key_order: list) -> Path:
        """Write the final file with records in `key_order` (atomic), then drop the partial."""
        self.close()
        by_key = {self.key_fn(r): r for r in self.records}
        write_jsonl(self.path, [by_key[k] for k in key_order if k in by_key])
        self.partial.unlink(missing_ok=True)
        return self.path

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> ResumableJsonlWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
