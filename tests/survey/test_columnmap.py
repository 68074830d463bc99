"""Column maps: shipped maps load, and every mistake in a user's map is one line naming the key."""

from __future__ import annotations

import pytest

from distributed_pz.bands import get_band_set
from distributed_pz.survey.ingest.columnmap import list_column_maps, load_column_map
from distributed_pz.survey.ingest.ingest_errors import IngestError
from distributed_pz.survey.store.schema import CLASS_GALAXY, CLASS_STAR

MINIMAL = """
[band_set]
name = "sdss"
[magnitudes]
mag = "MAG_{band}"
mag_err = "ERR_{band}"
zeropoint = 22.5
[images]
pixel_scale_arcsec = 0.4
"""


def _map(tmp_path, text, name="user.toml"):
    path = tmp_path / name
    path.write_text(text)
    return load_column_map(path)


@pytest.mark.parametrize("name", ["kids_dr4", "sdss_mgs", "zcosmos_bright"])
def test_shipped_maps_load(name):
    cmap = load_column_map(name)
    assert name in list_column_maps()
    assert len(cmap.mag_columns) == len(cmap.mag_err_columns) == cmap.band_set.n_bands
    assert set(cmap.zeropoint) == set(cmap.band_set.bands)


def test_kids_map_resolves_templates_sentinels_and_classes():
    cmap = load_column_map("kids_dr4")
    assert cmap.mag_columns[-1] == "MAG_GAAP_Ks" and cmap.mag_err_columns[4] == "MAGERR_GAAP_Z"
    assert cmap.not_detected == (99.0,) and cmap.not_observed == (-99.0,)
    assert cmap.class_values == {"0": CLASS_STAR, "1": CLASS_GALAXY}
    assert set(cmap.psf_fwhm_arcsec) == set(cmap.band_set.image_bands)


def test_inline_band_set_is_registered(tmp_path):
    text = MINIMAL.replace('name = "sdss"', 'name = "test_two"\nbands = ["b1", "b2"]')
    cmap = _map(tmp_path, text)
    assert get_band_set("test_two").bands == ("b1", "b2") == cmap.band_set.bands
    assert cmap.mag_columns == ("MAG_b1", "MAG_b2")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ("mag_err =", "mag_eror ="),
            r"\[magnitudes\]: unknown keys \['mag_eror'\] \(did you mean 'mag_eror' -> 'mag_err'",
        ),
        (('"MAG_{band}"', '"MAG"'), r"mag template 'MAG' lacks '\{band\}'"),
        (("zeropoint = 22.5", "zeropoint = { u = 1.0, x = 2.0 }"), r"zeropoint: unknown bands \['x'\]"),
        (("zeropoint = 22.5", "zeropoint = { u = 1.0 }"), r"zeropoint lacks bands \['g', 'r', 'i', 'z'\]"),
        (('name = "sdss"', 'name = "nope"'), r"\[band_set\]: unknown band set 'nope'"),
        (("pixel_scale_arcsec = 0.4", 'pixel_scale_arcsec = "0.4"'), r"pixel_scale_arcsec must be a number"),
        (("[images]", "[images]\nfiles = { q = 'x.fits' }"), r"\[images\]: files: unknown bands \['q'\]"),
    ],
)
def test_mistakes_name_the_map_section_and_key(tmp_path, edit, message):
    with pytest.raises(IngestError, match=r"column map .*user\.toml.*" + message):
        _map(tmp_path, MINIMAL.replace(*edit))


def test_inconsistent_filters_and_classes_are_refused(tmp_path):
    with pytest.raises(IngestError, match=r"z_spec_min / z_spec_max need \[columns\] z_spec"):
        _map(tmp_path, MINIMAL + "[filter]\nz_spec_min = 0.0\n")
    with pytest.raises(IngestError, match=r"unknown classes \{'1': 'galaxie'\}"):
        _map(tmp_path, MINIMAL + '[class]\ncolumn = "C"\nvalues = { "1" = "galaxie" }\n')
    with pytest.raises(IngestError, match="give both ra and dec, or neither"):
        _map(tmp_path, MINIMAL + '[columns]\nra = "RA"\n')


def test_unknown_shipped_name_and_bad_toml(tmp_path):
    with pytest.raises(IngestError, match=r"no shipped column map 'kids_dr5'.*did you mean \['kids_dr4'\]"):
        load_column_map("kids_dr5")
    with pytest.raises(IngestError, match="invalid TOML"):
        _map(tmp_path, "[band_set\n")
