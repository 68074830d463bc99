"""The RAIL stages: :class:`DistributedPzInformer` and :class:`DistributedPzEstimator`."""

from __future__ import annotations

import dataclasses
from typing import Any

from ceci.config import StageParameter as Param
from rail.core.common_params import SharedParams
from rail.core.data import TableHandle
from rail.estimation.estimator import CatEstimator
from rail.estimation.informer import CatInformer

from distributed_pz.catalog import qp_ensemble
from distributed_pz.models.ensemble import EnsembleDir
from distributed_pz.models.predictor import EnsemblePredictor, PredictOptions
from distributed_pz.options import specs
from distributed_pz.rail.model import EnsembleModelHandle, check_model
from distributed_pz.rail.photometry import tile_arrays
from distributed_pz.survey.ingest.columnmap import DEFAULT_VALID_RANGE
from distributed_pz.survey.store.store import absolute_url, open_store
from distributed_pz.survey.store.tiles import TileArrays
from distributed_pz.train.config import ClusterConfig, EnsembleConfig
from distributed_pz.train.member import TrainConfig
from distributed_pz.train.ray_ensemble import train_ensemble

RAIL_TILE = "rail"
"""Name of the tile the training table is written as."""

PHOTOMETRY = {
    "bands": SharedParams.copy_param("bands"),
    "err_bands": SharedParams.copy_param("err_bands"),
    "ref_band": SharedParams.copy_param("ref_band"),
    "nondetect_val": SharedParams.copy_param("nondetect_val"),
    "nonobserved_val": SharedParams.copy_param("nonobserved_val"),
    "mag_limits": SharedParams.copy_param("mag_limits"),
    "id_col": SharedParams.copy_param("id_col"),
    "mag_valid_range": Param(
        list, list(DEFAULT_VALID_RANGE), msg="[low, high]: magnitudes outside are flagged bad (as dpz ingest)"
    ),
}
"""The RAIL photometry parameters both stages take."""


def option_param(cls: type, name: str, **changes: Any) -> Param:
    """The RAIL parameter of the ``dpz`` option declared by the field ``cls.name``: its type,
    default and help, as ``dpz`` declares them; ``changes`` (``default``, ``msg``) replace them."""
    spec = next(spec for spec in specs(cls) if spec.name == name)
    declared = {"default": spec.default, "msg": spec.option.help, **changes}
    return Param(spec.value_type, declared["default"], msg=declared["msg"])


def _table(stage: Any) -> Any:
    data = stage.get_data("input")
    return data[stage.config.hdf5_groupname] if stage.config.hdf5_groupname else data


class DistributedPzInformer(CatInformer):
    """Train a distributed_pz ensemble (Ray Train, as ``dpz train``) on a RAIL training table.

    The model RAIL stores is the JSON ``{"ensemble": URL, "content_hash": HASH}``
    (:mod:`distributed_pz.rail.model`): the ensemble directory ``ensemble_dir`` (a path or an
    ``s3://``/``gs://`` URL) and its content hash, which the estimator checks when it loads it.
    """

    name = "DistributedPzInformer"
    outputs = [("model", EnsembleModelHandle)]
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
    inputs = [("model", EnsembleModelHandle), ("input", TableHandle)]
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
        """Load the ensemble the informer registered (once), on the GPU when torch sees one.

        Raises
        ------
        ValueError
            The model is not ``{"ensemble", "content_hash"}``, or the ensemble's content hash is
            not the one recorded (retrained or replaced since).
        """
        super().open_model(**kwargs)
        model = check_model(self.model, str(self.config.model))
        ensemble = EnsembleDir(model["ensemble"]).read()
        if ensemble.content_hash != model["content_hash"]:
            raise ValueError(
                f"{self.config.model}: ensemble {model['ensemble']} has content hash "
                f"{ensemble.content_hash[:12]}, the model records {model['content_hash'][:12]} "
                "(retrained or replaced since; rerun the informer)"
            )
        options = PredictOptions(
            batch_size=self.config.predict_batch_size, odds_interval=self.config.odds_interval
        )
        self.predictor = EnsemblePredictor.from_ensemble(ensemble, options)

    def _process_chunk(self, start: int, end: int, data: Any, first: bool) -> None:
        arrays = tile_arrays(data, self.config, first_row=start)
        rows = TileArrays(arrays, tuple(self.config.bands))
        columns = self.predictor.predict_chunk(rows)
        ensemble = qp_ensemble(columns, {})
        self._do_chunk_output(ensemble, start, end, first, data=data)
