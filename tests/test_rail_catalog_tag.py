"""The ``kids_viking`` RAIL catalogue tag: RAIL applies it, and our stages read a KiDS table through it."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

pytest.importorskip("rail.utils.catalog_utils", reason="needs the [rail] extra (pz-rail-base)")

from rail.core.common_params import SHARED_PARAMS  # noqa: E402
from rail.utils import catalog_utils  # noqa: E402
from rail.utils.catalog_tag import CatalogTag  # noqa: E402

from distributed_pz.bands import KIDS_VIKING  # noqa: E402
from distributed_pz.rail.photometry import tile_arrays  # noqa: E402
from distributed_pz.survey.store.schema import FLAG_NOT_DETECTED  # noqa: E402
from rail.dpz import CATALOG_TAGS, load_catalog_tags  # noqa: E402

SHARED = Path(os.environ.get("DPZ_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
APPLIED = ("bands", "err_bands", "mag_limits", "band_a_env", "ref_band", "nondetect_val", "nonobserved_val")
MAGS = [f"MAG_GAAP_{b}" for b in KIDS_VIKING.bands]


@pytest.fixture
def restored_defaults():
    """RAIL's shared defaults and active tag as they were before the test (a tag changes them globally)."""
    before = {name: SHARED_PARAMS.get(name).default for name in list(SHARED_PARAMS.keys())}
    active = CatalogTag._active_tag
    yield
    for name, value in before.items():
        SHARED_PARAMS.get(name).set_default(value)
    CatalogTag._active_tag = active


def test_rail_applies_the_kids_viking_tag(restored_defaults):
    load_catalog_tags()
    load_catalog_tags()  # a second load changes nothing
    catalog_utils.apply("kids_viking")
    assert catalog_utils.get_active_tag().config.name == "kids_viking"
    shared = {name: SHARED_PARAMS.get(name).default for name in APPLIED}
    assert shared["bands"] == MAGS
    assert shared["err_bands"] == [f"MAGERR_GAAP_{b}" for b in KIDS_VIKING.bands]
    assert shared["ref_band"] == "MAG_GAAP_r"
    assert (shared["nondetect_val"], shared["nonobserved_val"]) == (99.0, -99.0)
    assert list(shared["mag_limits"].values()) == list(KIDS_VIKING.depth_5sigma)
    a_env = list(shared["band_a_env"].values())
    assert np.all(np.diff(a_env) < 0) and 4.5 < a_env[0] and a_env[-1] < 0.5  # falls from u to Ks
    # the tag's parameters are what our stages read: a KiDS row with Ks not detected, J not observed
    row = {name: [20.0] for name in shared["bands"]} | {name: [0.05] for name in shared["err_bands"]}
    row["MAG_GAAP_Ks"], row["MAG_GAAP_J"] = [99.0], [-99.0]
    config = SimpleNamespace(**shared, mag_valid_range=[-10.0, 50.0], id_col="ID")
    arrays = tile_arrays(row, config)
    ks, j = KIDS_VIKING.index("Ks"), KIDS_VIKING.index("J")
    assert arrays["mag_flag"][0, ks] == FLAG_NOT_DETECTED and arrays["mag_err"][0, ks] == np.float32(21.2)
    assert arrays["mag_flag"][0, j] not in (0, FLAG_NOT_DETECTED)
    assert np.all(np.delete(arrays["mag_flag"][0], [ks, j]) == 0)


def test_a_env_is_the_milky_way_curve_at_each_band_effective_wavelength():
    if not (SHARED / "extinction" / "MW_seaton.dat").is_file():
        pytest.skip(f"no shared data at {SHARED} (set DPZ_SHARED_DATA)")
    dust = np.loadtxt(SHARED / "extinction" / "MW_seaton.dat")
    shipped = {
        b["Band"]["name"]: b["Band"]["a_env"] for b in yaml.safe_load(Path(CATALOG_TAGS).read_text())["Bands"]
    }
    for band in KIDS_VIKING.bands:
        name = f"KiDSVIKING_aibn139_{band}"
        wl, transmission = np.loadtxt(SHARED / "filters" / "kids_viking" / f"{name}.res", unpack=True)
        effective = np.trapezoid(wl * transmission, wl) / np.trapezoid(transmission, wl)
        assert shipped[name] == pytest.approx(np.interp(effective, *dust.T), abs=5e-4), band
