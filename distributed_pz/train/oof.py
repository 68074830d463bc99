"""Out-of-fold predictions: each training galaxy predicted only by the members that never saw it.

Every member predicts its own test fold right after training and leaves a part file
(``oof/<member_id>.npz``: sample rows and the prediction columns), predicted by the same
:class:`~distributed_pz.models.predictor.EnsemblePredictor` the catalogues come from
(:func:`predict_part`). With R splits a galaxy is in exactly one test fold per split, so it gets
up to R predictions; :func:`combine_parts` pools them exactly as the predictor pools an
ensemble's members (:mod:`distributed_pz.metrics.mixture`): MDN members' mixtures with equal
weights (``pool_members``), point members into one Gaussian of their mean and spread
(``spread_mixture``), a member without a finite prediction for a row dropped from it; the
summaries are those of the pooled mixture (``summarise``: ``z_phot`` is its mode, for point
members their mean). The catalogue ``oof.parquet`` lets the ensemble be evaluated without leakage.

:func:`finish_ensemble` is the end-of-training stage of ``dpz train``: combine the parts, fit the
calibration (:mod:`distributed_pz.train.calibrate`), write ``oof.parquet`` and the manifest. When
the plan holds a calibration share out of every member, every member predicts it too
(``calibration_share/<member_id>.npz``), the parts are pooled over all members, as a catalogue row
is, and the calibration saved is fitted there; ``oof.parquet`` stays calibrated cross-fitted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from distributed_pz._files import atomic_path
from distributed_pz.catalog import MIXTURE_COLUMNS, write_table
from distributed_pz.metrics import mixture as mixture_tools
from distributed_pz.metrics.mixture import DEFAULT_ODDS_INTERVAL
from distributed_pz.models.augment import jitter_zeropoints
from distributed_pz.models.bundle import BUNDLE_FILE, Bundle
from distributed_pz.models.calibration import CalibrationRefused, RecordedCalibration, fit_calibration
from distributed_pz.models.ensemble import EnsembleDir, SplitPlan
from distributed_pz.models.inputs import zeropoint_scatter
from distributed_pz.models.locus import StellarLocus, TooFewStars
from distributed_pz.models.predictor import EnsemblePredictor, PredictOptions
from distributed_pz.survey.store.schema import CLASS_STAR
from distributed_pz.survey.store.store import SurveyStore
from distributed_pz.survey.store.tiles import TileArrays
from distributed_pz.train.calibrate import calibrate_oof, fitting_rows, weights_for_tiles
from distributed_pz.train.config import EnsembleConfig
from distributed_pz.train.sample import load_sample, read_sample_rows


def predict_part(bundle: Bundle, rows: TileArrays, redraw_seed: int | None = None) -> dict[str, np.ndarray]:
    """One member's prediction of its test rows, as its part keeps it (on the bundle's device).

    ``z_phot`` (NaN where the member gave no estimate) and, for an MDN member, its mixture. A
    point member keeps ``z_phot`` only: its one-member Gaussian has the floor width; the spread
    comes from combining the splits (:func:`combine_parts`).

    With ``redraw_seed``, each row is predicted as if its tile had other zero points (one draw per
    row and band, and exposure, at the band set's calibration scatter): the test rows share the
    member's training tiles' zero points, and a calibration fitted on them would not see the error
    every other tile of the survey brings. The plan makes it unneeded when it leaves whole tiles
    out (:attr:`~distributed_pz.models.ensemble.SplitPlan.leaves_groups_out`).
    """
    if redraw_seed is not None:
        rows = with_zeropoint_draws(rows, redraw_seed)
    predictor = EnsemblePredictor(bundle, device=bundle.device)
    out = predictor(rows)
    return {k: out[k] for k in (("z_phot", *MIXTURE_COLUMNS) if predictor.has_pdf else ("z_phot",))}


def with_zeropoint_draws(rows: TileArrays, seed: int) -> TileArrays:
    """``rows`` with their photometry moved by random zero points at the band set's calibration scatter."""
    names = [k for k in ("mag", "flux_exp", "flux_exp_err") if k in rows.arrays]
    scatter = zeropoint_scatter(rows.bands, rows.band_set)
    if not names or scatter is None:
        return rows
    batch = {k: torch.as_tensor(np.asarray(rows.arrays[k], np.float32)) for k in names}
    drawn = jitter_zeropoints(batch, *scatter, generator=torch.Generator().manual_seed(seed))
    return dataclasses.replace(rows, arrays={**rows.arrays, **{k: drawn[k].numpy() for k in names}})


def save_part(path: str | Path, rows: np.ndarray, prediction: Mapping[str, np.ndarray]) -> None:
    """Write one member's test-fold predictions atomically (``.npz``, no pickle)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = {k: np.asarray(prediction[k]) for k in ("z_phot", *MIXTURE_COLUMNS) if k in prediction}
    with atomic_path(path) as tmp:
        np.savez(tmp, row=np.asarray(rows, np.int64), **columns)


def load_part(path: str | Path) -> dict[str, np.ndarray]:
    """Read a part written by :func:`save_part`."""
    with np.load(path, allow_pickle=False) as part:
        return {k: part[k] for k in part.files}


def combine_parts(
    parts: Sequence[tuple[int, Mapping[str, np.ndarray]]],
    n_rows: int,
    options: PredictOptions | None = None,
) -> dict[str, np.ndarray]:
    """Combine members' test-fold predictions row by row, as the predictor pools members.

    Parameters
    ----------
    parts
        ``(split, part)`` per member, ``part`` as from :func:`load_part`; within a split the
        parts' rows must not overlap.
    n_rows
        Rows of the training sample.
    options
        ``odds_interval`` and ``sigma_floor`` (default: :class:`PredictOptions` defaults, as
        the catalogues).

    Returns
    -------
    dict
        ``n_members`` ``[N]`` (members with a finite prediction); ``pdf_weights``,
        ``pdf_means``, ``pdf_sigmas``: the pooled mixture, ``[N, S*K]`` over the ``S`` splits
        present for MDN parts (:func:`~distributed_pz.metrics.mixture.pool_members`; a missing
        member's components have weight 0), ``[N, 1]`` for point parts
        (:func:`~distributed_pz.metrics.mixture.spread_mixture`); and its summaries ``z_phot``
        (mode), ``z_mean``, ``z_std``, ``z_lo68``, ``z_hi68``, ``odds``
        (:func:`~distributed_pz.metrics.mixture.summarise`), float32, NaN where no member
        predicted the row.
    """
    if not parts:
        raise ValueError("no member predictions to combine")
    options = options or PredictOptions()
    splits = sorted({s for s, _ in parts})
    has_pdf = all(MIXTURE_COLUMNS[0] in p for _, p in parts)
    filled = np.zeros((len(splits), n_rows), bool)
    z = np.full((len(splits), n_rows), np.nan)
    if has_pdf:
        k = parts[0][1][MIXTURE_COLUMNS[0]].shape[1]
        mixture = [np.zeros((len(splits), n_rows, k)) for _ in MIXTURE_COLUMNS]  # (S, N, K) each
    for split, part in parts:
        s, rows = splits.index(split), part["row"]
        if filled[s, rows].any():
            raise ValueError(f"two members of split {split} predicted the same rows")
        filled[s, rows] = True
        z[s, rows] = part["z_phot"]
        if has_pdf:
            for array, name in zip(mixture, MIXTURE_COLUMNS, strict=True):
                array[s, rows] = part[name]
    valid = filled & np.isfinite(z)
    if has_pdf:
        weights, means, sigmas = mixture_tools.pool_members(*mixture, valid)
    else:
        weights, means, sigmas = mixture_tools.spread_mixture(z, valid, options.sigma_floor)
    summary = mixture_tools.summarise(weights, means, sigmas, options.odds_interval)
    out: dict[str, np.ndarray] = {k: v.astype(np.float32) for k, v in summary.items()}
    out.update(
        n_members=valid.sum(axis=0).astype(np.int16), pdf_weights=weights, pdf_means=means, pdf_sigmas=sigmas
    )
    return out


def write_catalog(
    path: str | Path,
    object_id: np.ndarray,
    z_spec: np.ndarray,
    combined: Mapping[str, np.ndarray],
    odds_interval: float = DEFAULT_ODDS_INTERVAL,
    tile: np.ndarray | None = None,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write the out-of-fold catalogue (:mod:`distributed_pz.catalog` columns), atomically.

    Columns ``object_id, tile, z_spec, z_phot, n_members`` and the mixture; ``odds_interval``
    (the one :func:`combine_parts` used) goes into the metadata, so ``dpz evaluate`` computes
    ODDS as the catalogues do. ``tile`` names each row's tile: ``(tile, object_id)`` identifies a
    row even when two tiles of a training run share ids; ``metadata`` says what calibration the
    mixture carries.
    """
    columns = {"object_id": np.asarray(object_id, np.int64), "z_spec": np.asarray(z_spec, np.float32)}
    if tile is not None:
        columns["tile"] = np.asarray(tile, dtype=str)
    columns.update({k: combined[k] for k in ("z_phot", "n_members", *MIXTURE_COLUMNS) if k in combined})
    return write_table(path, columns, {"odds_interval": odds_interval, **(metadata or {})})


def finish_ensemble(
    ensemble: EnsembleDir,
    config: EnsembleConfig,
    plan: SplitPlan,
    arrays: list[str],
    digest: str,
    store: SurveyStore,
    echo: Callable[[str], None] = print,
) -> str:
    """Pool the out-of-fold parts into ``oof.parquet``, fit the calibration on them and write the
    manifest; returns the ensemble hash. Without out-of-fold parts (``--folds 1``) there is no
    ``oof.parquet`` and no calibration. A finished ensemble is left as it is."""
    if ensemble.is_complete and (ensemble.oof_catalog.is_file() or plan.n_folds == 1):
        return ensemble.read_json(ensemble.manifest_file)["content_hash"]
    calibration = None
    if plan.n_folds > 1:
        sample = load_sample(ensemble, config.store, config.tiles)
        parts = [(m.split, load_part(ensemble.oof_part(m.member_id))) for m in plan.members]
        wanted = ["class"] * ("class" in arrays) + ["mag", "mag_err"] * bool(config.calibrate_for)
        sample_rows = read_sample_rows(sample, wanted).arrays if wanted else {}
        galaxies = fitting_rows(sample_rows["class"]) if "class" in sample_rows else None
        combined = combine_parts(parts, plan.n_rows)
        redrawn = "zero points redrawn at the band set's scatter"
        survey_error = (
            ("whole tiles left out" if plan.leaves_groups_out else redrawn)
            if config.survey_calibration
            else "the training tiles' zero points only"
        )
        tiles = np.asarray(sample.tiles)[sample.tile_index]
        row_weights, reweighted = None, ""
        if config.calibrate_for:
            row_weights, reweighted = weights_for_tiles(
                store, config.calibrate_for, sample_rows["mag"], sample_rows["mag_err"], config.seed
            )
            reweighted = f"; {reweighted}"
        fitted: RecordedCalibration | CalibrationRefused
        try:
            fitted, oof = calibrate_oof(
                combined,
                sample.z_spec,
                config.seed,
                fit_rows=galaxies,
                survey_error=survey_error + reweighted,
                row_weights=row_weights,
            )
            meta = {"calibration": f"{fitted.method}, cross-fitted on halves of these rows"}
        except CalibrationRefused as exc:
            fitted, oof, meta = exc, combined, {"calibration": f"none (refused: {exc})"}
        if plan.calibration is not None:  # the share, not the out-of-fold rows, gives the saved fit
            share_error = (redrawn if config.survey_calibration else survey_error) + reweighted
            try:
                fitted = _share_calibration(
                    ensemble, plan, sample.z_spec, galaxies, config.seed, share_error, row_weights
                )
            except CalibrationRefused as exc:
                fitted = exc
        if isinstance(fitted, CalibrationRefused):
            echo(f"calibration refused: {fitted}; the catalogues carry the members' pooled p(z)")
        else:
            calibration = ensemble.save_calibration(fitted)
            echo(f"calibration: {fitted.describe()}: {fitted.change()}")
        write_catalog(ensemble.oof_catalog, plan.object_id, sample.z_spec, oof, tile=tiles, metadata=meta)
    else:
        echo("--folds 1: every member trained on all rows; no out-of-fold predictions, so no calibration")
    locus = _stellar_locus(store, config.tiles, echo)
    record = {
        "url": config.store,
        "tiles": list(config.tiles),
        "arrays": arrays,
        "hash": digest,
        "band_set": store.tile(config.tiles[0]).band_set.name,
    }
    pretrain = None
    if config.pretrain_store:
        pretrain = {
            "path": EnsembleDir.pretrain,
            "content_hash": ensemble.read_json(ensemble.pretrain / BUNDLE_FILE)["content_hash"],
            "store": config.pretrain_store,
            "tiles": list(config.pretrain_tiles),
        }
    locus_entry = ensemble.save_locus(locus) if locus is not None else None
    return ensemble.write_manifest(plan, config.result_fields(), record, pretrain, calibration, locus_entry)


def _share_calibration(
    ensemble: EnsembleDir,
    plan: SplitPlan,
    z_spec: np.ndarray,
    galaxies: np.ndarray | None,
    seed: int,
    survey_error: str,
    row_weights: np.ndarray | None = None,
) -> RecordedCalibration:
    """The calibration fitted on the plan's calibration share, every member's prediction of it
    pooled as the predictor pools a catalogue row; ``row_weights`` (of every sample row) weight it."""
    share = plan.calibration_rows()
    parts = []
    for m in plan.members:
        part = load_part(ensemble.calibration_part(m.member_id))
        parts.append((m.index, {**part, "row": np.searchsorted(share, part["row"])}))
    pooled = combine_parts(parts, share.size)  # rows of the share only
    rows = np.ones(share.size, bool) if galaxies is None else galaxies[share]
    described = (
        f"{'galaxies' if galaxies is not None else 'rows'} of a calibration share held out of every member "
        f"({share.size} rows), all {len(parts)} members pooled ({survey_error})"
    )
    weights, means, sigmas = (pooled[k][rows] for k in MIXTURE_COLUMNS)
    z_spec = np.asarray(z_spec, np.float64)[share][rows]
    share_weights = None if row_weights is None else row_weights[share][rows]
    return fit_calibration(weights, means, sigmas, z_spec, described, seed, share_weights)


def _stellar_locus(
    store: SurveyStore, tiles: Sequence[str], echo: Callable[[str], None]
) -> StellarLocus | None:
    """The training tiles' stellar locus (every star of them, not only the spectroscopic rows), so
    ``dpz predict --homogenise`` can bring another tile's zero points to theirs; ``None`` (said)
    when the tiles have no class array or too few well-measured stars."""
    parts = []
    for name in tiles:
        tile = store.tile(name)
        if not tile.has("class"):
            echo(f"stellar locus: tile {name!r} has no class array; no locus, so no --homogenise")
            return None
        data = tile.read(["class", "mag", "mag_err"])
        stars = data["class"] == CLASS_STAR
        parts.append((data["mag"][stars], data["mag_err"][stars]))
    first = store.tile(tiles[0])
    scatter = zeropoint_scatter(first.bands, first.band_set.name)[0]
    try:
        locus = StellarLocus.fit(
            np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]),
            first.bands,
            scatter,
            len(tiles),
        )
    except TooFewStars as exc:
        echo(f"stellar locus: {exc}; no locus, so no --homogenise")
        return None
    echo(f"stellar locus: {locus.n_stars} well-measured stars of the training tiles")
    return locus
