"""What each Ray Train worker runs: its share of the members, one after another, in lockstep.

Members are data-parallel over workers (DESIGN.md): the members not yet on disk are dealt out
by world rank (``pending[rank::world]``) and each worker trains its share, reading its rows from
the survey store: all at once with :func:`~distributed_pz.train.vmapped.train_stacked` where
:func:`~distributed_pz.models.folded.stackable` allows (DEEPZ on every device; resumed members
and a lone member too, so that a restarted run takes the path the first one took and DEEPZ ends
bit-identical), else one after another with the plain-PyTorch
:func:`~distributed_pz.train.member.train_member`.
After every epoch a worker reports its metrics and its member's resume state
(``<member_id>/state.pt``) through ``ray.train.report``; Ray Train merges the workers' files
into one checkpoint. ``ray.train.report`` is a barrier that every worker must call equally
often, so a step starts by or-ing every worker's "still training" flag (:class:`Lockstep`, through
a Ray actor, on loopback like every local Ray process; no torch process group): workers that are done keep reporting
(without a checkpoint) until every worker is done.

After a worker dies, Ray Train restarts the group and ``ray.train.get_checkpoint()`` holds the
state of every member that was running, whichever rank picks it up now: training continues
from the last finished epoch. A finished member leaves its out-of-fold part (and its part of
the calibration share) and its bundle (renamed into place last), so a restart or a rerun skips it.

With a pre-training store, rank 0 first pre-trains (the others step idly) and saves
``pretrain/``; every member then fine-tunes from it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import ray.train
import ray.train.collective
import ray.train.torch
import torch

from distributed_pz.models.bundle import Bundle, load_bundle, save_bundle
from distributed_pz.models.ensemble import EnsembleDir, MemberSpec, SplitPlan
from distributed_pz.models.folded import stackable
from distributed_pz.survey.store.tiles import TileArrays
from distributed_pz.train.config import EnsembleConfig
from distributed_pz.train.member import (
    EpochReport,
    TrainConfig,
    TrainResult,
    load_train_state,
    save_train_state,
    train_member,
)
from distributed_pz.train.oof import predict_part, save_part
from distributed_pz.train.plan import derived_seed
from distributed_pz.train.sample import load_sample, read_sample_rows, select_sample
from distributed_pz.train.vmapped import MemberJob, train_stacked

STATE_FILE = "state.pt"
"""A member's resume state inside a Ray Train checkpoint (``<member_id>/state.pt``)."""
PRETRAIN = EnsembleDir.pretrain
"""The pre-training run's name in checkpoints and progress reports."""


@ray.remote(num_cpus=0)
class _Tally:
    """Ors one flag of each of ``world`` workers per step; every caller waits for the step's last flag."""

    def __init__(self, world: int) -> None:
        self.world = world
        self.flags: dict[int, list[bool]] = {}
        self.ready: dict[int, asyncio.Event] = {}

    async def any(self, step: int, flag: bool) -> bool:
        flags = self.flags.setdefault(step, [])
        ready = self.ready.setdefault(step, asyncio.Event())
        flags.append(flag)
        if len(flags) == self.world:
            ready.set()
            self.flags.pop(step - 1, None)  # every worker has left the step before this one
            self.ready.pop(step - 1, None)
        await ready.wait()
        return any(flags)


class Lockstep:
    """Keeps every worker's ``ray.train.report`` calls in step (report is a barrier).

    The workers' flags meet in a small Ray actor that rank 0 starts (a worker group of its own:
    a restarted group starts afresh), not in a torch process group, whose TCPStore would
    listen on every interface.
    """

    def __init__(self, rank: int, world_size: int, identity: Mapping[str, Any]) -> None:
        self.world_size = world_size
        self.identity = dict(identity)
        self.finished: list[str] = []
        self.steps = 0
        self.tally = None
        if world_size > 1:
            name = f"dpz-lockstep-{uuid.uuid4().hex}"
            if rank == 0:
                self.tally = _Tally.options(name=name).remote(world_size)
            name = ray.train.collective.broadcast_from_rank_zero(name)  # rank 0's, its tally started
            if rank != 0:
                self.tally = ray.get_actor(name)

    def any(self, flag: bool) -> bool:
        """True if ``flag`` is set on any worker (so also a barrier)."""
        if self.tally is None:
            return flag
        self.steps += 1
        return ray.get(self.tally.any.remote(self.steps, flag))

    def report(self, metrics: Mapping[str, Any], checkpoint_dir: str | None = None) -> None:
        """One step of a worker with work: metrics and, optionally, a checkpoint directory."""
        self.any(True)
        self._report(metrics, checkpoint_dir)

    def drain(self) -> None:
        """Step idly (announcing what finished) until no worker has work left."""
        while self.any(bool(self.finished)):
            self._report({"phase": "idle"}, None)

    def _report(self, metrics: Mapping[str, Any], checkpoint_dir: str | None) -> None:
        checkpoint = ray.train.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        ray.train.report({**self.identity, **metrics, "finished": self.finished}, checkpoint=checkpoint)
        self.finished = []


