"""Command-line options declared once: on the fields of the dataclasses they fill.

A field made with :func:`option` is an option of every command that lists its dataclass. Its
name is the ``argparse`` dest, its annotation the value type, its default the option's default
(no default: a required option); the metadata adds the help and, where needed, the flag (default:
the field name with ``-``), metavar, choices, a parser of one value, repetition (``append``), a
positional place, a help group and a mutually exclusive group. A ``bool`` field is a switch:
``--FLAG`` when it defaults to False, ``--FLAG`` / ``--no-FLAG`` when it defaults to True. From
those fields alone:

* :func:`add_options` adds the ``argparse`` arguments of a command (one call per field);
* :func:`from_args` builds the dataclass from the parsed namespace;
* :func:`specs` gives config-file keys and value types (:mod:`distributed_pz.configfile`) and
  the defaults and help of the RAIL stage parameters (:mod:`distributed_pz.rail`).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

OPTION = "distributed_pz.option"
"""Key of an option's :class:`Option` in its field's metadata."""


@dataclasses.dataclass(frozen=True)
class Option:
    """What a field's metadata says about its option (see :func:`option`)."""

    help: str
    flag: str | None = None
    metavar: str | None = None
    choices: Sequence[Any] | Callable[[], Sequence[Any]] | None = None
    parse: Callable[[str], Any] | None = None
    append: bool = False
    positional: bool = False
    group: str | None = None
    exclusive: str | None = None
    minimum: float | None = None
    path: bool = False


def option(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    default_factory: Callable[[], Any] | Any = dataclasses.MISSING,
    **cli: Any,
) -> Any:
    """A dataclass field that is also a command-line option.

    Parameters
    ----------
    default, default_factory
        The default of the field and the option (as for :func:`dataclasses.field`); none makes
        the option required.
    help
        The option's help.
    **cli
        Fields of :class:`Option`: ``flag`` (long option without ``--``), ``metavar``,
        ``choices`` (a sequence, or a function returning one when the parser is built),
        ``parse`` (one value from its text; default: the annotation's ``int``/``float``/...),
        ``append`` (repeatable), ``positional``, ``group`` (help section), ``exclusive``
        (mutually exclusive group), ``minimum`` (a count or size below it is refused when parsed,
        from the command line or a config file, in one line naming the option), ``path`` (a
        file or folder: relative in a config file, it is relative to that file; the resolved
        options record it absolute).
    """
    meta = {OPTION: Option(help, **cli)}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=meta)


@dataclasses.dataclass(frozen=True)
class Spec:
    """One option resolved from its field: what argparse, config files and RAIL need.

    ``kind`` is ``"switch"`` (``store_true``), ``"append"`` (repeatable) or ``"value"``;
    ``parse`` turns one value's text into its type (``None``: kept as text), checking its
    ``minimum``; ``value_type`` is that type (``int``, ``float``, ``str``, ...); ``sequence`` is
    the field's container (``tuple`` or ``list``) where it holds several values.
    """

    name: str
    flag: str
    kind: str
    parse: Callable[[str], Any] | None
    value_type: type
    default: Any
    required: bool
    option: Option
    choices: Sequence[Any] | None
    sequence: type | None

    def argparse_kwargs(self, default: Any, given: bool) -> dict[str, Any]:
        """Keyword arguments of ``add_argument``; ``given``: ``default`` came from a config file."""
        kwargs: dict[str, Any] = {"help": self.option.help, "default": default}
        if self.kind == "switch":  # on by default: --FLAG / --no-FLAG
            kwargs["action"] = argparse.BooleanOptionalAction if self.default is True else "store_true"
        else:
            metavar = self.option.metavar
            if metavar is None and self.choices is None and self.flag != self.name.replace("_", "-"):
                metavar = self.flag.upper().replace("-", "_")  # as argparse names it after the flag
            kwargs.update(type=self.parse, choices=self.choices, metavar=metavar)
            if self.kind == "append":
                kwargs["action"] = "append"
        if self.option.positional:
            if given:
                kwargs["nargs"] = "?"  # a positional given in the file may be left off the command line
        else:
            kwargs.update(dest=self.name, required=self.required and not given)
        return kwargs


def specs(*classes: type) -> list[Spec]:
    """The options of ``classes``' fields made with :func:`option`, in declaration order."""
    out = []
    for cls in classes:
        hints = typing.get_type_hints(cls)
        out += [_spec(f, hints[f.name]) for f in dataclasses.fields(cls) if OPTION in f.metadata]
    return out


