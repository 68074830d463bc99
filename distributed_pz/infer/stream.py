"""Every tile of a survey store through an ensemble, on a Dask cluster, into one catalogue per tile.

The client never holds survey data: it submits ``(store, tile, start, stop)`` descriptors;
each task reads its own row block from Zarr on a worker, predicts with the worker's ensemble
(loaded once per worker, :mod:`distributed_pz.infer.plugin`) and writes a Parquet part file
to ``OUT/_staging/TILE/``, the reading, predicting and writing of its batches overlapped
(:mod:`distributed_pz.infer.overlap`). When a tile's parts are all there, one more task concatenates them
in row order into ``OUT/TILE.parquet`` (or ``.fits``) through a temporary file and a rename;
the client then records the tile in the run manifest (:mod:`distributed_pz.infer.manifest`)
and removes its parts. A rerun skips committed tiles and reuses the part files of a tile
under way, cut into the same row blocks, so no row is lost or written twice.

With ``homogenise``, each tile's photometry is first brought to the training tiles' zero points:
a task measures the tile's per-band offsets from its own stars against the ensemble's stellar
locus (:mod:`distributed_pz.models.locus`), every part task subtracts them from the rows it
reads, and the catalogue records them (``zeropoint_offsets``). The offsets are a deterministic
function of the tile and the ensemble, so a resumed tile gets the same ones.

At most ``max_in_flight`` tasks are submitted at once (a window over ``as_completed``), so
the memory of the client, the scheduler and the workers stays bounded however large the store.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from distributed import Client, as_completed
from tqdm import tqdm

from distributed_pz import __version__
from distributed_pz._files import is_file, makedirs, remove_tree, utc_now
from distributed_pz.catalog import FLAG_BITS, WRITE_FORMATS, commit_parts, suffix, writing
from distributed_pz.infer.local import prediction_rows
from distributed_pz.infer.manifest import STAGING, RunManifest
from distributed_pz.infer.overlap import predict_overlapped, steps
from distributed_pz.infer.plugin import PredictorPlugin, plugin_name, worker_predictor
from distributed_pz.models.compat import check_homogenise
from distributed_pz.models.ensemble import Ensemble, EnsembleDir
from distributed_pz.models.locus import StellarLocus, TooFewStars
from distributed_pz.models.predictor import PredictOptions
from distributed_pz.survey.store.errors import StoreError
from distributed_pz.survey.store.store import absolute_url, open_store
from distributed_pz.survey.store.tiles import TileArrays

ON_ERROR = ("stop", "skip")


class TileFailed(RuntimeError):
    """A tile could not be predicted; the message is the one-line reason."""

    def __init__(self, tile: str, reason: str) -> None:
        super().__init__(reason)
        self.tile = tile


@dataclass
class RunSummary:
    """What a run did: committed tiles, tiles already done, failures, rows predicted, time."""

    committed: list[str] = field(default_factory=list)
    already_done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    rows_predicted: int = 0
    parts_reused: int = 0
    seconds: float = 0.0


def catalogue_metadata(
    bundle_hash: str, store_url: str, tile: str, options: PredictOptions, n_members: int | None = None
) -> dict[str, Any]:
    """Metadata written into every catalogue (values JSON-ready)."""
    meta: dict[str, Any] = {
        "bundle_hash": bundle_hash,
        "package_version": __version__,
        "store": store_url,
        "tile": tile,
        "created_utc": utc_now(),
        "pdf_type": "grid" if options.pdf == "grid" else "gaussian_mixture",
        "odds_interval": options.odds_interval,
        "precision": options.precision,
        "flag_bits": {str(bit): text for bit, text in FLAG_BITS.items()},
    }
    if n_members is not None:
        meta["n_members"] = n_members
    grid = options.grid()
    if grid is not None:
        meta["z_grid"] = grid.tolist()
    return meta


def predict_part(
    store_url: str,
    tile_name: str,
    start: int,
    stop: int,
    part: str,
    plugin: str,
    offsets: Mapping[str, float] | None = None,
) -> int:
    """Worker task: read rows ``[start, stop)`` of a tile (less its zero-point ``offsets``, if any),
    predict, write the part file, the three overlapped (:mod:`distributed_pz.infer.overlap`);
    returns rows."""
    predictor = worker_predictor(plugin)
    tile = open_store(store_url).tile(tile_name)

    def read(first: int, last: int) -> TileArrays:
        return prediction_rows(tile, predictor, first, last, offsets)

    with _arrow_memory_released(), writing(part, "parquet", {}) as writer:
        blocks = steps(start, stop, predictor.options.batch_size)
        return predict_overlapped(predictor, read, blocks, writer.write_chunk)


def tile_zeropoints(store_url: str, tile_name: str, locus: Mapping[str, Any]) -> dict[str, Any]:
    """Worker task: the tile's zero-point offsets from its stars against ``locus`` (its JSON form):
    ``{"zeropoint_offsets": {band: mag}}``, or ``{"zeropoints": "not corrected: <why>"}``."""
    tile = open_store(store_url).tile(tile_name)
    arrays = tile.read([name for name in ("class", "mag", "mag_err") if tile.has(name)])
    try:
        offsets = StellarLocus.from_dict(locus).tile_offsets(arrays, tile.bands)
    except TooFewStars as exc:
        return {"zeropoints": f"not corrected: {exc}"}
    return {"zeropoints": "stellar-locus regression", "zeropoint_offsets": offsets}


def commit_tile(parts: Sequence[str], path: str, fmt: str, metadata: dict[str, Any], plugin: str) -> int:
    """Worker task: concatenate a tile's parts into its catalogue, atomically; returns rows."""
    predictor = worker_predictor(plugin)
    metadata = {**metadata, "n_members": predictor.n_members, **predictor.catalogue_metadata()}
    with _arrow_memory_released():
        return commit_parts(parts, path, fmt, metadata)


