"""Turn a stage's config dataclass into a typer command (the dataclass *is* the CLI schema).

Each field becomes `--field-name` (help text from the field, default shown from the
dataclass); `--config FILE.yaml` supplies values under the flags; `--debug` shows
tracebacks. Errors a user can cause print one line and exit 2.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from salmon.config import _base_type, field_types, load_config
from salmon.errors import SalmonError
from salmon.stage import remove_failed_start

DEBUG = {"on": bool(os.environ.get("SALMON_DEBUG"))}


def quiet_library_warnings() -> None:
    """Library deprecation chatter is not for users of the CLI (tracebacks via --debug)."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def run_guarded(fn: Callable[[], Any], debug: bool = False) -> Any:
    """Run `fn`; user errors -> one line on stderr and exit 2, other failures exit 1."""
    debug = debug or DEBUG["on"]
    try:
        return fn()
    except SalmonError as e:
        if debug:
            traceback.print_exc()
        print(f"error: {e}", file=sys.stderr)
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        raise typer.Exit(130) from None
    except OSError as e:
        if debug:
            traceback.print_exc()
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        raise typer.Exit(1) from None
    except typer.Exit:
        raise
    except Exception as e:  # noqa: BLE001 - last resort, one line unless --debug
        if debug:
            traceback.print_exc()
        else:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
            print(f"error: internal error ({type(e).__name__}: {msg}); rerun with --debug for a traceback",
                  file=sys.stderr)
        raise typer.Exit(1) from None


def _option_type(tp: Any) -> Any:
    base, _ = _base_type(tp)
    if base in (int, float, bool, str):
        return base
    return str  # lists arrive comma-separated; dicts only from YAML


def stage_command(cfg_cls: type, stage_fn: Callable[[Any], Any], positional: tuple[str, ...] = (),
                  section: str | None = None, echo_result: bool = True, help: str = "") -> Callable[..., None]:
    """A typer command calling `stage_fn(config)`; `positional` fields are arguments, `help`
    is its `--help` text (for users: what it does and an example)."""
    types_ = field_types(cfg_cls)
    params = []
    for f in dataclasses.fields(cfg_cls):
        if _base_type(types_[f.name])[0] is dict:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        help_ = f"{f.metadata.get('help', '')} [default: {default!r}]"
        flag = "--" + f.name.replace("_", "-")
        if f.name in positional:
            info = typer.Argument(None, help=help_, show_default=False)
        elif _base_type(types_[f.name])[0] is bool:
            info = typer.Option(None, f"{flag}/--no-{flag[2:]}", help=help_, show_default=False)
        else:
            info = typer.Option(None, flag, help=help_, show_default=False)
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY,
                                        default=info, annotation=_option_type(types_[f.name]) | None))
    params.append(inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY,
                                    default=typer.Option(None, "--config", help="YAML file of settings (flags override it)"),
                                    annotation=str | None))
    params.append(inspect.Parameter("debug", inspect.Parameter.KEYWORD_ONLY,
                                    default=typer.Option(False, "--debug", help="Show tracebacks"), annotation=bool))

    def command(**kwargs: Any) -> None:
        config_path = kwargs.pop("config")
        debug = kwargs.pop("debug")

        def go():
            cfg = load_config(cfg_cls, config_path, kwargs, section=section)
            out = getattr(cfg, "out", None)
            existed = out is not None and Path(out).exists()
            try:
                return stage_fn(cfg)
            except BaseException:
                if out is not None:
                    remove_failed_start(out, existed)
                raise

        result = run_guarded(go, debug)
        if echo_result and result is not None:
            print(result)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__doc__ = help or (stage_fn.__doc__ or "").strip().split("\n\n")[0]
    return command
