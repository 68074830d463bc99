"""How wide a point ensemble's p(z) should be on tiles it never saw: four widths, one calibration each.

A point ensemble's p(z) is one Gaussian around its members' mean. Its calibration is fitted on
out-of-fold rows, which pool one member per split (``S``), while a catalogue row pools all ``n``
members, whose mean is more accurate. Each width below is calibrated on the out-of-fold galaxies
(:func:`~distributed_pz.models.calibration.fit_calibration`) and scored on the unseen tiles'
galaxies (pooled PIT KS and 68 % coverage), the unseen tiles homogenised first when the ensemble
has a stellar locus (as ``dpz demo`` predicts them):

- ``spread``: the members' unbiased spread (what ``dpz`` ships, ``metrics.mixture.spread_mixture``);
- ``standard error``: the spread over √n (the members' errors as a shared part plus one of their own);
- ``spread x gain``: the spread, narrowed on the unseen tiles by the gain of a mean of ``n`` over
  one of ``S`` members that the out-of-fold rows measure (σ68² of one member and of the mean of S);
- ``spread of one member per split``: the catalogue row's spread from the members of fold 0 only
  (distributed as the out-of-fold rows'), its mean from all.

Measured so far: the GaZNet ensembles of ``dpz demo --out /tmp/demo5`` (simulated, 2 × 2 members,
unseen tiles homogenised) and the GaZNet-C9 ensembles of ``python -m benchmarks.tile_transfer
--real zcosmos_bright --models gaznet_c9 --work /tmp/tt/real`` (real galaxies, 2 × 2, ``plain`` /
``jitter`` members, ``oof`` / ``survey`` calibration). No width holds on both: the standard error
suits the simulated tiles and is too narrow on the real ones; the spread the reverse.

    python -m benchmarks.point_width --ensemble ENS --store STORE --train-tiles SIM_0000 SIM_0001 \\
        --unseen SIM_0002 SIM_0003 SIM_0004
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

import numpy as np
from scipy.special import ndtr

from benchmarks.harness import append_rows, load_average, markdown_table, read_rows, report
from distributed_pz.metrics.mixture import spread_mixture
from distributed_pz.metrics.pdf import ks_statistic, pit_coverage
from distributed_pz.models.calibration import Calibration, fit_calibration
from distributed_pz.models.ensemble import EnsembleDir
from distributed_pz.models.locus import correct_photometry
from distributed_pz.models.predictor import EnsemblePredictor
from distributed_pz.survey.store.schema import CLASS_GALAXY
from distributed_pz.survey.store.store import open_store
from distributed_pz.train.oof import load_part
from distributed_pz.train.sample import load_sample, read_sample_rows

NAME = "point_width"
COLUMNS = ["ensemble", "width", "n_oof", "n_catalogue", "gain", "unseen_ks", "unseen_cov68", "time_utc"]


def out_of_fold(ensemble: EnsembleDir, store: str, tiles: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(S, N)`` out-of-fold estimates (one member per split) and ``z_spec`` of the training galaxies."""
    plan = ensemble.read(device="cpu", weights=False).plan
    sample = load_sample(ensemble, store, tiles)
    splits = sorted({m.split for m in plan.members})
    z = np.full((len(splits), sample.n_rows), np.nan)
    for member in plan.members:
        part = load_part(ensemble.oof_part(member.member_id))
        z[splits.index(member.split), part["row"]] = part["z_phot"]
    keep = np.isfinite(z).all(axis=0) & np.isfinite(sample.z_spec)
    survey = open_store(store)
    if all(survey.tile(t).has("class") for t in tiles):
        keep &= read_sample_rows(sample, ["class"]).arrays["class"] == CLASS_GALAXY
    return z[:, keep], sample.z_spec[keep].astype(np.float64)


