"""Command-line settings from a dataclass: defaults < config files < `--key=value` flags.

A CLI declares its settings as a dataclass whose fields carry a help text (see `setting`);
`parse_settings(Cls, argv)` fills one from the command line. Flags may be written `--key=value`
or `--key value`; a bare `--flag` switches a boolean on; positional arguments are config files
whose `key = value` pairs apply in order before the flags: TOML, or nanoGPT-style `.py` files.

A `.py` config is read, never run: `ast` parses it and only `name = value` lines count, where the
value is a literal (number, string, bool, None, list/tuple of those) or arithmetic on numbers
(nanoGPT writes `gradient_accumulation_steps = 5 * 8`). An import, a call, a name or any other
statement is refused with its line number, so a config file cannot execute code.

Values are typed by the field they set (`int | None` fields also take `none`; tuple fields take
comma-separated lists). Every bad input is one line: an unknown key names the closest known one
("did you mean --n_embd?"), a wrong type names the expected type, a value outside a field's choices
lists them.

A field whose type is itself a dataclass is a group, declared once where it is used (for example
the fine-tuning method's knobs): its fields are set as `--group.key`, or as a plain `--key` when
no other setting has that name. In TOML they are a `[group]` table, dotted keys or plain keys.

`run_cli` is the one way a script runs: `--help` prints and exits 0, bad settings exit 2, a run
that fails exits 1, each with one line on stderr.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import operator
import os
import sys
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from minigpt.model.errors import ConfigError, require

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 reads TOML through the backport
    import tomli as tomllib

T = TypeVar("T")

__all__ = ["ConfigError", "help_text", "parse_settings", "require", "run_cli", "setting"]

# The failures a run reports in one line and exit code 1: files that are missing or corrupt
# (OSError, CheckpointError is a ValueError), values that turn out wrong once data is read, and
# runtime failures such as a diverged loss. Anything else is a bug and keeps its traceback.
RUN_ERRORS = (OSError, ValueError, RuntimeError)


def setting(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    """A dataclass field with the help text that `--help` prints (and optional choices)."""
    if dataclasses.is_dataclass(default):
        return dataclasses.field(
            default_factory=lambda: dataclasses.replace(default), metadata={"help": help}
        )
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices})


class _Leaf(typing.NamedTuple):
    path: tuple[str, ...]  # ("lora_r",) or ("peft", "lora_r")
    field: dataclasses.Field
    kind: type  # base type: int, float, str, bool or tuple
    optional: bool  # also accepts None


def _leaves(cls: type, prefix: tuple[str, ...] = ()) -> list[_Leaf]:
    """Every settable field of dataclass `cls`, groups expanded, in declaration order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        kind, optional = hints[f.name], False
        if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
            args = [a for a in typing.get_args(kind) if a is not type(None)]
            kind, optional = args[0], True
        if dataclasses.is_dataclass(kind):
            out += _leaves(kind, (*prefix, f.name))
        elif prefix and "help" not in f.metadata:
            continue  # a group's field without help text is set by its owner, not by flags
        else:
            out.append(_Leaf((*prefix, f.name), f, typing.get_origin(kind) or kind, optional))
    return out


def _names(cls: type) -> dict[str, _Leaf]:
    """Flag name -> field: `group.key` for every group field, plus a plain `key` alias where the
    name is not taken by a top-level field or by two groups."""
    leaves = _leaves(cls)
    names = {".".join(leaf.path): leaf for leaf in leaves}
    plain: dict[str, list[_Leaf]] = {}
    for leaf in leaves:
        if len(leaf.path) > 1:
            plain.setdefault(leaf.path[-1], []).append(leaf)
    for name, candidates in plain.items():
        if name not in names and len(candidates) == 1:
            names[name] = candidates[0]
    return names


def _unknown(key: str, names: Sequence[str]) -> ConfigError:
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    hint = f"; did you mean --{close[0]}?" if close else "; see --help for the list"
    return ConfigError(f"unknown setting --{key}{hint}")


def _lookup(names: dict[str, _Leaf], key: str) -> _Leaf:
    if key not in names:
        raise _unknown(key, list(names))
    return names[key]


def _coerce(leaf: _Leaf, key: str, value: Any, source: str, text: bool) -> Any:
    """`value` as the type of `leaf`, within its choices. With `text` (the command line) strings
    are parsed; typed values (TOML) must already match, except that an int may set a float and a
    list a tuple."""
    value = _typed(leaf, key, value, source, text)
    choices = leaf.field.metadata.get("choices")
    require(
        not choices or value in choices,
        f"--{key}={value!r} must be one of {', '.join(choices or ())}",
    )
    return value


