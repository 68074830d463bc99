"""The training sample: spec-z rows of a store, read back in plan order, and the store's content hash."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from distributed_pz.models.ensemble import EnsembleDir
from distributed_pz.models.registry import model_config
from distributed_pz.survey.store.store import open_store
from distributed_pz.train.sample import (
    load_sample,
    read_sample_rows,
    required_arrays,
    select_sample,
)
from tests.fixtures import make_tile_arrays


def _write_store(url, z_nan_every=5, bump=0.0):
    store = open_store(url, "a")
    for i, n in enumerate((150, 90)):
        arrays, attrs = make_tile_arrays(n, seed=i)
        arrays["object_id"] += 1000 * i
        arrays["z_spec"][::z_nan_every] = np.nan
        arrays["mag"][0, 0] += bump
        store.write_tile(f"t{i}", arrays, attrs, chunk_rows=32, shard_rows=64)
    return url


@pytest.fixture
def store_url(tmp_path):
    return _write_store(str(tmp_path / "a.zarr"))


def test_sample_is_every_row_with_a_spec_z(store_url, tmp_path):
    sample = select_sample(store_url)
    assert sample.tiles == ("t0", "t1")
    assert sample.n_rows == 150 - 30 + 90 - 18
    assert np.all(np.isfinite(sample.z_spec))
    assert not np.any(sample.row[sample.tile_index == 0] % 5 == 0)
    assert select_sample(store_url, ["t1"]).n_rows == 72
    sample.save(EnsembleDir(tmp_path))
    back = load_sample(EnsembleDir(tmp_path), store_url, sample.tiles)
    assert np.array_equal(back.object_id, sample.object_id) and np.array_equal(back.row, sample.row)


def test_rows_come_back_in_sample_order(store_url):
    sample = select_sample(store_url)
    order = np.random.default_rng(0).permutation(sample.n_rows)
    shuffled = dataclasses.replace(
        sample,
        tile_index=sample.tile_index[order],
        row=sample.row[order],
        object_id=sample.object_id[order],
        z_spec=sample.z_spec[order],
    )
    data = read_sample_rows(shuffled, ["object_id", "mag", "z_spec"])
    assert np.array_equal(data.arrays["object_id"], shuffled.object_id)
    assert np.array_equal(data.arrays["z_spec"], shuffled.z_spec)
    assert data.bands == tuple(open_store(store_url).tile("t0").bands)
    direct = open_store(store_url).tile("t1").read(["mag"])["mag"]
    k = int(np.flatnonzero(shuffled.tile_index == 1)[0])
    np.testing.assert_array_equal(data.arrays["mag"][k], direct[shuffled.row[k]])


def test_required_arrays_follow_the_model_inputs():
    available = ["object_id", "mag", "mag_err", "cutout", "flux_exp", "flux_exp_err", "z_spec", "class"]
    deepz = model_config("deepz").input_spec()
    assert required_arrays(deepz, available) == [
        "class",
        "flux_exp",
        "flux_exp_err",
        "object_id",
        "z_spec",
    ]
    assert "cutout" in required_arrays(model_config("gaznet_1").input_spec(), available)
    assert "cutout" not in required_arrays(model_config("gaznet_c9").input_spec(), available)
    assert "flux_exp" not in required_arrays(deepz, ["mag", "z_spec"])


def test_input_spec_arrays_is_the_one_answer():
    deepz = model_config("deepz").input_spec()
    assert deepz.arrays(["mag", "flux_exp", "flux_exp_err"]) == ["flux_exp", "flux_exp_err"]
    assert deepz.arrays(["mag"]) == ["mag"]  # no exposures: fluxes from magnitudes
    assert model_config("deepz", use_exposures=False).input_spec().arrays(["mag", "flux_exp"]) == ["mag"]
    assert model_config("gaznet_i4").input_spec().arrays(["mag"]) == ["cutout"]  # required, even if absent
    assert model_config("gaznet_1").input_spec().arrays(["mag", "cutout"]) == ["mag", "cutout"]


def store_hash(url, tiles, arrays):
    return open_store(url).content_hash(tiles, arrays)


def test_store_hash_follows_content_not_location(store_url, tmp_path):
    arrays = ["mag", "z_spec"]
    same = _write_store(str(tmp_path / "b.zarr"))
    changed = _write_store(str(tmp_path / "c.zarr"), bump=0.5)
    digest = store_hash(store_url, ["t0", "t1"], arrays)
    assert digest == store_hash(same, ["t0", "t1"], arrays)
    assert digest != store_hash(changed, ["t0", "t1"], arrays)
    assert digest != store_hash(store_url, ["t0"], arrays)


def test_store_without_spec_z_is_refused(tmp_path):
    arrays, attrs = make_tile_arrays(20)
    arrays["z_spec"][:] = np.nan
    url = str(tmp_path / "none.zarr")
    open_store(url, "a").write_tile("t", arrays, attrs)
    with pytest.raises(ValueError, match="no row with a spectroscopic redshift"):
        select_sample(url)