def unseen_estimates(root: str, store: str, tiles: list[str]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """``(n, N)`` every member's estimates of the unseen tiles' galaxies, their ``z_spec`` and the
    members of fold 0; each tile homogenised by the ensemble's stellar locus when it has one."""
    ensemble = EnsembleDir(root).read(device="cpu")
    members = [EnsemblePredictor(b, device="cpu") for b in ensemble.bundles]
    survey = open_store(store)
    estimates, z_spec = [], []
    for name in tiles:
        tile = survey.tile(name)
        extra = ["z_spec", *(["class"] if tile.has("class") else [])]
        rows = tile.read_rows([*members[0].input_arrays(tile.array_names()), *extra])
        if ensemble.locus is not None:
            offsets = ensemble.locus.tile_offsets(tile.read(["class", "mag", "mag_err"]), tile.bands)
            rows = dataclasses.replace(rows, arrays=correct_photometry(rows.arrays, offsets, rows.bands))
        galaxy = (
            rows.arrays["class"] == CLASS_GALAXY if "class" in rows.arrays else np.ones(rows.n_rows, bool)
        )
        estimates.append(np.stack([m.predict_chunk(rows)["z_phot"] for m in members])[:, galaxy])
        z_spec.append(rows.arrays["z_spec"][galaxy])
    z, truth = np.concatenate(estimates, axis=1), np.concatenate(z_spec).astype(np.float64)
    keep = np.isfinite(z).all(axis=0) & np.isfinite(truth)
    fold0 = [i for i, m in enumerate(ensemble.plan.members) if m.fold == 0]
    return z[:, keep], truth[keep], fold0


def sigma68_squared(dz: np.ndarray) -> float:
    low, high = np.quantile(dz, [0.1587, 0.8413])
    return float(((high - low) / 2) ** 2)


def mean_gain(z: np.ndarray, z_spec: np.ndarray, n: int) -> float:
    """σ68 of a mean of ``n`` members over that of the out-of-fold mean of ``S``, from the
    out-of-fold rows: one member's error variance ``v1`` and the S-mean's ``vS`` give a shared part
    and one of each member's own, ``v(n) = shared + own / n``."""
    s = len(z)
    scale = 1.0 + z_spec
    v1 = float(np.mean([sigma68_squared((zk - z_spec) / scale) for zk in z]))
    vs = sigma68_squared((z.mean(axis=0) - z_spec) / scale)
    own = float(np.clip((vs - v1) / (1.0 / s - 1.0), 0.0, v1))
    shared = v1 - own
    return float(np.sqrt((shared + own / n) / (shared + own / s)))


def gaussian(mean: np.ndarray, spread_of: np.ndarray, scale: float = 1.0) -> tuple[np.ndarray, ...]:
    """One Gaussian per row: ``mean``, the unbiased spread of the rows of ``spread_of`` times ``scale``."""
    weights, _, sigmas = spread_mixture(spread_of, np.ones(spread_of.shape, bool), 1e-3)
    return weights, mean[:, None], np.maximum(sigmas * scale, 1e-3)


def scores(calibration: Calibration, pdf: tuple[np.ndarray, ...], z_spec: np.ndarray) -> dict[str, float]:
    weights, means, sigmas = calibration.apply(*pdf)
    pit = (weights * ndtr((z_spec[:, None] - means) / sigmas)).sum(axis=1)
    return {"unseen_ks": ks_statistic(pit), "unseen_cov68": pit_coverage(pit, 0.6827)}


def measure(root: str, store: str, train_tiles: list[str], unseen: list[str]) -> list[dict[str, Any]]:
    z_oof, z_spec = out_of_fold(EnsembleDir(root), store, train_tiles)
    z_cat, truth, fold0 = unseen_estimates(root, store, unseen)
    s, n = len(z_oof), len(z_cat)
    gain = mean_gain(z_oof, z_spec, n)
    mean = z_cat.mean(axis=0)
    widths = {
        "spread": (1.0, gaussian(mean, z_cat)),
        "standard error": (1 / np.sqrt(s), gaussian(mean, z_cat, 1 / np.sqrt(n))),
        "spread x gain": (1.0, gaussian(mean, z_cat, gain)),
        "spread of one member per split": (1.0, gaussian(mean, z_cat[fold0])),
    }
    rows = []
    for label, (oof_scale, pdf) in widths.items():
        calibration = fit_calibration(*gaussian(z_oof.mean(axis=0), z_oof, oof_scale), z_spec)
        rows.append(
            {
                "ensemble": root,
                "width": label,
                "n_oof": s,
                "n_catalogue": n,
                "gain": gain,
                **scores(calibration, pdf, truth),
                **load_average(),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ensemble", required=True, help="a point ensemble's directory")
    parser.add_argument("--store", required=True, help="the survey store it was trained on")
    parser.add_argument("--train-tiles", nargs="+", required=True)
    parser.add_argument("--unseen", nargs="+", required=True)
    args = parser.parse_args(argv)
    rows = measure(args.ensemble, args.store, args.train_tiles, args.unseen)
    print(markdown_table(rows, COLUMNS[:-1]))
    append_rows(NAME, rows)
    everything = read_rows(NAME)
    report(
        NAME,
        "A point ensemble's width on unseen tiles",
        (__doc__ or "").split("\n\n    python")[0].split("\n", 1)[1].strip(),
        markdown_table(everything, COLUMNS),
        rows=everything,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
