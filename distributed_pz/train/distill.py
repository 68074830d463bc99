"""Distil an ensemble into one student network that reproduces its p(z).

A 50-member ensemble costs 50 forward passes per source; its student costs one. The student
is trained on the ensemble's own predictions, so it needs no labels: the rows are the
ensemble's training rows and any unlabeled rows of the survey. For each row the teacher's pooled
p(z) (:class:`~distributed_pz.models.predictor.EnsemblePredictor`, the mixture the catalogues
carry, calibrated when the predictor applies a calibration) is sampled ``samples`` times, and
the student (an ordinary mixture density model, the ensemble's architecture by default) is
fitted by :func:`~distributed_pz.train.member.train_member` to those draws: minimising
``-log q(z)`` over draws ``z ~ p`` minimises the cross-entropy of the student ``q`` to the
teacher ``p``, hence ``KL(p || q)``. Rows the teacher cannot predict are left out.

One network fitted to draws covers its teacher's p(z) rather than matches it: it comes out wider.
So the student gets a calibration of its own (:func:`student_calibration`), fitted on the labelled
sources of its validation share, which none of its draws trained on.

The student is a plain bundle (:func:`~distributed_pz.models.bundle.save_bundle`): ``dpz predict
--bundle STUDENT`` runs it exactly as it runs the ensemble, so a user picks ensemble or student at
predict time. Its metadata names the teacher (``distilled_from``, its content hash), the band
set it was trained on (``band_set``), so a tile of another band set is refused as the teacher is,
and its calibration (``calibration``; the string ``none (…)`` says why there is none), which
:meth:`~distributed_pz.models.ensemble.EnsembleDir.read` hands to the predictor.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from distributed_pz import catalog as fl
from distributed_pz.metrics import mixture
from distributed_pz.models.bundle import Bundle
from distributed_pz.models.calibration import CalibrationRefused, RecordedCalibration, fit_calibration
from distributed_pz.models.predictor import EnsemblePredictor
from distributed_pz.models.registry import ModelConfig
from distributed_pz.options import option
from distributed_pz.survey.store.tiles import TileArrays
from distributed_pz.train.calibrate import fitting_rows
from distributed_pz.train.member import TrainConfig, TrainResult, train_member


@dataclass(frozen=True)
class DistillConfig:
    """How to distil.

    Parameters
    ----------
    samples
        Draws from the teacher's p(z) per row (each draw is one training row of the student).
    seed
        Seeds the draws and the student's training.
    train
        The student's training settings (:class:`TrainConfig`).
    """

    samples: int = option(8, minimum=1, help="draws from the teacher's p(z) per row")
    seed: int = option(0, help="seed of the draws and the student")
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(epochs=30, batch_size=256))


def teacher_draws(
    teacher: EnsemblePredictor, rows: TileArrays, samples: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rows the teacher predicts, and ``samples`` draws per such row from its pooled p(z).

    Returns
    -------
    rows, z
        Row indices ``(R,)`` into ``rows`` and draws ``(R, samples)`` float32.
    """
    if not teacher.has_pdf:
        raise ValueError("distillation needs a mixture-density ensemble (its members give p(z))")
    out = teacher(rows)
    keep = np.flatnonzero(((out["flags"] & fl.NO_ESTIMATE) == 0) & np.isfinite(out["z_phot"]))
    z = mixture.sample(
        out["pdf_weights"][keep],
        out["pdf_means"][keep],
        out["pdf_sigmas"][keep],
        samples,
        np.random.default_rng(seed),
    )
    return keep, z.astype(np.float32)


def student_rows(rows: TileArrays, keep: np.ndarray, z: np.ndarray) -> TileArrays:
    """``rows[keep]`` repeated once per draw, with the draws as ``z_spec`` (and no class labels)."""
    repeated = rows.take(np.repeat(keep, z.shape[1]))
    arrays = {k: v for k, v in repeated.arrays.items() if k != "class"}
    arrays["z_spec"] = z.reshape(-1)
    return TileArrays(arrays, repeated.bands, repeated.image_bands, repeated.zeropoints, repeated.band_set)


def distill(
    teacher: EnsemblePredictor,
    rows: TileArrays,
    student: ModelConfig | None = None,
    config: DistillConfig | None = None,
) -> TrainResult:
    """Train a student on ``rows`` (labelled or not) to reproduce ``teacher``'s p(z).

    Parameters
    ----------
    teacher
        The ensemble (mixture-density members).
    rows
        Training and unlabeled survey rows, with the arrays the teacher and the student read.
    student
        The student's model config; default: the configuration of the teacher's first member.
    config
        Draws per row, seed and training settings.

    Returns
    -------
    The student's training result; its bundle's metadata has ``distilled_from`` (the teacher's
    content hash), ``distill_rows``, ``distill_samples``, the rows' ``band_set`` (the teacher's:
    ``dpz distill`` refuses tiles of another), which ``dpz predict`` checks tiles against, and
    ``calibration`` (:func:`student_calibration`).
    """
    config = config or DistillConfig()
    keep, z = teacher_draws(teacher, rows, config.samples, config.seed)
    order = np.random.default_rng(config.seed).permutation(len(keep))
    n_val = max(
        1, round(config.train.val_fraction * len(keep))
    )  # validation sources: none of their draws train
    train, val = np.sort(order[n_val:]), np.sort(order[:n_val])
    result = train_member(
        student or teacher.members[0].config,
        student_rows(rows, keep[train], z[train]),
        config.seed,
        train_config=config.train,
        val_data=student_rows(rows, keep[val], z[val]),
    )
    calibration = student_calibration(result.bundle, rows.take(keep[val]), config.seed)
    metadata = {
        **result.bundle.metadata,
        "distilled_from": teacher.bundle_hash,
        "distill_rows": len(keep),
        "distill_samples": config.samples,
        **({"band_set": rows.band_set} if rows.band_set else {}),
        "calibration": calibration if isinstance(calibration, str) else calibration.to_dict(),
    }
    bundle: Bundle = dataclasses.replace(result.bundle, metadata=metadata)
    return dataclasses.replace(result, bundle=bundle)


def student_calibration(student: Bundle, held_out: TileArrays, seed: int) -> RecordedCalibration | str:
    """The student's calibration, fitted on the labelled galaxies of ``held_out`` (rows none of its
    draws trained on), or why there is none (``"none (…)"``: too few labelled rows, or a refused fit)."""
    z = np.asarray(held_out.arrays.get("z_spec", np.full(held_out.n_rows, np.nan)), np.float64)
    labelled = np.isfinite(z)
    if "class" in held_out.arrays:
        labelled &= fitting_rows(held_out.arrays["class"])
    out = EnsemblePredictor(student, device=student.device)(held_out)
    try:
        return fit_calibration(
            *(out[k][labelled] for k in fl.MIXTURE_COLUMNS),
            z[labelled],
            "labelled rows held out of the student's training",
            seed,
        )
    except (CalibrationRefused, ValueError) as exc:
        return f"none ({exc})"
