"""The `salmon` command line: a table from command names to stage functions.

Every stage command is built from its config dataclass (see `cli_build`); this file
holds no logic of its own.
"""

from __future__ import annotations

import os
import sys

import typer

from salmon import __version__
from salmon.cli_build import DEBUG, quiet_library_warnings, run_guarded, stage_command
from salmon.stages import BENCHES, STAGES

app = typer.Typer(help="SALMON: align a language model with written principles and an instructable reward model.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  rich_markup_mode=None)
model_app = typer.Typer(help="The embedded default model.", no_args_is_help=True)
principles_app = typer.Typer(help="Principle collections: validate and show.", no_args_is_help=True)
app.add_typer(model_app, name="model")
bench_app = typer.Typer(help="Benchmarks that print ratios measured side by side in one run.", no_args_is_help=True)
app.add_typer(principles_app, name="principles")
app.add_typer(bench_app, name="bench")

for _name, _stage in STAGES.items():
    app.command(_name)(stage_command(*_stage.load(), help=_stage.help))
for _name, _stage in BENCHES.items():
    bench_app.command(_name)(stage_command(*_stage.load(), help=_stage.help))


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
    """Run the whole method, resumably: generate, pairs, judge, aggregate, train-rm, rl, eval, report
    (self-align and sft first when the config asks).

    \b
    Example:
      salmon run --config configs/smoke.yaml --out runs/smoke --from judge
    """
    from salmon.pipeline import run_pipeline

    print(run_guarded(lambda: run_pipeline(config, out, from_stage), debug))


@model_app.command("prepare")
def _model_prepare(force: bool = typer.Option(False, help="Convert again even if cached")) -> None:
    """Convert the embedded SmolLM2-135M-Instruct once into the cache (checks its sha256).

    \b
    Example:
      salmon model prepare
    """
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


def usage_error_line(e) -> str:
    """A click usage error as one line in salmon's style ("error: ..."), naming renamed flags."""
    from salmon.config import RENAMED

    option = (getattr(e, "option_name", None) or "").lstrip("-").replace("-", "_")
    if type(e).__name__ == "NoSuchOption" and option in RENAMED:
        return f"error: {e.option_name}: renamed to --{RENAMED[option].replace('_', '-')}"
    ctx = getattr(e, "ctx", None)
    where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    return f"error: {e.format_message()}{where}"


def main(argv: list[str] | None = None) -> None:
    """The `salmon` command; click's usage errors print like salmon's own (one line, exit 2)."""
    quiet_library_warnings()
    try:
        code = app(args=argv, standalone_mode=False)
    except typer.TyperException as e:  # click's errors (typer vendors click)
        if type(e).__name__ == "NoArgsIsHelpError":
            print(e.ctx.get_help())
            sys.exit(0)
        print(usage_error_line(e), file=sys.stderr)
        sys.exit(getattr(e, "exit_code", 2))
    except typer.Abort:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