def worker_loop(loop_config: dict[str, Any]) -> None:
    """The Ray Train ``train_loop_per_worker``.

    ``loop_config`` holds ``config`` (:meth:`EnsembleConfig.to_dict`), ``arrays`` and
    ``pretrain_arrays`` (store arrays to read) and ``threads`` (torch threads per worker).
    """
    config = EnsembleConfig.from_dict(loop_config["config"])
    ensemble = EnsembleDir(config.out)
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()
    torch.set_num_threads(loop_config["threads"])
    step = Lockstep(rank, world, {"rank": rank, "pid": os.getpid()})

    # Every worker decides from the same view of the disk, before anyone writes to it.
    plan = ensemble.read_plan()
    need_pretrain = bool(config.pretrain_store) and not ensemble.has_pretrain
    done = ensemble.finished_members()
    mine = [m for m in plan.members if m.member_id not in done][rank::world]
    step.any(False)
    states = _restored_states({m.member_id for m in mine} | {PRETRAIN})

    if need_pretrain:
        if rank == 0:
            _pretrain(config, loop_config["pretrain_arrays"], ensemble, device, states.get(PRETRAIN), step)
        step.drain()
    init_bundle = load_bundle(ensemble.pretrain, device=device) if config.pretrain_store else None
    if mine:
        sample = load_sample(ensemble, config.store, config.tiles)
        data = read_sample_rows(sample, loop_config["arrays"])
        train_config = dataclasses.replace(config.train, device=str(device))
        if stackable(config.model_config(), device, training=True):  # even one: a rerun takes the same path
            _train_stacked(config, plan, mine, data, train_config, init_bundle, states, step)
        else:
            for member in mine:
                _train(
                    config, plan, member, data, train_config, init_bundle, states.get(member.member_id), step
                )
    step.drain()


def _restored_states(names: set[str]) -> dict[str, dict[str, Any]]:
    """Resume states in the latest Ray Train checkpoint for the members (or ``pretrain``) named."""
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return {}
    with checkpoint.as_directory() as directory:
        found = {p.parent.name: p for p in Path(directory).glob(f"*/{STATE_FILE}")}
        return {name: load_train_state(path) for name, path in found.items() if name in names}


def _epoch_reporter(name: str, phase: str, resumed_from: int, epochs: int, step: Lockstep) -> Callable:
    def report(epoch: EpochReport) -> None:
        metrics = {
            "phase": phase,
            "member": name,
            "epoch": epoch.record.epoch + 1,
            "epochs": epochs,
            "train_loss": epoch.record.train_loss,
            "val_loss": epoch.record.val_loss,
            "resumed_from": resumed_from,
        }
        with tempfile.TemporaryDirectory(prefix="dpz-ckpt-") as tmp:
            (Path(tmp) / name).mkdir()
            save_train_state(Path(tmp) / name / STATE_FILE, epoch.state())
            step.report(metrics, tmp)

    return report


def _pretrain(
    config: EnsembleConfig,
    arrays: list[str],
    ensemble: EnsembleDir,
    device: torch.device,
    state: dict[str, Any] | None,
    step: Lockstep,
) -> None:
    sample = select_sample(config.pretrain_store, config.pretrain_tiles)
    data = read_sample_rows(sample, arrays)
    resumed_from = int(state["epoch"]) if state else 0
    result = train_member(
        config.model_config(),
        data,
        derived_seed(config.seed, PRETRAIN),
        train_config=dataclasses.replace(config.pretrain, device=str(device)),
        resume=state,
        callback=_epoch_reporter(PRETRAIN, "pretrain", resumed_from, config.pretrain.epochs, step),
    )
    save_bundle(
        ensemble.pretrain, _with_metadata(result.bundle, {"resumed_from_epoch": resumed_from}), overwrite=True
    )
    step.finished.append(PRETRAIN)


