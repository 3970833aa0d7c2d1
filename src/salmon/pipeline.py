"""`salmon run`: the whole SALMON method, one stage after another, resumable.

    salmon run                                  # configs/default.yaml on the embedded model
    salmon run --config configs/smoke.yaml --out runs/smoke
    salmon run --from judge                     # redo judge and everything after it

Each stage runs in its own process (so its peak memory is its own and is released)
and lives in its own sub-folder of the run with its resolved config and a
`manifest.json` written last (input hashes, versions, wall time, peak memory). A rerun
skips stages whose manifest matches their inputs (files, settings and the built-in files
the stage reads, BUILTIN_READS), and resumes an interrupted stage from
its partial output. `--from STAGE` moves that stage's folder and all later ones aside
(`<stage>.old-N`), so nothing already written is lost.
"""

from __future__ import annotations

import ctypes
import fcntl
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from salmon.config import check_resume, dump_yaml, from_dict, load_config, opt, read_yaml, to_dict
from salmon.errors import SalmonError
from salmon.jsonl import atomic_write_text
from salmon.machine import record_machine_in_subprocess
from salmon.manifest import input_digest, read_manifest, tree_digest
from salmon.progress import info
from salmon.run_settings import record_settings, settings_block
from salmon.stages import OPTIONAL, STAGE_ORDER, pipeline_stage, stage_entry


@dataclass
class RunConfig:
    out: str = opt("runs/default", "Run folder")
    model: str = opt("default", "Starting model: 'default' (embedded SmolLM2-135M-Instruct), a folder or hub id")
    seed: int = opt(0, "Seed for every stage")
    self_align: bool = opt(False, "Start with Self-Align + SFT (principle engraving)")
    prompts: str = opt("builtin", "Training prompts for generation and RL")
    judge_principles: str = opt("judge", "Principles for the self-judge and RM training")
    rl_principles: str = opt("rl", "Principles sampled at RL time")
    exact_labels: bool = opt(False, "Add exact labels: run `salmon contrast` and mix self-judge, verifiable and "
                                    "contrast labels in aggregate (shares: aggregate.source_shares)")
    progress: bool = opt(True, "Show progress bars", resume_safe=True)


def _wiring(run: RunConfig, d: Path) -> dict[str, dict[str, Any]]:
    """Each stage's inputs and outputs inside the run folder (sections of the YAML add to these)."""
    policy = str(d / "sft") if run.self_align else run.model
    return {
        "self_align": {"model": run.model, "out": str(d / "self_align"), "seed": run.seed},
        "sft": {"model": run.model, "data": str(d / "self_align"), "out": str(d / "sft"), "seed": run.seed},
        "generate": {"model": policy, "prompts": run.prompts, "out": str(d / "generate" / "responses.jsonl"),
                     "seed": run.seed},
        "pairs": {"responses": str(d / "generate" / "responses.jsonl"), "out": str(d / "pairs" / "pairs.jsonl")},
        "judge": {"model": policy, "pairs": str(d / "pairs" / "pairs.jsonl"),
                  "principles": run.judge_principles, "out": str(d / "judge" / "judgments.jsonl")},
        "contrast": {"model": policy, "prompts": run.prompts, "judge_principles": run.judge_principles,
                     "out": str(d / "contrast"), "seed": run.seed},
        "aggregate": {"pairs": str(d / "pairs" / "pairs.jsonl"), "judgments": str(d / "judge" / "judgments.jsonl"),
                      "principles": run.judge_principles, "out": str(d / "aggregate"), "seed": run.seed,
                      **({"contrast": str(d / "contrast" / "contrast.jsonl"),
                          "source_shares": ["judge=1", "verify=1", "contrast=1"]} if run.exact_labels else {})},
        "train_rm": {"model": run.model, "data": str(d / "aggregate"), "out": str(d / "train_rm"), "seed": run.seed},
        "rl": {"policy": policy, "rm": str(d / "train_rm"), "prompts": run.prompts,
               "principles": run.rl_principles, "out": str(d / "rl"), "seed": run.seed},
        "evaluate": {"policy_before": policy, "policy_after": str(d / "rl"), "rm": str(d / "train_rm"),
                     "run_dir": str(d), "out": str(d / "evaluate")},
        "report": {"run_dir": str(d), "out": str(d / "report")},
    }


