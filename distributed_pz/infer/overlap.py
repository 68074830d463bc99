"""A block of rows through the predictor with reading, predicting and writing overlapped.

One prediction task reads its rows from Zarr, runs the networks, pools and summarises the
members' outputs and writes Parquet. Done in turn, the reads and the writes cost as much as the
networks of a one-member model (``benchmarks/results/survey_scale.md``), and the summaries of a
50-member mixture a tenth of its networks. :func:`predict_overlapped` cuts the block into steps
of the predictor's batch size and keeps three of them under way at once:

- a reader thread reads step ``i + 1`` (Zarr decompression releases the GIL);
- this thread runs the networks on step ``i`` (:meth:`EnsemblePredictor.forward_batch`);
- a writer thread turns step ``i - 1`` into catalogue columns
  (:meth:`EnsemblePredictor.finish_batch`) and hands them to ``write``.

With torch on one intra-op thread each call runs on the thread that makes it, so on a CPU the
networks keep one core busy while the reads, summaries and writes share another. At most one
step waits on each side, so memory stays that of three batches; the first error of any thread
is raised here, after the other threads have finished their step. Columns reach ``write`` in
row order, and each row's values are those of :meth:`EnsemblePredictor.predict_chunk` (no
random numbers, no cross-row state), so the overlap changes when a row is written, never what.

The reader and the writer are started once per calling thread (a Dask worker's task thread)
and kept: with two new threads per task, each new thread took a glibc malloc arena of its
own, every arena kept the free memory of its last task, and a worker's RSS grew with the tiles
it had predicted (up to 8 arenas per core; issue 25: +19 % from 1e5 to 1e6 sources).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait

import numpy as np

from distributed_pz.models.predictor import EnsemblePredictor, ForwardedBatch
from distributed_pz.survey.store.tiles import TileArrays


def predict_overlapped(
    predictor: EnsemblePredictor,
    read: Callable[[int, int], TileArrays],
    blocks: Sequence[tuple[int, int]],
    write: Callable[[Mapping[str, np.ndarray]], object],
) -> int:
    """Predict the row ranges ``blocks`` in order; returns the rows written.

    Parameters
    ----------
    predictor
        The loaded ensemble.
    read
        ``read(start, stop)``: those rows as the predictor reads them.
    blocks
        Row ranges ``[start, stop)``, each at most the predictor's batch size.
    write
        Called with each step's catalogue columns, in the order of ``blocks``, on one thread.
    """
    if not blocks:
        return 0
    reader, writer = _threads()
    reading = reader.submit(read, *blocks[0])
    writing: Future | None = None
    try:
        for i in range(len(blocks)):
            rows = reading.result()
            if i + 1 < len(blocks):
                reading = reader.submit(read, *blocks[i + 1])
            forwarded = predictor.forward_batch(rows)
            if writing is not None:
                writing.result()
            writing = writer.submit(_finish, predictor, forwarded, write)
        writing.result()
    finally:
        wait([f for f in (reading, writing) if f is not None])  # nothing left running on an error
    return sum(stop - start for start, stop in blocks)


_LOCAL = threading.local()


def _threads() -> tuple[ThreadPoolExecutor, ThreadPoolExecutor]:
    """This thread's reader and writer, started at its first call (they end when it does)."""
    if not hasattr(_LOCAL, "threads"):
        _LOCAL.threads = (
            ThreadPoolExecutor(1, thread_name_prefix="dpz-read"),
            ThreadPoolExecutor(1, thread_name_prefix="dpz-write"),
        )
    return _LOCAL.threads


def _finish(
    predictor: EnsemblePredictor,
    forwarded: ForwardedBatch,
    write: Callable[[Mapping[str, np.ndarray]], object],
) -> None:
    write(predictor.finish_batch(forwarded))


def steps(start: int, stop: int, batch_size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` cut into steps of ``batch_size`` rows (the last one shorter)."""
    return [(s, min(s + batch_size, stop)) for s in range(start, stop, batch_size)]
