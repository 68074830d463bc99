"""RELIABILITY-NEW-SURFACES.md D1-D4: ``dpz distill`` and the student it writes.

Each bad input is one line before any training; the student records its teacher's band set,
so a tile of another band set is refused at ``dpz predict`` as the teacher is (B15).
"""

from __future__ import annotations

import shutil

import pytest

from distributed_pz.cli import main
from distributed_pz.models.bundle import WEIGHTS, BundleError
from distributed_pz.models.ensemble import EnsembleDir

from .conftest import sdss_store, truncate, write_ensemble

pytestmark = pytest.mark.faults


def _distill(teacher, store, out, *extra: str) -> list[str]:
    return ["distill", "--ensemble", str(teacher), "--store", str(store), "--tile", "T2", "--max-rows", "200",
            "--out", str(out), "--epochs", "1", "--samples", "2", *extra]  # fmt: skip


@pytest.fixture(scope="module")
def student(world, tmp_path_factory):
    """A student of a KiDS-trained ``gaznet_c4`` mixture-density teacher (it reads u g r i only)."""
    root = tmp_path_factory.mktemp("distill")
    teacher = write_ensemble(root / "teacher", band_set="kids_viking", model="gaznet_c4", head="mdn")
    assert main(_distill(teacher, world["store"], root / "student")) == 0
    return root / "student"


def test_d4_a_student_is_refused_on_a_tile_of_another_band_set_before_a_cluster_starts(
    student, tmp_path, capsys
):
    assert EnsembleDir(student).read(weights=False).band_set == "kids_viking"
    out = tmp_path / "out"
    rc = main(["predict", "--store", sdss_store(tmp_path), "--bundle", str(student), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1, err
    assert (
        err[0].startswith("dpz predict: error: store ")
        and "tile 'S0': band set 'sdss', but the ensemble" in err[0]
    )
    assert f"{str(student)!r} was trained on 'kids_viking'" in err[0]
    assert not out.exists()


@pytest.mark.parametrize("damage", ["D3 one byte flipped", "D3 truncated"])
def test_d3_damaged_student_weights_are_one_line_naming_the_bundle(damage, student, tmp_path):
    copy = tmp_path / "student"
    shutil.copytree(student, copy)
    weights = copy / WEIGHTS
    if "flipped" in damage:
        data = bytearray(weights.read_bytes())
        data[-5] ^= 0xFF
        weights.write_bytes(bytes(data))
    else:
        truncate(weights)
    with pytest.raises(BundleError) as caught:
        EnsembleDir(copy).read()
    assert str(copy) in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "row, message",
    [
        ("D1 point-head teacher", "ensemble '{teacher}': its members give point estimates"),
        ("D1 existing --out", "--out {out} exists; the student is written to a new folder"),
        ("D1 teacher bands missing from the store", "tile 'S0': band set 'sdss', but the ensemble"),
        ("D2 --epochs -2", "argument --epochs: must be at least 1, not -2"),
    ],
)
def test_d1_d2_bad_distill_inputs_are_one_line_before_training(row, message, world, tmp_path, capsys):
    teacher, store, out, extra = world["ensemble"], world["store"], tmp_path / "student", ()
    if "point" in row:
        teacher = write_ensemble(tmp_path / "point", band_set="kids_viking", model="gaznet_c4")
    elif "existing" in row:
        out.mkdir()
    elif "bands" in row:
        store = sdss_store(tmp_path, ("u", "g", "r", "i", "Z", "Y", "J", "H", "Ks"))
    else:
        extra = ("--epochs", "-2")
    argv = _distill(teacher, store, out, *extra)
    if "bands" in row:
        argv[argv.index("T2")] = "S0"
    try:
        rc = main(argv)
    except SystemExit as stop:
        rc = stop.code
    err = capsys.readouterr().err.strip().splitlines()
    assert rc in (1, 2) and err, err
    assert message.format(teacher=teacher, out=out) in err[-1], err
    if rc == 1:
        assert len(err) == 1 and err[0].startswith("dpz distill: error: "), err
    assert not out.exists() or "existing" in row
