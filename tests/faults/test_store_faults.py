"""RELIABILITY.md F7-F17, F21-F24: damaged stores and run directories under ``dpz predict`` and ``dpz validate``.

Each damaged tile must fail alone, with one line naming store, tile, array and chunk (or the
file), while every other tile's catalogue equals the reference; nothing is written for the
damaged tile and no row is lost or duplicated.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
import zarr

from distributed_pz.cli import main
from distributed_pz.infer.local import predict_tile_local
from distributed_pz.infer.manifest import FAILURES, RUN_MANIFEST, STAGING, ManifestError
from distributed_pz.infer.stream import TileFailed, predict_store
from distributed_pz.survey.store.store import open_store

from ..fixtures import make_tile_arrays
from .conftest import (
    SHARD_ROWS,
    TILES,
    assert_catalogues,
    assert_same_rows,
    overwrite_middle,
    read_parquet,
    shard,
    tile_arrays,
    truncate,
)

pytestmark = [pytest.mark.faults, pytest.mark.distributed, pytest.mark.slow]


def _skip_run(client, world, store, out, **kwargs):
    return predict_store(
        client, str(store), str(world["ensemble"]), str(out), on_error="skip", progress=False, **kwargs
    )


def _validate(store, *extra, capsys) -> tuple[int, list[str]]:
    rc = main(["validate", str(store), *extra])
    err = capsys.readouterr().err
    return rc, [line for line in err.splitlines() if line.startswith("error:")]


DAMAGE = {
    # row: (tile, array, shard, damage, expected message)
    "F7": ("T2", "mag", 1, overwrite_middle, r"array 'mag', chunk \d+ \(rows \d+-\d+\): unreadable chunk"),
    "F9": ("T1", "flux_exp", 2, overwrite_middle, r"array 'flux_exp', chunk \d+ .*: unreadable chunk"),
    "F10": ("T1", "object_id", 3, truncate, r"array 'object_id', chunk \d+ .*: unreadable chunk"),
    "F11": ("T2", "mag", 7, lambda p: p.unlink(), r"array 'mag', chunk 14 \(rows 1792-1999\): shard 'c/7/0'"),
    "F12": ("T1", "flux_exp", 7, lambda p: p.unlink(), r"array 'flux_exp', chunk 14 .*: shard 'c/7/0/0'"),
    "F13": (
        "T0",
        "object_id",
        0,
        lambda p: p.unlink(),
        r"array 'object_id', chunk 0 \(rows 0-255\): shard 'c/0'",
    ),
}


@pytest.mark.parametrize("row", sorted(DAMAGE))
def test_damaged_shard_fails_its_tile_alone_and_names_the_chunk(
    row, client, world, store_copy, tmp_path, capsys
):
    tile, array, index, damage, message = DAMAGE[row]
    damage(shard(store_copy, tile, array, index))
    summary = _skip_run(client, world, store_copy, tmp_path / "out", rows_per_task=SHARD_ROWS)
    assert list(summary.failed) == [tile]
    assert summary.failed[tile].startswith(f"store '{store_copy}', tile '{tile}', array '{array}'")
    assert re.search(message, summary.failed[tile]), summary.failed[tile]
    assert not (tmp_path / "out" / f"{tile}.parquet").exists()
    others = [t for t in TILES if t != tile]
    assert_catalogues(tmp_path / "out", world["reference"], others)
    recorded = json.loads((tmp_path / "out" / FAILURES).read_text())
    assert recorded[tile]["error"] == summary.failed[tile]
    rc, errors = _validate(store_copy, "--deep", capsys=capsys)
    assert rc == 1 and len(errors) == 1 and f"tile '{tile}', array '{array}'" in errors[0]


def test_f8_corrupted_cutout_is_caught_by_its_checksum(tmp_path, capsys):
    arrays, attrs = tile_arrays(0, n_rows=300)
    arrays["cutout"] = make_tile_arrays(300)[0]["cutout"]  # incompressible noise: stored raw by blosc
    url = tmp_path / "cut.zarr"
    open_store(str(url), "a").write_tile("C0", arrays, attrs, chunk_rows=64, shard_rows=128)
    overwrite_middle(shard(url, "C0", "cutout", 0))
    rc, errors = _validate(url, "--deep", capsys=capsys)
    assert rc == 1 and len(errors) == 1
    assert "tile 'C0', array 'cutout', chunk" in errors[0] and "checksum" in errors[0]
    with pytest.raises(ValueError, match=r"tile 'C0', array 'cutout', chunk \d+"):
        open_store(str(url)).tile("C0").read(["cutout"])


def test_f14_broken_array_metadata_names_the_file_and_hides_nothing(
    client, world, store_copy, tmp_path, capsys
):
    truncate(store_copy / "T2" / "mag" / "zarr.json")
    (shard(store_copy, "T0", "ra", 1)).unlink()  # a second problem in another tile
    rc, errors = _validate(store_copy, capsys=capsys)
    assert rc == 1 and len(errors) == 2
    assert "tile 'T0', array 'ra'" in errors[0] and "shard 'c/1' is missing" in errors[0]
    assert f"'{store_copy}/T2/mag/zarr.json'" in errors[1] and "unreadable metadata" in errors[1]
    (shard(store_copy, "T0", "ra", 1)).write_bytes((world["store"] / "T0" / "ra" / "c" / "1").read_bytes())
    summary = _skip_run(client, world, store_copy, tmp_path / "out")
    assert list(summary.failed) == ["T2"] and "T2/mag/zarr.json" in summary.failed["T2"]
    assert_catalogues(tmp_path / "out", world["reference"], ("T0", "T1"))


def test_f15_broken_tile_metadata_fails_that_tile_only(client, world, store_copy, tmp_path, capsys):
    truncate(store_copy / "T1" / "zarr.json")
    rc, errors = _validate(store_copy, capsys=capsys)
    assert rc == 1 and len(errors) == 1 and f"'{store_copy}/T1/zarr.json'" in errors[0]
    summary = _skip_run(client, world, store_copy, tmp_path / "out")
    assert list(summary.failed) == ["T1"] and "T1/zarr.json" in summary.failed["T1"]
    assert_catalogues(tmp_path / "out", world["reference"], ("T0", "T2"))


def test_f16_broken_root_metadata_is_one_line(world, store_copy, tmp_path, capsys):
    truncate(store_copy / "zarr.json")
    rc, errors = _validate(store_copy, capsys=capsys)
    assert rc == 1 and errors == [errors[0]] and f"'{store_copy}/zarr.json'" in errors[0]
    out = tmp_path / "out"
    rc = main(["predict", "--store", str(store_copy), "--bundle", str(world["ensemble"]), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and f"{store_copy}/zarr.json" in err[0] and "Traceback" not in err[0]
    assert not out.exists()  # refused before a cluster started or anything was written


def test_f17_incomplete_tile_is_reported_and_skipped(client, world, store_copy, tmp_path, capsys):
    meta = store_copy / "T0" / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["attributes"]["complete"] = False
    meta.write_text(json.dumps(doc))
    rc, errors = _validate(store_copy, capsys=capsys)
    assert rc == 1 and len(errors) == 1 and "tile 'T0': tile is incomplete" in errors[0]
    summary = _skip_run(client, world, store_copy, tmp_path / "out")
    assert list(summary.failed) == ["T0"] and "not complete" in summary.failed["T0"]
    assert_catalogues(tmp_path / "out", world["reference"], ("T1", "T2"))


def test_f21_a_tile_rewritten_between_runs_is_predicted_again_never_mixed(
    client, world, store_copy, tmp_path
):
    out = tmp_path / "out"
    bad = shard(store_copy, "T1", "object_id", 3)
    good = bad.read_bytes()
    overwrite_middle(bad)
    with pytest.raises(TileFailed, match="tile 'T1', array 'object_id'"):
        predict_store(
            client,
            str(store_copy),
            str(world["ensemble"]),
            str(out),
            rows_per_task=SHARD_ROWS,
            max_in_flight=1,
            progress=False,
        )
    staged = len(list((out / STAGING / "T1").glob("part-*.parquet")))
    assert staged == 3 and (out / "T0.parquet").is_file()
    bad.write_bytes(good)
    store = open_store(str(store_copy), "a")
    for name, index in (("T0", 0), ("T1", 1)):  # same names and rows, other content
        arrays, attrs = tile_arrays(index, seed=50 + index)
        arrays["object_id"] = arrays["object_id"] + 500_000
        store.write_tile(name, arrays, attrs, chunk_rows=128, shard_rows=SHARD_ROWS, overwrite=True)
    summary = predict_store(client, str(store_copy), str(world["ensemble"]), str(out), progress=False)
    assert (
        summary.already_done == [] and sorted(summary.committed) == list(TILES) and summary.parts_reused == 0
    )
    for name in ("T0", "T1"):
        assert_same_rows(
            read_parquet(out / f"{name}.parquet"),
            predict_tile_local(str(store_copy), name, world["predictor"]),
        )
    assert_same_rows(read_parquet(out / "T2.parquet"), world["reference"]["T2"])
    assert summary.rows_predicted == 3 * 2000


@pytest.mark.parametrize("row, name", [("F22", FAILURES), ("F23", RUN_MANIFEST)])
def test_corrupt_run_files_are_named(row, name, client, world, tmp_path):
    out = tmp_path / "out"
    _skip_run(client, world, world["store"], out, tiles=["T0"])
    (out / FAILURES).write_text('{"T9": {"error": "x", "utc": "now"}}\n')
    truncate(out / name)
    with pytest.raises(ManifestError, match=f"{out / name}: not JSON"):
        _skip_run(client, world, world["store"], out)


def test_f24_one_larger_tile_parquet_equals_fits_and_ids_are_unique(client, world, tmp_path):
    from distributed_pz.catalog import read_catalog

    out = tmp_path / "out"
    for fmt in ("parquet", "fits"):
        summary = predict_store(
            client,
            str(world["store"]),
            str(world["ensemble"]),
            str(out / fmt),
            fmt=fmt,
            rows_per_task=SHARD_ROWS,
            max_in_flight=2,
            progress=False,
        )
        assert sorted(summary.committed) == list(TILES)
    for tile in TILES:
        parquet = read_parquet(out / "parquet" / f"{tile}.parquet")
        fits = read_catalog(out / "fits" / f"{tile}.fits").columns
        assert_same_rows(parquet, world["reference"][tile])
        assert_same_rows({k: np.asarray(v) for k, v in fits.items()}, world["reference"][tile])


def test_unsafe_group_name_in_a_store_fails_that_tile_only(client, world, store_copy, tmp_path):
    zarr.open_group(str(store_copy), mode="a").create_group("bad name")
    summary = _skip_run(client, world, store_copy, tmp_path / "out")
    assert list(summary.failed) == ["bad name"] and "not a valid tile name" in summary.failed["bad name"]
    assert_catalogues(tmp_path / "out", world["reference"])


def test_f8_a_schema_1_store_still_reads_and_validate_says_it_lacks_checksums(tmp_path, capsys):
    from zarr.codecs import BloscCodec

    from distributed_pz.survey.store.schema import ARRAY_SPECS

    url = tmp_path / "old.zarr"
    arrays, attrs = tile_arrays(2, n_rows=300)
    root = zarr.open_group(str(url), mode="w")
    root.attrs["distributed_pz"] = {"schema_version": 1}
    group = root.create_group("OLD")
    group.attrs.update({**attrs, "schema_version": 1, "tile": "OLD", "n_rows": 300, "complete": True})
    for name, values in arrays.items():
        spec = ARRAY_SPECS[name]
        arr = group.create_array(
            name, shape=values.shape, dtype=values.dtype, chunks=(64, *values.shape[1:]),
            shards=(128, *values.shape[1:]), compressors=BloscCodec(cname="zstd", clevel=3),
            fill_value=0, dimension_names=("source", *spec.trailing),
        )  # fmt: skip
        arr.with_config({"write_empty_chunks": True})[:] = values
    assert np.array_equal(open_store(str(url)).tile("OLD").read(["mag"])["mag"], arrays["mag"])
    rc = main(["validate", str(url), "--deep"])
    err = capsys.readouterr()
    assert rc == 0 and err.out.startswith("ok: ")
    (note,) = err.err.strip().splitlines()
    assert note.startswith("note: store") and "tile 'OLD': arrays ['class', 'dec', 'mag'," in note
    assert "no chunk checksums (schema version 1)" in note
    tile = open_store(str(url)).tile("OLD")  # resume keys a schema-1 tile by a listing fingerprint
    before = tile.content_id()
    assert before.startswith("files:") and tile.content_id() == before
    path = shard(url, "OLD", "mag", 1)
    path.write_bytes(path.read_bytes())
    os.utime(path, ns=(0, 0))
    assert tile.content_id() != before
