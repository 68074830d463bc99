"""The ensemble predictor: a chunk of tile rows in, catalogue columns out.

:class:`EnsemblePredictor` is the one way the package turns rows into redshifts: catalogues
(Dask, :mod:`distributed_pz.infer.stream`; the no-cluster reference run,
:mod:`distributed_pz.infer.local`), out-of-fold predictions (:mod:`distributed_pz.train.worker`)
and every benchmark call it. It holds every member of an ensemble, loaded once (once per Dask
worker, see :mod:`distributed_pz.infer.plugin`), and runs them together on each batch: the
features a group of members shares are built once, members of one architecture run as one
batched model (:mod:`distributed_pz.models.folded`; the others one forward pass each), and
the results are pooled into one PDF per source, on the model's device (GPU or CPU): only the
final catalogue columns are copied to the host:

- mixture-density members (DEEPZ, GaZNet-1-MDN): the members' Gaussian mixtures with equal
  member weights, ``K_total = members x K`` components (DEEPZ §5.2);
- point-estimate members (GaZNet Huber): one Gaussian with the members' mean and spread
  (standard deviation, at least ``sigma_floor``); its calibration
  (:class:`~distributed_pz.models.kernel_calibration.KernelCalibration`) makes it a mixture of
  the out-of-fold errors' kernel.

An ensemble directory may hold a calibration (:mod:`distributed_pz.models.calibration`)
fitted on its out-of-fold predictions; the predictor applies it to every pooled mixture before
the summaries are taken, and :meth:`EnsemblePredictor.catalogue_metadata` says which one.

The default PDF representation is that mixture itself (``pdf_weights``, ``pdf_means``,
``pdf_sigmas``): it is exact, resolution-free (a DEEPZ component can be narrower than any
affordable grid step), as compact as a grid for ensembles up to ~10 members, and readable by
``qp.mixmod``. ``pdf="grid"`` instead writes the density on a fixed redshift grid (``pdf``
column plus ``z_grid`` metadata), bounded in size however large the ensemble.

A member whose output for a row is non-finite is dropped from that row's pool
(``MEMBER_DROPPED``; ``BAD_OUTPUT`` when none is left); rows whose inputs are unusable
(:data:`distributed_pz.catalog.NO_ESTIMATE` bits) get NaN summaries and an all-zero-weight mixture.

Summaries are taken of the pooled mixture (:func:`distributed_pz.metrics.mixture.summarise`):
``z_phot`` (mode), ``z_mean``, ``z_std``, ``z_lo68``/``z_hi68`` (15.87/84.13 % quantiles) and
``odds`` — DEEPZ eq. 7, the probability within ``z_phot ± odds_interval / 2``. Flag bits are in
:mod:`distributed_pz.catalog`.

Mixed precision (``precision="bf16"`` or ``"fp16"``) autocasts the forward passes only; the
pooling and summaries stay in float64. A reader needs only the cutout bands of
:attr:`EnsemblePredictor.image_bands` (:meth:`distributed_pz.survey.store.store.Tile.read_rows`). What bf16 may change is stated (and tested on CPU)
in :data:`BF16_TOLERANCE`. Inference draws no random numbers, so the result of a row does not
depend on how rows are split into chunks or tasks.
"""

from __future__ import annotations

import argparse
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from distributed_pz import catalog as fl
from distributed_pz.metrics import mixture
from distributed_pz.metrics.reduce import reduce_mixture
from distributed_pz.models.bundle import Bundle
from distributed_pz.models.calibration import RecordedCalibration
from distributed_pz.models.ensemble import Ensemble
from distributed_pz.models.features import InputSpec
from distributed_pz.models.folded import StackedDeepZ, stack_members
from distributed_pz.models.inputs import batch_tensors, model_inputs, raw_features
from distributed_pz.options import option
from distributed_pz.survey.store.tiles import TileArrays

PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
"""Precision name -> autocast dtype (``None`` = plain float32)."""
PDF_KINDS = ("mixture", "grid")
GALAXY_CUT = 0.5
"""A source whose pooled class head gives ``p_galaxy`` below this is flagged ``NOT_GALAXY``."""
PASSTHROUGH = ("object_id", "ra", "dec")
"""Tile arrays copied into the catalogue."""
BF16_TOLERANCE = 0.01
"""What bf16 autocast may change (tested on CPU): each source's p(z) by at most this in CDF (KS
distance), ``z_mean``, ``z_std``, ``z_lo68``, ``z_hi68`` by at most this times ``1 + z`` and
``odds`` by at most this. ``z_phot`` (the mode) may move to another peak of a multimodal p(z)
whose density is within 10 % of the highest, so fp32 stays the default."""


