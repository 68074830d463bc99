"""RELIABILITY.md B1-B12, B22, B23 / S1: bad catalogues, maps and tile names at ``dpz ingest``.

A bad value is stored as NaN with a flag saying why; anything that cannot be ingested is one
line naming the file, column and row (``dpz ingest: error: ...``), and the store is untouched.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from distributed_pz.cli import main
from distributed_pz.survey.ingest.ingest import default_object_ids, ingest_catalog
from distributed_pz.survey.ingest.validity import MAX_MAG_ERR
from distributed_pz.survey.store.errors import StoreError
from distributed_pz.survey.store.schema import FLAG_BAD, FLAG_NOT_DETECTED, FLAG_NOT_OBSERVED, FLAG_OK
from distributed_pz.survey.store.store import check_tile_name

pytestmark = pytest.mark.faults

MAP = """
[band_set]
name = "test_faults_gr"
bands = ["g", "r"]
[columns]
object_id = "id"
ra = "ra"
dec = "dec"
z_spec = "z"
[magnitudes]
mag = "m_{band}"
mag_err = "e_{band}"
zeropoint = 30.0
not_detected = [99.0]
not_observed = [-99.0]
[class]
column = "cls"
values = { g = "galaxy", s = "star" }
[images]
pixel_scale_arcsec = 0.2
"""
HEADER = "id,ra,dec,z,m_g,e_g,m_r,e_r,cls"
GOOD = "{i},10.5,-1.0,0.5,21.0,0.05,20.5,0.04,g"


def _write(tmp_path, rows: list[str], header: str = HEADER, cmap: str = MAP):
    (tmp_path / "map.toml").write_text(cmap)
    path = tmp_path / "cat.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path, tmp_path / "map.toml"


def _catalog(tmp_path, bad_row: str | None, n: int = 6):
    rows = [GOOD.format(i=i) for i in range(n)]
    if bad_row is not None:
        rows[2] = bad_row
    return _write(tmp_path, rows)


def _ingest_cli(tmp_path, path, cmap, *extra, capsys) -> tuple[int, list[str]]:
    store = tmp_path / "s.zarr"
    rc = main(["ingest", str(path), "--columns", str(cmap), "--store", str(store), "--tile", "T", *extra])
    return rc, capsys.readouterr().err.strip().splitlines()


FLAGGED = {
    # row: (catalogue row 2, expected (mag_g, flag_g, err_g kept?))
    "B1 NaN mag": ("2,10.5,-1.0,0.5,nan,0.05,20.5,0.04,g", FLAG_BAD),
    "B2 inf mag": ("2,10.5,-1.0,0.5,inf,0.05,20.5,0.04,g", FLAG_BAD),
    "B2 -inf mag": ("2,10.5,-1.0,0.5,-inf,0.05,20.5,0.04,g", FLAG_BAD),
    "B3 99 not detected": ("2,10.5,-1.0,0.5,99,25.3,20.5,0.04,g", FLAG_NOT_DETECTED),
    "B3 -99 not observed": ("2,10.5,-1.0,0.5,-99,-99,20.5,0.04,g", FLAG_NOT_OBSERVED),
    "B4 negative error": ("2,10.5,-1.0,0.5,21.0,-0.05,20.5,0.04,g", FLAG_BAD),
    "B10 mag 1e30": ("2,10.5,-1.0,0.5,1e30,0.05,20.5,0.04,g", FLAG_BAD),
    "B10 mag_err 1e30": ("2,10.5,-1.0,0.5,21.0,1e30,20.5,0.04,g", FLAG_BAD),
    "B10 mag_err NaN": ("2,10.5,-1.0,0.5,21.0,nan,20.5,0.04,g", FLAG_BAD),
}


@pytest.mark.parametrize("row", sorted(FLAGGED))
def test_unusable_photometry_is_nan_and_flagged(row, tmp_path):
    line, flag = FLAGGED[row]
    path, cmap = _catalog(tmp_path, line)
    tile = ingest_catalog(path, cmap, str(tmp_path / "s.zarr"), "T")
    data = tile.read(["mag", "mag_err", "mag_flag"])
    assert data["mag_flag"][2, 0] == flag and np.isnan(data["mag"][2, 0])
    assert data["mag_flag"][2, 1] == FLAG_OK and data["mag"][2, 1] == np.float32(20.5)
    assert (data["mag_flag"] != FLAG_OK).sum() == 1
    if flag == FLAG_NOT_DETECTED:
        assert data["mag_err"][2, 0] == np.float32(25.3)  # the limiting magnitude is kept
    assert np.all(data["mag_err"][data["mag_flag"] == FLAG_OK] <= MAX_MAG_ERR)


ERRORS = {
    # row: (catalogue row 2 or a callable making the inputs, expected one line)
    "B5 string in a number": (
        "2,10.5,-1.0,0.5,abc,0.05,20.5,0.04,g",
        "column 'm_g', row 2: 'abc' is not a number",
    ),
    "B7 duplicated id": ("1,10.5,-1.0,0.5,21.0,0.05,20.5,0.04,g", "id 1 (row 1) is repeated in row 2"),
    "B12 ra 400": (
        "2,400,-1.0,0.5,21.0,0.05,20.5,0.04,g",
        "column 'ra', row 2: 400.0 is not in [0, 360) deg",
    ),
    "B12 NaN id": ("nan,10.5,-1.0,0.5,21.0,0.05,20.5,0.04,g", "column 'id', row 2: id nan is not an integer"),
    "B12 unknown class": (
        "2,10.5,-1.0,0.5,21.0,0.05,20.5,0.04,q",
        "column 'cls', row 2: value 'q' is not among",
    ),
}


@pytest.mark.parametrize("row", sorted(ERRORS))
def test_unusable_values_are_one_line_naming_file_column_and_row(row, tmp_path, capsys):
    line, message = ERRORS[row]
    path, cmap = _catalog(tmp_path, line)
    rc, err = _ingest_cli(tmp_path, path, cmap, capsys=capsys)
    assert rc == 1 and len(err) == 1 and err[0].startswith(f"dpz ingest: error: {path}"), err
    assert message in err[0], err
    assert not (tmp_path / "s.zarr").exists()  # checked before the store is touched


MAPS = {
    "B9 other column names": (MAP.replace('"m_{band}"', '"mag_{band}"'), "no column 'mag_g'"),
    "B9 TOML syntax": (MAP.replace("[columns]", "[columns"), "map.toml"),
    "B9 unknown key": (MAP.replace('ra = "ra"', 'ra = "ra"\nrra = "ra"'), "rra"),
    "B9 psf of an unknown band": (MAP + "psf_fwhm_arcsec = { q = 1.0 }\n", "map.toml"),
}


@pytest.mark.parametrize("row", sorted(MAPS))
def test_bad_column_maps_are_one_line(row, tmp_path, capsys):
    text, message = MAPS[row]
    path, cmap = _write(tmp_path, [GOOD.format(i=i) for i in range(4)], cmap=text)
    rc, err = _ingest_cli(tmp_path, path, cmap, capsys=capsys)
    assert rc == 1 and len(err) == 1 and err[0].startswith("dpz ingest: error: ") and message in err[0], err


def test_b9_unknown_shipped_map_is_one_line(tmp_path, capsys):
    path, _ = _catalog(tmp_path, None)
    rc, err = _ingest_cli(tmp_path, path, "no_such_map", capsys=capsys)
    assert rc == 1 and len(err) == 1 and "no_such_map" in err[0]


def test_b6_missing_column_names_file_and_close_matches(tmp_path, capsys):
    path, cmap = _write(tmp_path, ["0,10.5,-1.0,0.5,21.0,0.05,20.5,g"], header="id,ra,dec,z,m_g,e_g,m_r,cls")
    rc, err = _ingest_cli(tmp_path, path, cmap, capsys=capsys)
    assert rc == 1 and len(err) == 1 and f"{path}: no column 'e_r' (close matches: [" in err[0], err


def test_b8_zero_rows_and_b12_empty_or_missing_files(tmp_path, capsys):
    path, cmap = _write(tmp_path, [])
    rc, err = _ingest_cli(tmp_path, path, cmap, capsys=capsys)
    assert rc == 1 and len(err) == 1 and "no row passes the filters" in err[0] and "0 rows read" in err[0], (
        err
    )
    path.write_text("")
    rc, err = _ingest_cli(tmp_path, path, cmap, capsys=capsys)
    assert rc == 1 and len(err) == 1 and str(path) in err[0], err
    rc, err = _ingest_cli(tmp_path, tmp_path / "absent.csv", cmap, capsys=capsys)
    assert rc == 1 and len(err) == 1 and "absent.csv" in err[0], err
    garbage = tmp_path / "garbage.fits"
    garbage.write_bytes(b"SIMPLE  = not really a FITS file" * 10)
    rc, err = _ingest_cli(tmp_path, garbage, cmap, capsys=capsys)
    assert rc == 1 and len(err) == 1 and "garbage.fits" in err[0], err


@pytest.mark.parametrize("shape", [(6, 32, 32), (5, 40, 40), (40, 40)])
def test_b11_cutout_cubes_of_the_wrong_shape_are_one_line(shape, tmp_path, capsys):
    cmap_text = MAP.replace('bands = ["g", "r"]', 'bands = ["g", "r"]\nimage_bands = ["r"]').replace(
        "test_faults_gr", "test_faults_gr_r"
    )
    path, cmap = _write(tmp_path, [GOOD.format(i=i) for i in range(6)], cmap=cmap_text)
    cmap.write_text(cmap_text + "psf_fwhm_arcsec = { r = 0.7 }\n")
    fits.PrimaryHDU(np.zeros(shape, np.float32)).writeto(tmp_path / "cube.fits")
    rc, err = _ingest_cli(tmp_path, path, cmap, "--cutout-cube", f"r={tmp_path / 'cube.fits'}", capsys=capsys)
    expected = "no 3-D image HDU" if len(shape) == 2 else "expected (6, 40, 40)"
    assert rc == 1 and len(err) == 1 and "cube" in err[0] and expected in err[0], err


def test_default_ids_are_unique_across_the_tiles_of_a_store(tmp_path):
    text = MAP.replace('object_id = "id"\n', "")
    path, cmap = _write(tmp_path, [GOOD.format(i=i) for i in range(5)], cmap=text)
    store = str(tmp_path / "s.zarr")
    ids = [ingest_catalog(path, cmap, store, name).read(["object_id"])["object_id"] for name in ("A", "B")]
    assert len(np.unique(np.concatenate(ids))) == 10
    np.testing.assert_array_equal(ids[0], default_object_ids("A", np.arange(5)))


UNSAFE = ["../x", "/abs/victim", "a/b", "..", ".", "a b", "x\n", "_hidden"]


@pytest.mark.parametrize("name", UNSAFE)
def test_b22_b23_unsafe_tile_names_are_refused_in_one_line(name, tmp_path, capsys):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "canary.txt").write_text("important")
    path, cmap = _catalog(tmp_path, None)
    tile = str(victim) if name == "/abs/victim" else name
    store = tmp_path / "s.zarr"
    rc = main(["ingest", str(path), "--columns", str(cmap), "--store", str(store), "--tile", tile])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "not a valid tile name" in err[0], err
    assert not store.exists() and (victim / "canary.txt").read_text() == "important"
    rc = main(["validate", str(tmp_path / "s.zarr"), "--tile", tile])
    assert rc == 1
    rc = main(["simulate", "--out", str(tmp_path / "sim.zarr"), "--n", "10", "--tile-prefix", tile])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and err[-1].startswith("dpz ") and "Traceback" not in "\n".join(err), err
    assert (victim / "canary.txt").read_text() == "important"


def test_s1_no_output_path_escapes_out(tmp_path):
    from distributed_pz.infer.manifest import ManifestError, RunManifest

    for name in ("", "../x", "/x", "a/b", "..", 7):
        with pytest.raises(StoreError, match="not a valid tile name"):
            check_tile_name(name)
    manifest = RunManifest.open(tmp_path / "out", {"bundle_hash": "x"})
    try:
        assert manifest.path("_staging", "T0") == str((tmp_path / "out" / "_staging" / "T0").resolve())
        for parts in (("/abs",), ("..", "x"), ("_staging", "../../x"), ("",)):
            with pytest.raises(ManifestError, match="is not inside"):
                manifest.path(*parts)
    finally:
        manifest.close()
