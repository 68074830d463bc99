"""RAIL stages: train and run distributed_pz ensembles from inside RAIL (``pip install 'distributed_pz[rail]'``).

:class:`DistributedPzInformer` is a RAIL ``CatInformer``: it writes the training table as one
tile of a survey store and trains an ensemble with :func:`~distributed_pz.train.ray_ensemble.train_ensemble`
— the code behind ``dpz train`` — then registers the ensemble directory as its model.
:class:`DistributedPzEstimator` is a ``CatEstimator``: each chunk RAIL hands it goes through the
:class:`~distributed_pz.models.predictor.EnsemblePredictor` behind ``dpz predict`` and comes back as a
``qp.Ensemble`` of the pooled Gaussian mixtures with ``zmode``, ``zmean``, ``zmedian``,
``z_lo68``/``z_hi68`` (the 15.87/84.13 % quantiles), ``zstd``, ``odds`` and ``flags`` in ancil
(:data:`distributed_pz.catalog.QP_ANCIL`).

Both follow RAIL's photometry conventions: ``bands`` and ``err_bands`` name the magnitude and
error columns (bluest first), ``ref_band`` the DEEPZ flux-ratio denominator, a magnitude of
``nondetect_val`` (99) is a non-detection — its error becomes the band's ``mag_limits`` entry
when one is given — and ``nonobserved_val`` (-99) or a non-finite value is not observed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
from ceci.config import StageParameter as Param
from rail.core.common_params import SharedParams
from rail.estimation.estimator import CatEstimator
from rail.estimation.informer import CatInformer

from distributed_pz.catalog import qp_ensemble
from distributed_pz.models.ensemble import EnsembleDir
from distributed_pz.models.predictor import EnsemblePredictor, PredictOptions
from distributed_pz.options import specs
from distributed_pz.survey.store.store import absolute_url, open_store
from distributed_pz.survey.store.tiles import TileArrays
from distributed_pz.train.config import ClusterConfig, EnsembleConfig
from distributed_pz.train.member import TrainConfig
from distributed_pz.train.ray_ensemble import train_ensemble

RAIL_TILE = "rail"
"""Name of the tile the training table is written as."""
NOT_DETECTED, NOT_OBSERVED = 1, 2
"""``mag_flag`` values of the survey store schema."""

PHOTOMETRY = {
    "bands": SharedParams.copy_param("bands"),
    "err_bands": SharedParams.copy_param("err_bands"),
    "ref_band": SharedParams.copy_param("ref_band"),
    "nondetect_val": SharedParams.copy_param("nondetect_val"),
    "nonobserved_val": SharedParams.copy_param("nonobserved_val"),
    "mag_limits": SharedParams.copy_param("mag_limits"),
    "id_col": SharedParams.copy_param("id_col"),
}
"""The RAIL photometry parameters both stages take."""


def option_param(cls: type, name: str, **changes: Any) -> Param:
    """The RAIL parameter of the ``dpz`` option declared by the field ``cls.name``: its type,
    default and help, as ``dpz`` declares them; ``changes`` (``default``, ``msg``) replace them."""
    spec = next(spec for spec in specs(cls) if spec.name == name)
    declared = {"default": spec.default, "msg": spec.option.help, **changes}
    return Param(spec.value_type, declared["default"], msg=declared["msg"])


def tile_arrays(data: Mapping[str, np.ndarray], config: Any, with_redshift: str | None = None) -> dict:
    """A RAIL table (dict of columns) as survey-store arrays, following the RAIL conventions.

    Parameters
    ----------
    data
        Columns of the table: ``config.bands``, ``config.err_bands``, optionally ``id_col``,
        ``ra``, ``dec``.
    config
        The stage configuration (``bands``, ``err_bands``, ``nondetect_val``,
        ``nonobserved_val``, ``mag_limits``, ``id_col``).
    with_redshift
        Column holding the spectroscopic redshift, copied as ``z_spec``.
    """
    mag = np.stack([np.asarray(data[b], dtype=np.float64) for b in config.bands], axis=1)  # (N, B)
    err = np.stack([np.asarray(data[b], dtype=np.float64) for b in config.err_bands], axis=1)
    undetected = mag == config.nondetect_val
    unobserved = (mag == config.nonobserved_val) | ~np.isfinite(mag)
    limits = np.array([config.mag_limits.get(b, np.nan) for b in config.bands])
    err = np.where(undetected & np.isfinite(limits), limits, err)
    n = len(mag)
    arrays = {
        "object_id": np.asarray(data.get(config.id_col, np.arange(n)), dtype=np.int64),
        "ra": np.asarray(data.get("ra", np.zeros(n)), dtype=np.float64),
        "dec": np.asarray(data.get("dec", np.zeros(n)), dtype=np.float64),
        "mag": np.where(undetected | unobserved, np.nan, mag).astype(np.float32),
        "mag_err": np.where(unobserved, np.nan, err).astype(np.float32),
        "mag_flag": np.where(undetected, NOT_DETECTED, np.where(unobserved, NOT_OBSERVED, 0)).astype(
            np.uint8
        ),
    }
    if with_redshift is not None:
        arrays["z_spec"] = np.asarray(data[with_redshift], dtype=np.float32)
    return arrays


def _table(stage: Any) -> Mapping[str, np.ndarray]:
    data = stage.get_data("input")
    return data[stage.config.hdf5_groupname] if stage.config.hdf5_groupname else data


class DistributedPzInformer(CatInformer):
    """Train a distributed_pz ensemble (Ray Train, as ``dpz train``) on a RAIL training table.

    The model RAIL stores is ``{"ensemble": DIRECTORY}``: the ensemble directory ``ensemble_dir``
    (a path or an ``s3://``/``gs://`` URL), which the estimator loads.
    """

    name = "DistributedPzInformer"
    config_options = CatInformer.config_options.copy()
    config_options.update(
        **PHOTOMETRY,
        redshift_col=SharedParams.copy_param("redshift_col"),
        ensemble_dir=Param(str, "distributed_pz_ensemble", msg="ensemble directory to train into"),
        model_name=option_param(EnsembleConfig, "model"),
        model_overrides=Param(dict, {}, msg="model config fields to replace, e.g. {'hidden': 64}"),
        n_splits=option_param(EnsembleConfig, "n_splits", default=2),
        n_folds=option_param(EnsembleConfig, "n_folds", default=2),
        epochs=Param(int, TrainConfig().epochs, msg="epochs per member (at most)"),
        batch_size=Param(int, TrainConfig().batch_size, msg="rows per optimisation step"),
        seed=option_param(EnsembleConfig, "seed"),
        num_workers=option_param(
            ClusterConfig, "num_workers", default=0, msg="Ray Train workers (0 = fill the local cluster)"
        ),
    )

    def run(self) -> None:
        """Write the table as a store tile, train the ensemble, register it as the model."""
        config = self.config
        out = config.ensemble_dir
        store_url = f"{out.rstrip('/')}.train.zarr"
        arrays = tile_arrays(_table(self), config, with_redshift=config.redshift_col)
        attrs = {"band_set": RAIL_TILE, "bands": list(config.bands)}
        open_store(store_url, "w").write_tile(RAIL_TILE, arrays, attrs)
        member = dataclasses.replace(
            TrainConfig(on_nan="stop"), epochs=config.epochs, batch_size=config.batch_size
        )
        ensemble = EnsembleConfig(
            store=absolute_url(store_url),
            out=absolute_url(out),
            tiles=(RAIL_TILE,),
            model=config.model_name,
            model_overrides={"reference_band": config.ref_band, **config.model_overrides},
            n_splits=config.n_splits,
            n_folds=config.n_folds,
            seed=config.seed,
            train=member,
        )
        outcome = train_ensemble(ensemble, ClusterConfig(num_workers=config.num_workers or None))
        if outcome.content_hash is None:
            raise RuntimeError(
                f"{out}: {outcome.finished}/{outcome.n_members} members finished; rerun to resume"
            )
        self.model = {"ensemble": absolute_url(out), "content_hash": outcome.content_hash}
        self.add_data("model", self.model)


class DistributedPzEstimator(CatEstimator):
    """p(z) of every row of a RAIL table from a distributed_pz ensemble, chunk by chunk."""

    name = "DistributedPzEstimator"
    config_options = CatEstimator.config_options.copy()
    config_options.update(
        **PHOTOMETRY,
        predict_batch_size=option_param(PredictOptions, "batch_size"),
        odds_interval=option_param(PredictOptions, "odds_interval"),
    )

    def __init__(self, args: Any, **kwargs: Any) -> None:
        super().__init__(args, **kwargs)
        self.predictor: EnsemblePredictor | None = None

    def open_model(self, **kwargs: Any) -> None:
        """Load the ensemble the informer registered (once), on the GPU when torch sees one."""
        super().open_model(**kwargs)
        options = PredictOptions(
            batch_size=self.config.predict_batch_size, odds_interval=self.config.odds_interval
        )
        self.predictor = EnsemblePredictor.from_ensemble(EnsembleDir(self.model["ensemble"]).read(), options)

    def _process_chunk(self, start: int, end: int, data: Any, first: bool) -> None:
        arrays = tile_arrays(data, self.config)
        rows = TileArrays(arrays, tuple(self.config.bands))
        columns = self.predictor.predict_chunk(rows)
        ensemble = qp_ensemble(columns, {})
        self._do_chunk_output(ensemble, start, end, first, data=data)
