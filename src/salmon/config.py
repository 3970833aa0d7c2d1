"""Typed stage configs: dataclass defaults < YAML file < command-line flags.

Every stage has a dataclass whose fields carry help text (`metadata["help"]`); the CLI
builds its flags from those fields, and each stage writes the resolved config beside
its output so a rerun can tell whether it is resuming the same job.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from salmon.errors import SalmonError

C = TypeVar("C")

# Settings renamed to the TRL / TrainingArguments names; an old name gets a one-line error.
RENAMED = {"lr": "learning_rate", "grad_checkpointing": "gradient_checkpointing",
           "keep_checkpoints": "save_total_limit", "save_every": "save_steps"}


def renamed(old: str, known: set[str] | None = None) -> str | None:
    """'`old` is now `new` (--new)' when `old` is a renamed setting (of a class with `known` fields)."""
    new = RENAMED.get(old.lstrip("-").replace("-", "_"))
    if new is None or (known is not None and new not in known):
        return None
    return f"'{old}' is now '{new}' (--{new.replace('_', '-')}; save_total_limit is a number of checkpoints kept)" \
        if new == "save_total_limit" else f"'{old}' is now '{new}' (--{new.replace('_', '-')})"


def opt(default: Any, help: str, *, resume_safe: bool = False, **kw) -> Any:
    """A config field with help text. `resume_safe` fields may change between a run and
    its resume without invalidating finished output (e.g. progress display)."""
    meta = {"help": help, "resume_safe": resume_safe}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta, **kw)
    return dataclasses.field(default=default, metadata=meta, **kw)


def field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _base_type(tp: Any) -> tuple[Any, bool]:
    """Strip `X | None`; return (X, optional)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def coerce(value: Any, tp: Any, where: str) -> Any:
    """Check/convert one value against a field type; errors name `where`."""
    base, optional = _base_type(tp)
    if value is None:
        if optional:
            return None
        raise SalmonError(f"{where}: must not be empty")
    origin = typing.get_origin(base)
    if origin is list:
        (item_tp,) = typing.get_args(base) or (str,)
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()] if value.strip() else []
        if not isinstance(value, (list, tuple)):
            raise SalmonError(f"{where}: expected a list, got {value!r}")
        return [coerce(v, item_tp, where) for v in value]
    if origin is dict or base is dict:
        if not isinstance(value, dict):
            raise SalmonError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if base is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        raise SalmonError(f"{where}: expected true or false, got {value!r}")
    if base is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise SalmonError(f"{where}: expected an integer, got {value!r}")
        try:
            return int(value)
        except ValueError:
            raise SalmonError(f"{where}: expected an integer, got {value!r}") from None
    if base is float:
        if isinstance(value, bool):
            raise SalmonError(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise SalmonError(f"{where}: expected a number, got {value!r}") from None
    if base is str:
        if isinstance(value, (dict, list)):
            raise SalmonError(f"{where}: expected text, got {value!r}")
        return str(value)
    return value


def read_yaml(path: str | Path) -> Any:
    path = Path(path)
    if not path.exists():
        raise SalmonError(f"{path}: file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SalmonError(f"{path}: not valid UTF-8") from None
    except OSError as e:
        raise SalmonError(f"{path}: cannot read ({e.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or "invalid YAML"
        raise SalmonError(f"{path}{line}: not valid YAML ({problem})") from None


def from_dict(cls: type[C], data: dict[str, Any], source: str) -> C:
    """Build a config from a mapping, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise SalmonError(f"{source}: expected a mapping of settings")
    types_ = field_types(cls)
    unknown = sorted(set(data) - set(types_))
    if unknown and renamed(unknown[0], set(types_)):
        raise SalmonError(f"{source}: {renamed(unknown[0], set(types_))}")
    if unknown:
        raise SalmonError(
            f"{source}: unknown setting '{unknown[0]}' (known: {', '.join(sorted(types_))})"
        )
    values = {k: coerce(v, types_[k], f"{source}: {k}") for k, v in data.items()}
    cfg = cls(**values)
    validate = getattr(cfg, "validate", None)
    if validate:
        validate()
    return cfg


def load_config(
    cls: type[C], path: str | Path | None = None, overrides: dict[str, Any] | None = None,
    section: str | None = None,
) -> C:
    """Defaults in code, then the YAML file (optionally one `section` of it), then flags."""
    data: dict[str, Any] = {}
    if path is not None:
        loaded = read_yaml(path) or {}
        if section is not None and isinstance(loaded, dict):
            loaded = loaded.get(section, {}) or {}
        if not isinstance(loaded, dict):
            raise SalmonError(f"{path}: expected a mapping of settings at the top level")
        data.update(loaded)
    for k, v in (overrides or {}).items():
        if v is not None:
            data[k] = v
    return from_dict(cls, data, str(path) if path else "flags")


def to_dict(cfg: Any) -> dict[str, Any]:
    return {f.name: _plain(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}


def _plain(v: Any) -> Any:
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def check_resume(cfg: Any, saved_path: Path, outputs: list[str] | None = None) -> None:
    """Refuse to continue a job whose saved config differs from this one.

    Fields marked `resume_safe` are ignored. Raises a SalmonError naming the first
    differing setting and what to delete to start over (`outputs`, default the saved
    config's folder), so nothing already written is mixed with other settings.
    """
    if not saved_path.exists():
        return
    saved = read_yaml(saved_path) or {}
    now = to_dict(cfg)
    safe = {f.name for f in dataclasses.fields(cfg) if f.metadata.get("resume_safe")}
    for key, value in now.items():
        if key in safe or key not in saved:
            continue
        if saved[key] != value:
            delete = " ".join(outputs or [str(saved_path.parent)])
            raise SalmonError(
                f"{(outputs or [saved_path.parent])[0]}: output was started with {key}={saved[key]!r}, now "
                f"{key}={value!r}; rerun with the same settings to resume, choose another --out, "
                f"or delete {delete} to start over"
            )
