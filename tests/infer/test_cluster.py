"""Local clusters started by ``dpz predict``: workers with one torch thread whatever the client has."""

from __future__ import annotations

import pytest
import torch

from distributed_pz.infer.cluster import connect

pytestmark = [pytest.mark.distributed]


def test_workers_take_torch_threads_from_the_nanny_not_from_this_process():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # a forked worker would inherit this
    try:
        with connect("local", workers=1) as client:
            assert list(client.run(torch.get_num_threads).values()) == [1]
    finally:
        torch.set_num_threads(threads)
