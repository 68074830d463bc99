"""``--config FILE.toml`` for every ``dpz`` command: file → command line → the command's dataclasses.

The keys of a config file are the command's long options, written with ``-`` or ``_``
(``batch-size = 512`` or ``batch_size = 512``; ``tile = ["A", "B"]`` for a repeatable option).
They become the parser's defaults, so the command line wins and the defaults stay declared once,
in each command's ``add_arguments``. Unknown keys and values of the wrong kind are refused with
the list of known keys. After the run, the resolved options (file, command line and defaults
together) are written as ``dpz-COMMAND.toml`` into the command's output folder (``dpz train``:
the ensemble; ``dpz predict``: the run folder), or as ``STORE.dpz-COMMAND.toml`` beside a
survey store, ready to be passed back with ``--config``.
"""

from __future__ import annotations

import argparse
import json
import tomllib
from collections.abc import Mapping
from typing import Any

from distributed_pz._files import exists, write_text

CONFIG_OPTION = "config"
SKIPPED_DESTS = frozenset({"help", "run", "command", "resolved_config", CONFIG_OPTION})


class ConfigFileError(ValueError):
    """A config file that cannot be read or names options the command does not have."""


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--config FILE.toml`` to a command's parser."""
    parser.add_argument(
        f"--{CONFIG_OPTION}",
        metavar="FILE.toml",
        help="TOML file whose keys are this command's options (e.g. batch-size = 512); "
        "the command line wins; the resolved options are written beside the output",
    )


def config_path(argv: list[str]) -> str | None:
    """The value of ``--config`` in ``argv`` (``--config F`` or ``--config=F``), if any."""
    flag = f"--{CONFIG_OPTION}"
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Config key (long option without dashes, or positional dest) -> action."""
    keys: dict[str, argparse.Action] = {}
    for action in parser._actions:
        if action.dest in SKIPPED_DESTS:
            continue
        longs = [s[2:] for s in action.option_strings if s.startswith("--")]
        for key in longs or [action.dest]:
            keys[key] = action
    return keys


def _convert(key: str, action: argparse.Action, value: Any) -> Any:
    """A TOML value as the parser would have produced it from the command line."""
    if isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
        if not isinstance(value, bool):
            raise ConfigFileError(f"{key} = {value!r}: expected true or false")
        return value
    if isinstance(action, argparse._AppendAction) or action.nargs in ("*", "+"):
        items = value if isinstance(value, list) else [value]
        return [_one(key, action, item) for item in items]
    return _one(key, action, value)


def _one(key: str, action: argparse.Action, value: Any) -> Any:
    if isinstance(value, list | dict):
        if action.type is None or isinstance(value, dict):
            raise ConfigFileError(f"{key} = {value!r}: expected one value")
        value = ",".join(str(v) for v in value)  # START,STOP,POINTS-style options
    if action.type is not None and (isinstance(value, str) or action.type in (int, float)):
        try:
            value = action.type(value if isinstance(value, str) else str(value))
        except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
            raise ConfigFileError(f"{key} = {value!r}: {exc}") from None
    if action.choices is not None and value not in action.choices:
        raise ConfigFileError(f"{key} = {value!r}: expected one of {list(action.choices)}")
    return value


def apply_config(parser: argparse.ArgumentParser, path: str) -> dict[str, Any]:
    """Read ``path`` and make its values ``parser``'s defaults; returns them by dest.

    Raises
    ------
    ConfigFileError
        The file is not TOML, or a key is not an option of the command (the message lists them).
    """
    try:
        with open(path, "rb") as handle:
            values = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigFileError(f"--config {path}: {exc}") from None
    options = _options(parser)
    unknown = sorted(k for k in values if k.replace("_", "-") not in options and k not in options)
    if unknown:
        raise ConfigFileError(
            f"--config {path}: unknown option(s) {', '.join(unknown)}; "
            f"this command takes: {', '.join(sorted(options))}"
        )
    defaults = {}
    for key, value in values.items():
        action = options.get(key.replace("_", "-"), options.get(key))
        defaults[action.dest] = _convert(key, action, value)
        action.required = False
        if not action.option_strings:
            action.nargs = "?"  # a positional given in the file may be left off the command line
    parser.set_defaults(**defaults)
    return defaults


def resolved_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Any]:
    """The command's options after parsing, keyed by their first long option; ``None`` left out."""
    resolved = {}
    for action in parser._actions:
        if action.dest in SKIPPED_DESTS:
            continue
        longs = [s[2:] for s in action.option_strings if s.startswith("--")]
        value = getattr(args, action.dest, None)
        if value is not None:
            resolved[longs[0] if longs else action.dest] = value
    return resolved


def to_toml(values: Mapping[str, Any]) -> str:
    """Flat TOML of scalars and lists (strings, numbers, booleans; tuples written as lists)."""
    lines = []
    for key, value in values.items():
        lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))


def write_resolved(
    command: str, parser: argparse.ArgumentParser, args: argparse.Namespace, where: str, placement: str
) -> str | None:
    """Write the resolved options into (``placement="inside"``) or beside the output ``where``.

    Returns the file written, or None when the output does not exist (the command failed early).
    """
    where = where.rstrip("/")
    if not exists(where):
        return None
    target = f"{where}/dpz-{command}.toml" if placement == "inside" else f"{where}.dpz-{command}.toml"
    header = f"# resolved options of: dpz {command} (pass back with --config)\n"
    write_text(target, header + to_toml(resolved_options(parser, args)))
    return target
