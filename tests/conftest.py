"""Shared fixtures; the builders behind them are in :mod:`tests.fixtures`."""

from __future__ import annotations

import pytest

from tests.fixtures import make_tile_arrays


@pytest.fixture
def tile_arrays():
    return make_tile_arrays()