def _spec(f: dataclasses.Field, hint: Any) -> Spec:
    meta: Option = f.metadata[OPTION]
    kind, item, sequence = "value", _unoptional(hint), None
    if typing.get_origin(item) in (tuple, list):
        sequence = typing.get_origin(item)
        item = typing.get_args(item)[0]
    if meta.append:
        kind, item = "append", item if sequence else str
    elif item is bool:
        kind = "switch"
    choices = meta.choices() if callable(meta.choices) else meta.choices
    parse = meta.parse or (item if item in (int, float, Path) else None)
    if meta.minimum is not None and parse is not None:
        parse = _at_least(parse, meta.minimum)
    default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
    if kind == "append" and default not in (None, dataclasses.MISSING):
        default = list(default)  # argparse appends to a copy of the default: a list
    required = default is dataclasses.MISSING
    return Spec(
        name=f.name,
        flag=meta.flag or f.name.replace("_", "-"),
        kind=kind,
        parse=parse,
        value_type=item if isinstance(item, type) else str,
        default=None if required else default,
        required=required,
        option=meta,
        choices=list(choices) if choices is not None else None,
        sequence=sequence,
    )


def _at_least(parse: Callable[[str], Any], minimum: float) -> Callable[[str], Any]:
    """``parse``, refusing a value below ``minimum`` (argparse prints the message after the option)."""

    def checked(text: str) -> Any:
        value = parse(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}, not {text}")
        return value

    checked.__name__ = getattr(parse, "__name__", "value")  # argparse names the type in its errors
    return checked


def positive_float(text: str) -> float:
    """A ``parse`` for a value that must be above 0 (a learning rate)."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
    return value


positive_float.__name__ = "float"  # argparse names the type in its errors


def _unoptional(hint: Any) -> Any:
    """``X | None`` -> ``X``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def add_options(
    parser: argparse.ArgumentParser, classes: Iterable[type], defaults: Mapping[str, Any] | None = None
) -> None:
    """Add the options of ``classes`` to ``parser``.

    ``defaults`` (by field name, e.g. from a config file) replace the declared defaults and make
    those options optional.
    """
    defaults = defaults or {}
    groups: dict[str | None, Any] = {None: parser}
    exclusive: dict[str, Any] = {}
    for spec in specs(*classes):
        group, alone = spec.option.group, spec.option.exclusive
        if group not in groups:
            groups[group] = parser.add_argument_group(group)
        if alone is not None and alone not in exclusive:
            exclusive[alone] = groups[group].add_mutually_exclusive_group()
        container = groups[group] if alone is None else exclusive[alone]
        name = spec.name if spec.option.positional else f"--{spec.flag}"
        kwargs = spec.argparse_kwargs(defaults.get(spec.name, spec.default), spec.name in defaults)
        container.add_argument(name, **kwargs)


def from_args(cls: type, args: argparse.Namespace, **values: Any) -> Any:
    """``cls`` with its option fields from the parsed ``args``; ``values`` win, other fields keep their defaults."""
    for spec in specs(cls):
        if spec.name not in values:
            value = getattr(args, spec.name)
            values[spec.name] = spec.sequence(value) if spec.sequence and value is not None else value
    return cls(**values)


def resolved(classes: Iterable[type], args: argparse.Namespace) -> dict[str, Any]:
    """The parsed options of ``classes`` by flag (the config-file keys), ``None`` left out; local
    relative paths made absolute (against the working directory, as the command read them)."""
    values = {}
    for spec in specs(*classes):
        value = getattr(args, spec.name, None)
        if value is not None:
            values[spec.flag] = anchored(value, Path.cwd()) if spec.option.path else value
    return values


def anchored(value: Any, folder: Path) -> Any:
    """A path option's value (or list of them) with local relative paths joined to ``folder``;
    URLs (``s3://...``) and absolute paths as they are."""
    if isinstance(value, list | tuple):
        return type(value)(anchored(v, folder) for v in value)
    text = str(value)
    if "://" in text or Path(text).is_absolute():
        return value
    joined = (folder / text).resolve()
    return joined if isinstance(value, Path) else str(joined)


def parse_assignments(
    pairs: Iterable[str],
    flag: str,
    value: Callable[[str, str], Any],
    names: Collection[str] | None = None,
    what: str = "NAME",
) -> dict[str, Any]:
    """``["a=1", ...]`` of a repeatable ``--FLAG NAME=VALUE`` -> ``{"a": value("a", "1"), ...}``.

    Raises
    ------
    ValueError
        A pair without ``=`` or a name, or a name not in ``names`` (when given; the message lists them).
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name or (names is not None and name not in names):
            known = f" with {what} one of {sorted(names)}" if names is not None else ""
            raise ValueError(f"--{flag} {pair!r}: expected {what}=VALUE{known}")
        out[name] = value(name, text)
    return out


def parse_text(hint: Any, text: str) -> Any:
    """``text`` as a value of the annotation ``hint``: ``bool`` (1/true/yes), ``int``, ``float``,
    ``str`` or a comma-separated ``tuple`` of one of those."""
    hint = _unoptional(hint)
    if hint is bool:
        return text.lower() in ("1", "true", "yes")
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        return tuple(item(v) for v in text.split(",") if v)
    return hint(text)
