"""Check every tile of a survey store against the schema; one line per problem."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from distributed_pz.options import option
from distributed_pz.survey.store.errors import StoreError
from distributed_pz.survey.store.store import open_store
from distributed_pz.survey.store.validate import check_named_tile, check_store, checksum_notes

RESOLVED_CONFIG = None
"""Where the resolved options go (:mod:`distributed_pz.configfile`)."""


@dataclass(frozen=True)
class ValidateOptions:
    """The options of ``dpz validate``."""

    store: str = option(
        path=True, positional=True, help="store URL or path (local path, file://, memory://, s3://, gs://)"
    )
    tile: list[str] | None = option(
        None, append=True, help="check only this tile (repeatable); default: all tiles"
    )
    deep: bool = option(False, help="also decode every chunk and check values (reads everything)")


OPTIONS = (ValidateOptions,)
"""The dataclasses whose fields are the options of ``dpz validate``."""


def run(args: argparse.Namespace) -> int:
    """Print one ``error:`` line per problem (every tile is checked) and ``note:`` lines; 1 on a problem."""
    try:
        store = open_store(args.store)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    names = args.tile or store.tile_names()
    if args.tile:
        problems = [p for name in args.tile for p in check_named_tile(store, name, deep=args.deep)]
    else:
        problems = check_store(store, deep=args.deep)
    broken = {p.tile for p in problems}
    for name in names:
        if name not in broken:
            for note in checksum_notes(store.tile(name)):
                print(f"note: {note}", file=sys.stderr)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if not problems:
        print(f"ok: {args.store} ({', '.join(names)})")
    return 1 if problems else 0
