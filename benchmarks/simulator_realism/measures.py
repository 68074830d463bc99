"""The measurements: KiDS+VIKING, SDSS and zCOSMOS difficulty, sim-to-real transfer, colours."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from benchmarks.simulator_realism.common import (
    Z_BINS,
    ZCOSMOS_BANDS,
    Sample,
    features,
    forest,
    nmad,
    outliers,
)
from benchmarks.simulator_realism.samples import (
    calibrated_depths,
    cut,
    fitted_depths,
    halves,
    matched,
    read_sdss,
    read_zcosmos,
    register_zcosmos,
    sdss_config,
    simulated,
    zcosmos_config,
)
from distributed_pz.survey.sim.simulate import (
    SimulationConfig,
)


# --- the measurements ------------------------------------------------------------------------
def kids_difficulty(n_train: int, n_test: int) -> dict:
    train, _ = simulated(
        SimulationConfig(n_sources=n_train, seed=101, star_fraction=0, qso_fraction=0, cutouts=False)
    )
    test, _ = simulated(
        SimulationConfig(n_sources=n_test, seed=102, star_fraction=0, qso_fraction=0, cutouts=False)
    )
    predict = forest(features(train), train.z)
    z_p = predict(features(test))
    low = test.z < 0.8
    return {
        "kids_nmad_lowz": nmad(z_p[low], test.z[low]),
        "kids_outliers_lowz": outliers(z_p[low], test.z[low]),
        "kids_nmad_highz": nmad(z_p[~low], test.z[~low]),
        "kids_outliers_highz": outliers(z_p[~low], test.z[~low]),
    }


def sdss_difficulty(data: Path, n_sim: int) -> dict:
    real_train, real_test = read_sdss(data)
    predict = forest(features(real_train), real_train.z)
    real = nmad(predict(features(real_test)), real_test.z)
    depths = calibrated_depths(sdss_config, real_train, 2, 16.0, 17.77, 0.3)
    pools = halves(cut(simulated(sdss_config(depths, n_sim, 201))[0], 2, 16.0, 17.77, 0.3))
    train = matched(pools[0], real_train, 2, len(real_train.z), 1)
    test = matched(pools[1], real_test, 2, len(real_test.z), 2)
    sim = nmad(forest(features(train), train.z)(features(test)), test.z)
    return {"sdss_real_nmad": real, "sdss_sim_nmad": sim, "sdss_ratio": sim / real, "sdss_depths": depths}


def zcosmos_all(data: Path, n_sim: int) -> tuple[dict, dict]:
    """zCOSMOS set-up: difficulty, sim-to-real, colours. Returns results and the samples for plots."""
    real = read_zcosmos(data)
    order = np.random.default_rng(0).permutation(len(real.z))
    n_test = len(real.z) // 5
    real_test, real_train = real.take(order[:n_test]), real.take(order[n_test:])
    rf_real = forest(features(real_train), real_train.z)
    z_real = rf_real(features(real_test))
    files = register_zcosmos(data, fitted_depths(real))

    def make(depths: tuple[float, ...], n: int, seed: int) -> SimulationConfig:
        return dataclasses.replace(zcosmos_config(files, n, seed), depth_5sigma=depths)

    depths = calibrated_depths(make, real, 3, 0.0, 22.5, 1.4)
    out_depths = {"zcosmos_depths": depths}
    pools = halves(cut(simulated(make(depths, n_sim, 301))[0], 3, 0.0, 22.5, 1.4))
    sim_train = matched(pools[0], real_train, 3, len(real_train.z), 3)
    sim_test = matched(pools[1], real_test, 3, len(real_test.z), 4)
    rf_sim = forest(features(sim_train), sim_train.z)
    z_sim = rf_sim(features(sim_test))
    z_transfer = rf_sim(features(real_test))
    out = {
        "zcosmos_real_nmad": nmad(z_real, real_test.z),
        "zcosmos_real_outliers": outliers(z_real, real_test.z),
        "zcosmos_sim_nmad": nmad(z_sim, sim_test.z),
        "zcosmos_ratio": nmad(z_sim, sim_test.z) / nmad(z_real, real_test.z),
        "transfer_nmad": nmad(z_transfer, real_test.z),
        "transfer_outliers": outliers(z_transfer, real_test.z),
        "transfer_ratio": nmad(z_transfer, real_test.z) / nmad(z_real, real_test.z),
        **out_depths,
    }
    bias = binned_bias(z_transfer, real_test.z)
    out["transfer_bias_bins"] = bias
    out["transfer_max_abs_bias"] = max(abs(b) for _, b in bias)
    offsets = zero_point_offsets(sim_train, real_train)
    z_aligned = rf_sim(features(Sample(real_test.mag + offsets, real_test.err, real_test.z)))
    out["transfer_aligned_ratio"] = nmad(z_aligned, real_test.z) / nmad(z_real, real_test.z)
    out["transfer_aligned_max_abs_bias"] = max(abs(b) for _, b in binned_bias(z_aligned, real_test.z))
    out["zero_point_offsets"] = [float(o) for o in offsets]
    # The zCOSMOS J magnitudes carry a band zero-point offset: sim − real J − i is the same
    # (≈ −0.2) in every z bin, while J samples rest 1.2 µm at z = 0 and 0.6 µm at z = 1 and the
    # z band at the same rest wavelengths agrees within a few 0.01 (``band_offset_by_z``). A
    # data offset is corrected in the comparison, not in the simulator: J only, fitted on the
    # real *training* split (the LePhare "systematic offset" of one band).
    j = ZCOSMOS_BANDS.index("J")
    out["offset_by_z"] = {
        name: band_offset_by_z(sim_train, real_train, ZCOSMOS_BANDS.index(name)) for name in ("z", "J", "Ks")
    }
    j_fix = np.where(np.arange(len(offsets)) == j, offsets, 0.0)
    z_j = rf_sim(features(Sample(real_test.mag + j_fix, real_test.err, real_test.z)))
    out["transfer_j_nmad"] = nmad(z_j, real_test.z)
    out["transfer_j_ratio"] = out["transfer_j_nmad"] / nmad(z_real, real_test.z)
    out["transfer_j_bias_bins"] = binned_bias(z_j, real_test.z)
    out["transfer_j_max_abs_bias"] = max(abs(b) for _, b in out["transfer_j_bias_bins"])
    out["transfer_j_outliers"] = outliers(z_j, real_test.z)
    opt = optical_only
    z_opt_real = forest(features(opt(real_train)), real_train.z)(features(opt(real_test)))
    z_opt_transfer = forest(features(opt(sim_train)), sim_train.z)(features(opt(real_test)))
    out["transfer_optical_ratio"] = nmad(z_opt_transfer, real_test.z) / nmad(z_opt_real, real_test.z)
    out["transfer_optical_max_abs_bias"] = max(abs(b) for _, b in binned_bias(z_opt_transfer, real_test.z))
    colour_sim = matched(pools[0], real, 3, 4 * len(real.z), 5)
    out.update(colour_table(colour_sim, real))
    return out, {"real": real, "sim": colour_sim}


def optical_only(s: Sample) -> Sample:
    """The u g r i z columns of a zCOSMOS-set-up sample."""
    return Sample(s.mag[:, :5], s.err[:, :5], s.z, None if s.limit is None else s.limit[:, :5])


def binned_bias(z_phot: np.ndarray, z_spec: np.ndarray) -> list[tuple[float, float]]:
    """Median Δ = (z_p − z_s)/(1 + z_s) in z_spec bins of 0.2 holding ≥ 30 galaxies."""
    out = []
    for lo in np.arange(0.0, 1.2, 0.2):
        rows = (z_spec >= lo) & (z_spec < lo + 0.2)
        if rows.sum() >= 30:
            out.append((float(lo), float(np.median((z_phot[rows] - z_spec[rows]) / (1 + z_spec[rows])))))
    return out


def zero_point_offsets(sim: Sample, real: Sample) -> np.ndarray:
    """Per-band offsets to add to real magnitudes: median sim − real colour vs i at matched z (i fixed).

    The "systematic offsets" of template-fitting codes (LePhare, Ilbert et al. 2006), learned on
    the real training set only; they align the zCOSMOS J (≈ 0.3 mag off) and other zero points.
    """
    edges = np.arange(0.0, 1.45, 0.1)
    offsets = np.zeros(sim.mag.shape[1])
    for b in range(sim.mag.shape[1]):
        cells = []
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            s_in, r_in = (sim.z >= lo) & (sim.z < hi), (real.z >= lo) & (real.z < hi)
            if s_in.sum() >= 30 and r_in.sum() >= 30:
                cs = np.nanmedian(sim.mag[s_in, b] - sim.mag[s_in, 3])
                cells.append((cs - np.median(real.mag[r_in, b] - real.mag[r_in, 3]), r_in.sum()))
        delta, weight = np.array(cells).T
        offsets[b] = np.average(delta, weights=weight)
    return offsets


def band_offset_by_z(sim: Sample, real: Sample, band: int) -> list[tuple[float, float]]:
    """Median (band − i) sim − real per z bin of 0.2 holding ≥ 30 galaxies of each."""
    out = []
    for lo in np.arange(0.0, 1.2, 0.2):
        s_in, r_in = (sim.z >= lo) & (sim.z < lo + 0.2), (real.z >= lo) & (real.z < lo + 0.2)
        if s_in.sum() >= 30 and r_in.sum() >= 30:
            cs = np.nanmedian(sim.mag[s_in, band] - sim.mag[s_in, 3])
            out.append((float(lo), float(cs - np.median(real.mag[r_in, band] - real.mag[r_in, 3]))))
    return out


def sigma68(x: np.ndarray) -> float:
    lo, hi = np.quantile(x, [0.16, 0.84])
    return float((hi - lo) / 2)


def colour_table(sim: Sample, real: Sample) -> dict:
    """Median and σ68 of g−r, r−i, u−g per z bin, sim − real and sim / real."""
    pairs = {"g-r": (1, 2), "r-i": (2, 3), "u-g": (0, 1)}
    rows = []
    for lo, hi in zip(Z_BINS[:-1], Z_BINS[1:], strict=True):
        s_in, r_in = (sim.z >= lo) & (sim.z < hi), (real.z >= lo) & (real.z < hi)
        for name, (a, b) in pairs.items():
            cs = (sim.mag[s_in, a] - sim.mag[s_in, b]).astype(float)
            cr = real.mag[r_in, a] - real.mag[r_in, b]
            cs = cs[np.isfinite(cs)]
            rows.append(
                {
                    "z_lo": lo,
                    "z_hi": hi,
                    "colour": name,
                    "n_real": int(r_in.sum()),
                    "delta_median": float(np.median(cs) - np.median(cr)),
                    "sigma68_ratio": sigma68(cs) / sigma68(cr),
                }
            )
    return {
        "colours": rows,
        "colour_max_abs_delta": max(abs(r["delta_median"]) for r in rows),
        "colour_sigma_ratio_range": (
            min(r["sigma68_ratio"] for r in rows),
            max(r["sigma68_ratio"] for r in rows),
        ),
    }
