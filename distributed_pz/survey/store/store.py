"""Open, create, read and write survey stores (Zarr v3, one group per tile) through fsspec URLs.

A local path, ``file://``, ``memory://`` and any fsspec URL (``s3://``, ``gs://`` once the user
installs s3fs / gcsfs) name a store. Tiles are written in row blocks aligned to shards, so
concurrent writers never share a shard; a tile is marked ``complete`` only when all rows are in.

Every problem is a :class:`StoreError` naming store, tile, array and chunk (or the metadata file):
a tile name outside :data:`~distributed_pz.survey.store.schema.TILE_NAME_PATTERN`, an unreadable
``zarr.json``, a missing shard (which Zarr itself would read back as fill values), a chunk
whose checksum or codec fails. Tiles are listed without parsing their metadata, so one broken
tile never hides the others.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import fsspec
import numpy as np
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec
from zarr.core.sync import sync
from zarr.storage import FsspecStore, LocalStore

from distributed_pz.bands import BandSet
from distributed_pz.survey.store.errors import StoreError
from distributed_pz.survey.store.schema import (
    ARRAY_SPECS,
    CUTOUT_SIZE,
    READABLE_SCHEMA_VERSIONS,
    SCHEMA_VERSION,
    TILE_NAME_PATTERN,
)
from distributed_pz.survey.store.tiles import TileArrays

STORE_MARKER = "distributed_pz"
DEFAULT_CHUNK_ROWS = 1024
DEFAULT_SHARD_ROWS = 8192


def absolute_url(url: str) -> str:
    """``url`` with a local path made absolute, so processes elsewhere (Ray, Dask workers) find it."""
    if "://" in url and not url.startswith("file://"):
        return url
    return os.path.abspath(url.removeprefix("file://"))


def check_tile_name(name: str, store: str | None = None) -> str:
    """``name`` if it is a safe tile name (:data:`~distributed_pz.survey.store.schema.TILE_NAME_PATTERN`).

    Raises
    ------
    StoreError
        Naming the tile, for anything else: a path, ``..``, a separator, spaces, an empty name.
    """
    if not isinstance(name, str) or re.fullmatch(TILE_NAME_PATTERN, name) is None:
        raise StoreError(
            "not a valid tile name: use letters, digits and '_.+-', starting with a letter or digit "
            "(a tile name becomes a file name)",
            store=store,
            tile=str(name),
        )
    return name


def _metadata_error(url: str, key: str, exc: Exception, **where) -> StoreError:
    path = f"{url.rstrip('/')}/{key}"
    return StoreError(f"unreadable metadata {path!r} ({type(exc).__name__}: {exc})", store=url, **where)


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
    except (ValueError, TypeError, KeyError) as exc:  # a truncated or edited root zarr.json
        raise _metadata_error(url, "zarr.json", exc) from None
    marker = group.attrs.get(STORE_MARKER)
    if marker is None:
        if mode == "r":
            raise StoreError(f"not a distributed_pz store (no '{STORE_MARKER}' attribute)", store=url)
        group.attrs[STORE_MARKER] = {"schema_version": SCHEMA_VERSION}
    elif marker.get("schema_version") not in READABLE_SCHEMA_VERSIONS:
        raise StoreError(
            f"schema version {marker.get('schema_version')} is not supported "
            f"(readable: {list(READABLE_SCHEMA_VERSIONS)})",
            store=url,
        )
    return SurveyStore(url=url, group=group)


@dataclass
class SurveyStore:
    """A survey store: a Zarr group whose child groups are tiles."""

    url: str
    group: zarr.Group

    def tile_names(self) -> list[str]:
        """Names of every child node with metadata, sorted; no child's ``zarr.json`` is parsed.

        A name outside the tile-name pattern (an older store) is listed too: opening it with
        :meth:`tile` then says what is wrong with it.
        """
        return _child_nodes(self.group)

    def tile(self, name: str) -> Tile:
        """Open an existing tile (a :class:`StoreError` names a bad name or unreadable metadata)."""
        check_tile_name(name, self.url)
        try:
            group = self.group[name]
        except KeyError:
            raise StoreError(
                f"no such tile (tiles: {self.tile_names()})", store=self.url, tile=name
            ) from None
        except (ValueError, TypeError) as exc:  # zarr.json truncated or edited
            raise _metadata_error(self.url, f"{name}/zarr.json", exc, tile=name) from None
        if not isinstance(group, zarr.Group):
            raise StoreError("not a tile group", store=self.url, tile=name)
        return Tile(store_url=self.url, name=name, group=group)

    def content_hash(self, tiles: Iterable[str], arrays: Iterable[str]) -> str:
        """sha256 over the tiles' metadata and the bytes of the named arrays (every file, sorted).

        Two stores with the same hash hold the same data in those tiles and arrays, whatever
        their URL and however often they were written (the training-store hash of an ensemble):
        a tile's ``write_id``, which names one write rather than its content, is left out.
        """
        fs, root = fsspec.core.url_to_fs(self.url)
        digest = hashlib.sha256()
        names = sorted(set(arrays))
        for tile in tiles:
            meta = f"{root}/{tile}/zarr.json"
            digest.update(meta.removeprefix(root).encode() + b"\0")
            digest.update(_without_write_id(fs.cat_file(meta)))
            for path in [p for name in names for p in sorted(fs.find(f"{root}/{tile}/{name}"))]:
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
        check_tile_name(name, self.url)
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
                "write_id": uuid.uuid4().hex,
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
                compressors=(BloscCodec(cname="zstd", clevel=3, shuffle="shuffle"), Crc32cCodec()),
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


def _without_write_id(metadata: bytes) -> bytes:
    """A tile's ``zarr.json`` as it hashes: unchanged unless it records a ``write_id``."""
    doc = json.loads(metadata)
    if doc.get("attributes", {}).pop("write_id", None) is None:
        return metadata
    return json.dumps(doc, sort_keys=True).encode()