def parse_z_grid(text: str) -> tuple[float, float, int]:
    """``"0,4,401"`` -> ``(0.0, 4.0, 401)``: ``--z-grid START,STOP,POINTS``."""
    try:
        start, stop, points = text.split(",")
        return float(start), float(stop), int(points)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected START,STOP,POINTS (e.g. 0,4,401), not {text!r}") from None


@dataclass(frozen=True)
class PredictOptions:
    """How the predictor runs and what it writes.

    Parameters
    ----------
    batch_size
        Rows per forward pass.
    precision
        ``"fp32"`` (default), ``"bf16"`` or ``"fp16"`` autocast of the forward passes
        (fp16 is for GPUs).
    odds_interval
        Full width ``Δz`` of the ODDS interval around the mode (DEEPZ eq. 7; 0.003 there for
        40 narrow bands; :data:`~distributed_pz.metrics.mixture.DEFAULT_ODDS_INTERVAL` = 0.06
        here by default for broad-band photometry). Recorded in the catalogue metadata.
    pdf
        ``"mixture"`` (default) or ``"grid"``.
    z_grid
        ``(start, stop, points)`` of the grid PDF (``pdf="grid"`` only).
    sigma_floor
        Smallest width of a point-estimate ensemble's Gaussian.
    pdf_components
        Merge each pooled mixture into at most this many Gaussians for the PDF columns
        (:func:`~distributed_pz.metrics.reduce.reduce_mixture`: weight, mean and variance kept);
        the point estimates are always those of the full mixture. ``None``: keep every component.
    """

    batch_size: int = option(4096, minimum=1, help="rows per forward pass")
    precision: str = option(
        "fp32",
        choices=list(PRECISIONS),
        help="forward-pass precision: fp32, or bf16/fp16 autocast (fp16 on GPUs only)",
    )
    odds_interval: float = option(
        mixture.DEFAULT_ODDS_INTERVAL, help="full width of the ODDS interval around the mode (DEEPZ eq. 7)"
    )
    pdf: str = option(
        "mixture",
        choices=PDF_KINDS,
        help="PDF columns: the ensemble's Gaussian mixture, or its density on --z-grid",
    )
    z_grid: tuple[float, float, int] = option(
        (0.0, 4.0, 401), parse=parse_z_grid, metavar="START,STOP,POINTS", help="redshift grid of --pdf grid"
    )
    sigma_floor: float = 1e-3
    pdf_components: int | None = option(
        None,
        minimum=1,
        metavar="K",
        help="merge each pooled mixture into K Gaussians (moments kept) in the PDF columns; default: all",
    )

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, not {self.precision!r}")
        if self.pdf not in PDF_KINDS:
            raise ValueError(f"pdf must be one of {PDF_KINDS}, not {self.pdf!r}")
        if self.batch_size < 1 or self.odds_interval <= 0 or self.sigma_floor <= 0:
            raise ValueError("batch_size, odds_interval and sigma_floor must be positive")
        if self.z_grid[2] < 2 or self.z_grid[1] <= self.z_grid[0]:
            raise ValueError(f"z_grid must be (start, stop > start, points >= 2), not {self.z_grid}")

    def grid(self) -> np.ndarray | None:
        """The redshift grid of a grid PDF, else ``None``."""
        if self.pdf != "grid":
            return None
        start, stop, points = self.z_grid
        return np.linspace(start, stop, int(points))

    def output_settings(self) -> dict[str, Any]:
        """The options that change catalogue values (recorded in the run manifest)."""
        settings = asdict(self)
        del settings["batch_size"]
        if self.pdf != "grid":
            del settings["z_grid"]
        if self.pdf_components is None:  # runs from before the option resume
            del settings["pdf_components"]
        return settings


