"""Train an ensemble (R random splits × K folds, DEEPZ §5.2) on a survey store's spec-z rows with Ray Train.

One Ray Train run trains every member, the workers sharing the members out; the result is an
ensemble bundle in --out (members/, the split plan, the resolved config, the training-store hash)
with out-of-fold predictions in oof.parquet. Progress is printed and kept in --out/status.json.
A rerun with the same --out and settings skips finished members and resumes interrupted ones.
"""

from __future__ import annotations

import argparse

from distributed_pz.models.ensemble import EnsembleDir
from distributed_pz.train.config import ClusterConfig, EnsembleConfig
from distributed_pz.train.presets import MemberSettings

OPTIONS = (EnsembleConfig, MemberSettings, ClusterConfig)
"""The dataclasses whose fields are the options of ``dpz train``."""
RESOLVED_CONFIG = ("out", EnsembleDir.options_file)
"""The resolved options go into the ensemble (:mod:`distributed_pz.configfile`)."""


def run(args: argparse.Namespace) -> int:
    """Train; 0 when every member is finished, 1 when training failed, 2 on bad settings."""
    from ray.train import TrainingFailedError

    from distributed_pz._files import exists, join
    from distributed_pz.models.registry import model_config
    from distributed_pz.options import from_args
    from distributed_pz.survey.store.store import absolute_url
    from distributed_pz.train.config import parse_overrides
    from distributed_pz.train.ray_ensemble import train_ensemble

    try:
        member, pretrain = from_args(MemberSettings, args).train_configs(model_config(args.model).family)
        config = from_args(
            EnsembleConfig,
            args,
            store=absolute_url(args.store),
            out=absolute_url(args.out),
            model_overrides=parse_overrides(args.model_overrides),
            pretrain_store=args.pretrain_store and absolute_url(args.pretrain_store),
            train=member,
            pretrain=pretrain,
        )
        outcome = train_ensemble(config, from_args(ClusterConfig, args))
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