def _child_nodes(group: zarr.Group) -> list[str]:
    """Names of the children of ``group`` that have a ``zarr.json``, read from a listing only."""
    store, prefix = group.store, group.path

    async def listing() -> list[str]:
        names = [k async for k in store.list_dir(prefix)]
        base = f"{prefix}/" if prefix else ""
        return sorted([n for n in names if n != "zarr.json" and await store.exists(f"{base}{n}/zarr.json")])

    return sync(listing())


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

    @property
    def write_id(self) -> str | None:
        """New at every (re)write of the tile; ``None`` for tiles of schema version 1."""
        return self.group.attrs.get("write_id")

    def content_id(self) -> str:
        """What a resumable reader keys its work by: the ``write_id``, else a listing fingerprint.

        The fingerprint (schema-1 tiles) hashes the tile's ``zarr.json`` and the name, size and
        modification time of every file below it: any rewrite changes it.
        """
        if self.write_id:
            return f"write:{self.write_id}"
        fs, root = fsspec.core.url_to_fs(self.store_url)
        base = f"{root.rstrip('/')}/{self.name}"
        digest = hashlib.sha256(fs.cat_file(f"{base}/zarr.json"))
        for path, info in sorted(fs.find(base, detail=True).items()):
            stamp = info.get("mtime") or info.get("LastModified") or info.get("updated") or ""
            digest.update(f"{path.removeprefix(base)}\0{info.get('size')}\0{stamp}\0".encode())
        return f"files:{digest.hexdigest()}"

    def array_names(self) -> list[str]:
        """Names of the tile's arrays, from a listing (no array's metadata is parsed)."""
        return _child_nodes(self.group)

    def has(self, name: str) -> bool:
        return name in self.array_names()

    def array(self, name: str) -> zarr.Array:
        try:
            arr = self.group[name]
        except KeyError:
            raise self.error("array is missing", array=name) from None
        except (ValueError, TypeError) as exc:  # zarr.json truncated or edited
            raise _metadata_error(
                self.store_url, f"{self.name}/{name}/zarr.json", exc, tile=self.name, array=name
            ) from None
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
        missing = self.missing_shard(name, start, stop)
        if missing:
            raise missing
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

    def missing_shard(self, name: str, start: int = 0, stop: int | None = None) -> StoreError | None:
        """The first shard of ``name`` covering rows ``[start, stop)`` that is absent from the store.

        Zarr reads an absent shard as fill values (NaN, 0), which would pass for data: every
        shard of a tile is written (``write_empty_chunks``), so an absent one is a loss.
        """
        arr = self.array(name)
        stop = self.n_rows if stop is None else stop
        step = int((arr.shards or arr.chunks)[0])
        zeros = (0,) * (arr.ndim - 1)
        for index in range(start // step, -(-stop // step)):
            key = arr.metadata.encode_chunk_key((index, *zeros))
            if not sync(arr.store.exists(f"{arr.path}/{key}")):
                first = index * step
                return self.error(
                    f"shard {key!r} is missing (deleted, or never written)",
                    array=name,
                    chunk=first // self.chunk_rows,
                    rows=(first, min(first + step, self.n_rows)),
                )
        return None

    def has_checksums(self, name: str) -> bool:
        """Whether every chunk of ``name`` carries a crc32c checksum (schema version 2)."""
        codecs = self.array(name).metadata.codecs
        inner = [c for codec in codecs for c in getattr(codec, "codecs", ())]
        return any(isinstance(c, Crc32cCodec) for c in (*codecs, *inner))

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
