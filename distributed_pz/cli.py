"""The ``dpz`` command: one entry point, one subcommand per stage of the data flow."""

from __future__ import annotations

import argparse
import atexit
import gc
import importlib
import logging
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from distributed_pz import __version__
from distributed_pz._files import exists
from distributed_pz.configfile import (
    ConfigFileError,
    add_config_option,
    config_path,
    read_config,
    write_resolved,
)
from distributed_pz.options import add_options
from distributed_pz.survey.store.errors import StoreError

INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT), as shells report it."""

COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("distributed_pz.survey.sim.simulate_cli", "simulate survey tiles into a store"),
    "ingest": (
        "distributed_pz.survey.ingest.ingest_cli",
        "ingest a real catalogue (FITS/Parquet/CSV) into a store",
    ),
    "validate": (
        "distributed_pz.survey.store.validate_cli",
        "check every tile of a store against the schema",
    ),
    "train": ("distributed_pz.train.cli", "train an ensemble bundle with Ray Train from a store with spec-z"),
    "distill": ("distributed_pz.train.distill_cli", "distil an ensemble into one student network (a bundle)"),
    "predict": (
        "distributed_pz.infer.cli",
        "stream every tile of a store through an ensemble into catalogues",
    ),
    "evaluate": ("distributed_pz.evaluate.cli", "metrics, PDF calibration and plots of photo-z catalogues"),
    "export": ("distributed_pz.evaluate.export_cli", "turn a run's catalogues into a HATS catalogue"),
    "demo": ("distributed_pz.demo", "run the main job end to end on a simulated survey"),
}
"""Subcommand name -> (module, help). The module defines ``OPTIONS``, the dataclasses whose
:func:`~distributed_pz.options.option` fields are its options, and ``run(args) -> int``.

A module may say where its resolved options go in ``RESOLVED_CONFIG = (option, placement)``:
the option naming its output and ``"beside"`` it (a survey store) or the file name inside that
folder (``None``: ``dpz-COMMAND.toml``); default ``("out", None)``, ``None`` for a command that
writes nothing (:mod:`distributed_pz.configfile`).
"""


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where there is one worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or action.default in ([], (), argparse.SUPPRESS):
            return action.help
        return super()._get_help_string(action)


def build_parser(
    commands: Iterable[str] | None = None, config: Mapping[str, Any] | None = None
) -> argparse.ArgumentParser:
    """The ``dpz`` parser; only the subcommands in ``commands`` (default: all) import their module.

    ``config`` (option values by field name, from a ``--config`` file) replaces their defaults.
    """
    wanted = set(COMMANDS if commands is None else commands)
    parser = argparse.ArgumentParser(
        prog="dpz",
        description="Photometric redshifts for whole surveys: simulate, ingest, train, predict, evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        if name not in wanted:
            sub.add_parser(name, help=help_text, add_help=False)
            continue
        module = importlib.import_module(module_name)
        command = sub.add_parser(
            name, help=help_text, description=module.__doc__, formatter_class=_HelpFormatter
        )
        add_options(command, module.OPTIONS, config)
        add_config_option(command)
        command.set_defaults(
            run=module.run,
            options=module.OPTIONS,
            resolved_config=getattr(module, "RESOLVED_CONFIG", ("out", None)),
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``dpz COMMAND [options]``: options from ``--config FILE.toml``, then the command line.

    Ctrl-C and a store problem a subcommand left uncaught end in one line. The resolved options
    are written into the output when the command succeeded, or when the output is its own (new at
    start): a refused command leaves an existing run or ensemble as it was.
    """
    argv = sys.argv[1:] if argv is None else argv
    chosen = _command(argv)
    path = config_path(argv) if chosen in COMMANDS else None
    config = None
    if path is not None:
        try:
            config = read_config(path, importlib.import_module(COMMANDS[chosen][0]).OPTIONS)
        except ConfigFileError as exc:
            print(f"dpz {chosen}: error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
    args = build_parser([chosen] if chosen in COMMANDS else [], config).parse_args(argv)
    option, placement = args.resolved_config or (None, None)
    where = getattr(args, option, None) if option else None
    new = bool(where) and not exists(where)
    rc = 1
    try:
        rc = _run(args)
    finally:
        if where and (rc == 0 or new):  # a refused command leaves an existing output alone
            write_resolved(args.command, args.options, args, str(where), placement)
    return rc


def _command(argv: list[str]) -> str | None:
    """The subcommand named in ``argv`` (its first word that is not an option), if any."""
    return next((a for a in argv if not a.startswith("-")), None)


def _run(args: argparse.Namespace) -> int:
    """The command's exit status; Ctrl-C and an uncaught store problem in one line."""
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print(
            f"dpz {args.command}: interrupted; what was finished is kept, rerun the same command to resume",
            file=sys.stderr,
        )
        return INTERRUPTED
    except StoreError as exc:
        print(f"dpz {args.command}: error: {exc}", file=sys.stderr)
        return 1


def console() -> None:
    """The ``dpz`` program: :func:`main`, its command imported by :func:`_import_frozen` first, then
    :func:`_exit_without_teardown` after every exit handler."""
    status: list[int] = []
    atexit.register(_exit_without_teardown, status)  # registered first, so it runs last (atexit is LIFO)
    _import_frozen(_command(sys.argv[1:]))
    status.append(main())
    sys.exit(status[0])


def _import_frozen(command: str | None) -> None:
    """Import ``command``'s module with the garbage collector off, then freeze what it made (torch and
    Dask: ~340k objects): three full collections less (0.25 s, issue 25), and forked workers do
    not copy those objects' pages."""
    if command not in COMMANDS:
        return
    gc.disable()
    try:
        importlib.import_module(COMMANDS[command][0])
    finally:
        gc.freeze()
        gc.enable()


def _exit_without_teardown(status: list[int]) -> None:
    """End with :func:`main`'s status, when it returned one, without the interpreter freeing every
    object one by one: ~0.7 s once torch and Dask are loaded (issue 25), for memory the OS frees anyway."""
    if status:
        logging.shutdown()  # the one exit handler registered before ours (by importing logging)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status[0])


if __name__ == "__main__":
    console()
