"""Shared fixtures; the builders behind them are in :mod:`tests.fixtures`."""

from __future__ import annotations

import socket
import urllib.request

import pytest

from tests.fixtures import make_tile_arrays


@pytest.fixture
def tile_arrays():
    return make_tile_arrays()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def bucket(monkeypatch, tmp_path):
    """A real S3 server (moto) on 127.0.0.1 with an empty bucket: ``(s3fs filesystem, "s3://BUCKET")``;
    s3fs and botocore reach it through ``AWS_ENDPOINT_URL``."""
    s3fs = pytest.importorskip("s3fs", reason="needs s3fs (the dev extra)")
    moto_server = pytest.importorskip("moto.server", reason="needs moto[server] (the dev extra)")
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    reset = f"http://127.0.0.1:{port}/moto-api/reset"  # moto's state outlives a server in this process
    urllib.request.urlopen(urllib.request.Request(reset, method="POST"), timeout=10).close()
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "DPZ_CACHE": str(tmp_path / "cache"),
    }.items():
        monkeypatch.setenv(key, value)
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    fs.mkdir("dpz-test")
    yield fs, "s3://dpz-test"
    s3fs.S3FileSystem.clear_instance_cache()
    server.stop()
