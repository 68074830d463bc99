"""Reading, predicting and writing overlapped: the same rows as the predictor, in order; errors surface."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from distributed_pz.infer.overlap import predict_overlapped, steps
from distributed_pz.models.predictor import EnsemblePredictor, PredictOptions
from distributed_pz.survey.store.tiles import TileArrays
from tests.fixtures import fresh_members, make_tile_arrays
from tests.infer.test_stream import assert_same_catalogue

N_ROWS = 100


@pytest.fixture(scope="module")
def predictor() -> EnsemblePredictor:
    members = fresh_members("deepz", seeds=(1, 2))
    return EnsemblePredictor(members, "h", "cpu", PredictOptions(batch_size=16))


@pytest.fixture(scope="module")
def rows(predictor) -> TileArrays:
    arrays, _ = make_tile_arrays(N_ROWS, seed=3)
    first = predictor.members[0]
    return TileArrays(arrays, first.data_bands, first.data_image_bands)


def slice_reader(rows: TileArrays):
    def read(start: int, stop: int) -> TileArrays:
        return TileArrays({k: v[start:stop] for k, v in rows.arrays.items()}, rows.bands, rows.image_bands)

    return read


def test_steps_cover_the_block_once():
    assert steps(10, 50, 16) == [(10, 26), (26, 42), (42, 50)]
    assert steps(0, 0, 16) == []


def test_overlapped_rows_equal_the_predictor_in_order(predictor, rows):
    written, threads = [], set()

    def write(columns):
        written.append(columns)
        threads.add(threading.current_thread().name)

    n = predict_overlapped(predictor, slice_reader(rows), steps(0, N_ROWS, 16), write)
    assert n == N_ROWS and len(written) == 7
    assert threads == {next(iter(threads))} and next(iter(threads)).startswith("dpz-write")
    together = {k: np.concatenate([w[k] for w in written]) for k in written[0]}
    assert_same_catalogue(together, predictor.predict_chunk(rows))


@pytest.mark.parametrize("where", ["read", "write"])
def test_the_first_error_is_raised_and_nothing_after_it_is_written(predictor, rows, where):
    written = []
    read = slice_reader(rows)

    def failing_read(start, stop):
        if start == 32:
            raise OSError("chunk 2 unreadable")
        return read(start, stop)

    def write(columns):
        if where == "write" and len(written) == 2:
            raise OSError("disk full")
        written.append(columns)

    with pytest.raises(OSError, match="chunk 2|disk full"):
        predict_overlapped(predictor, failing_read if where == "read" else read, steps(0, N_ROWS, 16), write)
    assert len(written) == 2
    assert np.array_equal(np.concatenate([w["object_id"] for w in written]), rows.arrays["object_id"][:32])
