"""``--config FILE.toml`` for every ``dpz`` command: file → command line → the command's dataclasses.

The keys of a config file are the command's long options, written with ``-`` or ``_``
(``batch-size = 512`` or ``batch_size = 512``; ``tile = ["A", "B"]`` for a repeatable option).
A relative path in the file (``store``, ``out``, ...) is relative to the file's folder, not to
where the command runs. They become the parser's defaults, so the command line wins; keys, value types and defaults all
come from the dataclass fields that declare the options (:mod:`distributed_pz.options`), and
unknown keys and values of the wrong kind are refused with the list of known keys. After a
run that succeeded (or one that made its output), the resolved options (file, command line and defaults together) are written with
``tomli_w`` as ``dpz-COMMAND.toml`` into the command's output folder (``dpz train``: the
ensemble, as :attr:`~distributed_pz.models.ensemble.EnsembleDir.options_file`; ``dpz predict``:
the run folder), or as ``STORE.dpz-COMMAND.toml`` beside a survey store, ready to be passed
back with ``--config``.
"""

from __future__ import annotations

import argparse
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import tomli_w

from distributed_pz._files import exists, write_text
from distributed_pz.options import Spec, anchored, resolved, specs

CONFIG_OPTION = "config"


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


def _keys(classes: Iterable[type]) -> dict[str, Spec]:
    """Config key (the option's flag, a positional's name) -> its option."""
    return {spec.flag: spec for spec in specs(*classes)}


def _convert(key: str, spec: Spec, value: Any) -> Any:
    """A TOML value as the parser would have produced it from the command line."""
    if spec.kind == "switch":
        if not isinstance(value, bool):
            raise ConfigFileError(f"{key} = {value!r}: expected true or false")
        return value
    if spec.kind == "append":
        items = value if isinstance(value, list) else [value]
        return [_one(key, spec, item) for item in items]
    return _one(key, spec, value)


def _one(key: str, spec: Spec, value: Any) -> Any:
    if isinstance(value, list | dict):
        if spec.parse is None or isinstance(value, dict):
            raise ConfigFileError(f"{key} = {value!r}: expected one value")
        value = ",".join(str(v) for v in value)  # START,STOP,POINTS-style options
    if spec.parse is not None:
        try:
            value = spec.parse(str(value))
        except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
            raise ConfigFileError(f"{key} = {value!r}: {exc}") from None
    elif spec.value_type is str and not isinstance(value, str):
        raise ConfigFileError(f"{key} = {value!r}: expected a string")
    if spec.choices is not None and value not in spec.choices:
        raise ConfigFileError(f"{key} = {value!r}: expected one of {spec.choices}")
    return value


def read_config(path: str, classes: Iterable[type]) -> dict[str, Any]:
    """The values of the config file ``path`` for the options of ``classes``, by field name.

    Raises
    ------
    ConfigFileError
        The file is not TOML, a value is of the wrong kind, or a key is not an option of the
        command (the message lists them).
    """
    try:
        with open(path, "rb") as handle:
            values = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigFileError(f"--config {path}: not a TOML file ({type(exc).__name__}: {exc})") from None
    keys = _keys(classes)
    unknown = sorted(k for k in values if k.replace("_", "-") not in keys and k not in keys)
    if unknown:
        raise ConfigFileError(
            f"--config {path}: unknown option(s) {', '.join(unknown)}; "
            f"this command takes: {', '.join(sorted(keys))}"
        )
    read = {}
    folder = Path(path).resolve().parent
    for key, value in values.items():
        spec = keys.get(key.replace("_", "-"), keys.get(key))
        read[spec.name] = _convert(key, spec, value)
        if spec.option.path:
            read[spec.name] = anchored(read[spec.name], folder)
    return read


def write_resolved(
    command: str, classes: Iterable[type], args: argparse.Namespace, where: str, placement: str | None
) -> str | None:
    """Write the resolved options of ``dpz command`` for its output ``where``: ``"beside"`` it
    (``WHERE.dpz-COMMAND.toml``, a survey store), else inside it as the file ``placement``
    (default ``dpz-COMMAND.toml``).

    Returns the file written, or None when the output does not exist (the command failed early).
    """
    where = where.rstrip("/")
    if not exists(where):
        return None
    if placement == "beside":
        target = f"{where}.dpz-{command}.toml"
    else:
        target = f"{where}/{placement or f'dpz-{command}.toml'}"
    header = f"# resolved options of: dpz {command} (pass back with --config)\n"
    write_text(target, header + tomli_w.dumps(resolved(classes, args)))
    return target