@dataclass(frozen=True)
class ForwardedBatch:
    """One batch after the networks (:meth:`EnsemblePredictor.forward_batch`), before pooling."""

    outputs: dict[str, torch.Tensor]
    """Every member's raw outputs, ``(M, B, ...)``."""
    flags: torch.Tensor
    """Input flag bits, ``(B,)``."""
    partial: torch.Tensor
    """Rows with a non-finite input value, ``(B,)``."""
    passthrough: dict[str, np.ndarray]
    """The :data:`PASSTHROUGH` arrays of the batch's rows."""


class EnsemblePredictor:
    """All members of an ensemble on one device; ``predictor(rows)`` predicts a chunk.

    Parameters
    ----------
    bundles
        The members (all mixture-density models, or all point-estimate models), or one bundle.
    bundle_hash
        Content hash of the ensemble (written into catalogues); may be empty.
    device
        Where to run; default: ``cuda`` when torch sees a GPU, else ``cpu``. Members elsewhere
        are copied there once, here.
    options
        Batch size, precision, ODDS interval, PDF representation.
    calibration
        Recalibration applied to every pooled mixture (``None``: the raw pool).
    """

    def __init__(
        self,
        bundles: Bundle | Sequence[Bundle],
        bundle_hash: str = "",
        device: torch.device | str | None = None,
        options: PredictOptions | None = None,
        calibration: RecordedCalibration | None = None,
    ) -> None:
        bundles = [bundles] if isinstance(bundles, Bundle) else list(bundles)
        if not bundles:
            raise ValueError("an ensemble needs at least one member")
        kinds = {b.model.has_pdf for b in bundles}
        if len(kinds) > 1:
            raise ValueError("an ensemble must be all mixture-density models or all point-estimate models")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.options = options or PredictOptions()
        if self.options.precision == "fp16" and self.device.type == "cpu":
            raise ValueError("fp16 autocast is for GPUs; use bf16 on CPU")
        self.members = [b.to(self.device) for b in bundles]
        for bundle in self.members:
            bundle.model.eval()
        self.bundle_hash = bundle_hash
        self.calibration = calibration
        self.has_pdf = kinds.pop()
        self._specs = list(dict.fromkeys(b.input_spec for b in self.members))
        self._groups = stack_members([b.model for b in self.members])

    @classmethod
    def from_ensemble(cls, ensemble: Ensemble, options: PredictOptions | None = None) -> EnsemblePredictor:
        """The predictor of a read ensemble (:meth:`EnsembleDir.read <distributed_pz.models.ensemble.EnsembleDir.read>`):
        its members on the device they were read to, its hash and its calibration."""
        bundles = ensemble.bundles
        return cls(bundles, ensemble.content_hash, bundles[0].device, options, ensemble.calibration)

    @property
    def n_members(self) -> int:
        return len(self.members)

    @property
    def n_components(self) -> int:
        """Components of each source's mixture in the PDF columns (after ``pdf_components``)."""
        pooled = self.n_members * self.members[0].config.n_components if self.has_pdf else 1
        if self.calibration is not None:
            pooled = self.calibration.output_components(pooled)
        return min(pooled, self.options.pdf_components or pooled)

    def catalogue_metadata(self) -> dict[str, str]:
        """What the catalogue's p(z) is: ``pdf_source``, ``calibration`` and its hash (JSON-ready strings)."""
        source = "members_mixture" if self.has_pdf else "member_spread"
        if self.calibration is None:
            return {"pdf_source": source, "calibration": "none"}
        return {
            "pdf_source": source,
            "calibration": self.calibration.describe(),
            "calibration_hash": self.calibration.content_hash,
        }

    def input_arrays(self, available: Collection[str]) -> list[str]:
        """Tile arrays to read: the models' inputs (from those ``available``) and the passthrough columns."""
        names = list(PASSTHROUGH)
        for spec in self._specs:
            names += spec.arrays(available)
        return list(dict.fromkeys(names))

    @property
    def image_bands(self) -> tuple[str, ...]:
        """The cutout bands any member reads (a reader need not read the others)."""
        return tuple(dict.fromkeys(b for spec in self._specs for b in spec.image_bands))

    def predict_chunk(self, rows: TileArrays | Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Catalogue columns for ``rows`` (read with :meth:`input_arrays`).

        Parameters
        ----------
        rows
            A :class:`TileArrays`, or a mapping of schema arrays whose band axes are those the
            first member was trained on (``data_bands``, ``data_image_bands``).

        Returns
        -------
        dict of numpy arrays over the ``N`` rows: ``object_id``, ``ra``, ``dec`` (as read),
        ``z_phot``, ``z_mean``, ``z_std``, ``z_lo68``, ``z_hi68``, ``odds`` float32, ``flags``
        int32, ``n_members`` int16, ``p_galaxy`` float32 (members with a class head), and ``pdf_weights``, ``pdf_means``, ``pdf_sigmas``
        float32 ``(N, K_total)`` or ``pdf`` float32 ``(N, G)``. Rows with a
        :data:`~distributed_pz.catalog.NO_ESTIMATE` bit have NaN summaries and zero weights.
        """
        if not isinstance(rows, TileArrays):
            first = self.members[0]
            rows = TileArrays(dict(rows), first.data_bands, first.data_image_bands)
        step = self.options.batch_size
        parts = [
            self.finish_batch(self.forward_batch(rows, slice(s, s + step)))
            for s in range(0, max(rows.n_rows, 1), step)
        ]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    __call__ = predict_chunk

    @torch.inference_mode()
    def forward_batch(self, rows: TileArrays, batch: slice = slice(None)) -> ForwardedBatch:
        """The networks' part of a prediction: every member on rows ``batch`` of ``rows`` (at most
        :attr:`PredictOptions.batch_size` of them); :meth:`finish_batch` makes the columns."""
        dtype = PRECISIONS[self.options.precision]
        outputs, raws = forward_members(self.members, rows, batch, self.device, dtype, self._groups)
        flags = torch.zeros_like(next(iter(raws.values()))["flags"])
        partial = torch.zeros(flags.shape, dtype=torch.bool, device=self.device)
        for raw in raws.values():
            flags |= raw["flags"]
            for name in ("catalog", "image"):
                if name in raw:
                    partial |= (~torch.isfinite(raw[name])).flatten(1).any(dim=1)
        passthrough = {k: np.asarray(rows.arrays[k])[batch] for k in PASSTHROUGH if k in rows.arrays}
        return ForwardedBatch(outputs, flags, partial, passthrough)

    def _calibrated(
        self, weights: torch.Tensor, means: torch.Tensor, sigmas: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The stored calibration applied to pooled mixtures (numpy maths: one host round trip)."""
        arrays = self.calibration.apply(*(t.cpu().numpy() for t in (weights, means, sigmas)))
        return tuple(torch.as_tensor(a, dtype=torch.float64, device=weights.device) for a in arrays)

    @torch.inference_mode()
    def finish_batch(self, forwarded: ForwardedBatch) -> dict[str, np.ndarray]:
        """The catalogue columns of a :meth:`forward_batch`: pooling, calibration, summaries and
        PDF columns on the device, then to the host. Thread-safe: a stream may finish one batch
        while the networks run on the next (:mod:`distributed_pz.infer.overlap`)."""
        outputs, flags, partial = forwarded.outputs, forwarded.flags.clone(), forwarded.partial
        usable = (flags & fl.NO_ESTIMATE) == 0  # (N,)
        if self.has_pdf:
            w = torch.softmax(outputs["logits"].double(), dim=2)  # (M, N, K)
            mu, sd = outputs["means"].double(), outputs["sigmas"].double()
            valid = (
                torch.isfinite(w).all(2) & torch.isfinite(mu).all(2) & (torch.isfinite(sd) & (sd > 0)).all(2)
            )
            valid &= usable
            weights, means, sigmas = mixture.pool_members(w, mu, sd, valid)
        else:
            z = outputs["z"].double()  # (M, N)
            valid = torch.isfinite(z) & usable
            weights, means, sigmas = mixture.spread_mixture(z, valid, self.options.sigma_floor)
        if self.calibration is not None:
            weights, means, sigmas = self._calibrated(weights, means, sigmas)
        n_valid = valid.sum(dim=0)
        m = valid.shape[0]

        def bit(condition: torch.Tensor, flag: fl.Flag) -> torch.Tensor:
            return torch.where(condition, int(flag), 0).to(flags.dtype)

        flags |= bit(usable & (n_valid == 0), fl.Flag.BAD_OUTPUT)
        flags |= bit((n_valid > 0) & (n_valid < m), fl.Flag.MEMBER_DROPPED)
        flags |= bit(partial, fl.Flag.PARTIAL_INPUT)
        if not self.has_pdf:
            flags |= bit((n_valid > 0) & (n_valid < 2), fl.Flag.WIDTH_FLOOR)
        columns = mixture.summarise(weights, means, sigmas, self.options.odds_interval)
        columns = {k: v.float() for k, v in columns.items()}
        if "class_logits" in outputs:
            p_galaxy = class_probability(outputs["class_logits"], valid)
            flags |= bit(p_galaxy < GALAXY_CUT, fl.Flag.NOT_GALAXY)
            columns["p_galaxy"] = p_galaxy.float()
        columns["flags"] = flags
        columns["n_members"] = n_valid.to(torch.int16)
        grid = self.options.grid()
        if grid is None:
            if self.options.pdf_components is not None:
                weights, means, sigmas = reduce_mixture(weights, means, sigmas, self.options.pdf_components)
            columns.update(pdf_weights=weights.float(), pdf_means=means.float(), pdf_sigmas=sigmas.float())
        else:
            z_grid = torch.as_tensor(grid, dtype=torch.float64, device=weights.device)
            columns["pdf"] = mixture.on_grid(z_grid, weights, means, sigmas).float()
        out = {k: v.cpu().numpy() for k, v in columns.items()}
        out["flags"] = out["flags"].astype(fl.FLAG_DTYPE)
        return {**forwarded.passthrough, **out}


