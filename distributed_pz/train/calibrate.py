"""The calibration stage of ``dpz train``: a p(z) recalibration learned from the out-of-fold predictions.

After the members are trained, their out-of-fold predictions (each training galaxy predicted
only by members that never saw it) are the ensemble's honest sample of its own errors.
:func:`calibrate_oof` fits a :class:`~distributed_pz.models.calibration.Calibration` on all of
them — the one saved in the ensemble and applied by the predictor to every catalogue — and
returns the out-of-fold columns calibrated *cross-fitted*: each half of the rows (a seeded
permutation) is calibrated by a fit on the other half, so ``oof.parquet`` evaluates the
calibration without testing it on the rows it was fitted on.

An ensemble trained with ``--folds 1`` has no out-of-fold predictions and so no calibration:
its catalogues say ``calibration: none``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from distributed_pz.catalog import MIXTURE_COLUMNS
from distributed_pz.metrics import mixture
from distributed_pz.metrics.mixture import DEFAULT_ODDS_INTERVAL
from distributed_pz.models.calibration import (
    CalibrationRefused,
    RecordedCalibration,
    effective_rows,
    fit_calibration,
)
from distributed_pz.models.reweight import photometric_features, reference_index, target_weights
from distributed_pz.survey.store.schema import CLASS_GALAXY, CLASS_UNKNOWN
from distributed_pz.survey.store.store import SurveyStore


def fitting_rows(classes: np.ndarray) -> np.ndarray:
    """Rows a calibration may be fitted on: galaxies and unknowns. A star's z = 0 is a label, not a
    redshift a galaxy's p(z) should cover."""
    return np.isin(classes, (CLASS_GALAXY, CLASS_UNKNOWN))


def weights_for_tiles(
    store: SurveyStore, tiles: Sequence[str], mag: np.ndarray, mag_err: np.ndarray, seed: int = 0
) -> tuple[np.ndarray, str]:
    """Weights of the training rows (``mag``, ``mag_err``) that reweight them to the photometry of
    ``tiles`` of ``store``, and the words that say so in the calibration's ``fitted_on``.

    Raises
    ------
    ValueError
        A tile without magnitudes, or no target row near any training row.
    """
    ref = reference_index(mag, mag_err)
    target = []
    for name in tiles:
        tile = store.tile(name)
        if not tile.has("mag"):
            raise ValueError(f"--calibrate-for: tile {name!r} of {store.url} has no mag array")
        target.append(photometric_features(tile.read(["mag"])["mag"], ref))
    try:
        weights = target_weights(photometric_features(mag, ref), np.concatenate(target), seed=seed)
    except ValueError as exc:
        raise ValueError(f"--calibrate-for {', '.join(tiles)}: {exc}") from None
    words = (
        f"reweighted to the photometry of {', '.join(tiles)} ({effective_rows(weights):.0f} effective rows)"
    )
    return weights, words


def calibrate_oof(
    combined: Mapping[str, np.ndarray],
    z_spec: np.ndarray,
    seed: int = 0,
    odds_interval: float = DEFAULT_ODDS_INTERVAL,
    fit_rows: np.ndarray | None = None,
    survey_error: str = "",
    row_weights: np.ndarray | None = None,
) -> tuple[RecordedCalibration, dict[str, np.ndarray]]:
    """Fit the ensemble's calibration and calibrate its out-of-fold predictions, cross-fitted.

    Parameters
    ----------
    combined
        Pooled out-of-fold predictions (:func:`distributed_pz.train.oof.combine_parts`).
    z_spec
        ``(N,)`` spectroscopic redshifts of the training sample.
    seed
        Seeds the halves of the cross-fit and the fits' subsamples.
    odds_interval
        ODDS window of the recomputed summaries.
    fit_rows
        ``(N,)`` bool: rows the calibration may be fitted on (default all). ``dpz train`` leaves
        out the spectroscopic stars and QSOs: a star's z = 0 is a label, not a redshift a
        galaxy's p(z) should cover. Every row is calibrated.
    survey_error
        How the predictions include the survey's tile-to-tile error (recorded in the
        calibration's ``fitted_on``), e.g. ``"whole tiles left out"``.
    row_weights
        ``(N,)`` weights of the rows in every fit (:func:`weights_for_tiles`); default equal.

    Returns
    -------
    calibration, calibrated
        The calibration fitted on every row, and ``combined`` with its mixture and summaries
        replaced by the cross-fitted calibrated ones.

    Raises
    ------
    ValueError
        Too few usable rows to fit on, or the fit is refused (:class:`~distributed_pz.models.calibration.CalibrationRefused`;
        see :func:`~distributed_pz.models.calibration.fit_calibration`).
    """
    weights, means, sigmas = (np.asarray(combined[k], np.float64) for k in MIXTURE_COLUMNS)
    z_spec = np.asarray(z_spec, np.float64)
    usable = np.ones(len(z_spec), bool) if fit_rows is None else np.asarray(fit_rows, bool)
    described = "out-of-fold predictions" if fit_rows is None else "out-of-fold galaxies"
    described += f" ({survey_error})" if survey_error else ""
    row_weights = None if row_weights is None else np.asarray(row_weights, np.float64)

    def weights_of(rows: np.ndarray) -> np.ndarray | None:
        return None if row_weights is None else row_weights[rows]

    calibration = fit_calibration(
        weights[usable], means[usable], sigmas[usable], z_spec[usable], described, seed, weights_of(usable)
    )
    half = np.random.default_rng(seed).permutation(len(z_spec)) % 2 == 0
    out_w, out_mu, out_sd = _padded(weights, means, sigmas, calibration.output_components(weights.shape[1]))
    for rows in (half, ~half):
        other = ~rows & usable
        try:
            fit = fit_calibration(
                weights[other],
                means[other],
                sigmas[other],
                z_spec[other],
                "half of the out-of-fold rows",
                seed,
                weights_of(other),
            )
        except CalibrationRefused:
            continue  # that half's rows stay as the members pooled them
        out_w[rows], out_mu[rows], out_sd[rows] = fit.apply(weights[rows], means[rows], sigmas[rows])
    summary = mixture.summarise(out_w, out_mu, out_sd, odds_interval)
    calibrated = dict(combined)
    calibrated.update({k: v.astype(np.float32) for k, v in summary.items()})
    calibrated.update(pdf_weights=out_w, pdf_means=out_mu, pdf_sigmas=out_sd)
    return calibration, calibrated


def _padded(
    weights: np.ndarray, means: np.ndarray, sigmas: np.ndarray, components: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Copies of ``(N, K)`` mixtures with zero-weight components added up to ``components``
    (a kernel calibration's p(z) has more Gaussians than the pool it calibrates)."""
    extra = components - weights.shape[1]
    if extra <= 0:
        return weights.copy(), means.copy(), sigmas.copy()
    return (
        np.pad(weights, ((0, 0), (0, extra))),
        np.pad(means, ((0, 0), (0, extra)), mode="edge"),
        np.pad(sigmas, ((0, 0), (0, extra)), mode="edge"),
    )
