"""Train an ensemble with Ray Train: one ``TorchTrainer`` run whose workers share out the members.

The driver (:func:`train_ensemble`) selects the training sample, draws (or reuses) the split
plan, prints a time estimate (:mod:`distributed_pz.train.estimate`), starts ONE Train V2
``TorchTrainer`` — ~10 s of start-up paid once, not once per member — whose workers each train a share of the members (:mod:`distributed_pz.train.worker`), then the
end-of-training stage (:func:`distributed_pz.train.oof.finish_ensemble`) pools the out-of-fold
predictions, fits the p(z) calibration on them and writes the ensemble manifest. The ensemble
directory's names and I/O are :class:`~distributed_pz.models.ensemble.EnsembleDir`'s.

Packing: a worker takes ``cpus_per_worker`` CPUs and ``gpus_per_worker`` GPUs — 1 GPU each, a
fraction (0.5 = two members training side by side on one GPU), or none for CPU-only Ray. By
default the workers fill the cluster, capped at the members left to train. Members are
data-parallel over workers; DDP inside a member (for a model too large for one device) is not
implemented, so no torch process group is set up (:class:`MembersOnly`): the workers' reports
are kept in step through Ray (:class:`~distributed_pz.train.worker.Lockstep`).

Data: workers read their rows from the survey store themselves (store URL, tile names and the
sample's row indices on the output directory), rather than receiving arrays through
``ray.put``: on a cluster each node reads shards in parallel straight from shared or object
storage, nothing is staged through the driver (which may be a remote ``ray://`` client), and
the object store stays free for Ray. The output directory must therefore be visible to every
node (local disk on one machine, a shared filesystem on a cluster).

Refusals before any worker starts: a tile not marked complete, and a missing shard or an
unreadable chunk among the sample's rows (each a one-line :class:`StoreError`; Ray would
otherwise retry such a deterministic error ``max_failures`` times).

Security: a local Ray started here listens on 127.0.0.1 only (its node address is the loopback
one, as in Ray's single-machine mode for Windows/macOS), so no other machine can reach it (nor does Ray Train's torch set-up listen: no process group,
whose TCPStore would bind every interface); and
Ray >= 2.60 turns on its token authentication for every new local cluster (unless
``RAY_AUTH_MODE=disabled`` is set), so other users of this machine cannot submit work either.
``RAY_AUTH_MODE`` must not be changed after Ray is imported: the driver would disagree with
the cluster it starts.

Faults and reruns: every epoch each worker checkpoints its member through ``ray.train.report``;
``FailureConfig(max_failures)`` restarts a dead worker group, which resumes every running member
from its last epoch. A member is finished once its bundle is in ``members/``: a rerun on the
same output skips it (and an interrupted run resumes Ray Train's own checkpoints, kept under
``ray_train/`` until the ensemble is complete).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
import ray.train
import torch
from ray._private import ray_constants
from ray.train.backend import Backend
from ray.train.torch import TorchConfig, TorchTrainer

from distributed_pz._files import is_remote, mirrored, read_json, write_json
from distributed_pz.models.ensemble import ENSEMBLE_FILE, EnsembleDir, SplitPlan
from distributed_pz.survey.store.errors import StoreError
from distributed_pz.survey.store.store import SurveyStore, open_store
from distributed_pz.train.config import ClusterConfig, EnsembleConfig
from distributed_pz.train.estimate import estimate_plan
from distributed_pz.train.oof import finish_ensemble
from distributed_pz.train.plan import make_plan
from distributed_pz.train.progress import ProgressCallback, StatusWatcher, new_status
from distributed_pz.train.sample import TrainingSample, load_sample, required_arrays, select_sample
from distributed_pz.train.worker import worker_loop

QUIET_RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.1",
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
    "RAY_TRAIN_ENABLE_STATE_ACTOR_RECONCILIATION": "0",
    "RAY_TRAIN_METRICS_ENABLED": "0",
}
"""Settings that cut a TorchTrainer start from ~25 s to ~10 s and keep Ray quiet (STACK-NOTES.md);
the environment wins where it sets them."""


class MembersOnly(TorchConfig):
    """Ray Train's torch set-up (each worker's device) without a process group: members need no
    collectives, and torch.distributed's TCPStore would listen on every interface."""

    @property
    def backend_cls(self) -> type[Backend]:
        return Backend