# Built-in files (inside the installed package) a stage reads without a config field naming
# them: principle collections and their negations, verifiable phrasings, dev sets, prompt
# files and templates. Their contents go into the stage's digest, so that an upgrade or an
# edit that changes them redoes the stage instead of keeping output made from the old ones.
BUILTIN_READS: dict[str, list[str]] = {
    "self_align": ["data/exemplars", "data/principles", "prompts"],
    "sft": [],
    "generate": ["data/prompts"],
    "pairs": [],
    "judge": ["data/principles", "prompts"],
    "contrast": ["data/prompts", "data/principles", "data/verify"],
    "aggregate": ["data/principles", "data/verify"],
    "train_rm": ["data/principles", "data/verify", "prompts"],
    "rl": ["data/prompts", "data/principles", "data/verify", "prompts"],
    "evaluate": ["data/dev", "data/prompts", "data/principles", "data/verify", "prompts"],
    "report": [],
}


def builtin_digest(stage: str, root: Path | None = None) -> str:
    """Digest of the built-in files `stage` reads (BUILTIN_READS), under the package folder
    (or `root`)."""
    if root is None:
        from importlib import resources

        root = Path(str(resources.files("salmon")))
    return tree_digest(root, BUILTIN_READS.get(stage, []))


def _inputs(stage: str, wiring: dict[str, Any]) -> list[str]:
    """What a stage reads; a change in any of them makes its manifest stale."""
    keys = ("model", "data", "responses", "pairs", "judgments", "policy", "rm", "policy_before",
            "policy_after", "prompts", "principles", "contrast")
    found = [str(wiring[k]) for k in keys if k in wiring]
    if stage == "report":  # the report reads the other stages' folders
        found += [str(Path(wiring["run_dir"]) / s) for s in ("aggregate", "train_rm", "rl", "evaluate")]
    return found


def stage_config(stage: str, wiring: dict[str, Any], section: dict[str, Any], where: str, progress: bool):
    cls, _, _ = stage_entry(stage)
    fields = set(cls.__dataclass_fields__)
    data = {k: v for k, v in wiring.items() if k in fields}
    if "progress" in fields:
        data["progress"] = progress
    data.update(section)
    return from_dict(cls, data, where)


def _set_pdeathsig() -> None:
    """Let a stage process die with the pipeline (so a killed run leaves no orphan writing)."""
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _lock(run_dir: Path):
    run_dir.mkdir(parents=True, exist_ok=True)
    fh = open(run_dir / ".lock", "w")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SalmonError(f"{run_dir}: another `salmon run` is using this folder") from None
    return fh


def _move_aside(path: Path) -> None:
    if not path.exists():
        return
    n = 1
    while path.with_name(f"{path.name}.old-{n}").exists():
        n += 1
    path.rename(path.with_name(f"{path.name}.old-{n}"))
    info(f"moved {path} aside to {path.name}.old-{n}")


def default_config_path() -> Path:
    """The packaged default run config (configs/default.yaml in the repository links to it)."""
    from importlib import resources

    return Path(str(resources.files("salmon").joinpath("data/configs/default.yaml")))


