"""Stage manifests: what a stage read, how long it took, how much memory it used.

`manifest.json` is written last in a stage folder, so its presence means the stage
finished. `python -m salmon.manifest STAGE CONFIG.yaml STAGE_DIR DIGEST` runs one stage
in its own process (used by `salmon run`) and writes the manifest when it succeeds.
"""

from __future__ import annotations

import hashlib
import json
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

from salmon.jsonl import atomic_write_text

MANIFEST = "manifest.json"


def _digest_path(spec: str) -> str:
    """A content digest for an input: a file's bytes, a folder's manifest/summary, a
    built-in collection's file, or the spec itself (hub ids, 'default')."""
    p = Path(spec)
    if not p.exists():
        from salmon.principles import builtin_path
        from salmon.sources import BUILTIN_PROMPTS, builtin_prompt_path

        if spec in BUILTIN_PROMPTS:
            p = builtin_prompt_path(spec)
        elif builtin_path(spec) is not None:
            p = builtin_path(spec)
        else:
            return hashlib.sha256(spec.encode()).hexdigest()
    if p.is_file():
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()
    for marker in (MANIFEST, "summary.json", "salmon-model.json", "config.json"):
        if (p / marker).exists():
            return _digest_path(str(p / marker))
    return hashlib.sha256(str(sorted(x.name for x in p.iterdir())).encode()).hexdigest()


def tree_digest(root: Path, names: list[str]) -> str:
    """A content digest of the files under `root/<name>` for each name (relative paths and
    bytes; a missing name counts as empty), so that editing, adding or removing any of them
    changes it. Compiled Python files are skipped."""
    h = hashlib.sha256()
    for name in names:
        base = Path(root) / name
        if base.is_file():
            files = [base]
        else:
            files = sorted(p for p in base.rglob("*") if p.is_file()) if base.is_dir() else []
        for p in files:
            if p.suffix == ".pyc":
                continue
            h.update(str(p.relative_to(root)).encode())
            h.update(_digest_path(str(p)).encode())
    return h.hexdigest()


def input_digest(inputs: list[str], settings: dict[str, Any], run_dir: str | None = None) -> str:
    """Digest of what a stage reads (contents) and its settings. Paths under `run_dir` are
    named relative to it, so a run folder that was moved or copied still matches."""
    h = hashlib.sha256()
    for spec in inputs:
        h.update((spec.replace(run_dir, "<run>") if run_dir else spec).encode())
        h.update(_digest_path(spec).encode())
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return h.hexdigest()


def read_manifest(stage_dir: Path) -> dict[str, Any] | None:
    p = Path(stage_dir) / MANIFEST
    if not p.exists():
        return None
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError:
        return None


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("salmon", "torch", "transformers", "peft", "trl", "accelerate", "datasets"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def peak_rss_mb() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_stage_process(stage: str, cfg_path: str, stage_dir: str, digest: str) -> int:
    from salmon.cli_build import quiet_library_warnings, run_guarded
    from salmon.config import load_config
    from salmon.stages import stage_entry

    start = time.time()
    quiet_library_warnings()

    def go():
        cls, fn, _ = stage_entry(stage)
        cfg = load_config(cls, cfg_path)
        return fn(cfg)

    import typer

    try:
        output = run_guarded(go)
    except typer.Exit as e:
        return e.exit_code or 1
    manifest = {"stage": stage, "output": str(output), "input_digest": digest,
                "wall_s": round(time.time() - start, 2), "peak_rss_mb": round(peak_rss_mb(), 1),
                "versions": versions(), "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    atomic_write_text(Path(stage_dir) / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(run_stage_process(*sys.argv[1:5]))
