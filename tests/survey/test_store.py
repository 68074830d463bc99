"""Survey store: round trips through every URL kind, aligned writes, and one-line errors."""

from __future__ import annotations

import os
import uuid

import numpy as np
import pytest

from distributed_pz.survey.store.errors import StoreError
from distributed_pz.survey.store.store import absolute_url, open_store
from distributed_pz.survey.store.validate import check_tile, validate_tile
from tests.fixtures import make_tile_arrays


def _write(url, arrays, attrs, **kwargs):
    store = open_store(url, mode="a")
    return store.write_tile("T1", arrays, attrs, chunk_rows=64, shard_rows=128, **kwargs)


@pytest.mark.parametrize("kind", ["path", "file", "memory"])
def test_round_trip_every_url_kind(tmp_path, tile_arrays, kind):
    arrays, attrs = tile_arrays
    url = {
        "path": str(tmp_path / "s.zarr"),
        "file": f"file://{tmp_path}/s.zarr",
        "memory": f"memory://{uuid.uuid4().hex}/s.zarr",
    }[kind]
    _write(url, arrays, attrs)
    tile = open_store(url).tile("T1")
    validate_tile(tile, deep=True)
    back = tile.read(arrays)
    for name, values in arrays.items():
        np.testing.assert_array_equal(back[name], values, err_msg=name)
    assert tile.bands == tuple(attrs["bands"]) and tile.complete
    assert tile.read(["mag"], 100, 130)["mag"].shape == (30, 9)


def test_catalogue_only_tile_without_optional_arrays(tmp_path, tile_arrays):
    arrays, attrs = tile_arrays
    required = {k: arrays[k] for k in ("object_id", "ra", "dec", "mag", "mag_err", "mag_flag")}
    _write(str(tmp_path / "s.zarr"), required, {**attrs, "image_bands": [], "psf_fwhm_arcsec": {}})
    tile = open_store(str(tmp_path / "s.zarr")).tile("T1")
    assert check_tile(tile, deep=True) == []
    assert not tile.has("cutout")


def test_unaligned_block_write_is_refused(tmp_path, tile_arrays):
    arrays, attrs = tile_arrays
    tile = open_store(str(tmp_path / "s.zarr"), mode="a").create_tile(
        "T1", 300, attrs, arrays=(), chunk_rows=64, shard_rows=128
    )
    block = {k: arrays[k][:100] for k in ("object_id", "ra", "dec")}
    with pytest.raises(StoreError, match="not aligned to shards of 128 rows"):
        tile.write_block(64, block)


def test_unwritten_tile_is_incomplete_and_missing_shard_is_named(tmp_path, tile_arrays):
    arrays, attrs = tile_arrays
    tile = open_store(str(tmp_path / "s.zarr"), mode="a").create_tile(
        "T1", 300, attrs, arrays=(), chunk_rows=64, shard_rows=128
    )
    tile.write_block(
        0, {k: arrays[k][:128] for k in ("object_id", "ra", "dec", "mag", "mag_err", "mag_flag")}
    )
    messages = [str(p) for p in check_tile(tile)]
    assert messages == [
        f"store '{tile.store_url}', tile 'T1': tile is incomplete: its writer did not finish (rerun the writer)"
    ]
    tile.mark_complete()
    first = str(check_tile(tile)[0])
    assert "tile 'T1', array 'object_id', chunk 2 (rows 128-255): shard 'c/1' is missing" in first


def test_missing_array_wrong_shape_and_dtype(tmp_path, tile_arrays):
    arrays, attrs = tile_arrays
    url = str(tmp_path / "s.zarr")
    tile = _write(url, arrays, attrs)
    del tile.group["mag_err"]
    assert str(check_tile(tile)[0]).endswith("tile 'T1', array 'mag_err': required array is missing")

    tile = _write(url, arrays, attrs, overwrite=True)
    tile.group.create_array("z_spec", shape=(300, 2), dtype="f4", chunks=(64, 2), overwrite=True)
    assert "array 'z_spec': shape (300, 2), expected (300,)" in str(check_tile(tile)[0])

    tile = _write(url, arrays, attrs, overwrite=True)
    tile.group.create_array("class", shape=(300,), dtype="f8", chunks=(64,), overwrite=True)
    assert "array 'class': dtype float64, expected uint8" in str(check_tile(tile)[0])


def test_corrupt_chunk_is_named_on_read_and_in_deep_validation(tmp_path, tile_arrays):
    arrays, attrs = tile_arrays
    url = str(tmp_path / "s.zarr")
    _write(url, arrays, attrs)
    shard = tmp_path / "s.zarr" / "T1" / "mag" / "c" / "1" / "0"
    raw = bytearray(shard.read_bytes())
    raw[10:200] = os.urandom(190)
    shard.write_bytes(bytes(raw))
    tile = open_store(url).tile("T1")
    assert check_tile(tile) == []  # shallow: structure is fine
    deep = check_tile(tile, deep=True)
    assert len(deep) == 1 and "array 'mag', chunk 2 (rows 128-191): unreadable chunk" in str(deep[0])
    with pytest.raises(StoreError, match=r"tile 'T1', array 'mag', chunk 2 \(rows 128-191\)"):
        tile.read(["mag"])


def test_duplicate_ids_and_bad_coordinates_found_by_deep_check(tmp_path):
    arrays, attrs = make_tile_arrays(n=200)
    arrays["object_id"][5] = arrays["object_id"][6]
    arrays["dec"][0] = 95.0
    tile = _write(str(tmp_path / "s.zarr"), arrays, attrs)
    messages = [str(p) for p in check_tile(tile, deep=True)]
    assert any("1 duplicate object_id values" in m for m in messages)
    assert any("array 'dec': values outside [-90, 90] deg" in m for m in messages)


def test_open_errors_name_the_store(tmp_path):
    with pytest.raises(StoreError, match="no survey store here"):
        open_store(str(tmp_path / "absent.zarr"))
    with pytest.raises(StoreError, match="no such tile"):
        open_store(str(tmp_path / "s.zarr"), mode="a").tile("nope")


def test_absolute_url_makes_local_paths_absolute_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert absolute_url("out/s.zarr") == str(tmp_path / "out" / "s.zarr")
    assert absolute_url(f"file://{tmp_path}/s.zarr") == str(tmp_path / "s.zarr")
    assert absolute_url("s3://bucket/s.zarr") == "s3://bucket/s.zarr"
    assert absolute_url("memory://x/s.zarr") == "memory://x/s.zarr"