def _train(
    config: EnsembleConfig,
    plan: SplitPlan,
    member: MemberSpec,
    data: TileArrays,
    train_config: TrainConfig,
    init_bundle: Bundle | None,
    state: dict[str, Any] | None,
    step: Lockstep,
) -> None:
    started = time.perf_counter()
    name = member.member_id
    resumed_from = int(state["epoch"]) if state else 0
    result = train_member(
        config.model_config(),
        data.take(plan.train_rows(member)),
        member.seed,
        train_config=train_config,
        val_data=data.take(plan.validation_rows(member)),
        init_bundle=init_bundle,
        resume=state,
        callback=_epoch_reporter(name, "member", resumed_from, train_config.epochs, step),
    )
    extra = {"resumed_from_epoch": resumed_from}
    _finish(
        EnsembleDir(config.out), plan, member, data, result, extra, started, step, config.survey_calibration
    )


def _train_stacked(
    config: EnsembleConfig,
    plan: SplitPlan,
    members: list[MemberSpec],
    data: TileArrays,
    train_config: TrainConfig,
    init_bundle: Bundle | None,
    states: Mapping[str, dict[str, Any]],
    step: Lockstep,
) -> None:
    """Train ``members`` (each from its resume state in ``states``, if any) as one stacked model
    (:func:`~distributed_pz.train.vmapped.train_stacked`), where
    :func:`~distributed_pz.models.folded.stackable` allows it (DEEPZ on every device, other models
    without convolutions on GPUs)."""
    started = time.perf_counter()
    resumed_from = {
        m.member_id: int(states[m.member_id]["epoch"]) if m.member_id in states else 0 for m in members
    }
    jobs = [
        MemberJob(
            data.take(plan.train_rows(m)),
            m.seed,
            data.take(plan.validation_rows(m)),
            _epoch_reporter(m.member_id, "member", resumed_from[m.member_id], train_config.epochs, step),
            states.get(m.member_id),
        )
        for m in members
    ]
    results = train_stacked(config.model_config(), jobs, train_config=train_config, init_bundle=init_bundle)
    for member, result in zip(members, results, strict=True):
        extra = {"resumed_from_epoch": resumed_from[member.member_id], "stacked_members": len(members)}
        _finish(
            EnsembleDir(config.out),
            plan,
            member,
            data,
            result,
            extra,
            started,
            step,
            config.survey_calibration,
        )


def _finish(
    ensemble: EnsembleDir,
    plan: SplitPlan,
    member: MemberSpec,
    data: TileArrays,
    result: TrainResult,
    extra: Mapping[str, Any],
    started: float,
    step: Lockstep,
    survey_calibration: bool,
) -> None:
    """A trained member's out-of-fold part and its part of the calibration share, then its bundle
    (renamed into place last). With ``survey_calibration``, a plan that does not leave whole tiles
    out has its out-of-fold rows predicted under redrawn zero points, and the calibration share
    always is: the same draw for every member, as a tile's zero points are the same for every
    member (:func:`~distributed_pz.train.oof.predict_part`)."""
    name = member.member_id
    test = plan.test_rows(member)
    if test.size:  # a one-fold plan has no test rows and no out-of-fold part
        redraw = member.seed if survey_calibration and not plan.leaves_groups_out else None
        save_part(ensemble.oof_part(name), test, predict_part(result.bundle, data.take(test), redraw))
    share = plan.calibration_rows()
    if share.size:
        redraw = derived_seed(plan.seed, "calibration share zero points") if survey_calibration else None
        save_part(
            ensemble.calibration_part(name), share, predict_part(result.bundle, data.take(share), redraw)
        )
    record = {
        "member_id": name,
        "split": member.split,
        "fold": member.fold,
        **extra,
        "seconds_this_attempt": round(time.perf_counter() - started, 3),
        "history": [dataclasses.asdict(r) for r in result.history],
    }
    save_bundle(ensemble.member(name), _with_metadata(result.bundle, record), overwrite=True)
    step.finished.append(name)


def _with_metadata(bundle: Bundle, extra: Mapping[str, Any]) -> Bundle:
    return dataclasses.replace(bundle, metadata={**bundle.metadata, **extra})
