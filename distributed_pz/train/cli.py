"""Train an ensemble (R random splits × K folds, DEEPZ §5.2) on a survey store's spec-z rows with Ray Train.

One Ray Train run trains every member, the workers sharing the members out; the result is an
ensemble bundle in --out (members/, the split plan, the resolved config, the training-store hash)
with out-of-fold predictions in oof.parquet. Progress is printed and kept in --out/status.json.
A rerun with the same --out and settings skips finished members and resumes interrupted ones.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``dpz train``."""
    from distributed_pz.models.registry import list_models
    from distributed_pz.train.member import TrainConfig
    from distributed_pz.train.presets import PRESET_NAMES

    defaults = TrainConfig()
    data = parser.add_argument_group("data")
    data.add_argument(
        "--store", required=True, help="survey store URL (path, file://, s3://, ...) with z_spec"
    )
    data.add_argument(
        "--tile",
        action="append",
        default=[],
        dest="tiles",
        metavar="NAME",
        help="tile to train on, a name or a glob such as 'KIDS_1*' (repeat; none = every tile)",
    )
    data.add_argument(
        "--exclude-tile",
        action="append",
        default=[],
        dest="exclude_tiles",
        metavar="NAME",
        help="tile (name or glob) not to train on, e.g. your evaluation tile (repeat)",
    )
    data.add_argument("--out", required=True, help="ensemble directory; every Ray node must see it")
    model = parser.add_argument_group("model and plan")
    model.add_argument("--model", default="deepz", choices=list_models(), help="registered model")
    model.add_argument(
        "--model-set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a model config field, VALUE in JSON (e.g. hidden=64); repeat",
    )
    model.add_argument("--splits", type=int, default=10, help="random splits R")
    model.add_argument(
        "--folds",
        type=int,
        default=5,
        help="folds K per split (members = R × K); 1 = train on everything (no out-of-fold "
        "predictions, so no calibration)",
    )
    model.add_argument(
        "--val-fraction", type=float, default=0.1, help="share of each member's training part for validation"
    )
    model.add_argument("--seed", type=int, default=0, help="master seed of the plan and the members")
    train = parser.add_argument_group("training")
    train.add_argument(
        "--preset",
        default="auto",
        choices=PRESET_NAMES,
        help="epochs, batch size and peak rate: 'paper' (DEEPZ 300 epochs at batch 100, GaZNet 60), "
        "'cpu' (DEEPZ 30, GaZNet 30); auto = paper on a GPU, else cpu",
    )
    train.add_argument("--epochs", type=int, help="epochs per member (at most); default: the preset's")
    train.add_argument("--batch-size", type=int, help="rows per optimisation step; default: the preset's")
    train.add_argument("--lr", type=float, help="peak learning rate; default: the preset's")
    train.add_argument(
        "--patience",
        type=int,
        default=defaults.patience,
        help="stop a member after this many epochs without improvement (0 = never)",
    )
    train.add_argument(
        "--pretrain-store", help="(simulated) store to pre-train on first; members fine-tune from it"
    )
    train.add_argument(
        "--pretrain-tile",
        action="append",
        default=[],
        dest="pretrain_tiles",
        metavar="NAME",
        help="pre-training tile (repeat; none = every tile)",
    )
    train.add_argument("--pretrain-epochs", type=int, help="pre-training epochs (default: as --epochs)")
    ray_group = parser.add_argument_group("Ray")
    ray_group.add_argument(
        "--address", help="join a Ray cluster: 'auto' or 'ray://host:port' (none = start a local Ray)"
    )
    ray_group.add_argument(
        "--num-workers",
        type=int,
        help="Ray Train workers (none = fill the cluster, at most one per member left)",
    )
    ray_group.add_argument(
        "--gpus-per-worker",
        type=float,
        help="GPUs per worker; a fraction packs workers on one GPU (none = 1 if the cluster has a GPU, else 0)",
    )
    ray_group.add_argument("--cpus-per-worker", type=int, default=1, help="CPUs (torch threads) per worker")
    ray_group.add_argument(
        "--max-failures", type=int, default=3, help="worker-group restarts before giving up"
    )


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["hidden=64", "bands=[\\"g\\", \\"r\\"]"]`` -> ``{"hidden": 64, "bands": ["g", "r"]}`` (non-JSON stays a string)."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--model-set {pair!r}: expected FIELD=VALUE")
        try:
            overrides[name] = json.loads(text)
        except json.JSONDecodeError:
            overrides[name] = text
    return overrides


def run(args: argparse.Namespace) -> int:
    """Train; 0 when every member is finished, 1 when training failed, 2 on bad settings."""
    import dataclasses

    from ray.train import TrainingFailedError

    from distributed_pz._files import exists, join
    from distributed_pz.models.ensemble import EnsembleDir
    from distributed_pz.models.registry import model_config
    from distributed_pz.survey.store.store import absolute_url
    from distributed_pz.train.config import ClusterConfig, EnsembleConfig
    from distributed_pz.train.member import TrainConfig
    from distributed_pz.train.presets import preset_settings
    from distributed_pz.train.ray_ensemble import train_ensemble

    try:
        family = model_config(args.model).family
        chosen = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr}
        settings = {**preset_settings(args.preset, family), **{k: v for k, v in chosen.items() if v}}
        member = TrainConfig(on_nan="stop", patience=args.patience or None, **settings)
        pretrain_epochs = args.pretrain_epochs or member.epochs
        config = EnsembleConfig(
            store=absolute_url(args.store),
            out=absolute_url(args.out),
            tiles=tuple(args.tiles),
            exclude_tiles=tuple(args.exclude_tiles),
            model=args.model,
            model_overrides=parse_overrides(args.model_set),
            n_splits=args.splits,
            n_folds=args.folds,
            val_fraction=args.val_fraction,
            seed=args.seed,
            train=member,
            pretrain_store=args.pretrain_store and absolute_url(args.pretrain_store),
            pretrain_tiles=tuple(args.pretrain_tiles),
            pretrain=dataclasses.replace(member, epochs=pretrain_epochs),
        )
        cluster = ClusterConfig(
            address=args.address,
            num_workers=args.num_workers,
            cpus_per_worker=args.cpus_per_worker,
            gpus_per_worker=args.gpus_per_worker,
            max_failures=args.max_failures,
        )
        outcome = train_ensemble(config, cluster)
    except (ValueError, KeyError, TypeError) as exc:
        print(f"dpz train: {exc}")
        return 2
    except TrainingFailedError as exc:
        reason = next((line for line in reversed(str(exc).splitlines()) if line.strip()), "")
        print(f"dpz train: training failed; finished members are kept, rerun to resume ({reason.strip()})")
        return 1
    print(
        f"dpz train: {outcome.finished}/{outcome.n_members} members ({outcome.trained_now} trained now, "
        f"{outcome.workers} Ray workers) in {outcome.seconds:.1f} s -> {outcome.path}"
    )
    if outcome.content_hash is None:
        return 1
    oof = join(outcome.path, EnsembleDir.oof_catalog)
    where = f"out-of-fold predictions in {oof}" if exists(oof) else "no out-of-fold predictions (--folds 1)"
    print(f"ensemble {outcome.content_hash[:16]}…, {where}")
    return 0
