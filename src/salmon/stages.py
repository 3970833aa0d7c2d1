"""The stage registry: command names, their config classes and stage functions, and the
order `salmon run` runs them in.

Both the CLI and the pipeline read this table, so neither imports the other. Entries name
their module as text and are imported on first use: this module sits below every stage
(a stage such as `report` may itself read `STAGE_ORDER` without an import circle).
"""

from __future__ import annotations

import importlib
from typing import Any, NamedTuple

from salmon.errors import SalmonError


class Stage(NamedTuple):
    module: str
    config: str
    function: str
    positional: tuple[str, ...] = ()

    def load(self) -> tuple[type, Any, tuple[str, ...]]:
        """(config class, stage function, positional fields)."""
        mod = importlib.import_module(self.module)
        return getattr(mod, self.config), getattr(mod, self.function), self.positional


# command name -> where its config class and stage function live
STAGES: dict[str, Stage] = {
    "self-align": Stage("salmon.self_align", "SelfAlignConfig", "self_align"),
    "sft": Stage("salmon.sft", "SFTConfig", "sft"),
    "generate": Stage("salmon.generate", "GenerateConfig", "generate"),
    "pairs": Stage("salmon.pairs", "PairsConfig", "make_pairs", ("responses",)),
    "judge": Stage("salmon.judge", "JudgeConfig", "judge"),
    "eval-judge": Stage("salmon.judge_eval", "EvalJudgeConfig", "eval_judge"),
    "devset-harm": Stage("salmon.devsets", "DevsetHarmConfig", "devset_harm"),
    "aggregate": Stage("salmon.aggregate", "AggregateConfig", "aggregate"),
    "export-preferences": Stage("salmon.preferences", "ExportPreferencesConfig", "export_preferences"),
    "train-rm": Stage("salmon.reward.train", "TrainRMConfig", "train_rm"),
    "score": Stage("salmon.reward.score", "ScoreConfig", "score"),
    "eval-rm": Stage("salmon.reward.evaluate", "EvalRMConfig", "eval_rm"),
    "rl": Stage("salmon.rl.ppo", "RLConfig", "rl"),
    "eval": Stage("salmon.evaluate", "EvalConfig", "evaluate"),
    "report": Stage("salmon.report", "ReportConfig", "report"),
    "serve": Stage("salmon.serve", "ServeConfig", "serve"),
}

# `salmon bench NAME`: functions that print or return their JSON
BENCHES: dict[str, Stage] = {
    "judge": Stage("salmon.judge_bench", "BenchJudgeConfig", "bench_judge"),
    "steer": Stage("salmon.rl.bench", "SteerBenchConfig", "steer"),
    "rl-memory": Stage("salmon.rl.bench", "MemoryBenchConfig", "rl_memory"),
}

# `salmon run`: pipeline stage (its folder in the run) in order, and its command name
STAGE_ORDER = ["self_align", "sft", "generate", "pairs", "judge", "aggregate", "train_rm", "rl",
               "evaluate", "report"]
OPTIONAL = {"self_align", "sft"}
_COMMAND_OF = {"evaluate": "eval"}


def command_name(stage: str) -> str:
    """The CLI command that runs pipeline stage `stage` (`train_rm` -> `train-rm`)."""
    return _COMMAND_OF.get(stage, stage.replace("_", "-"))


def pipeline_stage(name: str) -> str:
    """A pipeline stage from its folder name or command name (`eval`, `evaluate`,
    `train-rm`, `train_rm` ...); a one-line error listing the stages otherwise."""
    key = name.strip().replace("-", "_")
    if key in STAGE_ORDER:
        return key
    for stage in STAGE_ORDER:
        if command_name(stage) == name.strip():
            return stage
    raise SalmonError(f"--from {name}: unknown stage (stages: {', '.join(command_name(s) for s in STAGE_ORDER)})")


def stage_entry(stage: str) -> tuple[type, Any, tuple[str, ...]]:
    """(config class, stage function, positional fields) for a pipeline stage or a command."""
    name = command_name(stage) if stage in STAGE_ORDER else stage
    if name not in STAGES:
        raise SalmonError(f"stage '{stage}' is not available in this version of salmon")
    return STAGES[name].load()