def _typed(leaf: _Leaf, key: str, value: Any, source: str, text: bool) -> Any:
    kind = leaf.kind
    if text and kind is not str:
        if leaf.optional and value.strip().lower() == "none":
            return None
        return _parse_string(key, value, kind, source)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is tuple and isinstance(value, list):
        return tuple(value)
    require(
        isinstance(value, kind) and not (kind is int and isinstance(value, bool)),
        f"{source}: {key} = {value!r} is a {type(value).__name__}, expected {kind.__name__}",
    )
    return value


def _parse_string(key: str, text: str, kind: type, source: str) -> Any:
    lowered = text.strip().lower()
    try:
        if kind is bool and lowered in ("true", "1", "yes", "false", "0", "no"):
            return lowered in ("true", "1", "yes")
        if kind is tuple:
            return tuple(part.strip() for part in text.split(",") if part.strip())
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


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"peft": {"lora_r": 4}} -> {"peft.lora_r": 4}: TOML tables address groups."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def load_toml(cls: type, path: str | Path) -> dict[tuple[str, ...], Any]:
    """The settings of a TOML recipe, typed and checked: field path -> value."""
    path = Path(path)
    require(path.is_file(), f"config file {path} not found")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML ({e})") from None
    return typed_values(cls, raw, str(path))


def typed_values(cls: type, table: dict[str, Any], source: str) -> dict[tuple[str, ...], Any]:
    """A nested table of settings ({"group": {"key": value}}, dotted or plain keys), typed and
    checked: field path -> value."""
    names = _names(cls)
    values = {}
    for key, value in _flatten(table).items():
        leaf = _lookup(names, key)
        values[leaf.path] = _coerce(leaf, key, value, source, text=False)
    return values


def from_dict(cls: type[T], table: dict[str, Any], source: str) -> T:
    """An instance of `cls` from a table such as `dataclasses.asdict` writes (a saved run's
    settings), typed and checked like a TOML file."""
    return _replace(cls(), typed_values(cls, table, source))


# the arithmetic a .py config may use on numbers: enough for `5 * 8`, `6e-4 / 10`, `2**20`
# is left out because a large exponent would make reading a config file hang
_ARITHMETIC = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
               ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv}  # fmt: skip


def _not_literal(node: ast.AST, where: str) -> ConfigError:
    return ConfigError(
        f"{where}: {ast.unparse(node)!r} is not a literal; config .py files are read, never run,"
        " so write the value itself"
    )


