"""Where ``dpz predict`` runs: a local cluster, one worker per GPU, or a running Dask cluster.

- ``local`` (default): :class:`distributed.LocalCluster`, worker processes with one thread
  each (torch on CPU is fastest with one thread per process, STACK-NOTES), ``workers`` of them
  (default: one per core this process may use);
- ``cuda``: :class:`dask_cuda.LocalCUDACluster`, one worker per visible GPU (or ``workers``);
  refused with one clear line when torch sees no GPU or dask-cuda cannot be imported;
- ``scheduler`` address or ``scheduler_file``: join a running cluster (``dask scheduler`` +
  ``dask worker``, dask-jobqueue, Kubernetes...); it is left running afterwards.

Clusters started here listen on the loopback interface only; their dashboard is off unless
``dashboard_address`` asks for one (e.g. ``localhost:8787`` or ``:8787`` for every interface).
Their workers start without Dask's default ``MALLOC_TRIM_THRESHOLD_=65536``: that setting
fixes glibc's mmap threshold, so every large tensor is mapped and unmapped per operation,
which halved DEEPZ's throughput here (benchmarks/results/inference_cpu.md). Workers of a
running cluster keep their own settings: start them with
``DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON__MALLOC_TRIM_THRESHOLD_=None`` for the same effect.

On Linux, local CPU workers are forked from this process, not spawned (Dask's
``distributed.worker.multiprocessing-method``): they start with its imports (torch and this
package) rather than importing them again, which took about 2 s of every ``dpz predict``
(``benchmarks/results/survey_scale.md``, stage ``startup``); :class:`TorchThreads` then sets
torch's threads from the nanny's ``OMP_NUM_THREADS``. CUDA workers are spawned (CUDA does not
survive a fork).

Ctrl-C reaches every process of the terminal's process group; the workers of a cluster started
here ignore it (:class:`IgnoreInterrupts`), so the client alone reacts: it closes the cluster
and says, in one line, that the run was interrupted. Closing waits up to
:data:`WORKER_CLOSE_TIMEOUT_S` for each worker process to exit (:class:`PatientNanny`): Dask's
4 s are too short on a loaded machine, where a worker with torch loaded takes longer to end and
the nanny killed it with a "Worker process still alive ... killing" warning after every run.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import dask
from distributed import Client, LocalCluster, Nanny, WorkerPlugin

CLUSTERS = ("local", "cuda")
LOOPBACK = "127.0.0.1"
WORKER_CLOSE_TIMEOUT_S = 30.0
"""How long closing a cluster started here waits for a worker process to exit before killing it."""
WORKER_MEMORY_MIB = 480
"""Memory of one local worker with an ensemble loaded (L1: 590-620 MiB on a 100k-row tile, ~480 idle)."""
WORKER_ENVIRON = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
"""Dask config for the workers of clusters started here (``None`` unsets a variable)."""
FORKED_WORKERS = {"distributed.worker.multiprocessing-method": "fork"}
"""Dask config of local CPU clusters on Linux: workers forked from this process, its imports
included (macOS and Windows keep spawning: a fork there is unsafe or impossible)."""


class ClusterError(RuntimeError):
    """The cluster asked for cannot be started or reached (one-line message)."""


class PatientNanny(Nanny):
    """A nanny that gives its worker process :data:`WORKER_CLOSE_TIMEOUT_S` to exit when closed."""

    async def close(self, timeout: float = WORKER_CLOSE_TIMEOUT_S, reason: str = "nanny-close"):
        return await super().close(timeout=timeout, reason=reason)


class IgnoreInterrupts(WorkerPlugin):
    """Worker plugin: SIGINT is ignored (the client owns Ctrl-C and closes the cluster)."""

    name = "distributed_pz-ignore-sigint"

    def setup(self, worker) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


class TorchThreads(WorkerPlugin):
    """Worker plugin: torch's intra-op threads as the nanny's ``OMP_NUM_THREADS`` says (1 by
    default). A forked worker would otherwise keep the thread count torch had in this process."""

    name = "distributed_pz-torch-threads"

    def setup(self, worker) -> None:
        threads = os.environ.get("OMP_NUM_THREADS")
        if threads and threads.isdigit() and int(threads) > 0:
            import torch

            torch.set_num_threads(int(threads))


def default_workers() -> int:
    """Cores this process may use (one single-threaded worker each)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def check_local_workers(workers: int) -> str | None:
    """A one-line warning when ``workers`` local workers exceed the cores (``None`` when they do not).

    Raises
    ------
    ClusterError
        Their estimated memory (:data:`WORKER_MEMORY_MIB` each) exceeds the memory available now.
    """
    import psutil

    cores = default_workers()
    if workers <= cores:
        return None
    needed, available = workers * WORKER_MEMORY_MIB, psutil.virtual_memory().available // 2**20
    if needed > available:
        raise ClusterError(
            f"--workers {workers}: ~{needed:,} MiB for the workers (~{WORKER_MEMORY_MIB} MiB each), "
            f"{available:,} MiB available; use at most {max(1, available // WORKER_MEMORY_MIB)}"
        )
    return (
        f"warning: --workers {workers} on {cores} cores: ~{needed:,} MiB (~{WORKER_MEMORY_MIB} MiB per "
        f"worker, {available:,} MiB available) and no faster than {cores}"
    )


