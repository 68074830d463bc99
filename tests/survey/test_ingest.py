"""Ingest: FITS / Parquet / CSV catalogues and cutouts into store tiles, through column maps only."""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.nddata import Cutout2D
from astropy.table import Table
from astropy.wcs import WCS

from distributed_pz.bands import KIDS_VIKING
from distributed_pz.options import add_options
from distributed_pz.survey.ingest.columnmap import load_column_map
from distributed_pz.survey.ingest.ingest import IngestError, ingest_catalog
from distributed_pz.survey.ingest.ingest_cli import OPTIONS, default_tile_name, run
from distributed_pz.survey.store.schema import (
    CLASS_GALAXY,
    CLASS_STAR,
    FLAG_BAD,
    FLAG_NOT_DETECTED,
    FLAG_NOT_OBSERVED,
    FLAG_OK,
)
from distributed_pz.survey.store.store import open_store
from distributed_pz.survey.store.validate import check_tile

SMALL = {"chunk_rows": 64, "shard_rows": 128}


def _shared_data() -> Path:
    return Path(os.environ.get("DPZ_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))


def _kids_table(n: int = 300, seed: int = 0) -> Table:
    """A KiDS DR4-like tile catalogue (float32 GAaP columns, text ids) with known sentinels."""
    rng = np.random.default_rng(seed)
    table = Table()
    table["ID"] = [f"KiDSDR4 J{i:06d}.00-002913.4" for i in range(n)]
    table["RAJ2000"] = rng.uniform(129.5, 130.5, n)
    table["DECJ2000"] = rng.uniform(-1.0, 0.0, n)
    for band in KIDS_VIKING.bands:
        table[f"MAG_GAAP_{band}"] = rng.uniform(18, 24, n).astype(np.float32)
        table[f"MAGERR_GAAP_{band}"] = rng.uniform(0.01, 0.2, n).astype(np.float32)
    table["SG_FLAG"] = rng.integers(0, 2, n).astype(np.int16)
    table["Z_B"] = rng.uniform(0, 2, n)
    table["MAG_GAAP_u"][1], table["MAGERR_GAAP_u"][1] = 99.0, 25.3  # not detected, 1σ limit
    table["MAG_GAAP_Z"][2], table["MAGERR_GAAP_Z"][2] = -99.0, -99.0  # not observed
    table["MAG_GAAP_g"][3] = np.nan  # bad
    table["MAGERR_GAAP_r"][4] = -99.0  # good magnitude, unusable error: bad
    return table


def _kids_fits(tmp_path, **kwargs) -> Path:
    path = tmp_path / "KIDS_130.0_-0.5.fits"
    _kids_table(**kwargs).write(path)
    return path


def test_kids_fits_round_trip_with_sentinels(tmp_path):
    path = _kids_fits(tmp_path)
    url = str(tmp_path / "s.zarr")
    tile = ingest_catalog(path, "kids_dr4", url, "KIDS_130.0_-0.5", **SMALL)
    source = _kids_table()
    assert tile.complete and tile.n_rows == 300 and tile.bands == KIDS_VIKING.bands
    assert check_tile(open_store(url).tile("KIDS_130.0_-0.5"), deep=True) == []
    data = tile.read(["object_id", "ra", "dec", "mag", "mag_err", "mag_flag", "class"])
    np.testing.assert_array_equal(data["ra"], source["RAJ2000"])
    expected = np.stack([source[f"MAG_GAAP_{b}"] for b in KIDS_VIKING.bands], axis=1)
    flags = data["mag_flag"]
    assert flags[1, 0] == FLAG_NOT_DETECTED and data["mag_err"][1, 0] == np.float32(25.3)
    assert flags[2, 4] == FLAG_NOT_OBSERVED and np.isnan(data["mag_err"][2, 4])
    assert flags[3, 1] == FLAG_BAD and flags[4, 2] == FLAG_BAD
    assert (flags != FLAG_OK).sum() == 4
    ok = flags == FLAG_OK
    np.testing.assert_array_equal(data["mag"][ok], expected[ok])
    assert np.isnan(data["mag"][~ok]).all()
    np.testing.assert_array_equal(data["class"], np.where(source["SG_FLAG"] == 1, CLASS_GALAXY, CLASS_STAR))
    assert len(np.unique(data["object_id"])) == 300 and (data["object_id"] >= 0).all()
    again = ingest_catalog(path, "kids_dr4", url, "copy", **SMALL).read(["object_id"])["object_id"]
    np.testing.assert_array_equal(again, data["object_id"])  # hashed ids are stable
    assert (
        tile.attrs["ingest"]["column_map"]["name"] == "kids_dr4" and tile.attrs["ingest"]["rows_read"] == 300
    )


def test_missing_column_names_file_column_and_close_matches(tmp_path):
    table = _kids_table(n=20)
    table.remove_column("MAGERR_GAAP_H")
    path = tmp_path / "cat.fits"
    table.write(path)
    with pytest.raises(
        IngestError, match=r"cat\.fits: no column 'MAGERR_GAAP_H' \(close matches: \['MAGERR_GAAP_"
    ):
        ingest_catalog(path, "kids_dr4", str(tmp_path / "s.zarr"), "T")


def test_bad_values_name_file_column_and_row(tmp_path):
    table = _kids_table(n=20)
    table["DECJ2000"][7] = 95.0
    table.write(tmp_path / "cat.fits")
    with pytest.raises(
        IngestError, match=r"cat\.fits: column 'DECJ2000', row 7: 95\.0 is not in \[-90, 90\] deg"
    ):
        ingest_catalog(tmp_path / "cat.fits", "kids_dr4", str(tmp_path / "s.zarr"), "T")
    table = _kids_table(n=20)
    table["ID"][9] = table["ID"][4]
    table.write(tmp_path / "dup.fits")
    with pytest.raises(IngestError, match=r"id 'KiDSDR4 J000004.*' \(row 4\) is repeated in row 9"):
        ingest_catalog(tmp_path / "dup.fits", "kids_dr4", str(tmp_path / "s.zarr"), "T")


def test_wrong_file_type_and_unknown_suffix(tmp_path):
    (tmp_path / "cat.fits").write_text("ID,RAJ2000\n1,2\n")
    with pytest.raises(IngestError, match=r"cat\.fits: not a readable FITS file"):
        ingest_catalog(tmp_path / "cat.fits", "kids_dr4", str(tmp_path / "s.zarr"), "T")
    (tmp_path / "cat.xyz").write_text("1 2\n")
    (tmp_path / "map.toml").write_text(SDSS_LIKE_MAP)  # no [catalog] format: the suffix decides
    with pytest.raises(IngestError, match=r"cannot tell the catalogue format from the suffix '\.xyz'"):
        ingest_catalog(tmp_path / "cat.xyz", tmp_path / "map.toml", str(tmp_path / "s.zarr"), "T")


SDSS_LIKE_MAP = """
[band_set]
name = "test_sdss_like"
bands = ["u", "g", "r", "i", "z"]

[columns]
object_id = "objid"
ra = "ra"
dec = "dec"
z_spec = "zspec"

[magnitudes]
mag = "cmodel_{band}"
mag_err = "cmodelerr_{band}"
not_observed = [-9999]
zeropoint = 22.5

[filter]
z_spec_max = 0.5

[images]
pixel_scale_arcsec = 0.396
"""


def _sdss_like(n: int = 200) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    columns = {
        "objid": np.arange(10**15, 10**15 + n),
        "ra": rng.uniform(0, 360, n),
        "dec": rng.uniform(-10, 60, n),
    }
    for band in "ugriz":
        columns[f"cmodel_{band}"] = np.round(rng.uniform(14, 22, n), 4)
        columns[f"cmodelerr_{band}"] = np.round(rng.uniform(0.01, 0.1, n), 4)
    columns["zspec"] = np.round(rng.uniform(0, 0.7, n), 5)
    columns["cmodel_u"][5], columns["zspec"][5] = -9999, 0.1
    return columns


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_parquet_and_csv_with_spec_z_and_custom_band_set(tmp_path, fmt):
    columns = _sdss_like()
    path = tmp_path / f"sdss_like.{fmt}"
    if fmt == "parquet":
        pq.write_table(pa.table(columns), path)
    else:
        Table(columns).write(path, format="ascii.csv")
        path.write_text("# exported by a test\n" + path.read_text())
    (tmp_path / "map.toml").write_text(SDSS_LIKE_MAP)
    tile = ingest_catalog(path, tmp_path / "map.toml", str(tmp_path / "s.zarr"), "T", **SMALL)
    keep = columns["zspec"] < 0.5
    assert tile.n_rows == keep.sum() and tile.attrs["band_set"] == "test_sdss_like"
    assert not tile.has("cutout") and not tile.has("class")
    data = tile.read(["object_id", "ra", "mag", "mag_flag", "z_spec"])
    np.testing.assert_array_equal(data["object_id"], columns["objid"][keep])
    np.testing.assert_array_equal(data["ra"], columns["ra"][keep])
    np.testing.assert_array_equal(data["z_spec"], columns["zspec"][keep].astype(np.float32))
    np.testing.assert_array_equal(data["mag"][:, 2], columns["cmodel_r"][keep].astype(np.float32))
    assert data["mag_flag"][np.searchsorted(np.flatnonzero(keep), 5), 0] == FLAG_NOT_OBSERVED
    assert tile.attrs["ingest"]["rows_dropped_by_filter"] == {"zspec < 0.5": int((~keep).sum())}


def test_cli_prints_the_rows_each_filter_dropped(tmp_path, capsys):
    columns = _sdss_like()
    path = tmp_path / "sdss_like.parquet"
    pq.write_table(pa.table(columns), path)
    (tmp_path / "map.toml").write_text(SDSS_LIKE_MAP)
    assert (
        _cli([str(path), "--columns", str(tmp_path / "map.toml"), "--store", str(tmp_path / "s.zarr")]) == 0
    )
    dropped = int((columns["zspec"] >= 0.5).sum())
    assert f"  filter zspec < 0.5: dropped {dropped} rows" in capsys.readouterr().out


def _image(tmp_path, name: str, pixel: tuple[int, int], shape=(120, 160)) -> tuple[Path, WCS]:
    """A tile image with a TAN WCS at 0.2"/px and one point source at pixel (x, y)."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [80.0, 60.0]
    wcs.wcs.cdelt = [-0.2 / 3600, 0.2 / 3600]
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    data = np.exp(-((xx - pixel[0]) ** 2 + (yy - pixel[1]) ** 2) / (2 * 1.5**2)).astype(np.float32)
    path = tmp_path / name
    fits.PrimaryHDU(data, header=wcs.to_header()).writeto(path)
    return path, wcs


IMAGE_MAP = """
[band_set]
name = "test_two_images"
bands = ["g", "r"]
image_bands = ["g", "r"]
[columns]
ra = "ra"
dec = "dec"
[magnitudes]
mag = "m_{band}"
mag_err = "e_{band}"
zeropoint = 30.0
[images]
pixel_scale_arcsec = 0.2
psf_fwhm_arcsec = { g = 0.8, r = 0.7 }
files = { g = "{tile}_g.fits" }
"""


def test_cutouts_from_tile_images_centred_and_edge_padded(tmp_path):
    source_pixel, edge_pixel = (71, 52), (3, 50)
    r_path, wcs = _image(tmp_path, "r.fits", source_pixel)
    _image(tmp_path, "T_g.fits", source_pixel)  # found through the map's {tile} template
    pixels = np.array([source_pixel, edge_pixel, (-500, -500)], dtype=float)
    sky = wcs.pixel_to_world(pixels[:, 0], pixels[:, 1])
    catalog = {"ra": sky.ra.deg, "dec": sky.dec.deg}
    catalog |= {f"{k}_{b}": np.full(3, 20.0) for k in ("m", "e") for b in "gr"}
    pq.write_table(pa.table(catalog), tmp_path / "cat.parquet")
    (tmp_path / "map.toml").write_text(IMAGE_MAP)
    tile = ingest_catalog(
        tmp_path / "cat.parquet", tmp_path / "map.toml", str(tmp_path / "s.zarr"), "T", images={"r": r_path}
    )
    assert tile.image_bands == ("g", "r")
    cut = tile.read(["cutout"])["cutout"]  # (3, 2, 40, 40)
    peak = np.unravel_index(np.argmax(cut[0, 1]), (40, 40))
    assert abs(peak[0] - 20) <= 1 and abs(peak[1] - 20) <= 1
    np.testing.assert_array_equal(cut[0, 0], cut[0, 1])
    image = fits.getdata(r_path)
    reference = Cutout2D(image, sky[1], 40, wcs=wcs, mode="partial", fill_value=np.nan).data
    np.testing.assert_array_equal(cut[1, 1], reference)
    assert np.isnan(cut[1, 1][:, :16]).all() and np.isfinite(cut[1, 1][:, 18:]).all()
    assert np.isnan(cut[2]).all()


def test_cutout_cube_planes_follow_catalogue_rows_through_filters(tmp_path):
    columns = _sdss_like(n=150)
    pq.write_table(pa.table(columns), tmp_path / "cat.parquet")
    cube = np.arange(150, dtype=np.float32)[:, None, None] * np.ones((1, 40, 40), np.float32)
    fits.PrimaryHDU(cube).writeto(tmp_path / "r_cube.fits")
    text = SDSS_LIKE_MAP.replace('name = "test_sdss_like"', 'name = "test_sdss_like_r"\nimage_bands = ["r"]')
    (tmp_path / "map.toml").write_text(text + "psf_fwhm_arcsec = { r = 1.3 }\n")
    tile = ingest_catalog(
        tmp_path / "cat.parquet",
        tmp_path / "map.toml",
        str(tmp_path / "s.zarr"),
        "T",
        cutout_files={"r": tmp_path / "r_cube.fits"},
        **SMALL,
    )
    cut = tile.read(["cutout"])["cutout"]
    np.testing.assert_array_equal(cut[:, 0, 7, 9], np.flatnonzero(columns["zspec"] < 0.5))
    pq.write_table(pa.table({k: v[:149] for k, v in columns.items()}), tmp_path / "short.parquet")
    with pytest.raises(IngestError, match=r"cutout cube has shape \(150, 40, 40\), expected \(149, 40, 40\)"):
        ingest_catalog(
            tmp_path / "short.parquet",
            tmp_path / "map.toml",
            str(tmp_path / "s.zarr"),
            "U",
            cutout_files={"r": tmp_path / "r_cube.fits"},
        )


def test_complete_tile_is_kept_unless_overwrite_and_incomplete_is_rewritten(tmp_path):
    path = _kids_fits(tmp_path, n=40)
    url = str(tmp_path / "s.zarr")
    ingest_catalog(path, "kids_dr4", url, "T", **SMALL)
    with pytest.raises(IngestError, match=r"already holds the complete tile 'T'; pass --overwrite"):
        ingest_catalog(path, "kids_dr4", url, "T", **SMALL)
    assert open_store(url).tile("T").complete
    assert ingest_catalog(path, "kids_dr4", url, "T", overwrite=True, **SMALL).n_rows == 40
    open_store(url, "a").create_tile("U", 5, open_store(url).tile("T").attrs, arrays=())  # interrupted
    assert ingest_catalog(path, "kids_dr4", url, "U", **SMALL).complete


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dpz ingest")
    add_options(parser, OPTIONS)
    assert all(action.help for action in parser._actions)
    return run(parser.parse_args(argv))


def test_cli_summary_and_one_line_errors(tmp_path, capsys):
    path = _kids_fits(tmp_path, n=40)
    store = str(tmp_path / "s.zarr")
    assert (
        _cli(
            [
                str(path),
                "--columns",
                "kids_dr4",
                "--store",
                store,
                "--chunk-rows",
                "64",
                "--shard-rows",
                "128",
            ]
        )
        == 0
    )
    assert "ingested 40 rows" in capsys.readouterr().out
    assert open_store(store).tile_names() == ["KIDS_130.0_-0.5"]
    assert _cli([str(path), "--columns", "kids_dr4", "--store", store]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("dpz ingest: error: ") and "--overwrite" in err
    assert (
        _cli([str(path), "--columns", "kids_dr4", "--store", store, "--tile", "X", "--image", "q=a.fits"])
        == 1
    )
    assert "unknown bands ['q'] for cutouts" in capsys.readouterr().err
    assert default_tile_name(Path("a/KIDS_1.0_-2.5.fits.gz")) == "KIDS_1.0_-2.5"


def _real(name: str) -> Path:
    folder = _shared_data() / "real" / name
    if not folder.is_dir():
        pytest.skip(f"shared data absent: {folder} (set DPZ_SHARED_DATA to the shared data folder)")
    return folder


def test_real_zcosmos_bright_ingests_with_the_shipped_map(tmp_path):
    csv = _real("zcosmos_bright") / "zcosmost_bright20k.csv"
    tile = ingest_catalog(csv, "zcosmos_bright", str(tmp_path / "s.zarr"), "zcosmos")
    assert tile.attrs["ingest"]["rows_read"] == 17358 and tile.n_rows == 16650
    data = tile.read(["z_spec", "mag", "mag_flag"])
    z = data["z_spec"]
    assert z.min() > 0 and z.max() == pytest.approx(2.5918) and np.median(z) == pytest.approx(0.55, abs=0.01)
    assert (data["mag_flag"][:, tile.bands.index("FUV")] == FLAG_NOT_OBSERVED).sum() > 5000
    assert np.nanmax(data["mag"]) < 40
    secure = replace(load_column_map("zcosmos_bright"), filter_column="cc", filter_ranges=((3.0, 5.0),))
    assert ingest_catalog(csv, secure, str(tmp_path / "s.zarr"), "secure").n_rows == 11366  # cc 3.x, 4.x


def test_real_sdss_mgs_train_and_test_ingest_with_the_shipped_map(tmp_path):
    folder = _real("sdss_mgs")
    url = str(tmp_path / "s.zarr")
    for part in ("train", "test"):
        tile = ingest_catalog(folder / f"SDSS_MGS.{part}", "sdss_mgs", url, part)
        data = tile.read(["z_spec", "mag", "mag_err", "mag_flag"])
        assert tile.n_rows == 5000 and (data["mag_flag"] == FLAG_OK).all()
        assert 0 < data["z_spec"].min() and data["z_spec"].max() < 0.3
        first = np.loadtxt(folder / f"SDSS_MGS.{part}", skiprows=1, max_rows=1)
        np.testing.assert_allclose(data["mag"][0], first[1:6], rtol=1e-6)
        np.testing.assert_allclose(data["mag_err"][0], first[10:15], rtol=1e-6)
    assert open_store(url).tile_names() == ["test", "train"]
