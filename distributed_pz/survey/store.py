"""Open, create, read and write survey stores (Zarr v3, one group per tile) through fsspec URLs.

A local path, ``file://``, ``memory://`` and any fsspec URL (``s3://``, ``gs://`` once the user
installs s3fs / gcsfs) name a store. Tiles are written in row blocks aligned to shards, so
concurrent writers never share a shard; a tile is marked ``complete`` only when all rows are in.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import fsspec
import numpy as np
import zarr
from zarr.codecs import BloscCodec
from zarr.storage import FsspecStore, LocalStore

from distributed_pz.bands import BandSet
from distributed_pz.survey.errors import StoreError
from distributed_pz.survey.schema import ARRAY_SPECS, CUTOUT_SIZE, SCHEMA_VERSION
from distributed_pz.survey.tiles import TileArrays

STORE_MARKER = "distributed_pz"
DEFAULT_CHUNK_ROWS = 1024
DEFAULT_SHARD_ROWS = 8192


def absolute_url(url: str) -> str:
    """``url`` with a local path made absolute, so processes elsewhere (Ray, Dask workers) find it."""
    if "://" in url and not url.startswith("file://"):
        return url
    return os.path.abspath(url.removeprefix("file://"))


def _zarr_store(url: str, read_only: bool, storage_options: Mapping[str, Any] | None):
    if "://" not in url or url.startswith("file://"):
        path = url.removeprefix("file://")
        return LocalStore(path, read_only=read_only)
    return FsspecStore.from_url(url, storage_options=dict(storage_options or {}), read_only=read_only)


def open_store(url: str, mode: str = "r", storage_options: Mapping[str, Any] | None = None) -> SurveyStore:
    """Open a survey store.

    Parameters
    ----------
    url
        Local path or fsspec URL of the store's root group.
    mode
        ``"r"`` read only, ``"a"`` read/write (created if absent), ``"w"`` create anew.
    storage_options
        Passed to fsspec (credentials come from the environment by default).
    """
    if mode not in ("r", "a", "w"):
        raise ValueError(f"mode must be 'r', 'a' or 'w', not {mode!r}")
    try:
        group = zarr.open_group(_zarr_store(url, mode == "r", storage_options), mode=mode)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError) as exc:
        raise StoreError("no survey store here (not a Zarr group)", store=url) from exc
    marker = group.attrs.get(STORE_MARKER)
    if marker is None:
        if mode == "r":
            raise StoreError(f"not a distributed_pz store (no '{STORE_MARKER}' attribute)", store=url)
        group.attrs[STORE_MARKER] = {"schema_version": SCHEMA_VERSION}
    elif marker.get("schema_version") != SCHEMA_VERSION:
        raise StoreError(
            f"schema version {marker.get('schema_version')} is not supported (expected {SCHEMA_VERSION})",
            store=url,
        )
    return SurveyStore(url=url, group=group)


@dataclass
class SurveyStore:
    """A survey store: a Zarr group whose child groups are tiles."""

    url: str
    group: zarr.Group

    def tile_names(self) -> list[str]:
        """Names of every tile in the store, sorted."""
        return sorted(name for name, _ in self.group.groups())

    def tile(self, name: str) -> Tile:
        """Open an existing tile."""
        try:
            group = self.group[name]
        except KeyError:
            raise StoreError(
                f"no such tile (tiles: {self.tile_names()})", store=self.url, tile=name
            ) from None
        if not isinstance(group, zarr.Group):
            raise StoreError("not a tile group", store=self.url, tile=name)
        return Tile(store_url=self.url, name=name, group=group)

    def content_hash(self, tiles: Iterable[str], arrays: Iterable[str]) -> str:
        """sha256 over the bytes of the tiles' metadata and of the named arrays (every file, sorted).

        Two stores with the same hash hold the same data in those tiles and arrays, whatever
        their URL (the training-store hash of an ensemble).
        """
        fs, root = fsspec.core.url_to_fs(self.url)
        digest = hashlib.sha256()
        names = sorted(set(arrays))
        for tile in tiles:
            paths = [f"{root}/{tile}/zarr.json"]
            for name in names:
                paths += sorted(fs.find(f"{root}/{tile}/{name}"))
            for path in paths:
                digest.update(path.removeprefix(root).encode() + b"\0")
                digest.update(fs.cat_file(path))
        return digest.hexdigest()

    def create_tile(
        self,
        name: str,
        n_rows: int,
        attrs: Mapping[str, Any],
        *,
        arrays: Iterable[str] = ("cutout", "flux_exp", "flux_exp_err", "z_spec", "class"),
        n_exposures: int = 0,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        shard_rows: int = DEFAULT_SHARD_ROWS,
        overwrite: bool = False,
    ) -> Tile:
        """Create an empty tile with every required array and the optional ones named in ``arrays``.

        Parameters
        ----------
        attrs
            Tile attributes (band_set, bands, image_bands, pixel_scale_arcsec, psf_fwhm_arcsec,
            zeropoint, ...); ``schema_version``, ``tile``, ``n_rows`` and ``complete`` are set here.
        arrays
            Optional arrays to create; ``cutout`` needs image bands, the exposure arrays
            need ``n_exposures > 0``.
        """
        if shard_rows % chunk_rows:
            raise ValueError(f"shard_rows ({shard_rows}) must be a multiple of chunk_rows ({chunk_rows})")
        dims = {
            "B": len(attrs["bands"]),
            "C": len(attrs.get("image_bands", ())),
            "E": n_exposures,
            "P": CUTOUT_SIZE,
        }
        wanted = [s for s in ARRAY_SPECS.values() if s.required or s.name in set(arrays)]
        unknown = set(arrays) - set(ARRAY_SPECS)
        if unknown:
            raise ValueError(f"unknown arrays {sorted(unknown)}; known: {sorted(ARRAY_SPECS)}")
        if "cutout" in arrays and dims["C"] == 0:
            raise ValueError(f"tile {name!r}: a cutout array needs image_bands")
        if {"flux_exp", "flux_exp_err"} & set(arrays) and n_exposures <= 0:
            raise ValueError(f"tile {name!r}: exposure arrays need n_exposures > 0")
        group = self.group.create_group(name, overwrite=overwrite)
        group.attrs.update(
            {
                **attrs,
                "schema_version": SCHEMA_VERSION,
                "tile": name,
                "n_rows": int(n_rows),
                "complete": False,
            }
        )
        for spec in wanted:
            shape = spec.shape(n_rows, dims)
            # one chunk per cutout channel inside each shard: a reader of one band decodes one band
            inner = (1, *shape[2:]) if spec.name == "cutout" else shape[1:]
            group.create_array(
                spec.name,
                shape=shape,
                dtype=spec.dtype,
                chunks=(chunk_rows, *inner),
                shards=(shard_rows, *shape[1:]),
                compressors=BloscCodec(cname="zstd", clevel=3, shuffle="shuffle"),
                fill_value=_fill_value(spec.dtype),
                dimension_names=("source", *spec.trailing),
            )
        return Tile(store_url=self.url, name=name, group=group)

    def write_tile(
        self, name: str, arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any], **kwargs
    ) -> Tile:
        """Create a tile and write ``arrays`` (all rows) into it, marking it complete."""
        n_rows = len(arrays["object_id"])
        n_exp = arrays["flux_exp"].shape[2] if "flux_exp" in arrays else 0
        optional = [k for k in arrays if not ARRAY_SPECS[k].required]
        tile = self.create_tile(name, n_rows, attrs, arrays=optional, n_exposures=n_exp, **kwargs)
        for start, stop in tile.row_blocks():
            tile.write_block(start, {k: v[start:stop] for k, v in arrays.items()})
        tile.mark_complete()
        return tile


def _fill_value(dtype: np.dtype):
    return np.nan if dtype.kind == "f" else 0


@dataclass
class Tile:
    """One tile of a survey store: arrays sharing the source axis, plus attributes."""

    store_url: str
    name: str
    group: zarr.Group

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.group.attrs)

    @property
    def n_rows(self) -> int:
        return int(self.group.attrs["n_rows"])

    @property
    def bands(self) -> tuple[str, ...]:
        return tuple(self.group.attrs["bands"])

    @property
    def image_bands(self) -> tuple[str, ...]:
        return tuple(self.group.attrs.get("image_bands", ()))

    @property
    def band_set(self) -> BandSet:
        """The tile's bands and image bands as a band set (named by its ``band_set`` attribute)."""
        return BandSet(
            name=str(self.group.attrs.get("band_set", self.name)),
            bands=self.bands,
            image_bands=self.image_bands,
        )

    @property
    def complete(self) -> bool:
        return bool(self.group.attrs.get("complete", False))

    def array_names(self) -> list[str]:
        return sorted(name for name, _ in self.group.arrays())

    def has(self, name: str) -> bool:
        return name in self.array_names()

    def array(self, name: str) -> zarr.Array:
        try:
            arr = self.group[name]
        except KeyError:
            raise self.error("array is missing", array=name) from None
        if not isinstance(arr, zarr.Array):
            raise self.error("not an array", array=name)
        return arr

    @property
    def shard_rows(self) -> int:
        arr = self.array("object_id")
        return int((arr.shards or arr.chunks)[0])

    @property
    def chunk_rows(self) -> int:
        return int(self.array("object_id").chunks[0])

    def row_blocks(self, rows_per_block: int | None = None) -> list[tuple[int, int]]:
        """Row ranges ``[start, stop)`` covering the tile, aligned to shard boundaries."""
        step = rows_per_block or self.shard_rows
        if step % self.chunk_rows:
            raise ValueError(
                f"rows_per_block ({step}) must be a multiple of the chunk rows ({self.chunk_rows})"
            )
        return [(s, min(s + step, self.n_rows)) for s in range(0, self.n_rows, step)]

    def read(self, names: Iterable[str], start: int = 0, stop: int | None = None) -> dict[str, np.ndarray]:
        """Read rows ``[start, stop)`` of the named arrays; errors name the failing chunk."""
        stop = self.n_rows if stop is None else stop
        return {name: self._read_one(name, start, stop) for name in names}

    def read_rows(
        self,
        names: Iterable[str],
        start: int = 0,
        stop: int | None = None,
        image_bands: Iterable[str] | None = None,
    ) -> TileArrays:
        """Rows ``[start, stop)`` of the named arrays as :class:`TileArrays`, ``cutout`` cut to ``image_bands``.

        Only the cutout channels of ``image_bands`` (default: all) are read, in the tile's channel
        order; with the channel-chunked layout of :meth:`SurveyStore.create_tile` only their bytes
        are decoded (older stores, chunked over all channels, read as before).
        """
        names = list(names)
        stop = self.n_rows if stop is None else stop
        attrs = self.attrs
        wanted = set(self.image_bands if image_bands is None else image_bands)
        keep = [i for i, b in enumerate(self.image_bands) if b in wanted]
        arrays = {name: self._read_one(name, start, stop) for name in names if name != "cutout"}
        if "cutout" in names:
            arrays["cutout"] = self._read_one("cutout", start, stop, keep)
        attrs["image_bands"] = [self.image_bands[i] for i in keep]
        return TileArrays.from_attrs(arrays, attrs)

    def _read_one(self, name: str, start: int, stop: int, channels: list[int] | None = None) -> np.ndarray:
        try:
            arr = self.array(name)
            if channels is None or channels == list(range(arr.shape[1])):
                return arr[start:stop]
            if channels == list(range(channels[0], channels[-1] + 1)):
                return arr[start:stop, channels[0] : channels[-1] + 1]
            return arr.oindex[start:stop, channels]
        except Exception as exc:  # zarr / codec errors come in many types; locate and re-raise
            located = self.first_bad_chunk(name, start, stop)
            raise located or self.error(
                f"read of rows {start}-{stop - 1} failed ({type(exc).__name__}: {exc})", array=name
            ) from exc

    def first_bad_chunk(self, name: str, start: int = 0, stop: int | None = None) -> StoreError | None:
        """Decode the chunks of ``name`` covering rows ``[start, stop)`` one by one; the first failure."""
        arr, step = self.array(name), self.chunk_rows
        stop = self.n_rows if stop is None else stop
        for chunk_start in range(start - start % step, stop, step):
            chunk_stop = min(chunk_start + step, self.n_rows)
            try:
                arr[chunk_start:chunk_stop]
            except Exception as exc:  # reported, with its type, in the message
                return self.error(
                    f"unreadable chunk ({type(exc).__name__}: {exc})",
                    array=name,
                    chunk=chunk_start // step,
                    rows=(chunk_start, chunk_stop),
                )
        return None

    def write_block(self, start: int, arrays: Mapping[str, np.ndarray]) -> None:
        """Write rows starting at ``start``; the block must cover whole shards (or end the tile)."""
        n = {len(v) for v in arrays.values()}
        if len(n) != 1:
            raise self.error(
                f"arrays of one block differ in length: { {k: len(v) for k, v in arrays.items()} }"
            )
        stop = start + n.pop()
        if start % self.shard_rows or (stop % self.shard_rows and stop != self.n_rows):
            raise self.error(
                f"block rows {start}-{stop - 1} are not aligned to shards of {self.shard_rows} rows"
            )
        if stop > self.n_rows:
            raise self.error(f"block rows {start}-{stop - 1} exceed the tile's {self.n_rows} rows")
        for name, values in arrays.items():
            arr = self.array(name).with_config({"write_empty_chunks": True})  # every shard is written
            expected = (stop - start, *arr.shape[1:])
            if values.shape != expected:
                raise self.error(f"block has shape {values.shape}, expected {expected}", array=name)
            arr[start:stop] = np.asarray(values, dtype=arr.dtype)

    def mark_complete(self) -> None:
        self.group.attrs["complete"] = True

    def error(self, message: str, **where) -> StoreError:
        return StoreError(message, store=self.store_url, tile=self.name, **where)
