"""Real multi-process clusters on loopback, started with the same CLIs as on a real cluster.

A two-node Ray cluster (`ray start --head` + `ray start --address`, one CPU each) and a Dask
cluster (`dask scheduler --scheduler-file` + two `dask worker` processes); then `dpz train
--address` and `dpz predict --scheduler-file` run against them as separate processes.

Every process starts in its own session and is ended, with everything it spawned, by session
id; nothing machine-wide such as `ray stop`, which would also stop other Ray instances on
the host. Ray drivers run in subprocesses too, so no Ray state is left in the test process.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from distributed_pz import cli
from distributed_pz.train.ray_ensemble import QUIET_RAY_ENV

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

LOOPBACK = "127.0.0.1"
# `ray start` rewrites 127.0.0.1 (only that loopback address) to the host's routable address,
# so the Ray head takes another loopback address; the second node, joining it, gets 127.0.0.1
# from the route there, and drivers started on this host attach to that node.
RAY_HEAD_IP = "127.0.0.2"
BIN = Path(sys.executable).parent
START_TIMEOUT_S = 120
BASE_ENV = {**QUIET_RAY_ENV, "OMP_NUM_THREADS": "1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


class ProcessGroup:
    """Processes of one cluster, each started in a new session, logging to ``log_dir``."""

    def __init__(self, log_dir: Path, env: dict[str, str]):
        self.log_dir = log_dir
        self.env = {**os.environ, **env}
        self.started: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str]) -> None:
        with open(self.log_dir / f"{name}.log", "wb") as log:
            self.started[name] = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )

    def log_tail(self, name: str, lines: int = 30) -> str:
        return "\n".join((self.log_dir / f"{name}.log").read_text(errors="replace").splitlines()[-lines:])

    def wait_until(self, ready: Callable[[], bool], what: str, timeout: float = START_TIMEOUT_S) -> None:
        """Poll ``ready`` until true; fail early, with the logs, if a process has exited."""
        deadline = time.monotonic() + timeout
        while not ready():
            for name, process in self.started.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.log_tail(name)}")
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {name}\n{self.log_tail(name)}" for name in self.started)
                raise TimeoutError(f"{what} not ready after {timeout:.0f} s\n{logs}")
            time.sleep(0.5)

    def stop(self, grace_s: float = 10) -> None:
        """SIGTERM every session, SIGKILL whatever is left of them after ``grace_s``."""
        sessions = {process.pid for process in self.started.values()}
        for sid in sessions:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(sid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while session_members(sessions) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in session_members(sessions):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        for process in self.started.values():
            process.wait(timeout=grace_s)


def session_members(sessions: set[int]) -> list[int]:
    """Live (not zombie) processes whose session id is in ``sessions``."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        state, _ppid, _pgrp, session = stat.rsplit(")", 1)[1].split()[:4]
        if int(session) in sessions and state != "Z":
            members.append(int(entry))
    return members


def require_dpz(command: str) -> None:
    """Skip until `dpz COMMAND` is dispatched by distributed_pz.cli (other engineers land it)."""
    if command not in cli.COMMANDS:
        pytest.skip(f"`dpz {command}` is not wired into distributed_pz.cli yet")


