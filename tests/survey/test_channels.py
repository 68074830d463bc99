"""Read only the cutout bands a model uses: channel-chunked cutouts, older all-channel chunks too."""

from __future__ import annotations

import numpy as np
import pytest
from zarr.codecs import BloscCodec

from distributed_pz.models.predictor import EnsemblePredictor
from distributed_pz.survey.store.store import open_store
from tests.fixtures import fresh_members, make_tile_arrays


def test_each_cutout_band_is_its_own_chunk_and_is_read_alone(tmp_path):
    arrays, attrs = make_tile_arrays(300)
    tile = open_store(str(tmp_path / "s.zarr"), "w").write_tile("t0", arrays, attrs)
    assert tile.array("cutout").chunks[1] == 1
    r = attrs["image_bands"].index("r")
    rows = tile.read_rows(["object_id", "cutout"], 10, 200, image_bands=("r",))
    assert rows.image_bands == ("r",) and rows.arrays["cutout"].shape == (190, 1, 40, 40)
    np.testing.assert_array_equal(rows.arrays["cutout"][:, 0], arrays["cutout"][10:200, r])
    picked = tile.read_rows(["cutout"], image_bands=("i", "g"))  # tile order, not the order asked
    assert picked.image_bands == ("g", "i")
    np.testing.assert_array_equal(picked.arrays["cutout"], arrays["cutout"][:, [1, 3]])


def test_a_store_chunked_over_all_channels_still_reads(tmp_path):
    arrays, attrs = make_tile_arrays(100)
    tile = open_store(str(tmp_path / "s.zarr"), "w").write_tile("t0", arrays, attrs)
    old = tile.group.create_array(
        "cutout",
        shape=arrays["cutout"].shape,
        dtype="float32",
        chunks=(50, 4, 40, 40),
        compressors=BloscCodec(cname="zstd"),
        overwrite=True,
    )
    old[:] = arrays["cutout"]
    rows = tile.read_rows(["cutout"], image_bands=("r",))
    np.testing.assert_array_equal(rows.arrays["cutout"][:, 0], arrays["cutout"][:, 2])


@pytest.mark.parametrize(
    ("name", "bands"), [("gaznet_1", ("r",)), ("gaznet_i4", ("u", "g", "r", "i")), ("deepz", ())]
)
def test_the_predictor_names_the_bands_its_members_read(name, bands):
    assert EnsemblePredictor(fresh_members(name, (0,))).image_bands == bands
