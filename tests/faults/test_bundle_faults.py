"""RELIABILITY.md B14-B23 at ``dpz predict``: bundles that cannot be trusted, bands that do not fit,
tile names that would escape ``--out``. Each is one line, and nothing is written outside ``--out``.
"""

from __future__ import annotations

import json
import shutil

import pytest

from distributed_pz.cli import main
from distributed_pz.infer.stream import TileFailed, predict_store
from distributed_pz.models.bundle import BUNDLE_FILE as BUNDLE_MANIFEST
from distributed_pz.models.bundle import WEIGHTS, BundleError
from distributed_pz.models.ensemble import ENSEMBLE_FILE as MANIFEST
from distributed_pz.models.ensemble import EnsembleDir

from .conftest import SHARD_ROWS, sdss_store

pytestmark = pytest.mark.faults


def _member(ensemble) -> str:
    return json.loads((ensemble / MANIFEST).read_text())["members"][0]["path"]


def _edit_json(path, edit) -> None:
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def _flip_weight_byte(root):
    path = root / _member(root) / WEIGHTS
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))


def _corrupt_header_length(root):
    path = root / _member(root) / WEIGHTS
    data = path.read_bytes()
    path.write_bytes((2**40).to_bytes(8, "little") + data[8:])


def _hidden(doc):
    doc["config"]["hidden"] = 17


def _stat(doc):
    stats = doc["feature_stats"]
    key = next(k for k, v in stats.items() if isinstance(v, list))
    stats[key][0] = float(stats[key][0]) + 1.0


DAMAGE = {
    "B16 one byte of weights": (_flip_weight_byte, "content hash"),
    "B17 safetensors header length": (_corrupt_header_length, f"{WEIGHTS} is unreadable"),
    "B18 member config edited": (
        lambda r: _edit_json(r / _member(r) / BUNDLE_MANIFEST, _hidden),
        "content hash",
    ),
    "B19 feature statistic edited": (
        lambda r: _edit_json(r / _member(r) / BUNDLE_MANIFEST, _stat),
        "content hash",
    ),
    "B20 ensemble config edited": (
        lambda r: _edit_json(r / MANIFEST, lambda d: d["config"].update(model="gaznet_c9")),
        "content hash",
    ),
    "B21 bundle.json truncated": (
        lambda r: (r / _member(r) / BUNDLE_MANIFEST).write_text('{"format": '),
        "not JSON",
    ),
}


@pytest.mark.parametrize("row", sorted(DAMAGE))
def test_an_untrustworthy_bundle_is_one_line_naming_it(row, world, tmp_path, capsys):
    damage, message = DAMAGE[row]
    ensemble = tmp_path / "ensemble"
    shutil.copytree(world["ensemble"], ensemble)
    damage(ensemble)
    with pytest.raises(BundleError, match=message) as caught:
        EnsembleDir(ensemble).read()
    assert str(ensemble) in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.distributed
@pytest.mark.slow
def test_b17_a_corrupt_bundle_fails_predict_in_one_line(client, world, tmp_path):
    ensemble = tmp_path / "ensemble"
    shutil.copytree(world["ensemble"], ensemble)
    _corrupt_header_length(ensemble)
    with pytest.raises(BundleError, match=f"bundle '{ensemble}.*{WEIGHTS} is unreadable"):
        predict_store(client, str(world["store"]), str(ensemble), str(tmp_path / "out"), progress=False)


@pytest.mark.parametrize(
    "row, ensemble, bands, message",
    [
        (
            "B14",
            "legacy",
            ("u", "g", "r", "i", "z"),
            "reads bands ['Z', 'Y', 'J', 'H', 'Ks'] that the tile lacks",
        ),
        (
            "B15",
            "ensemble",
            ("u", "g", "r", "i", "Z", "Y", "J", "H", "Ks"),
            "band set 'sdss', but the ensemble",
        ),
    ],
)
def test_bands_that_do_not_fit_are_refused_before_a_cluster_starts(
    row, ensemble, bands, message, world, tmp_path, capsys
):
    store = sdss_store(tmp_path, bands)
    out = tmp_path / "out"
    rc = main(["predict", "--store", store, "--bundle", str(world[ensemble]), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and message in err[0] and "tile 'S0'" in err[0], err
    assert not out.exists()


@pytest.mark.distributed
@pytest.mark.slow
@pytest.mark.parametrize("name", ["../x", "VICTIM", "a/b"])
def test_b22_b23_a_tile_name_never_leads_outside_out(name, client, world, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "canary.txt").write_text("important")
    tile = str(victim) if name == "VICTIM" else name
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(TileFailed, match="not a valid tile name") as caught:
        predict_store(
            client, str(world["store"]), str(world["ensemble"]), str(tmp_path / "out"),
            tiles=[tile], rows_per_task=SHARD_ROWS, progress=False,
        )  # fmt: skip
    assert "\n" not in str(caught.value)
    assert (victim / "canary.txt").read_text() == "important"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, "out"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        ".lock",
        ".lock.pid",
        "failures.json",
        "manifest.json",
    ]
