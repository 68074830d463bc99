"""Simulate survey tiles (photometry, exposures, cutouts, truth) into a store.

KiDS+VIKING by default; ``--set band_set=sdss`` starts from that survey's defaults (depths,
exposures, selection), ``--set filter_files=a.res,b.res,...`` uses your own filter curves and
``--set depth_5sigma=...`` your depths; ``--no-cutouts`` writes fast catalogue-only tiles (the
catalogue is identical). Every simulator setting has a default; change any with
``--set NAME=VALUE`` (see the list below). Tile ``i`` of ``--tiles K`` uses seed ``seed + i``, so tiles are independent and a
rerun reproduces them exactly. Complete tiles already in the store are kept unless
``--overwrite``; an interrupted tile is written again.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
import typing
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from distributed_pz.options import option, parse_assignments, parse_text
from distributed_pz.survey.sim.simulate import SimulationConfig, simulate_blocks, tile_attrs
from distributed_pz.survey.store.store import (
    DEFAULT_CHUNK_ROWS,
    DEFAULT_SHARD_ROWS,
    SurveyStore,
    Tile,
    open_store,
)

SIMULATED_ARRAYS = ("cutout", "flux_exp", "flux_exp_err", "z_spec", "class")


RESOLVED_CONFIG = ("out", "beside")
"""Where the resolved options go: beside the store (:mod:`distributed_pz.configfile`)."""


def write_simulated_tile(
    store: SurveyStore,
    config: SimulationConfig,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    shard_rows: int = DEFAULT_SHARD_ROWS,
    progress: bool = False,
    workers: int = 1,
) -> Tile:
    """Simulate ``config`` block by block (one shard of rows at a time) into a new tile."""
    arrays = [a for a in SIMULATED_ARRAYS if a != "cutout" or config.makes_cutouts]
    tile = store.create_tile(
        config.tile,
        config.n_sources,
        tile_attrs(config),
        arrays=arrays,
        n_exposures=config.n_exp_max,
        chunk_rows=chunk_rows,
        shard_rows=shard_rows,
        overwrite=True,
    )
    with tqdm(total=config.n_sources, unit="src", desc=config.tile, disable=not progress) as bar:
        for start, arrays in simulate_blocks(config, shard_rows, workers=workers):
            tile.write_block(start, arrays)
            bar.update(len(arrays["object_id"]))
    tile.mark_complete()
    return tile


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["z_max=2.5", ...]`` -> ``{"z_max": 2.5}``, typed from :class:`SimulationConfig`'s annotations."""
    types = typing.get_type_hints(SimulationConfig)
    try:
        return parse_assignments(pairs, "set", lambda name, text: parse_text(types[name], text), names=types)
    except ValueError as exc:
        raise SystemExit(f"dpz simulate: {exc}") from None


def _settings_help() -> str:
    config = SimulationConfig()
    return "simulator setting NAME=VALUE (repeatable); settings and defaults: " + ", ".join(
        f"{f.name}={getattr(config, f.name)!r}"
        for f in dataclasses.fields(config)
        if f.name not in ("n_sources", "seed", "tile", "object_id_start")
    )


@dataclass(frozen=True)
class SimulateOptions:
    """The options of ``dpz simulate``: the tiles, their storage, and the simulator's settings."""

    out: str = option(path=True, help="store URL or path to write (created if absent)")
    n: int = option(SimulationConfig.n_sources, minimum=1, help="sources per tile")
    tiles: int = option(1, minimum=1, help="number of tiles to simulate")
    tile_prefix: str = option("SIM_", help="tile names are PREFIX0000, PREFIX0001, ...")
    seed: int = option(SimulationConfig.seed, help="master seed (tile i uses seed+i)")
    chunk_rows: int = option(DEFAULT_CHUNK_ROWS, minimum=1, help="rows per Zarr chunk")
    shard_rows: int = option(
        DEFAULT_SHARD_ROWS, minimum=1, help="rows per Zarr shard (a multiple of --chunk-rows)"
    )
    workers: int = option(1, minimum=1, help="threads rendering cutouts in parallel")
    overwrite: bool = option(False, help="rewrite tiles that are already complete")
    no_cutouts: bool = option(False, help="catalogue-only tiles (no cutout array; much faster)")
    settings: tuple[str, ...] = option(
        (), flag="set", append=True, metavar="NAME=VALUE", help=_settings_help()
    )


OPTIONS = (SimulateOptions,)
"""The dataclasses whose fields are the options of ``dpz simulate``."""


def run(args: argparse.Namespace) -> int:
    overrides = parse_overrides(args.settings)
    store = open_store(args.out, mode="a")
    existing = set(store.tile_names())
    for index in range(args.tiles):
        name = f"{args.tile_prefix}{index:04d}"
        if name in existing and store.tile(name).complete and not args.overwrite:
            print(f"{name}: already complete in {args.out}, kept (use --overwrite to rewrite)")
            continue
        first_id = overrides.get("object_id_start", 0) + index * args.n  # ids unique across tiles
        config = SimulationConfig.for_survey(
            overrides.get("band_set", SimulationConfig().band_set),
            **{
                **overrides,
                **({"cutouts": False} if args.no_cutouts else {}),
                "n_sources": args.n,
                "seed": args.seed + index,
                "tile": name,
                "object_id_start": first_id,
            },
        )
        started = time.perf_counter()
        write_simulated_tile(
            store,
            config,
            chunk_rows=args.chunk_rows,
            shard_rows=args.shard_rows,
            progress=True,
            workers=args.workers,
        )
        seconds = time.perf_counter() - started
        print(
            f"{name}: {args.n} sources in {seconds:.1f} s ({args.n / seconds:,.0f} sources/s) -> {args.out}"
        )
    return 0
