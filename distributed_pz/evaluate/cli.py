"""Metrics, PDF calibration and plots of photo-z catalogues against spectroscopic truth.

Writes ``summary.json``, ``report.md`` and PNG plots (z_phot vs z_spec density, PIT histogram,
metrics vs magnitude and redshift, ODDS completeness) into ``--out``. Several ``--catalog``
options compare catalogues in one report. ``--truth`` is a table (Parquet/FITS/CSV with
``object_id``, ``z_spec``) or a survey store, whose tiles' ``z_spec`` and r magnitudes are used.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import numpy as np

from distributed_pz._files import join, mirrored
from distributed_pz.catalog import table_format
from distributed_pz.evaluate.score import (
    DEFAULT_MAG_COLUMN,
    EvaluationSettings,
    evaluate_catalogues,
    truth_from_arrays,
)
from distributed_pz.options import from_args, option
from distributed_pz.survey.store.errors import StoreError
from distributed_pz.survey.store.store import open_store


def truth_from_store(url: str, tiles: list[str] | None = None, band: str = "r") -> dict[str, np.ndarray]:
    """Truth columns (object_id, z_spec, mag_<band>, and class where the tiles have it) of the named
    tiles (default: all) of a store."""
    store = open_store(url)
    parts = []
    for name in tiles or store.tile_names():
        tile = store.tile(name)
        data = tile.read(["object_id", "z_spec", "mag", *(["class"] if tile.has("class") else [])])
        part = truth_from_arrays(data["object_id"], data["z_spec"], data["mag"], tile.bands, band)
        parts.append({**part, **({"class": data["class"]} if "class" in data else {})})
    if len({frozenset(p) for p in parts}) > 1:  # some tiles without a class: none for all
        parts = [{k: v for k, v in p.items() if k != "class"} for p in parts]
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def _truth(args: argparse.Namespace):
    """The truth table path, or for a survey store a loader named after the store and its tiles."""
    try:
        tiles = args.truth_tile or open_store(args.truth).tile_names()
    except StoreError:
        return args.truth

    def loader() -> dict[str, np.ndarray]:
        return truth_from_store(args.truth, tiles, args.truth_band)

    loader.__name__ = f"store {args.truth} (tile{'s' * (len(tiles) > 1)} {', '.join(tiles)})"
    return loader


def _catalog_arg(value: str) -> tuple[str, str | list[str]]:
    """``[LABEL=]PATH``: a catalogue file, or a folder of tile catalogues (a ``dpz predict`` run)."""
    label, sep, path = value.partition("=")
    if not (sep and label and "/" not in label and ":" not in label):
        label, path = Path(value.rstrip("/")).name.split(".")[0], value
    fs, root = fsspec.core.url_to_fs(path)
    if not fs.isdir(root):
        return label, path
    files = sorted(p for p in fs.ls(root, detail=False) if _is_catalogue(p))
    if not files:
        raise ValueError(f"--catalog {value}: a folder without Parquet or FITS catalogues")
    return label, [fs.unstrip_protocol(p) if "://" in path else p for p in files]


def _is_catalogue(path: str) -> bool:
    try:
        return table_format(path) in ("parquet", "fits")
    except ValueError:  # the run's manifest.json, failures.json, ...
        return False


@dataclass(frozen=True)
class EvaluateOptions:
    """What ``dpz evaluate`` compares and where it writes the report."""

    catalog: list[str] = option(
        append=True,
        metavar="[LABEL=]PATH",
        help="catalogue (Parquet/FITS), or a folder of tile catalogues (a dpz predict run); repeat to "
        "compare several; label defaults to the file name",
    )
    truth: str = option(
        path=True, help="truth: a table with object_id, z_spec (Parquet/FITS/CSV) or a survey store URL"
    )
    truth_tile: list[str] | None = option(
        None, append=True, help="with a store as truth: only these tiles (repeatable)"
    )
    truth_band: str = option("r", help="with a store as truth: band used as the magnitude")
    out: str = option("evaluation", path=True, help="output directory (default: %(default)s)")
    mag_column: str | None = option(
        None, help=f"truth magnitude column (default: {DEFAULT_MAG_COLUMN} if present)"
    )
    title: str = option("Photo-z evaluation", help="report title")
    no_plots: bool = option(False, help="write only summary.json and report.md")


OPTIONS = (EvaluateOptions, EvaluationSettings)
"""The dataclasses whose fields are the options of ``dpz evaluate``."""


def evaluate_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Run the evaluation that parsed ``dpz evaluate`` arguments describe; returns the summary."""
    catalogs = dict(_catalog_arg(value) for value in args.catalog)
    if len(catalogs) != len(args.catalog):
        raise ValueError("two catalogues share a label: name them LABEL=PATH")
    settings = from_args(EvaluationSettings, args)
    with mirrored(args.out) as local:  # a remote --out: written here, then uploaded
        summary = evaluate_catalogues(
            catalogs,
            _truth(args),
            str(local),
            mag_column=args.mag_column,
            settings=settings,
            title=args.title,
            plots=not args.no_plots,
        )
    summary["files"] = {name: join(args.out, Path(path).name) for name, path in summary["files"].items()}
    return summary


def run(args: argparse.Namespace) -> int:
    summary = evaluate_from_args(args)
    for name, path in summary["files"].items():
        print(f"{name}: {path}")
    return 0
