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
    help: str = ""  # for `--help`: what it does, then one example

    def load(self) -> tuple[type, Any, tuple[str, ...]]:
        """(config class, stage function, positional fields)."""
        mod = importlib.import_module(self.module)
        return getattr(mod, self.config), getattr(mod, self.function), self.positional


def _help(summary: str, example: str) -> str:
    """`--help` text: a sentence, then one example kept as written (click's \\b marker)."""
    return f"{summary}\n\n\b\nExample:\n  {example}"


# command name -> where its config class and stage function live
STAGES: dict[str, Stage] = {
    "self-align": Stage("salmon.self_align", "SelfAlignConfig", "self_align", (), _help(
        "Write SFT data: the model answers prompts guided by principles and worked examples.",
        "salmon self-align --model default --prompts builtin --out sft_data/")),
    "sft": Stage("salmon.sft", "SFTConfig", "sft", (), _help(
        "Fine-tune a LoRA adapter on conversations (e.g. the self-align output).",
        "salmon sft --model default --data sft_data/ --out sft/ --merge")),
    "generate": Stage("salmon.generate", "GenerateConfig", "generate", (), _help(
        "Sample several responses per prompt.",
        "salmon generate --model default --prompts builtin --n 2 --out responses.jsonl")),
    "pairs": Stage("salmon.pairs", "PairsConfig", "make_pairs", ("responses",), _help(
        "Turn the responses to each prompt into pairs to judge.",
        "salmon pairs responses.jsonl --out pairs.jsonl")),
    "judge": Stage("salmon.judge.stage", "JudgeConfig", "judge", (), _help(
        "Ask the model which response of each pair better follows each principle.",
        "salmon judge --model default --pairs pairs.jsonl --principles judge --out judgments.jsonl")),
    "contrast": Stage("salmon.contrast", "ContrastConfig", "contrast", (), _help(
        "Principle-contrast pairs: one answer steered towards a principle and one away from it, labelled exactly.",
        "salmon contrast --model default --prompts builtin --out contrast/")),
    "eval-judge": Stage("salmon.judge.evaluate", "EvalJudgeConfig", "eval_judge", (), _help(
        "Measure how often the judge agrees with labelled preferences.",
        "salmon eval-judge --model default --labeled judge_dev --out judge_eval.json")),
    "devset-harm": Stage("salmon.devsets", "DevsetHarmConfig", "devset_harm", (), _help(
        "Build labelled pairs for checking the judge from human harm ratings.",
        "salmon devset-harm --src ../shared/data/pyrit_harm --out harm_pairs.jsonl")),
    "aggregate": Stage("salmon.aggregate", "AggregateConfig", "aggregate", (), _help(
        "Turn the judge's verdicts into the reward model's training set.",
        "salmon aggregate --pairs pairs.jsonl --judgments judgments.jsonl --out rm_data/")),
    "export-preferences": Stage("salmon.preferences", "ExportPreferencesConfig", "export_preferences", (), _help(
        "Export the preferences in TRL's prompt/chosen/rejected format (datasets folder + JSONL).",
        "salmon export-preferences --data rm_data/ --out prefs/ --principles-in-system")),
    "train-rm": Stage("salmon.reward.train", "TrainRMConfig", "train_rm", (), _help(
        "Train the instructable reward model: it scores a response under any written principles.",
        "salmon train-rm --model default --data rm_data/ --out rm/")),
    "ensemble-rm": Stage("salmon.reward.ensemble", "EnsembleRMConfig", "ensemble_rm", (), _help(
        "Combine reward models trained with different seeds into one that averages their scores.",
        "salmon ensemble-rm --members rm0,rm1,rm2 --out rm_ens/")),
    "score": Stage("salmon.reward.score", "ScoreConfig", "score", (), _help(
        "Score responses under principles with a trained reward model.",
        "salmon score --rm rm/ --input items.jsonl --out scores.jsonl")),
    "eval-rm": Stage("salmon.reward.evaluate", "EvalRMConfig", "eval_rm", (), _help(
        "Measure how well the reward model follows the principle it is given.",
        "salmon eval-rm --rm rm/ --labeled judge_dev --out rm_eval/")),
    "rl": Stage("salmon.rl.ppo", "RLConfig", "rl", (), _help(
        "Train the policy: PPO, GRPO or RLOO against the reward model, or DPO on the preferences.",
        "salmon rl --policy default --rm rm/ --principles rl --out policy/")),
    "eval": Stage("salmon.evaluate", "EvalConfig", "evaluate", (), _help(
        "Compare the policy before and after RL, and check the reward model on labelled sets.",
        "salmon eval --policy-before default --policy-after policy/ --rm rm/ --out eval/")),
    "report": Stage("salmon.report", "ReportConfig", "report", (), _help(
        "Write a run's headline figures (metrics.json) and report (markdown and HTML).",
        "salmon report --run-dir runs/default --out runs/default/report")),
    "serve": Stage("salmon.serve", "ServeConfig", "serve", (), _help(
        "Serve the reward model over HTTP for other RL systems (e.g. OpenRLHF).",
        "salmon serve --rm rm/ --port 5000")),
    "merge": Stage("salmon.merge", "MergeConfig", "merge", (), _help(
        "Merge an sft or rl adapter into its base: one folder that plain transformers loads anywhere.",
        "salmon merge --adapter runs/default/rl --out policy_merged/")),
}

# `salmon bench NAME`: functions that print or return their JSON
BENCHES: dict[str, Stage] = {
    "judge": Stage("salmon.judge.bench", "BenchJudgeConfig", "bench_judge", (), _help(
        "Time the prefix-shared judge against the full-prompt one, side by side.",
        "salmon bench judge --model default --pairs 16 --principles 8")),
    "steer": Stage("salmon.rl.steer_bench", "SteerBenchConfig", "steer", (), _help(
        "Two short PPO runs that differ only in their principles; how each changes the policy.",
        "salmon bench steer --rm rm/ --seeds 0,1,2 --json")),
    "rl-memory": Stage("salmon.rl.bench", "MemoryBenchConfig", "rl_memory", (), _help(
        "Peak memory of one PPO step with one shared base model against separate copies.",
        "salmon bench rl-memory --model default")),
    "train-rm": Stage("salmon.reward.bench", "BenchTrainRMConfig", "bench_train_rm", (), _help(
        "Train the reward model with today's recipe and the fast one on the same pairs, side by side.",
        "salmon bench train-rm --model default --pairs 48 --json")),
    "generate": Stage("salmon.backends.bench", "BenchGenerateConfig", "bench_generate", (), _help(
        "Time the reference (transformers) and the fast generation backend on the same prompts, side by side.",
        "salmon bench generate --model default --json")),
}

# `salmon run`: pipeline stage (its folder in the run) in order, and its command name
STAGE_ORDER = ["self_align", "sft", "generate", "pairs", "judge", "contrast", "aggregate", "train_rm", "rl",
               "evaluate", "report"]
OPTIONAL = {"self_align": "self_align", "sft": "self_align", "contrast": "exact_labels"}  # stage -> RunConfig switch
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