def _cuda_cluster(workers: int | None, dashboard_address: str | None):
    import torch

    if not torch.cuda.is_available():
        raise ClusterError("--cluster cuda: torch sees no CUDA GPU here; use --cluster local")
    try:
        from dask_cuda import LocalCUDACluster
    except Exception as exc:  # ImportError, or cuda-bindings' own errors when the driver is unusable
        raise ClusterError(
            f"--cluster cuda: dask-cuda is unusable ({type(exc).__name__}: {exc}); "
            "install the 'gpu' extra (cuda-bindings) or use --cluster local"
        ) from None
    try:
        return LocalCUDACluster(
            n_workers=workers,
            threads_per_worker=1,
            worker_class=PatientNanny,
            **_http_kwargs(dashboard_address),
        )
    except Exception as exc:  # NVML errors and friends
        raise ClusterError(f"--cluster cuda: could not start ({type(exc).__name__}: {exc})") from None


def _http_kwargs(dashboard_address: str | None) -> dict:
    """Loopback sockets; without a dashboard the scheduler's health server takes a free loopback port."""
    if dashboard_address:
        return {"host": LOOPBACK, "dashboard_address": dashboard_address}
    return {
        "host": LOOPBACK,
        "dashboard_address": None,
        "scheduler_kwargs": {"dashboard_address": f"{LOOPBACK}:0"},
    }


class _InterruptRace(logging.Filter):
    """Drops distributed's own traceback when Ctrl-C lands before one of its ``sync`` calls has
    started its future (``NameError: cannot access free variable 'future'`` in its ``cancel``
    callback, logged by tornado): ``dpz`` reports the interrupt in one line, and that traceback
    says nothing about the run."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (isinstance(error, NameError) and "'future'" in str(error))


logging.getLogger("tornado.application").addFilter(_InterruptRace())


@contextmanager
def connect(
    kind: str = "local",
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    scheduler_file: str | None = None,
    dashboard_address: str | None = None,
) -> Iterator[Client]:
    """A client of the cluster asked for; clusters started here are closed on exit.

    Parameters
    ----------
    kind
        ``"local"`` or ``"cuda"`` (ignored when joining a running cluster).
    workers
        Worker processes to start (local: default one per core; cuda: default one per GPU).
    scheduler, scheduler_file
        Join the running cluster at this address, or described by this scheduler file.
    dashboard_address
        Serve the dashboard of a cluster started here at this address (default: no dashboard).
    """
    if scheduler and scheduler_file:
        raise ClusterError("give --scheduler or --scheduler-file, not both")
    if scheduler or scheduler_file:
        try:
            client = Client(scheduler, scheduler_file=scheduler_file, timeout="30s")
        except (OSError, TimeoutError, ValueError) as exc:
            where = scheduler or f"scheduler file {scheduler_file}"
            raise ClusterError(
                f"cannot reach the Dask scheduler at {where} ({type(exc).__name__}: {exc})"
            ) from None
        with client:
            yield client
        return
    if kind not in CLUSTERS:
        raise ClusterError(f"cluster must be one of {CLUSTERS}, not {kind!r}")
    with dask.config.set(WORKER_ENVIRON):
        if kind == "cuda":
            cluster = _cuda_cluster(workers, dashboard_address)
        else:
            cluster = _local_cluster(workers, dashboard_address)
    with cluster, Client(cluster) as client:
        client.register_plugin(IgnoreInterrupts())
        client.register_plugin(TorchThreads())
        yield client


def _local_cluster(workers: int | None, dashboard_address: str | None) -> LocalCluster:
    with dask.config.set(FORKED_WORKERS if sys.platform == "linux" else {}):
        return LocalCluster(
            n_workers=workers or default_workers(),
            threads_per_worker=1,
            processes=True,
            worker_class=PatientNanny,
            **_http_kwargs(dashboard_address),
        )
