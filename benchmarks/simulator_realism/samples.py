"""Real catalogues (zCOSMOS-bright, SDSS MGS) and their simulated counterparts (filters, depths, selection, matching)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from benchmarks.simulator_realism.common import (
    ZCOSMOS_BANDS,
    ZCOSMOS_COLUMNS,
    ZCOSMOS_FILTERS,
    Sample,
)
from distributed_pz.bands import BandSet, register_band_set
from distributed_pz.survey.sim.simulate import (
    SimulationConfig,
    simulate_catalogue,
    simulate_truth,
)
from distributed_pz.survey.sim.surveys import SurveyDesign, register_survey_design
from distributed_pz.survey.store.schema import CLASS_GALAXY, FLAG_NOT_DETECTED, FLAG_OK


# --- real catalogues -------------------------------------------------------------------------
def _number(text: str) -> float:
    return float(text) if text.strip() else np.nan


def read_zcosmos(data: Path) -> Sample:
    """Secure (class 3.x, 4.x) zCOSMOS-bright galaxies with all 7 bands and i < 22.5."""
    with open(data / "real/zcosmos_bright/zcosmost_bright20k.csv") as f:
        rows = list(csv.DictReader(f))
    z = np.array([_number(r["zpec"]) for r in rows])
    cc = np.array([_number(r["cc"]) for r in rows])
    mag = np.array([[_number(r[f"{c}_photzi25"]) for c in ZCOSMOS_COLUMNS] for r in rows])
    err = np.array([[_number(r[f"e{c}_photzi25"]) for c in ZCOSMOS_COLUMNS] for r in rows])
    good = (
        (np.floor(cc % 10) >= 3)
        & (np.floor(cc % 10) <= 4)
        & (z > 0.02)
        & (z < 1.4)
        & np.all((mag > 0) & (mag < 35) & (err > 0) & (err < 1), axis=1)
        & (mag[:, 3] < 22.5)
    )
    return Sample(mag[good], err[good], z[good])


def read_sdss(data: Path) -> tuple[Sample, Sample]:
    """SDSS MGS train and test files, 16 < r < 17.77, z < 0.3."""
    out = []
    for part in ("train", "test"):
        table = np.loadtxt(data / f"real/sdss_mgs/SDSS_MGS.{part}", comments="#")
        mag, err, z = table[:, 1:6], table[:, 10:15], table[:, 0]
        good = (mag[:, 2] > 16) & (mag[:, 2] < 17.77) & (z < 0.3) & np.all(err > 0, axis=1)
        out.append(Sample(mag[good], err[good], z[good]))
    return out[0], out[1]


def fitted_depths(s: Sample) -> tuple[float, ...]:
    """5σ depth per band implied by the median error in the faintest third of each band."""
    depths = []
    for b in range(s.mag.shape[1]):
        faint = s.mag[:, b] > np.quantile(s.mag[:, b], 0.67)
        m, e = np.median(s.mag[faint, b]), np.median(s.err[faint, b])
        depths.append(float(m + 2.5 * np.log10(1.0857 / e / 5.0)))
    return tuple(depths)


# --- simulated samples -----------------------------------------------------------------------
def simulated(config: SimulationConfig) -> tuple[Sample, dict[str, np.ndarray]]:
    """Galaxies of a catalogue-only tile, as a :class:`Sample`, and their truth."""
    arrays, truth = simulate_catalogue(config), simulate_truth(config)
    gal = arrays["class"] == CLASS_GALAXY
    flag = arrays["mag_flag"][gal]
    limit = np.where(flag == FLAG_NOT_DETECTED, arrays["mag_err"][gal], np.nan)
    err = np.where(flag == FLAG_OK, arrays["mag_err"][gal], np.nan)
    return Sample(arrays["mag"][gal], err, arrays["z_spec"][gal].astype(np.float64), limit), {
        k: v[gal] for k, v in truth.items()
    }


def matched(sim: Sample, real: Sample, band: int, n: int, seed: int) -> Sample:
    """``n`` simulated rows resampled (with replacement) to the real (z, mag[band]) histogram."""
    z_edges = np.arange(0.0, 3.01, 0.05)
    m_edges = np.arange(12.0, 26.01, 0.25)

    def cell(s: Sample) -> np.ndarray:
        iz = np.clip(np.digitize(s.z, z_edges) - 1, 0, len(z_edges) - 2)
        im = np.clip(np.digitize(np.nan_to_num(s.mag[:, band], nan=30.0), m_edges) - 1, 0, len(m_edges) - 2)
        return iz * len(m_edges) + im

    real_cells = np.bincount(cell(real), minlength=len(z_edges) * len(m_edges)).astype(float)
    sim_cell = cell(sim)
    sim_cells = np.bincount(sim_cell, minlength=len(real_cells)).astype(float)
    weight = np.where(sim_cells[sim_cell] > 0, real_cells[sim_cell] / np.maximum(sim_cells[sim_cell], 1), 0)
    rows = np.random.default_rng(seed).choice(len(sim.z), n, p=weight / weight.sum())
    return sim.take(rows)


def calibrated_depths(make, real: Sample, band: int, lo: float, hi: float, z_max: float) -> tuple[float, ...]:
    """Depths whose simulated *galaxy* errors match the real ones (one correction of :func:`fitted_depths`).

    The simulator's depths are for point sources; its galaxies have larger, size-dependent
    errors, so the point-source depths are moved by the median sim/real error ratio per band.
    """
    first = fitted_depths(real)
    sim = cut(simulated(make(first, 8000, 999))[0], band, lo, hi, z_max)
    ratio = np.nanmedian(sim.err, axis=0) / np.median(real.err, axis=0)
    return tuple(float(d + 2.5 * np.log10(q)) for d, q in zip(first, ratio, strict=True))


def register_zcosmos(data: Path, depths: tuple[float, ...]) -> tuple[str, ...]:
    """Register the zCOSMOS band set and design; return its filter files."""
    register_band_set(BandSet("zcosmos_sim", ZCOSMOS_BANDS, depth_5sigma=depths))
    register_survey_design(
        SurveyDesign(
            band_set="zcosmos_sim",
            seeing_arcsec=(0.9, 0.75, 0.75, 0.65, 0.75, 1.0, 0.9),
            exposures=(1,) * 7,
            exposure_loss=(0.0,) * 7,
            exposure_gain=(0.0,) * 7,
            sky_mag_arcsec2=(22.8, 22.0, 21.0, 20.0, 19.5, 16.7, 14.9),
        )
    )
    return tuple(str(data / f"real/zcosmos_bright/filters/{f}.res") for f in ZCOSMOS_FILTERS)


def zcosmos_config(files: tuple[str, ...], n: int, seed: int) -> SimulationConfig:
    """A zCOSMOS-bright-like catalogue-only tile: i-selected galaxies to i = 22.5 (cut later)."""
    return SimulationConfig(
        n_sources=n,
        seed=seed,
        band_set="zcosmos_sim",
        filter_files=files,
        cutouts=False,
        psf_fwhm_arcsec=(),
        n_exp_min=1,
        n_exp_max=1,
        star_fraction=0.0,
        qso_fraction=0.0,
        selection_band="i",
        wide_fraction=1.0,
        deep_fraction=0.0,
        wide_r_limit=23.0,
        r_mag_bright=15.0,
        z_max=1.6,
        not_observed_fraction=0.0,
    )


def sdss_config(depths: tuple[float, ...], n: int, seed: int) -> SimulationConfig:
    """An SDSS-MGS-like catalogue-only tile with depths fitted to the real errors."""
    return SimulationConfig.for_survey(
        "sdss", n_sources=n, seed=seed, depth_5sigma=depths, wide_r_limit=18.0, z_max=0.5
    )


def halves(s: Sample) -> tuple[Sample, Sample]:
    """Disjoint training and test pools of one simulated tile (the real samples come from one field)."""
    h = len(s.z) // 2
    return s.take(np.arange(h)), s.take(np.arange(h, len(s.z)))


def cut(s: Sample, band: int, lo: float, hi: float, z_max: float) -> Sample:
    return s.take(np.flatnonzero((s.mag[:, band] > lo) & (s.mag[:, band] < hi) & (s.z < z_max)))
