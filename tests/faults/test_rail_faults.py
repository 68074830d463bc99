"""The RAIL estimator's rows of the review of the new surfaces (R3-R5 and the RAIL model pickle).

The estimator runs the world's ensemble on an HDF5 table written from tile T2's photometry, in
RAIL's own chunked reading; its answer is compared with the predictor on the rows as ``dpz
ingest`` would store them.
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

pytest.importorskip("rail.estimation.estimator", reason="needs the [rail] extra (pz-rail-base)")
qp = pytest.importorskip("qp")
tables_io = pytest.importorskip("tables_io")

from distributed_pz.bands import KIDS_VIKING  # noqa: E402
from distributed_pz.catalog import Flag  # noqa: E402
from distributed_pz.models.ensemble import EnsembleDir  # noqa: E402
from distributed_pz.rail import DistributedPzEstimator  # noqa: E402
from distributed_pz.survey.store.schema import FLAG_BAD  # noqa: E402
from distributed_pz.survey.store.tiles import TileArrays  # noqa: E402

from .conftest import tile_arrays  # noqa: E402

pytestmark = [pytest.mark.faults, pytest.mark.slow]

BANDS = list(KIDS_VIKING.bands)
ERR_BANDS = [f"err_{b}" for b in BANDS]
N = 2000


def rail_table(arrays: dict) -> dict[str, np.ndarray]:
    """Tile arrays as a RAIL table: one column per band, 99 / -99 for flags 1 / 2, no ids."""
    mag = np.where(arrays["mag_flag"] == 1, 99.0, np.where(arrays["mag_flag"] == 2, -99.0, arrays["mag"]))
    table = {b: mag[:, i] for i, b in enumerate(BANDS)}
    table.update({e: arrays["mag_err"][:, i].astype(np.float64) for i, e in enumerate(ERR_BANDS)})
    return table


def model_file(path, ensemble, content_hash: str | None = None):
    digest = content_hash or EnsembleDir(str(ensemble)).read(device="cpu").content_hash
    path.write_text(json.dumps({"ensemble": str(ensemble), "content_hash": digest}))
    return str(path)


def estimate(tmp_path, model: str, table: dict, name: str, chunk_size: int = 500):
    """RAIL's chunked estimate of ``table`` (written to HDF5) with ``model``: the qp output file read back."""
    source = tmp_path / f"{name}.hdf5"
    tables_io.write(table, str(source))
    stage = DistributedPzEstimator.make_stage(
        name=name,
        model=model,
        bands=BANDS,
        err_bands=ERR_BANDS,
        ref_band="r",
        chunk_size=chunk_size,
        hdf5_groupname="",
        output=str(tmp_path / f"out_{name}.hdf5"),
    )
    from rail.core.data import TableHandle

    stage.estimate(TableHandle(f"input_{name}", path=str(source)))
    return qp.read(str(tmp_path / f"out_{name}.hdf5"))


@pytest.fixture(scope="module")
def clean(world, tmp_path_factory):
    """The T2 table, its model file and its estimate in 4 chunks of 500 rows."""
    tmp = tmp_path_factory.mktemp("rail")
    arrays, _ = tile_arrays(2)
    table = rail_table(arrays)
    model = model_file(tmp / "model.json", world["ensemble"])
    return {
        "tmp": tmp,
        "arrays": arrays,
        "table": table,
        "model": model,
        "out": estimate(tmp, model, table, "clean"),
    }


def test_r4_ids_without_id_col_are_row_numbers_of_the_whole_table(clean):
    ids = clean["out"].ancil["object_id"]
    assert clean["out"].npdf == N and np.array_equal(ids, np.arange(N))  # 4 chunks, one numbering
    whole = estimate(clean["tmp"], clean["model"], clean["table"], "one_chunk", chunk_size=N)
    assert np.allclose(
        whole.ancil["zmode"], clean["out"].ancil["zmode"], rtol=1e-5, atol=1e-6, equal_nan=True
    )


@pytest.mark.parametrize(
    ("mag", "err"),
    [(1e30, 0.05), (60.0, 0.05), (-30.0, 0.05), (22.0, 1e30), (22.0, -0.1), (22.0, np.nan), (np.inf, 0.05)],
    ids=["mag-1e30", "mag-60", "mag--30", "err-1e30", "err-negative", "err-nan", "mag-inf"],
)
def test_r3_unusable_magnitudes_are_flagged_as_ingest_flags_them(world, clean, mag, err):
    table = {k: v.copy() for k, v in clean["table"].items()}
    rows = np.arange(50)
    table["g"][rows], table["err_g"][rows] = mag, err
    out = estimate(clean["tmp"], clean["model"], table, f"bad_{abs(hash((mag, err)))}")
    expected = dict(clean["arrays"])
    g = BANDS.index("g")
    expected["mag"] = expected["mag"].copy()
    expected["mag_err"] = expected["mag_err"].copy()
    expected["mag_flag"] = expected["mag_flag"].copy()
    expected["mag"][rows, g], expected["mag_err"][rows, g], expected["mag_flag"][rows, g] = (
        np.nan,
        np.nan,
        FLAG_BAD,
    )
    reference = world["predictor"].predict_chunk(TileArrays(expected, tuple(BANDS)))
    assert np.all(out.ancil["flags"][rows] & Flag.PARTIAL_INPUT)
    assert np.allclose(out.ancil["zmode"], reference["z_phot"], rtol=1e-5, atol=1e-6, equal_nan=True)
    assert np.array_equal(out.ancil["flags"], reference["flags"])


def test_r5_a_missing_error_column_is_one_line(clean, tmp_path):
    table = {k: v for k, v in clean["table"].items() if k != "err_r"}
    with pytest.raises(ValueError, match=r"^RAIL input has no column 'err_r' named by err_bands") as error:
        estimate(tmp_path, clean["model"], table, "no_err_r")
    assert "\n" not in str(error.value)


class _Marker:
    """A pickle that creates a file when unpickled (what a crafted RAIL model file can do)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("kind", ["crafted-pickle", "random-bytes", "json-list", "json-extra-key"])
def test_r5_a_model_file_that_is_not_ours_is_refused_and_never_unpickled(clean, tmp_path, kind):
    path, marker = tmp_path / "model.pkl", tmp_path / "ran"
    content = {
        "crafted-pickle": pickle.dumps(_Marker(marker)),
        "random-bytes": bytes(range(256)) * 4,
        "json-list": b'["ensemble", "hash"]',
        "json-extra-key": json.dumps({"ensemble": "e", "content_hash": "h", "x": 1}).encode(),
    }[kind]
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"model\.pkl: not a distributed_pz model"):
        estimate(tmp_path, str(path), clean["table"], f"model_{kind.replace('-', '_')}")
    assert not marker.exists()


def test_the_ensemble_hash_is_checked_at_load(world, clean, tmp_path):
    model = model_file(tmp_path / "stale.json", world["ensemble"], content_hash="0" * 64)
    with pytest.raises(
        ValueError, match=r"stale\.json: ensemble .* has content hash \w+, the model records 000000000000"
    ):
        estimate(tmp_path, model, clean["table"], "stale")