@dataclass(frozen=True)
class TrainOutcome:
    """What a ``train_ensemble`` call did.

    ``content_hash`` is ``None`` unless every member is finished (then the manifest is written).
    ``path`` is the ensemble directory, or its URL when ``--out`` was remote.
    """

    path: Path | str
    n_members: int
    finished: int
    trained_now: int
    workers: int
    seconds: float
    content_hash: str | None


def start_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Start a quiet local Ray (``address=None``) or join a cluster (``"auto"``, ``"ray://host:port"``)."""
    for key, value in QUIET_RAY_ENV.items():
        os.environ.setdefault(key, value)
    env = {"env_vars": {k: os.environ[k] for k in QUIET_RAY_ENV}}
    if address is None:
        with _loopback_only():
            ray.init(
                num_cpus=num_cpus,
                include_dashboard=False,
                log_to_driver=False,
                logging_level="ERROR",
                runtime_env=env,
            )
    else:
        ray.init(address=address, logging_level="ERROR", runtime_env=env)


@contextmanager
def _loopback_only() -> Iterator[None]:
    """Make a local ``ray.init`` take 127.0.0.1 as the node address, so every Ray server binds it.

    Ray binds its GCS, raylet, worker and runtime-env servers to all interfaces unless the node
    address is 127.0.0.1, and turns a requested 127.0.0.1 into the machine's address
    (``_node_ip_address`` cannot ask for it) except in its single-machine mode, which the
    environment variable ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` selects when set before Ray
    is imported. Ray is imported already here, so the constant it set is switched for the call,
    and the variable is set for the processes the call starts (GCS, raylet, and through the
    raylet every worker); both are restored afterwards, so no later ``ray start`` of this
    process's children refuses to join a multi-node cluster.
    """
    name = ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR
    saved, saved_env = ray_constants.ENABLE_RAY_CLUSTER, os.environ.get(name)
    ray_constants.ENABLE_RAY_CLUSTER = False
    os.environ[name] = "0"
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved
        if saved_env is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved_env


def train_ensemble(
    config: EnsembleConfig,
    cluster: ClusterConfig | None = None,
    echo: Callable[[str], None] = print,
) -> TrainOutcome:
    """Train (or finish training) the ensemble ``config`` describes, into ``config.out``.

    Starts a local Ray unless one is running or ``cluster.address`` names a cluster; a Ray it
    started is shut down on return.

    Raises
    ------
    ValueError
        If the output directory holds an ensemble of other settings or other training data.
    ray.train.TrainingFailedError
        If workers kept failing beyond ``cluster.max_failures`` (finished members stay on disk).
    """
    cluster = cluster or ClusterConfig()
    if is_remote(config.out):  # train into a local mirror, uploaded as it ends (the manifest last)
        with mirrored(config.out, last=(ENSEMBLE_FILE,)) as local:
            outcome = train_ensemble(dataclasses.replace(config, out=str(local)), cluster, echo)
        return dataclasses.replace(outcome, path=config.out)
    started = time.perf_counter()
    out = Path(config.out).resolve()
    ensemble = EnsembleDir(out)
    store = open_store(config.store)  # opened once here; Ray workers open it by URL themselves
    pretrain_store = open_store(config.pretrain_store) if config.pretrain_store else None
    config = dataclasses.replace(config.resolve(store, pretrain_store), out=str(out))  # checked before Ray
    _check_complete(store, config.tiles)
    if pretrain_store is not None:
        _check_complete(pretrain_store, config.pretrain_tiles)
    spec = config.model_config().input_spec()
    arrays = required_arrays(spec, store.tile(config.tiles[0]).array_names())
    pretrain_arrays = []
    if pretrain_store is not None:
        pretrain_arrays = required_arrays(spec, pretrain_store.tile(config.pretrain_tiles[0]).array_names())
    out.mkdir(parents=True, exist_ok=True)
    digest = store.content_hash(config.tiles, arrays)
    plan = _prepare(ensemble, config, arrays, digest, store)
    check_sample_chunks(store, load_sample(ensemble, config.store, config.tiles), arrays)
    ids = [m.member_id for m in plan.members]
    done_before = ensemble.finished_members()
    pending = [i for i in ids if i not in done_before]
    need_pretrain = bool(config.pretrain_store) and not ensemble.has_pretrain
    workers = 0
    if pending or need_pretrain:
        echo(
            f"training {len(pending)} of {len(ids)} members ({len(done_before)} already finished) into {out}"
        )
        echo(
            estimate_plan(
                config,
                store,
                arrays,
                plan.n_rows,
                len(pending),
                _expected_workers(cluster, len(pending)),
                cluster.cpus_per_worker,
            ).line()
        )
        status = new_status(ids, done_before)
        workers = _fit(ensemble, config, cluster, arrays, len(pending), status, echo, pretrain_arrays)
    finished = ensemble.finished_members()
    content_hash = None
    if finished >= set(ids):
        content_hash = finish_ensemble(ensemble, config, plan, arrays, digest, store, echo)
        shutil.rmtree(ensemble.ray_run, ignore_errors=True)
    return TrainOutcome(
        path=out,
        n_members=len(ids),
        finished=len(finished & set(ids)),
        trained_now=len((finished - done_before) & set(ids)),
        workers=workers,
        seconds=time.perf_counter() - started,
        content_hash=content_hash,
    )


def _expected_workers(cluster: ClusterConfig, pending: int) -> int:
    """Workers the plan will likely get (before Ray starts): as asked, else one per local CPU / GPU."""
    if cluster.num_workers:
        return min(cluster.num_workers, pending)
    local = torch.cuda.device_count() or (os.cpu_count() or 1) // cluster.cpus_per_worker
    return max(1, min(local, pending))


def _check_complete(store: SurveyStore, tiles: Sequence[str]) -> None:
    for name in tiles:
        if not store.tile(name).complete:
            raise StoreError(
                "tile is not complete (its writer did not finish); rerun the ingest or simulation",
                store=store.url,
                tile=name,
            )


def check_sample_chunks(store: SurveyStore, sample: TrainingSample, arrays: Sequence[str]) -> None:
    """Raise the first missing shard or unreadable chunk among the rows ``sample`` trains on.

    Decodes each chunk holding sample rows once, one chunk in memory at a time, on the driver:
    a deterministic store error is then one line before any worker starts.
    """
    for index, name in enumerate(sample.tiles):
        tile = store.tile(name)
        rows = sample.row[sample.tile_index == index]
        for start, stop in tile.row_blocks():
            if not ((rows >= start) & (rows < stop)).any():
                continue
            for array in arrays:
                bad = tile.missing_shard(array, start, stop) or tile.first_bad_chunk(array, start, stop)
                if bad:
                    raise bad


def _prepare(
    ensemble: EnsembleDir, config: EnsembleConfig, arrays: list[str], digest: str, store: SurveyStore
) -> SplitPlan:
    """Draw the plan on a fresh output; on an existing one check it is the same run and reuse it."""
    resolved = json.loads(json.dumps(config.result_fields()))
    out = ensemble.root
    if ensemble.config_file.is_file():
        saved = read_json(ensemble.config_file)
        changed = sorted(
            k for k in resolved.keys() | saved.keys() if k != "out" and saved.get(k) != resolved.get(k)
        )
        if changed:
            raise ValueError(
                f"{out} holds an ensemble trained with other settings ({', '.join(changed)}); "
                "use another --out or the same settings"
            )
        recorded = read_json(ensemble.sample_file)["hash"]
        if recorded != digest:
            raise ValueError(f"{out}: the training store's content changed since this ensemble was started")
        return ensemble.read_plan()
    sample = select_sample(store, config.tiles)
    sample.save(ensemble)
    write_json(
        ensemble.sample_file,
        {
            "url": config.store,
            "tiles": list(config.tiles),
            "arrays": arrays,
            "hash": digest,
            "n_rows": sample.n_rows,
        },
    )
    plan = make_plan(
        sample.object_id,
        config.n_splits,
        config.n_folds,
        config.val_fraction,
        config.seed,
        groups=sample.tile_index if config.survey_calibration else None,  # >= K tiles: whole tiles left out
        calibration_share=config.share_for_calibration(sample.n_rows),
    )
    plan.save(out)
    write_json(ensemble.config_file, {**resolved, "out": str(out)})  # last: a complete preparation
    return plan


def _fit(
    ensemble: EnsembleDir,
    config: EnsembleConfig,
    cluster: ClusterConfig,
    arrays: list[str],
    n_pending: int,
    status: dict[str, Any],
    echo: Callable[[str], None],
    pretrain_arrays: Sequence[str] = (),
) -> int:
    """Run the one TorchTrainer; returns its number of workers."""
    own_ray = not ray.is_initialized()
    if own_ray:
        start_ray(cluster.address)
    try:
        resources = ray.cluster_resources()
        gpus = cluster.gpus_per_worker
        if gpus is None:
            gpus = 1.0 if resources.get("GPU", 0) >= 1 else 0.0
        if cluster.num_workers:
            n_workers = cluster.num_workers
        elif gpus > 0:
            n_workers = int(resources.get("GPU", 0) / gpus)
        else:
            n_workers = int(resources.get("CPU", 1) // cluster.cpus_per_worker)
        n_workers = max(1, min(n_workers, max(n_pending, 1)))
        per_worker = {"CPU": cluster.cpus_per_worker, **({"GPU": gpus} if gpus > 0 else {})}
        echo(f"Ray Train: {n_workers} workers × {per_worker}, members dealt out by rank")
        trainer = TorchTrainer(
            worker_loop,
            train_loop_config={
                "config": config.to_dict(),
                "arrays": arrays,
                "pretrain_arrays": list(pretrain_arrays),
                "threads": cluster.cpus_per_worker,
            },
            scaling_config=ray.train.ScalingConfig(
                num_workers=n_workers, use_gpu=gpus > 0, resources_per_worker=per_worker
            ),
            torch_config=MembersOnly(),
            run_config=ray.train.RunConfig(
                name=EnsembleDir.ray_run,
                storage_path=str(ensemble.root),
                failure_config=ray.train.FailureConfig(max_failures=cluster.max_failures),
                checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
                callbacks=[ProgressCallback(ensemble.status_file, status)],
            ),
        )
        with StatusWatcher(ensemble.status_file, echo):
            _fit_interruptibly(trainer)
    finally:
        if own_ray:
            ray.shutdown()
    return n_workers


def _fit_interruptibly(trainer: TorchTrainer) -> None:
    """``trainer.fit()``, with Ctrl-C raised as ``KeyboardInterrupt`` and the SIGINT handler restored.

    On SIGINT, Ray Train's own handler (installed by ``fit``) aborts the run and the driver's
    ``ray.get`` ends in ``SystemExit``, which would end the program with status 1 and no word;
    checkpoints and finished members are kept, so the caller says "interrupted, rerun".
    """
    handler = signal.getsignal(signal.SIGINT)
    try:
        trainer.fit()
    except SystemExit as exc:
        raise KeyboardInterrupt("Ray Train was interrupted") from exc
    finally:
        signal.signal(signal.SIGINT, handler)
