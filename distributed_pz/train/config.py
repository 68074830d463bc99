"""Configuration of an ensemble training run: what to train (hashed into the ensemble) and where.

:class:`EnsembleConfig` decides the result — data, model, split plan, member training — and is
written, resolved, as ``config.json`` beside the ensemble; a rerun on the same output must
match it. :class:`ClusterConfig` only decides where and how fast (Ray address, workers,
resources) and may change between reruns.

The model's bands come from the training store: :meth:`EnsembleConfig.resolve` resolves the
registered variant against the band set of the first training tile (its ``bands`` and
``image_bands`` attributes), the ``model_overrides`` winning, and checks the result against
every tile it will read, so a model the store cannot feed fails in one line before Ray starts.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from distributed_pz.models.base import ModelConfig
from distributed_pz.models.calibration import MIN_FIT_ROWS
from distributed_pz.models.registry import (
    build_model,
    check_overrides,
    config_from_dict,
    config_to_dict,
    list_models,
    model_config,
)
from distributed_pz.options import option, parse_assignments
from distributed_pz.survey.store.store import SurveyStore, Tile
from distributed_pz.train.member import TrainConfig

DEVICE_FIELD = "device"
"""TrainConfig field chosen per Ray worker, so left out of the saved config."""
DATA, PLAN, TRAINING, RAY = "data", "model and plan", "training", "Ray"
"""The sections of ``dpz train --help``."""
POINT_CALIBRATION_SHARE = 0.15
"""Default calibration share of a point-estimate ensemble (:attr:`EnsembleConfig.calibration_share`)."""
MIN_SHARE_ROWS = 300
"""Fewest rows the default calibration share holds; with fewer the out-of-fold rows are fitted on."""


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``["hidden=64", 'bands=["g", "r"]']`` -> ``{"hidden": 64, "bands": ["g", "r"]}``: ``--model-set``
    values, VALUE in JSON (non-JSON stays a string)."""
    return parse_assignments(pairs, "model-set", lambda _, text: _json_or_text(text), what="FIELD")


def tiles_option(flag: str, group: str | None, help: str) -> Any:
    """A field of tile names or globs, the repeatable option ``--FLAG NAME`` (none: every tile)."""
    return option((), flag=flag, append=True, metavar="NAME", group=group, help=help)


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