def _literal(node: ast.expr, where: str) -> Any:
    """The value of a literal expression; anything else raises ConfigError."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(element, where) for element in node.elts]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _number(node.operand, where)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        left, right = _number(node.left, where), _number(node.right, where)
        return _ARITHMETIC[type(node.op)](left, right)
    raise _not_literal(node, where)


def _number(node: ast.expr, where: str) -> int | float:
    value = _literal(node, where)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _not_literal(node, where)
    return value


def load_python(cls: type, path: str | Path) -> dict[tuple[str, ...], Any]:
    """The settings of a nanoGPT-style `.py` config, typed and checked: field path -> value."""
    path = Path(path)
    require(path.is_file(), f"config file {path} not found")
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as e:
        raise ConfigError(f"{path}:{e.lineno}: invalid Python ({e.msg})") from None
    names = _names(cls)
    values = {}
    for node in tree.body:
        where = f"{path}:{node.lineno}"
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a docstring or a bare string used as a comment
        simple = isinstance(node, ast.Assign) and len(node.targets) == 1
        if not (simple and isinstance(node.targets[0], ast.Name)):
            raise ConfigError(
                f"{where}: only `name = value` lines are allowed in a config .py file, found "
                f"{ast.unparse(node).splitlines()[0]!r}"
            )
        key = node.targets[0].id
        leaf = _lookup(names, key)
        values[leaf.path] = _coerce(leaf, key, _literal(node.value, where), where, text=False)
    return values


def load_config_file(cls: type, path: str | Path) -> dict[tuple[str, ...], Any]:
    """A positional config file: nanoGPT-style Python for `.py`, TOML otherwise."""
    if Path(path).suffix == ".py":
        return load_python(cls, path)
    return load_toml(cls, path)


def parse_flags(cls: type, argv: Sequence[str]) -> tuple[list[str], dict[tuple[str, ...], Any]]:
    """Split argv into config file paths and typed `--key=value` / `--key value` overrides."""
    names = _names(cls)
    files, overrides, i = [], {}, 0
    while i < len(argv):
        arg, i = argv[i], i + 1
        if not arg.startswith("--"):
            files.append(arg)
            continue
        key, eq, value = arg[2:].partition("=")
        key = key.replace("-", "_")
        leaf = _lookup(names, key)
        if not eq:
            if i < len(argv) and not argv[i].startswith("--"):
                value, i = argv[i], i + 1
            elif leaf.kind is bool:
                value = "true"  # a bare boolean flag switches it on: --compile
            else:
                raise ConfigError(f"--{key} needs a value: --{key}=VALUE or --{key} VALUE")
        overrides[leaf.path] = _coerce(leaf, key, value, "command line", text=True)
    return files, overrides


def _replace(obj: T, values: dict[tuple[str, ...], Any]) -> T:
    """A copy of dataclass `obj` with each field path set; groups are rebuilt, so their own
    checks (`__post_init__`) run on the new values."""
    top = {path[0]: value for path, value in values.items() if len(path) == 1}
    for group in {path[0] for path in values if len(path) > 1}:
        inner = {path[1:]: value for path, value in values.items() if path[0] == group}
        top[group] = _replace(getattr(obj, group), inner)
    return dataclasses.replace(obj, **top)


def help_text(cls: type, usage: str) -> str:
    """Every setting of `cls` with its type, default and meaning, for `--help`."""
    names = _names(cls)
    aliases = {
        leaf.path: name for name, leaf in names.items() if len(leaf.path) > 1 and "." not in name
    }
    defaults = cls()
    lines = [usage, "", "Settings (defaults < config files < flags):"]
    width = max(map(len, names)) + 2
    for leaf in _leaves(cls):
        name = ".".join(leaf.path)
        type_name = leaf.kind.__name__ + ("?" if leaf.optional else "")
        default = defaults
        for part in leaf.path:
            default = getattr(default, part)
        if isinstance(default, tuple):
            default = ",".join(default)
        default = repr(default) if default in ("", None) else default
        help = leaf.field.metadata.get("help", "")
        if leaf.field.metadata.get("choices"):
            help += f" ({' | '.join(leaf.field.metadata['choices'])})"
        if leaf.path in aliases:
            help += f" (also --{aliases[leaf.path]})"
        lines.append(f"  --{name:<{width}} {type_name:<6} default {default!s:<10} {help}")
    return "\n".join(lines)


def to_flags(obj: Any) -> list[str]:
    """Every setting of dataclass `obj` as the `--key=value` flags that `parse_settings` reads
    back into an equal object: a command line that fixes them all."""
    flags = []
    for leaf in _leaves(type(obj)):
        value = obj
        for part in leaf.path:
            value = getattr(value, part)
        text = ",".join(value) if isinstance(value, tuple) else "none" if value is None else value
        flags.append(f"--{'.'.join(leaf.path)}={text}")
    return flags


def parse_settings(cls: type[T], argv: Sequence[str], base: T | None = None) -> T:
    """An instance of `cls` from `base` (or the defaults), then config files, then flags, checked
    with its `validate()` method when it has one."""
    files, overrides = parse_flags(cls, argv)
    values: dict[tuple[str, ...], Any] = {}
    for file in files:
        values.update(load_config_file(cls, file))
    values.update(overrides)
    result = _replace(base if base is not None else cls(), values)
    if hasattr(result, "validate"):
        result.validate()
    return result


def run_cli(argv: Sequence[str] | None, help: str, command: Callable[[list[str]], object]) -> int:
    """Run `command(argv)` as a script's main and return its exit code: 0 when it finishes (or
    after printing `help` for -h/--help), 2 for bad settings (ConfigError), 1 for a run that
    failed (RUN_ERRORS). Errors are one line on stderr, printed by torchrun's rank 0 only, so a
    launch of N processes reports a bad flag once."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        print(help)
        return 0
    try:
        command(argv)
    except ConfigError as e:
        return _report(e, 2)
    except RUN_ERRORS as e:
        return _report(e, 1)
    return 0


def _report(error: Exception, code: int) -> int:
    if os.environ.get("RANK", "0") == "0":  # torchrun's global rank; unset in a plain run
        print(f"error: {error}", file=sys.stderr)
    return code