def run(argv: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env={**os.environ, **env})
    assert result.returncode == 0, (
        f"{' '.join(argv[:3])} ... failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


def run_dpz(*args: str, env: dict[str, str] = BASE_ENV, timeout: float = 600) -> subprocess.CompletedProcess:
    return run([str(BIN / "dpz"), *args], env, timeout)


@dataclass(frozen=True)
class RayCluster:
    address: str
    env: dict[str, str]
    """What a driver needs to join: loopback mode and this cluster's own auth token."""

    def driver(self, script: str, timeout: float = 120) -> object:
        """Run ``script`` (argv[1] is the address) as a Ray driver; its last stdout line, as JSON."""
        result = run([sys.executable, "-c", script, self.address], self.env, timeout)
        return json.loads(result.stdout.strip().splitlines()[-1])


ALIVE_NODES = """
import json, sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
print(json.dumps(sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])))
"""

TASK_ON_EVERY_NODE = """
import json, sys, ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)

@ray.remote(num_cpus=1)
def node_id():
    return ray.get_runtime_context().get_node_id()

nodes = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])
pinned = [node_id.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False)) for n in nodes]
print(json.dumps({"nodes": nodes, "ran_on": sorted(ray.get([task.remote() for task in pinned], timeout=60))}))
"""


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory) -> Iterator[RayCluster]:
    """A running two-node Ray cluster on loopback: one CPU per node, no dashboard, own token."""
    # Ray's socket paths must stay short (108 bytes), hence /tmp; a temp dir of its own also
    # keeps this cluster out of /tmp/ray, where a bare `ray.init()` elsewhere would find it.
    temp_dir = tempfile.mkdtemp(prefix="dpzray-", dir="/tmp")
    token = Path(temp_dir) / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    port = free_port()
    address = f"{RAY_HEAD_IP}:{port}"
    # RAY_ADDRESS: Ray's internal `address="auto"` lookups (e.g. Ray Train's placement-group
    # cleaner) would otherwise find every Ray instance on the host and refuse to choose.
    env = {**BASE_ENV, "RAY_ADDRESS": address, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    cluster = RayCluster(address, env)
    group = ProcessGroup(tmp_path_factory.mktemp("ray-logs"), env)

    def node(*extra: str) -> list[str]:
        # Every port explicit: defaults such as the agent's 52365 would clash between the two
        # nodes on one host, and with other Ray instances.
        ports = (
            "--node-manager-port",
            "--object-manager-port",
            "--metrics-export-port",
            "--dashboard-agent-listen-port",
            "--dashboard-agent-grpc-port",
            "--runtime-env-agent-port",
        )
        return [
            str(BIN / "ray"), "start", "--block", "--num-cpus", "1", "--num-gpus", "0",
            "--object-store-memory", str(100 * 2**20), "--temp-dir", temp_dir,
            *[arg for option in ports for arg in (option, str(free_port()))],
            *extra,
        ]  # fmt: skip

    def nodes_up(count: int) -> Callable[[], bool]:
        def ready() -> bool:
            try:
                return len(cluster.driver(ALIVE_NODES, timeout=60)) >= count
            except (AssertionError, subprocess.TimeoutExpired):
                return False

        return ready

    try:
        group.start(
            "ray-head",
            node(
                "--head",
                "--node-ip-address",
                RAY_HEAD_IP,
                "--port",
                str(port),
                "--include-dashboard",
                "false",
            ),
        )
        group.wait_until(nodes_up(1), "Ray head")
        group.start("ray-node-2", node("--address", cluster.address))
        group.wait_until(nodes_up(2), "second Ray node")
        yield cluster
    finally:
        group.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def dask_scheduler_file(tmp_path_factory) -> Iterator[Path]:
    """Scheduler file of a running Dask cluster on 127.0.0.1: scheduler + two 1-thread workers."""
    from distributed import Client

    work = tmp_path_factory.mktemp("dask")
    scheduler_file = work / "scheduler.json"
    group = ProcessGroup(work, BASE_ENV)
    dask = str(BIN / "dask")

    def workers_up() -> bool:
        if not scheduler_file.exists():
            return False
        with Client(scheduler_file=str(scheduler_file), timeout=10) as client:
            return len(client.scheduler_info(n_workers=-1)["workers"]) >= 2

    try:
        group.start(
            "dask-scheduler",
            [dask, "scheduler", "--scheduler-file", str(scheduler_file), "--host", LOOPBACK, "--port", "0",
             "--no-dashboard"],
        )  # fmt: skip
        for i in range(2):
            group.start(
                f"dask-worker-{i}",
                [dask, "worker", "--scheduler-file", str(scheduler_file), "--host", LOOPBACK, "--nthreads", "1",
                 "--name", f"worker-{i}", "--no-dashboard", "--local-directory", str(work / f"worker-{i}")],
            )  # fmt: skip
        group.wait_until(workers_up, "Dask scheduler and two workers")
        yield scheduler_file
    finally:
        group.stop()


def executed_tasks(scheduler_file: Path) -> dict[str, int]:
    """Tasks each worker of the cluster has executed so far."""
    from distributed import Client

    with Client(scheduler_file=str(scheduler_file), timeout=30) as client:
        return client.run(lambda dask_worker: dask_worker.state.executed_count)


def test_ray_tasks_run_on_both_nodes(ray_cluster):
    result = ray_cluster.driver(TASK_ON_EVERY_NODE)
    assert len(result["nodes"]) == 2
    assert result["ran_on"] == result["nodes"]


def test_dask_tasks_run_on_both_workers(dask_scheduler_file):
    from distributed import Client

    def worker_pid() -> int:
        return os.getpid()

    with Client(scheduler_file=str(dask_scheduler_file), timeout=30) as client:
        workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
        futures = [
            client.submit(worker_pid, workers=[w], allow_other_workers=False, pure=False) for w in workers
        ]
        pids = client.gather(futures)
    assert len(workers) == 2 and len(set(pids)) == 2 and os.getpid() not in pids


@pytest.fixture(scope="module")
def survey_store(tmp_path_factory) -> Path:
    require_dpz("simulate")
    store = tmp_path_factory.mktemp("survey") / "sim.zarr"
    # Small chunks, so that `dpz predict --rows-per-task 100` makes six tasks to share out.
    run_dpz(
        "simulate", "--out", str(store), "--n", "600", "--tiles", "1", "--seed", "0",
        "--chunk-rows", "100", "--shard-rows", "200",
    )  # fmt: skip
    return store


@pytest.fixture(scope="module")
def trained_bundle(ray_cluster, survey_store, tmp_path_factory) -> Path:
    """A 1 split x 2 folds DEEPZ ensemble trained by `dpz train` on the two-node Ray cluster."""
    require_dpz("train")
    bundle = tmp_path_factory.mktemp("bundle") / "deepz"
    # Two workers of one CPU each on nodes of one CPU each: training spans both nodes.
    run_dpz(
        "train", "--store", str(survey_store), "--model", "deepz", "--out", str(bundle),
        "--splits", "1", "--folds", "2", "--epochs", "1", "--batch-size", "64", "--seed", "0",
        "--address", ray_cluster.address, "--num-workers", "2", "--cpus-per-worker", "1",
        env=ray_cluster.env,
    )  # fmt: skip
    return bundle


def test_dpz_train_on_ray_cluster(trained_bundle):
    from distributed_pz.models.ensemble import EnsembleDir

    ensemble = EnsembleDir(trained_bundle).read()  # verifies every member's content hash
    assert len(ensemble) == 2 and ensemble.model_name == "deepz"


def test_dpz_predict_on_dask_cluster(dask_scheduler_file, trained_bundle, survey_store, tmp_path):
    import pyarrow.parquet as pq

    require_dpz("predict")
    before = executed_tasks(dask_scheduler_file)
    out = tmp_path / "catalogues"
    run_dpz(
        "predict", "--store", str(survey_store), "--bundle", str(trained_bundle), "--out", str(out),
        "--scheduler-file", str(dask_scheduler_file), "--rows-per-task", "100",
    )  # fmt: skip
    after = executed_tasks(dask_scheduler_file)
    assert all(after[w] > before[w] for w in after), f"not every worker predicted: {before} -> {after}"

    catalogue = pq.read_table(out / "SIM_0000.parquet")  # one catalogue per tile
    assert catalogue.num_rows == 600
    assert {"object_id", "z_phot"} <= set(catalogue.column_names)