@dataclass(frozen=True)
class EnsembleConfig:
    """What ``dpz train`` trains.

    Parameters
    ----------
    store, tiles, exclude_tiles
        Training store URL, its tiles (names or glob patterns such as ``"KIDS_1*"``; empty =
        every tile) and tiles (names or patterns) to leave out, e.g. the evaluation tile; rows
        with a finite ``z_spec`` train.
    out
        Ensemble directory; every Ray node must see it (local disk for a one-node cluster, a
        shared filesystem otherwise).
    model, model_overrides
        Registered model name and config fields to replace (``create_model(model, **overrides)``);
        the overrides win over the bands the training tile gives.
    n_splits, n_folds, val_fraction, seed
        Split plan (:func:`distributed_pz.train.plan.make_plan`); ``seed`` is the master seed.
    calibration_share
        Fraction of the training rows held out of every member for the calibration to fit on,
        pooled over all members as a catalogue row is (:func:`distributed_pz.train.plan.make_plan`);
        ``None``: :data:`POINT_CALIBRATION_SHARE` for point-estimate models, whose width is the
        members' spread and so depends on how many members pool, and 0 (the out-of-fold rows)
        for p(z) models, whose pooled mixture does not.
    survey_calibration
        Out-of-fold predictions that carry the survey's tile-to-tile error, for the calibration:
        whole tiles left out when there are at least ``n_folds`` training tiles, else the rows
        predicted under zero points redrawn at the band set's scatter
        (:func:`distributed_pz.train.oof.predict_part`). Off by default: measured on simulated
        surveys (``benchmarks/results/tile_transfer.md``) it widened the p(z) of unseen tiles
        beyond 68 % coverage with two training tiles, and homogenised photometry does better.
    calibrate_for
        Tiles (names or globs) of :attr:`store` the catalogues are for: the calibration's rows are
        reweighted to their photometry (:func:`distributed_pz.models.reweight.target_weights`), so a
        spectroscopic sample brighter than the survey does not set the survey's p(z) width.
        Empty: the calibration rows as they are.
    train
        How each member trains (epochs, batch size, learning rate, ...).
    pretrain_store, pretrain_tiles, pretrain
        Optional pre-training (DEEPZ §3): one model trained on this (simulated) store with these
        settings, from which every member fine-tunes.
    resolved_model
        The model config resolved against the training tile's band set (set by :meth:`resolve`,
        restored by :meth:`from_dict`); ``None`` until then, when :meth:`model_config` resolves
        against the default band set (KiDS+VIKING).
    """

    store: str = option(
        path=True, help="survey store URL (path, file://, s3://, ...) with z_spec", group=DATA
    )
    out: str = option(path=True, help="ensemble directory; every Ray node must see it", group=DATA)
    tiles: tuple[str, ...] = tiles_option(
        "tile", DATA, "tile to train on, a name or a glob such as 'KIDS_1*' (repeat; none = every tile)"
    )
    exclude_tiles: tuple[str, ...] = tiles_option(
        "exclude-tile", DATA, "tile (name or glob) not to train on, e.g. your evaluation tile (repeat)"
    )
    model: str = option("deepz", choices=list_models, group=PLAN, help="registered model")
    model_overrides: Mapping[str, Any] = option(
        default_factory=dict,
        flag="model-set",
        append=True,
        metavar="FIELD=VALUE",
        group=PLAN,
        help="override a model config field, VALUE in JSON (e.g. hidden=64); repeat",
    )
    n_splits: int = option(10, minimum=1, flag="splits", group=PLAN, help="random splits R")
    n_folds: int = option(
        5,
        minimum=1,
        flag="folds",
        group=PLAN,
        help="folds K per split (members = R × K); 1 = train on everything (no out-of-fold "
        "predictions, so no calibration)",
    )
    val_fraction: float = option(0.1, group=PLAN, help="share of each member's training part for validation")
    seed: int = option(0, group=PLAN, help="master seed of the plan and the members")
    calibration_share: float | None = option(
        None,
        group=PLAN,
        help="share of the rows held out of every member to fit the calibration on, pooled as a catalogue "
        f"row is (default: {POINT_CALIBRATION_SHARE} for point-estimate models, 0 = the out-of-fold rows "
        "for p(z) models)",
    )
    survey_calibration: bool = option(
        False,
        group=PLAN,
        help="calibrate on predictions that carry the survey's tile-to-tile error: with at least as many "
        "tiles as folds, leave whole tiles out; else predict the out-of-fold rows under redrawn zero points",
    )
    calibrate_for: tuple[str, ...] = tiles_option(
        "calibrate-for",
        PLAN,
        "tile (name or glob) the catalogues are for: the calibration's rows are reweighted to its "
        "photometry, as a survey's spec-z sample is to its photometric sample (repeat)",
    )
    train: TrainConfig = field(default_factory=lambda: TrainConfig(on_nan="stop"))
    pretrain_store: str | None = option(
        None,
        path=True,
        group=TRAINING,
        help="(simulated) store to pre-train on first; members fine-tune from it",
    )
    pretrain_tiles: tuple[str, ...] = tiles_option(
        "pretrain-tile", TRAINING, "pre-training tile (repeat; none = every tile)"
    )
    pretrain: TrainConfig = field(default_factory=lambda: TrainConfig(on_nan="stop"))
    resolved_model: ModelConfig | None = None

    def __post_init__(self) -> None:
        if not 0 < self.val_fraction < 1:
            raise ValueError(
                f"val_fraction must be in (0, 1): members validate on it, not {self.val_fraction}"
            )
        if self.calibration_share is not None and not 0 <= self.calibration_share < 0.5:
            raise ValueError(f"calibration_share must be in [0, 0.5), not {self.calibration_share}")
        if self.resolved_model is None:  # the values are checked by resolve(), against the store
            check_overrides(self.model, self.model_overrides)

    def share_for_calibration(self, n_rows: int) -> float:
        """The calibration share the plan holds out of ``n_rows`` training rows: :attr:`calibration_share`,
        else its default, which is 0 where it would hold fewer than :data:`MIN_SHARE_ROWS` rows.

        Raises
        ------
        ValueError
            A share given that would hold fewer rows than a calibration is fitted on
            (:data:`~distributed_pz.models.calibration.MIN_FIT_ROWS`).
        """
        share = self.calibration_share
        if share is not None and 0 < round(share * n_rows) < MIN_FIT_ROWS:
            raise ValueError(
                f"calibration_share {share} of {n_rows} training rows holds {round(share * n_rows)}: "
                f"a calibration needs at least {MIN_FIT_ROWS} (give more rows, a larger share or 0)"
            )
        if share is not None:
            return share
        if self.model_config().head == "mdn" or self.n_folds == 1:
            return 0.0
        return POINT_CALIBRATION_SHARE if POINT_CALIBRATION_SHARE * n_rows >= MIN_SHARE_ROWS else 0.0

    def model_config(self) -> ModelConfig:
        """The members' model config: the variant for the training tile's bands, with the overrides."""
        if self.resolved_model is not None:
            return self.resolved_model
        return model_config(self.model, **dict(self.model_overrides))

    def resolve(self, store: SurveyStore, pretrain_store: SurveyStore | None = None) -> EnsembleConfig:
        """This config with its tiles listed and its model resolved for, and checked against, the stores.

        ``store`` (and ``pretrain_store``) are the opened :attr:`store` (and :attr:`pretrain_store`).

        Raises
        ------
        ValueError
            One line saying what to change: the training tile's bands cannot make the model
            (say DEEPZ without its reference band), a tile lacks a band or array the model reads
            (cutouts, exposures), or the training tiles differ in their bands.
        """
        tiles = select_tiles(store, self.tiles, self.exclude_tiles)
        calibrate_for = select_tiles(store, self.calibrate_for) if self.calibrate_for else ()
        pretrain_tiles = ()
        if pretrain_store is not None:
            pretrain_tiles = select_tiles(pretrain_store, self.pretrain_tiles)
        if not tiles:
            raise ValueError(f"store {store.url!r} has no tile to train on")
        if pretrain_store is not None and not pretrain_tiles:
            raise ValueError(f"pre-training store {pretrain_store.url!r} has no tile to train on")
        first = store.tile(tiles[0])
        band_set = first.band_set
        try:
            model = model_config(self.model, band_set, **dict(self.model_overrides))
        except (ValueError, TypeError) as exc:
            raise ValueError(
                f"model {self.model!r} for the bands {list(band_set.bands)} (images: "
                f"{list(band_set.image_bands)}) of {_where(first)}: {exc}; choose another --model or set "
                "its bands with --model-set (bands=[...], image_bands=[...], reference_band=...)"
            ) from None
        for name in tiles[1:]:
            tile = store.tile(name)
            if (tile.bands, tile.image_bands) != (first.bands, first.image_bands):
                raise ValueError(
                    f"{_where(tile)} has other bands than tile {first.name!r}; train on tiles of one band set"
                )
        for name in calibrate_for:
            if store.tile(name).bands != first.bands:
                raise ValueError(
                    f"--calibrate-for: {_where(store.tile(name))} has other bands than the training tile "
                    f"{first.name!r}; its photometry cannot weight the calibration"
                )
        check_tile(model, first)
        _check_buildable(model, self.model_overrides)
        if pretrain_store is not None:
            check_tile(model, pretrain_store.tile(pretrain_tiles[0]), "pre-training ")
        return dataclasses.replace(
            self,
            tiles=tiles,
            pretrain_tiles=pretrain_tiles,
            calibrate_for=calibrate_for,
            resolved_model=model,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, resolved: the model config in full, train settings without the device."""
        d = dataclasses.asdict(self)
        d.pop("resolved_model")
        for name in ("train", "pretrain"):
            d[name].pop(DEVICE_FIELD)
        d["tiles"], d["pretrain_tiles"] = list(self.tiles), list(self.pretrain_tiles)
        d["exclude_tiles"], d["calibrate_for"] = list(self.exclude_tiles), list(self.calibrate_for)
        d["model_overrides"] = dict(self.model_overrides)
        d["model_config"] = config_to_dict(self.model_config())
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EnsembleConfig:
        """Inverse of :meth:`to_dict` (the model config as resolved, whatever the default bands)."""
        fields = {k: v for k, v in d.items() if k != "model_config"}
        for name in ("train", "pretrain"):
            fields[name] = TrainConfig(**fields[name])
        fields["tiles"], fields["pretrain_tiles"] = tuple(d["tiles"]), tuple(d["pretrain_tiles"])
        fields["exclude_tiles"] = tuple(d.get("exclude_tiles", ()))
        fields["calibrate_for"] = tuple(d.get("calibrate_for", ()))
        if "model_config" in d:
            fields["resolved_model"] = config_from_dict(d["model_config"])
        return cls(**fields)

    def result_fields(self) -> dict[str, Any]:
        """What must match for a rerun to reuse finished members: the resolved config minus
        ``out``, and minus the pre-training settings when there is no pre-training store."""
        unused = {"out"} if self.pretrain_store else {"out", "pretrain", "pretrain_tiles"}
        return {k: v for k, v in self.to_dict().items() if k not in unused}


def select_tiles(
    store: SurveyStore, patterns: Sequence[str] = (), exclude: Sequence[str] = ()
) -> tuple[str, ...]:
    """The store's tiles matching any of ``patterns`` (names or globs; none = every tile), minus
    those matching ``exclude``, in store order.

    Raises
    ------
    ValueError
        A pattern matches no tile (the message lists the store's tiles).
    """
    names = list(store.tile_names())
    for pattern in (*patterns, *exclude):
        if not fnmatch.filter(names, pattern):
            raise ValueError(
                f"tile {pattern!r} matches no tile of store {store.url!r} (its tiles: {', '.join(names)})"
            )
    chosen = [n for n in names if not patterns or any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    return tuple(n for n in chosen if not any(fnmatch.fnmatchcase(n, p) for p in exclude))


def check_tile(model: ModelConfig, tile: Tile, role: str = "") -> None:
    """Raise a one-line ``ValueError`` saying what to change if ``tile`` cannot feed ``model``.

    Checks that the tile has the model's catalogue bands, its image bands and a ``cutout``
    array when it reads cutouts, and every array it reads (:meth:`InputSpec.arrays`).
    """
    spec = model.input_spec()
    where = f"{role}{_where(tile)}"
    available = tile.array_names()
    missing = [b for b in spec.bands if b not in tile.bands]
    if missing:
        raise ValueError(
            f"model {model.name!r} reads the bands {missing}, which {where} does not have (it has "
            f"{list(tile.bands)}); set --model-set bands=[...] to bands it has"
        )
    if spec.image_bands and "cutout" not in available:
        raise ValueError(
            f"model {model.name!r} reads {list(spec.image_bands)} cutouts but {where} has no cutout "
            "array; choose a catalogue-only --model (gaznet_c9, gaznet_c4, deepz) or ingest cutouts"
        )
    missing = [b for b in spec.image_bands if b not in tile.image_bands]
    if missing:
        raise ValueError(
            f"model {model.name!r} reads {missing} cutouts, which {where} does not have (it has "
            f"{list(tile.image_bands)}); set --model-set image_bands=[...] to bands it has"
        )
    absent = [a for a in spec.arrays(available) if a not in available]
    if absent:
        raise ValueError(f"model {model.name!r} reads the arrays {absent}, which {where} does not have")


def _check_buildable(model: ModelConfig, overrides: Mapping[str, Any]) -> None:
    """Build the model once (no weights kept): sizes it cannot have (``hidden=-4``) are one line."""
    try:
        build_model(model)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ValueError(
            f"--model-set {' '.join(f'{k}={v}' for k, v in overrides.items())}: the model cannot be built ({exc})"
        ) from None


def _where(tile: Tile) -> str:
    return f"store {tile.store_url!r}, tile {tile.name!r}"


@dataclass(frozen=True)
class ClusterConfig:
    """Where the members train.

    Parameters
    ----------
    address
        ``None`` starts a local Ray (quiet settings); ``"auto"`` or ``"ray://host:port"`` joins a cluster.
    num_workers
        Ray Train workers; ``None`` fills the cluster (capped at the members left to train).
    cpus_per_worker
        CPUs per worker (also its torch threads).
    gpus_per_worker
        GPUs per worker, a fraction packs several workers on one GPU; ``None`` = 1 when the
        cluster has GPUs, else 0.
    max_failures
        Worker-group restarts Ray Train allows; members resume from their last epoch checkpoint.
    """

    address: str | None = option(
        None, group=RAY, help="join a Ray cluster: 'auto' or 'ray://host:port' (none = start a local Ray)"
    )
    num_workers: int | None = option(
        None,
        minimum=1,
        group=RAY,
        help="Ray Train workers (none = fill the cluster, at most one per member left)",
    )
    cpus_per_worker: int = option(1, minimum=1, group=RAY, help="CPUs (torch threads) per worker")
    gpus_per_worker: float | None = option(
        None,
        minimum=0,
        group=RAY,
        help="GPUs per worker; a fraction packs workers on one GPU (none = 1 if the cluster has a GPU, else 0)",
    )
    max_failures: int = option(3, minimum=0, group=RAY, help="worker-group restarts before giving up")