def class_probability(class_logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean over the valid members of the class head's galaxy probability, ``(M, N, 3) -> (N,)`` (NaN where none is valid).

    Class 0 is a galaxy (:mod:`distributed_pz.survey.store.schema`).
    """
    p = torch.softmax(class_logits.double(), dim=-1)[..., 0]  # (M, N)
    n = valid.sum(dim=0)
    mean = torch.where(valid, p, 0.0).sum(dim=0) / n.clamp_min(1)
    return torch.where(n > 0, mean, torch.full_like(mean, float("nan")))


def forward_members(
    members: Sequence[Bundle],
    tile: TileArrays,
    rows: slice,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
    groups: Sequence[tuple[list[int], StackedDeepZ | None]] | None = None,
) -> tuple[dict[str, torch.Tensor], dict[InputSpec, dict[str, torch.Tensor]]]:
    """Every member's raw outputs on ``rows``, stacked ``(M, B, ...)`` in member order, and the raw features of each input spec.

    Members with the same input spec share one band selection and raw-feature computation.
    ``groups`` (:func:`~distributed_pz.models.folded.stack_members` of the members' models)
    runs each stacked group as one batched model; default: every member on its own. Members
    run ``forward_features`` and ``forward_head`` (no auxiliary outputs such as DEEPZ's
    reconstruction). ``autocast_dtype`` (bf16/fp16) runs the forward passes under autocast;
    None = full precision.
    """
    groups = groups if groups is not None else [([i], None) for i in range(len(members))]
    with torch.inference_mode():
        raws: dict[InputSpec, dict[str, torch.Tensor]] = {}
        for bundle in members:
            spec = bundle.input_spec
            if spec not in raws:
                raws[spec] = raw_features(spec, batch_tensors(tile, spec, rows, device))

        def inputs(i: int) -> dict[str, torch.Tensor]:
            b = members[i]
            return model_inputs(b.input_spec, raws[b.input_spec], b.feature_stats)

        parts: dict[int, dict[str, torch.Tensor]] = {}
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            for indices, stacked in groups:
                if stacked is None:
                    model = members[indices[0]].model
                    out = model.forward_head(model.forward_features(inputs(indices[0])))
                    parts[indices[0]] = {k: v[None] for k, v in out.items()}
                else:
                    x = torch.stack([inputs(i)["catalog"] for i in indices])  # (M, B, 2F)
                    out = stacked(x)
                    parts.update(
                        {i: {k: v[j : j + 1] for k, v in out.items()} for j, i in enumerate(indices)}
                    )
        order = [parts[i] for i in range(len(members))]
        names = [k for k in order[0] if k in ("logits", "means", "sigmas", "z", "class_logits")]
        outputs = {k: torch.cat([p[k] for p in order]).float() for k in names}
    return outputs, raws
