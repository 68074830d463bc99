"""RAIL stages: train and run distributed_pz ensembles from inside RAIL (``pip install 'distributed_pz[rail]'``).

:class:`DistributedPzInformer` is a RAIL ``CatInformer``: it writes the training table as one
tile of a survey store and trains an ensemble with :func:`~distributed_pz.train.ray_ensemble.train_ensemble`
— the code behind ``dpz train`` — then registers the ensemble directory and its content hash
as its model, a JSON file (:mod:`distributed_pz.rail.model`; RAIL's default is a pickle).
:class:`DistributedPzEstimator` is a ``CatEstimator``: each chunk RAIL hands it goes through the
:class:`~distributed_pz.models.predictor.EnsemblePredictor` behind ``dpz predict`` and comes back as a
``qp.Ensemble`` of the pooled Gaussian mixtures with ``zmode``, ``zmean``, ``zmedian``,
``z_lo68``/``z_hi68`` (the 15.87/84.13 % quantiles), ``zstd``, ``odds`` and ``flags`` in ancil
(:data:`distributed_pz.catalog.QP_ANCIL`).

Both follow RAIL's photometry conventions: ``bands`` and ``err_bands`` name the magnitude and
error columns (bluest first), ``ref_band`` the DEEPZ flux-ratio denominator, a magnitude of
``nondetect_val`` (99) is a non-detection — its error becomes the band's ``mag_limits`` entry
when one is given — and ``nonobserved_val`` (-99) or NaN is not observed; any other magnitude
passes ``dpz ingest``'s validity rules or is flagged bad (:mod:`distributed_pz.rail.photometry`).
A table without ``id_col`` gets its row numbers as ids.
"""

from distributed_pz.rail.stages import DistributedPzEstimator, DistributedPzInformer

__all__ = ["DistributedPzEstimator", "DistributedPzInformer"]