@contextmanager
def _arrow_memory_released() -> Iterator[None]:
    """Hand the memory Arrow's pool (mimalloc) keeps cached back to the OS when the block ends:
    it kept what a commit had used, and the next tile's predictions ran on top of it (a
    worker's peak RSS grew after its first tile, issue 25)."""
    try:
        yield
    finally:
        pa.default_memory_pool().release_unused()


class PartsVanished(RuntimeError):
    """A tile's part files disappeared between their writing and its commit."""

    def __init__(self, tile: str, exc: FileNotFoundError) -> None:
        super().__init__(
            f"tile {tile!r}: a part file vanished before the commit ({exc}); is another dpz predict "
            "writing to this --out? (object storage has no lock: run one at a time, then rerun to finish)"
        )


def _reason(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, StoreError | PartsVanished) else f"{type(exc).__name__}: {exc}"


@dataclass
class _Tile:
    name: str
    n_rows: int
    blocks: list[tuple[int, int]]
    missing: set[tuple[int, int]]
    content: str
    zeropoints: dict[str, Any] = field(default_factory=dict)


class _Run:
    """One call of :func:`predict_store`: the queue, the window, the bookkeeping."""

    def __init__(
        self,
        client: Client,
        store_url: str,
        out: str,
        fmt: str,
        plugin: str,
        options: PredictOptions,
        digest: str,
        manifest: RunManifest,
        on_error: str,
        locus: StellarLocus | None = None,
    ) -> None:
        self.client, self.store_url, self.out, self.fmt = client, store_url, out, fmt
        self.locus = locus
        self.plugin, self.options, self.digest = plugin, options, digest
        self.manifest, self.on_error = manifest, on_error
        self.summary = RunSummary()
        self.tiles: dict[str, _Tile] = {}
        self.queue: deque[tuple[str, int, int]] = deque()
        self.futures = as_completed()
        self.kinds: dict[str, tuple[str, str, int]] = {}
        self.failed: set[str] = set()

    def part_path(self, tile: str, start: int, stop: int) -> str:
        return self.manifest.path(STAGING, tile, f"part-{start:012d}-{stop:012d}.parquet")

    def plan(self, name: str, rows_per_task: int | None) -> None:
        """Cut a tile into row blocks (as recorded, if it was under way from the same content) and
        queue the missing ones; a tile committed from its current content is already done."""
        tile = open_store(self.store_url).tile(name)
        if not tile.complete:
            raise StoreError("tile is not complete (still being written?)", store=self.store_url, tile=name)
        content = tile.content_id()
        if self.manifest.done(name, content):
            self.summary.already_done.append(name)
            self.manifest.clear_failure(name)  # an overlapping run's, on object storage
            remove_tree(self.manifest.path(STAGING, name))  # and its orphan parts
            return
        blocks = self.manifest.blocks(name, content)
        if blocks is None or blocks[-1][1] != tile.n_rows:
            remove_tree(self.manifest.path(STAGING, name))  # parts of other content
            step = rows_per_task or tile.shard_rows
            blocks = tile.row_blocks(max(tile.chunk_rows, step // tile.chunk_rows * tile.chunk_rows))
            self.manifest.start_tile(name, blocks, content)
        makedirs(self.manifest.path(STAGING, name))
        missing = {b for b in blocks if not is_file(self.part_path(name, *b))}
        self.summary.parts_reused += len(blocks) - len(missing)
        zeropoints = {}
        if self.locus is not None:
            zeropoints = self.client.submit(
                tile_zeropoints,
                self.store_url,
                name,
                self.locus.to_dict(),
                key=f"dpz-zeropoints-{name}-{uuid.uuid4().hex[:8]}",
            ).result()
        self.tiles[name] = _Tile(name, tile.n_rows, blocks, missing, content, zeropoints)
        self.queue.extend((name, a, b) for a, b in blocks if (a, b) in missing)

    def fill(self, window: int) -> None:
        """Submit queued work until ``window`` tasks are in flight."""
        while self.queue and self.futures.count() < window:
            name, start, stop = self.queue.popleft()
            if name in self.failed:
                continue
            key = f"dpz-predict-{name}-{start}-{uuid.uuid4().hex[:8]}"
            future = self.client.submit(
                predict_part,
                self.store_url,
                name,
                start,
                stop,
                self.part_path(name, start, stop),
                self.plugin,
                self.tiles[name].zeropoints.get("zeropoint_offsets"),
                key=key,
                retries=0,
            )
            self.kinds[future.key] = ("part", name, start)
            self.futures.add(future)

    def commit(self, name: str) -> None:
        tile = self.tiles[name]
        parts = [self.part_path(name, a, b) for a, b in tile.blocks]
        path = self.manifest.path(f"{name}{suffix(self.fmt)}")
        meta = {**catalogue_metadata(self.digest, self.store_url, name, self.options), **tile.zeropoints}
        future = self.client.submit(
            commit_tile,
            parts,
            path,
            self.fmt,
            meta,
            self.plugin,
            key=f"dpz-commit-{name}-{uuid.uuid4().hex[:8]}",
        )
        self.kinds[future.key] = ("commit", name, tile.n_rows)
        self.futures.add(future)

    def fail(self, name: str, exc: BaseException) -> None:
        reason = _reason(exc)
        self.failed.add(name)
        self.summary.failed[name] = reason
        self.manifest.fail_tile(name, reason)
        if self.on_error == "stop":
            for future in list(self.futures.futures):
                future.cancel()
            raise TileFailed(name, reason) from exc

    def run(self, window: int, bar: tqdm) -> None:
        """Commit tiles whose parts all exist, then keep ``window`` tasks in flight until all are done."""
        for name, tile in self.tiles.items():
            if not tile.missing:
                self.commit(name)
        self.fill(window)
        for future in self.futures:
            self.handle(future, bar)
            self.fill(window)

    def handle(self, future, bar: tqdm) -> None:
        """Book one finished task: a part (commit the tile when it was the last) or a commit."""
        kind, name, value = self.kinds.pop(future.key)
        if name in self.failed:
            return
        try:
            rows = future.result()
        except FileNotFoundError as exc:
            self.fail(name, PartsVanished(name, exc) if kind == "commit" else exc)
            return
        except Exception as exc:  # a worker error of any type fails this tile only
            self.fail(name, exc)
            return
        if kind == "part":
            self.summary.rows_predicted += rows
            bar.update(rows)
            tile = self.tiles[name]
            tile.missing.discard(next(b for b in tile.blocks if b[0] == value))
            if not tile.missing:
                self.commit(name)
        elif rows != value:
            self.fail(name, RuntimeError(f"tile {name!r}: catalogue has {rows} rows, the tile {value}"))
        else:
            self.manifest.finish_tile(name, f"{name}{suffix(self.fmt)}", rows, self.tiles[name].content)
            remove_tree(self.manifest.path(STAGING, name))
            self.summary.committed.append(name)
            bar.set_postfix_str(f"tiles {len(self.summary.committed)}/{len(self.tiles)}")


def predict_store(
    client: Client,
    store_url: str,
    ensemble: Ensemble | str,
    out: str,
    *,
    tiles: Sequence[str] | None = None,
    options: PredictOptions | None = None,
    fmt: str = "parquet",
    rows_per_task: int | None = None,
    on_error: str = "stop",
    max_in_flight: int | None = None,
    progress: bool = True,
    homogenise: bool = False,
) -> RunSummary:
    """Predict tiles of a store with an ensemble on a Dask cluster; one catalogue per tile.

    Parameters
    ----------
    client
        Connected to the cluster (:func:`distributed_pz.infer.cluster.connect`).
    store_url, ensemble, out
        Survey store, ensemble (read, or its directory: ensemble or single bundle) and output
        directory: local paths (made absolute; the workers must see them) or fsspec URLs
        (``s3://``, ``gs://``). Each worker reads the ensemble from its location once.
    tiles
        Tiles to predict; default every tile of the store.
    options
        Predictor options (batch size, precision, ODDS interval, PDF representation).
    fmt
        ``"parquet"``, ``"fits"`` or ``"qp"`` (:mod:`distributed_pz.catalog`).
    rows_per_task
        Rows per task, rounded down to whole Zarr chunks (default: one shard).
    on_error
        ``"stop"``: raise :class:`TileFailed` at the first failed tile; ``"skip"``: record it in
        ``failures.json`` and finish the others.
    max_in_flight
        Most tasks submitted at once (default: twice the cluster's worker threads).
    progress
        Show a progress bar (sources and sources/s, tiles done).
    homogenise
        Bring each tile's zero points to the training tiles' first (stellar-locus regression
        against the ensemble's locus); a tile with too few stars is predicted as it is, and its
        catalogue says so.
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, not {on_error!r}")
    if fmt not in WRITE_FORMATS:
        raise ValueError(f"format must be one of {list(WRITE_FORMATS)}, not {fmt!r}")
    options = options or PredictOptions()
    store_url = absolute_url(store_url)
    if not isinstance(ensemble, Ensemble):
        ensemble = EnsembleDir(absolute_url(ensemble)).read(weights=False)
    bundle_path = absolute_url(ensemble.location)
    out_dir = absolute_url(out)
    digest = ensemble.content_hash
    calibration = ensemble.calibration.content_hash if ensemble.calibration else None
    if homogenise:
        check_homogenise(ensemble)
    identity = {
        "bundle_hash": digest,
        "calibration_hash": calibration,
        "store": store_url,
        "format": fmt,
        "homogenise": homogenise,
        **options.output_settings(),
    }
    manifest = RunManifest.open(out_dir, identity)
    try:
        plugin = plugin_name(digest, options)
        locus = ensemble.locus if homogenise else None
        run = _Run(client, store_url, out_dir, fmt, plugin, options, digest, manifest, on_error, locus)
        return _predict(run, bundle_path, list(tiles or ()), rows_per_task, max_in_flight, progress)
    finally:
        manifest.close()


def _predict(
    run: _Run,
    bundle_path: str,
    tiles: list[str],
    rows_per_task: int | None,
    max_in_flight: int | None,
    progress: bool,
) -> RunSummary:
    """Plan every tile (a bad one fails alone), then stream the queued work through the cluster."""
    client, store_url, options, digest, name = run.client, run.store_url, run.options, run.digest, run.plugin
    started = time.perf_counter()
    names = tiles or open_store(store_url).tile_names()
    for tile in names:
        try:
            run.plan(tile, rows_per_task)
        except (StoreError, ValueError) as exc:
            run.fail(tile, exc)
    if run.tiles:
        client.register_plugin(PredictorPlugin(bundle_path, digest, options), name=name)
        window = max_in_flight or 2 * max(1, sum(client.nthreads().values()))
        total = sum(sum(b - a for a, b in t.blocks if (a, b) in t.missing) for t in run.tiles.values())
        try:
            with tqdm(total=total, unit="src", unit_scale=True, desc="predict", disable=not progress) as bar:
                bar.set_postfix_str(f"tiles 0/{len(run.tiles)}")
                run.run(window, bar)
        finally:
            client.unregister_worker_plugin(name)
    run.summary.seconds = time.perf_counter() - started
    return run.summary
