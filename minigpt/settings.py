"""Command-line settings from a dataclass: defaults < TOML files < `--key=value` flags.

A CLI declares its settings as a dataclass whose fields carry a help text (see `setting`);
`parse_settings(Cls, argv)` fills one from the command line. Flags may be written `--key=value`
or `--key value`; a bare `--flag` switches a boolean on; positional arguments are TOML files whose
flat `key = value` tables apply in order before the flags. Values are typed by the field they set
(`int | None` fields also take `none`). Every bad input is one line: an unknown key names the
closest known one ("did you mean --n_embd?"), a wrong type names the expected type, a value
outside a field's choices lists them.
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 reads TOML through the backport
    import tomli as tomllib

T = TypeVar("T")


class ConfigError(ValueError):
    """A setting that cannot be used; the message is one line meant for the user."""


def setting(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    """A dataclass field with the help text that `--help` prints (and optional choices)."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices})


def _fields(cls: type) -> dict[str, tuple[type, bool]]:
    """name -> (base type, accepts None) for each field of dataclass `cls`."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        kind, optional = hints[f.name], False
        if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
            args = [a for a in typing.get_args(kind) if a is not type(None)]
            kind, optional = args[0], True
        out[f.name] = (kind, optional)
    return out


def _unknown(key: str, names: Sequence[str]) -> ConfigError:
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    hint = f"; did you mean --{close[0]}?" if close else "; see --help for the list"
    return ConfigError(f"unknown setting --{key}{hint}")


def coerce(cls: type, key: str, value: Any, source: str, text: bool = False) -> Any:
    """`value` as the type of field `key` of `cls`. With `text` (the command line) strings are
    parsed; typed values (TOML) must already match, except that an int may set a float."""
    fields = _fields(cls)
    if key not in fields:
        raise _unknown(key, list(fields))
    kind, optional = fields[key]
    if text and kind is not str:
        if optional and value.strip().lower() == "none":
            return None
        return _parse_string(key, value, kind, source)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(
            f"{source}: {key} = {value!r} is a {type(value).__name__}, expected {kind.__name__}"
        )
    return value


def _parse_string(key: str, text: str, kind: type, source: str) -> Any:
    lowered = text.strip().lower()
    try:
        if kind is bool and lowered in ("true", "1", "yes", "false", "0", "no"):
            return lowered in ("true", "1", "yes")
        if kind is float:
            return float(text)
        if kind is int:
            # "5e3" is a natural way to write an iteration count: accept it when it is whole
            number = float(text)
            if number.is_integer():
                return int(number)
    except ValueError:
        pass
    raise ConfigError(f"{source}: --{key}={text!r} is not a valid {kind.__name__}")


def load_toml(cls: type, path: str | Path) -> dict[str, Any]:
    """The settings of a TOML recipe (a flat table of `key = value`), typed and checked."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML ({e})") from None
    return {key: coerce(cls, key, value, str(path)) for key, value in raw.items()}


def parse_flags(cls: type, argv: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
    """Split argv into TOML file paths and typed `--key=value` / `--key value` overrides."""
    fields = _fields(cls)
    files, overrides, i = [], {}, 0
    while i < len(argv):
        arg, i = argv[i], i + 1
        if not arg.startswith("--"):
            files.append(arg)
            continue
        key, eq, value = arg[2:].partition("=")
        key = key.replace("-", "_")
        if key not in fields:
            raise _unknown(key, list(fields))
        if not eq:
            if i < len(argv) and not argv[i].startswith("--"):
                value, i = argv[i], i + 1
            elif fields[key][0] is bool:
                value = "true"  # a bare boolean flag switches it on: --compile
            else:
                raise ConfigError(f"--{key} needs a value: --{key}=VALUE or --{key} VALUE")
        overrides[key] = coerce(cls, key, value, "command line", text=True)
    return files, overrides


def check_choices(obj: Any) -> None:
    """Raise ConfigError if a field declared with choices holds another value."""
    for f in dataclasses.fields(obj):
        choices, value = f.metadata.get("choices"), getattr(obj, f.name)
        if choices and value not in choices:
            raise ConfigError(f"--{f.name}={value!r} must be one of {', '.join(choices)}")


def help_text(cls: type, usage: str) -> str:
    """Every setting of `cls` with its type, default and meaning, for `--help`."""
    fields = _fields(cls)
    lines = [usage, "", "Settings (defaults < TOML files < flags):"]
    width = max(map(len, fields)) + 2
    for f in dataclasses.fields(cls):
        kind, optional = fields[f.name]
        type_name = kind.__name__ + ("?" if optional else "")
        default = repr(f.default) if f.default in ("", None) else f.default
        help = f.metadata.get("help", "")
        if f.metadata.get("choices"):
            help += f" ({' | '.join(f.metadata['choices'])})"
        lines.append(f"  --{f.name:<{width}} {type_name:<6} default {default!s:<10} {help}")
    return "\n".join(lines)


def parse_settings(cls: type[T], argv: Sequence[str], base: T | None = None) -> T:
    """An instance of `cls` from `base` (or the defaults), then TOML files, then flags, checked
    with its `validate()` method when it has one."""
    files, overrides = parse_flags(cls, argv)
    values: dict[str, Any] = {}
    for file in files:
        values.update(load_toml(cls, file))
    values.update(overrides)
    result = dataclasses.replace(base if base is not None else cls(), **values)
    check_choices(result)
    if hasattr(result, "validate"):
        result.validate()
    return result
