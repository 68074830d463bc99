"""Photo-z of a block of rows from one bundle or an ensemble of bundles: arrays in, arrays out.

:func:`predict_arrays` is the pure core the streaming layer calls per chunk: no I/O, no global
state, the same result however the rows are split into chunks. An ensemble's p(z) is the
average of its members' mixtures (DEEPZ §5.2): the ``M`` members' ``K`` components are
concatenated with weights divided by ``M``, and the summaries (mode, mean, quantiles, ODDS) are
taken of that mixture. Point-estimate members are averaged. Members with the same input spec
share the band selection and raw features of each batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from distributed_pz.catalog import Flag
from distributed_pz.metrics import mixture
from distributed_pz.models.bundle import Bundle
from distributed_pz.models.features import InputSpec
from distributed_pz.models.inputs import batch_tensors, model_inputs, raw_features
from distributed_pz.survey.tiles import TileArrays


def predict_arrays(
    bundles: Bundle | Sequence[Bundle],
    arrays: TileArrays | Mapping[str, np.ndarray],
    *,
    device: torch.device | str | None = None,
    batch_size: int = 4096,
    odds_interval: float = 0.06,
) -> dict[str, np.ndarray]:
    """Predict redshifts for every row of ``arrays``.

    Parameters
    ----------
    bundles
        One bundle, or the members of an ensemble (all with a p(z) head, or all point heads).
    arrays
        A :class:`TileArrays`, or a dict of schema arrays whose band axes are those the first
        bundle was trained on (``data_bands``, ``data_image_bands``; zero points 30).
    device
        Where to compute; ``None`` = where the first bundle's model is. Members elsewhere are
        copied there (once per call: load bundles on the right device for streaming).
    batch_size
        Rows per forward pass.
    odds_interval
        ODDS (DEEPZ eq. 7) integrates p(z) over ``z_phot ± odds_interval / 2``, as the catalogues do.

    Returns
    -------
    dict of numpy arrays over the ``N`` rows:

    - ``z_phot`` ``(N,)`` float32: mode of p(z), or the point estimate;
    - ``flags`` ``(N,)`` uint16: bits of :mod:`distributed_pz.models.features` (``FLAG_*``), 0 = usable;
    - p(z) models: ``z_mean``, ``z_std``, ``z_lo68``, ``z_hi68`` (15.9/84.1 % quantiles), ``odds``
      ``(N,)`` and the mixture ``pdf_weights``, ``pdf_means``, ``pdf_sigmas`` ``(N, M K)``;
    - models with a class head: ``class_prob`` ``(N, 3)`` (galaxy, star, QSO).

    Rows with a non-zero flag get NaN estimates.
    """
    members = [bundles] if isinstance(bundles, Bundle) else list(bundles)
    if not members:
        raise ValueError("no bundle to predict with")
    has_pdf = {b.model.has_pdf for b in members}
    if len(has_pdf) > 1:
        raise ValueError("an ensemble must be all p(z) models or all point-estimate models")
    device = torch.device(device) if device is not None else members[0].device
    members = [b.to(device) for b in members]
    for bundle in members:
        bundle.model.eval()
    tile = (
        arrays
        if isinstance(arrays, TileArrays)
        else TileArrays(arrays, members[0].data_bands, members[0].data_image_bands)
    )
    parts = [
        _predict_batch(members, tile, slice(start, start + batch_size), device, odds_interval)
        for start in range(0, tile.n_rows, batch_size)
    ]
    if not parts:
        parts = [_predict_batch(members, tile, slice(0, 0), device, odds_interval)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def forward_members(
    members: Sequence[Bundle],
    tile: TileArrays,
    rows: slice,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
) -> tuple[list[dict[str, torch.Tensor]], dict[InputSpec, dict[str, torch.Tensor]]]:
    """Every member's raw outputs on ``rows``, and the raw features of each input spec.

    Members with the same input spec share one band selection and raw-feature computation.
    ``autocast_dtype`` (bf16/fp16) runs the forward passes under autocast; None = full precision.
    """
    with torch.inference_mode():
        raws: dict[InputSpec, dict[str, torch.Tensor]] = {}
        for bundle in members:
            spec = bundle.input_spec
            if spec not in raws:
                raws[spec] = raw_features(spec, batch_tensors(tile, spec, rows, device))
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            outputs = [
                b.model(model_inputs(b.input_spec, raws[b.input_spec], b.feature_stats)) for b in members
            ]
    return outputs, raws


@torch.inference_mode()
def _predict_batch(
    members: list[Bundle], tile: TileArrays, rows: slice, device: torch.device, odds_interval: float
) -> dict[str, np.ndarray]:
    outputs, raws = forward_members(members, tile, rows, device)
    n = len(next(iter(raws.values()))["flags"])
    flags = torch.zeros(n, dtype=torch.int32, device=device)
    for raw in raws.values():
        flags |= raw["flags"]
    result: dict[str, torch.Tensor] = {}
    if members[0].model.has_pdf:
        m = len(outputs)
        weights = torch.cat([torch.softmax(o["logits"], dim=1) / m for o in outputs], dim=1)  # (N, M K)
        means = torch.cat([o["means"] for o in outputs], dim=1)
        sigmas = torch.cat([o["sigmas"] for o in outputs], dim=1)
        arrays = [x.double().cpu().numpy() for x in (weights, means, sigmas)]
        summary = mixture.summarise(*arrays, odds_interval)
        result.update({k: torch.from_numpy(v).to(device) for k, v in summary.items()})
        result.update(pdf_weights=weights, pdf_means=means, pdf_sigmas=sigmas)
    else:
        result["z_phot"] = torch.stack([o["z"] for o in outputs]).mean(dim=0)
    if all("class_logits" in o for o in outputs):
        result["class_prob"] = torch.stack([torch.softmax(o["class_logits"], dim=1) for o in outputs]).mean(
            dim=0
        )
    finite = torch.ones(n, dtype=torch.bool, device=device)
    for value in result.values():
        finite &= torch.isfinite(value if value.dim() == 2 else value.unsqueeze(1)).all(dim=1)
    flags |= torch.where(finite, 0, Flag.BAD_OUTPUT).int()
    bad = flags != 0
    out = {}
    for name, value in result.items():
        value = value.float()
        mask = bad.view(n, *([1] * (value.dim() - 1)))
        out[name] = torch.where(mask, torch.full_like(value, float("nan")), value).cpu().numpy()
    out["flags"] = flags.cpu().numpy().astype(np.uint16)
    return out
