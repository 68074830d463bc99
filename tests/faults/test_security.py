"""RELIABILITY.md S2, S3 and RELIABILITY-NEW-SURFACES.md's TCPStore finding: what a run exposes
on the network.

S2: a local Ray started by ``dpz train`` listens on 127.0.0.1 only, and so does every process
of a ``dpz train`` while its members train (Ray Train sets up no torch process group, whose
TCPStore listened on every interface). S3: the SLURM deploy's
scheduler takes TLS clients only (a per-run certificate handed to ``dpz predict`` through its
environment) and its dashboard defaults to loopback. S1 (tile names escaping ``--out``) is in
``test_input_faults.py`` and ``test_bundle_faults.py``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import psutil
import pytest

from distributed_pz.models.ensemble import EnsembleDir
from tests.deploy.test_configs import load_slurm_script

from .conftest import dpz

pytestmark = [pytest.mark.faults, pytest.mark.distributed, pytest.mark.slow]

LOOPBACK_V6_MAPPED = ipaddress.ip_address("::ffff:127.0.0.1")


def _is_loopback(host: str) -> bool:
    address = ipaddress.ip_address(host)
    return address.is_loopback or address == LOOPBACK_V6_MAPPED


def _listening(pids: set[int]) -> list[tuple[int, str, int]]:
    return [
        (c.pid, c.laddr.ip, c.laddr.port)
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.pid in pids
    ]


def test_s2_a_local_ray_listens_on_loopback_only():
    ray = pytest.importorskip("ray")
    from distributed_pz.train.ray_ensemble import start_ray

    assert not ray.is_initialized()
    switch = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
    before = os.environ.get(switch)
    start_ray(num_cpus=1)
    try:
        assert os.environ.get(switch) == before  # the single-machine switch does not leak to children
        assert ray.get(ray.remote(lambda: os.getpid()).remote()) != os.getpid()  # a worker process exists
        pids = {os.getpid(), *(p.pid for p in psutil.Process().children(recursive=True))}
        sockets = _listening(pids)
        assert len(sockets) >= 4  # GCS, raylet, driver, worker (and the runtime-env agent)
        assert [s for s in sockets if not _is_loopback(s[1])] == []
    finally:
        ray.shutdown()


def _tree(pid: int) -> set[int]:
    try:
        return {pid, *(p.pid for p in psutil.Process(pid).children(recursive=True))}
    except psutil.NoSuchProcess:
        return set()


def _training_pids(status_file) -> set[int]:
    """Pids of the Ray Train workers with a member in training (from ``status.json``)."""
    try:
        members = json.loads(status_file.read_text())["members"].values()
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return set()
    return {m["pid"] for m in members if m["state"] == "running" and m.get("epoch", 0) >= 1}


def test_s4_every_process_of_dpz_train_listens_on_loopback_only_while_members_train(world, tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "ensemble"
    run = dpz(
        "train", "--store", str(world["store"]), "--tile", "T2", "--out", str(out), "--model", "deepz",
        "--model-set", "hidden=16", "--model-set", "n_layers=2", "--model-set", "latent=4",
        "--splits", "1", "--folds", "2", "--epochs", "30", "--batch-size", "256", "--patience", "0",
        "--num-workers", "2",
    )  # fmt: skip
    seen: dict[tuple[int, str, int], None] = {}
    trainers: set[int] = set()
    try:
        while run.poll() is None:
            training = _training_pids(out / EnsembleDir.status_file)
            if training:  # sockets of the whole tree while members train, not before
                pids = _tree(run.pid)
                trainers |= training & pids
                seen.update(dict.fromkeys(_listening(pids)))
            time.sleep(0.2)
        _, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode == 0, err
    assert len(trainers) == 2, "no socket scan caught both workers training"
    assert {s[0] for s in seen} & trainers  # the training workers' own sockets were among those scanned
    assert [s for s in seen if not _is_loopback(s[1])] == []


def _self_signed(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl to make a test certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=dask-internal"],
        check=True, capture_output=True,
    )  # fmt: skip
    return key.read_text(), cert.read_text()


def test_s3_slurm_deploy_scheduler_takes_tls_clients_only_and_its_dashboard_is_local(tmp_path):
    from distributed import LocalCluster, Security

    script = load_slurm_script()
    args = script.parse_args(["--", "--store", "s", "--bundle", "b", "--out", "o"])
    assert args.dashboard_address == "127.0.0.1:8787"
    key, cert = _self_signed(tmp_path)
    roles = {f"tls_{role}_{part}": value for role in ("client", "scheduler", "worker")
             for part, value in (("key", key), ("cert", cert))}  # fmt: skip
    security = Security(require_encryption=True, tls_ca_file=cert, **roles)
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    env = script.client_tls_environment(security, private)
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in private.iterdir())
    code = "import sys; from distributed import Client; print(Client(sys.argv[1], timeout=5).submit(sum, [1, 2]).result())"
    with LocalCluster(
        n_workers=1, threads_per_worker=1, security=security, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tls://")
        good = subprocess.run(
            [sys.executable, "-c", code, address],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert good.returncode == 0 and good.stdout.strip() == "3", good.stderr
        bare = subprocess.run(
            [sys.executable, "-c", code, address], capture_output=True, text=True, timeout=60
        )
        assert bare.returncode != 0
