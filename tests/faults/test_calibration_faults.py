"""RELIABILITY-NEW-SURFACES.md C1-C4: a damaged ``calibration.json`` is one line naming the file,
in ``dpz predict``'s pre-flight (before any cluster starts). C5, C6 (the calibration in the
ensemble hash and the run identity) are in ``tests/models/test_ensemble.py`` and
``tests/infer/test_stream.py``.
"""

from __future__ import annotations

import json

import pytest

from distributed_pz.cli import main
from distributed_pz.models.calibration import Calibration
from distributed_pz.models.ensemble import EnsembleDir

from .conftest import truncate, write_ensemble

pytestmark = pytest.mark.faults

WIDER = Calibration((), (0.01,), (2.0,), (0.01,), "test rows", 100)


def _edit(path, edit) -> None:
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


DAMAGE = {
    "C1 value edited": (lambda p: _edit(p, lambda d: d["temperature"].__setitem__(0, 3.0)), "is not the calibration recorded"),
    "C2 truncated": (truncate, "not JSON"),
    "C3 deleted": (lambda p: p.unlink(), "calibration.json it records is missing"),
    "C4 extra key": (lambda p: _edit(p, lambda d: d.update(extra=1)), "is not a calibration"),
    "C4 missing key": (lambda p: _edit(p, lambda d: d.pop("floor")), "is not a calibration"),
}  # fmt: skip


@pytest.mark.parametrize("row", sorted(DAMAGE))
def test_c1_c4_a_damaged_calibration_is_one_line_naming_it_before_a_cluster(row, world, tmp_path, capsys):
    damage, message = DAMAGE[row]
    ensemble = write_ensemble(tmp_path / "ensemble", band_set="kids_viking", calibration=WIDER)
    assert EnsembleDir(ensemble).read(weights=False).calibration == WIDER
    damage(EnsembleDir(ensemble).calibration_file)
    out = tmp_path / "out"
    rc = main(["predict", "--store", str(world["store"]), "--bundle", str(ensemble), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and err[0].startswith("dpz predict: error: "), err
    assert message in err[0] and "calibration.json" in err[0] and str(ensemble) in err[0], err
    assert not out.exists()