def plan(config: str | None = None, out: str | None = None, from_stage: str | None = None,
         overrides: dict[str, Any] | None = None) -> tuple[RunConfig, dict[str, Any], dict[str, Any]]:
    """Validate a run config and resolve every stage's config, before any work starts.

    Returns (run config, the YAML sections, {stage: stage config}) for the stages that will run.
    """
    config = config or str(default_config_path())
    sections = read_yaml(config) or {}
    if not isinstance(sections, dict):
        raise SalmonError(f"{config}: expected a mapping with a 'run' section and stage sections")
    unknown = sorted(set(sections) - set(STAGE_ORDER) - {"run"})
    if unknown:
        raise SalmonError(f"{config}: unknown section '{unknown[0]}' (known: run, {', '.join(STAGE_ORDER)})")
    run = load_config(RunConfig, config, {**(overrides or {}), "out": out}, section="run")
    if from_stage is not None:
        pipeline_stage(from_stage)  # an unknown name fails here, before any work
    wiring = _wiring(run, Path(run.out))
    configs = {}
    for s in STAGE_ORDER:
        if s in OPTIONAL and not getattr(run, OPTIONAL[s]):
            continue
        section = sections.get(s) or {}
        if not isinstance(section, dict):
            raise SalmonError(f"{config}: section '{s}' must be a mapping of settings")
        configs[s] = stage_config(s, wiring[s], section, f"{config}: {s}", run.progress)
    return run, sections, configs


def run_pipeline(config: str | None = None, out: str | None = None, from_stage: str | None = None,
                 overrides: dict[str, Any] | None = None) -> Path:
    run, sections, configs = plan(config, out, from_stage, overrides)
    d = Path(run.out)
    wiring = _wiring(run, d)
    stages = list(configs)
    lock = _lock(d)
    try:
        atomic_write_text(d / "run.yaml", dump_yaml({"run": to_dict(run), **{k: v for k, v in sections.items() if k != "run"}}))
        record_machine_in_subprocess(d)  # this machine's matmul peak, so the report can normalise stage times
        if from_stage:
            if pipeline_stage(from_stage) not in stages:
                raise SalmonError(f"--from {from_stage}: that stage is not part of this run "
                                  "(self-align and sft run only with self_align: true)")
            start = stages.index(pipeline_stage(from_stage))
            for s in reversed(stages[start:]):
                _move_aside(d / s)
        for s in stages:
            _run_stage(s, configs[s], _inputs(s, wiring[s]), d)
        record_settings(d, settings_block(config or str(default_config_path()), run, configs))
    finally:
        lock.close()
    info(f"run complete: {d}")
    return d


def _run_stage(stage: str, cfg: Any, inputs: list[str], run_dir: Path) -> None:
    stage_dir = run_dir / stage
    # Paths inside the run folder are hashed relative to it, so a moved run still resumes.
    settings = {k: v.replace(str(run_dir), "<run>") if isinstance(v, str) else v for k, v in to_dict(cfg).items()}
    settings["<built-in files>"] = builtin_digest(stage)
    digest = input_digest(inputs, settings, str(run_dir))
    manifest = read_manifest(stage_dir)
    if manifest is not None:
        if manifest.get("input_digest") == digest:
            info(f"[{stage}] done (manifest matches); skipping")
            return
        info(f"[{stage}] inputs or settings changed since it ran; redoing it")
        _move_aside(stage_dir)
    if _settings_changed(cfg, stage_dir):
        info(f"[{stage}] settings changed since it was interrupted; starting it afresh")
        _move_aside(stage_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)
    cfg_path = stage_dir / "stage.yaml"
    atomic_write_text(cfg_path, dump_yaml(to_dict(cfg)))
    info(f"[{stage}] running")
    cmd = [sys.executable, "-m", "salmon.manifest", stage, str(cfg_path), str(stage_dir), digest]
    proc = subprocess.run(cmd, preexec_fn=_set_pdeathsig, check=False)
    if proc.returncode != 0:
        raise SalmonError(f"stage '{stage}' failed (exit {proc.returncode}); fix the cause and rerun "
                          f"the same command to resume")


def _settings_changed(cfg: Any, stage_dir: Path) -> bool:
    """True when an unfinished stage folder holds a resolved config that differs from `cfg`."""
    for saved in stage_dir.glob("*config.yaml"):
        try:
            check_resume(cfg, saved)
        except SalmonError:
            return True
    return False
