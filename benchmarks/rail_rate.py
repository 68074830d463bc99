"""A RAIL estimator's rows per second in one process, on rows another benchmark exported.

Runs in the RAIL environment of ``benchmarks.rail_comparison`` (see its docstring), one thread::

    OMP_NUM_THREADS=1 .rail-venv/bin/python -m benchmarks.rail_rate ROWS.npz [--algorithm GPz]

``ROWS.npz`` holds ``bands``, ``train_mag``, ``train_mag_err``, ``train_z`` and ``test_mag``,
``test_mag_err`` (``benchmarks.survey_scale``'s ``student`` stage writes it). The algorithm is
trained on the training rows and applied to the test rows; one JSON line is printed: rows,
training seconds, estimation seconds (the ``estimate`` call alone) and rows per second.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.rail_comparison import ALGORITHMS, rail_table, run_rail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rows", type=Path, help="the exported rows (.npz)")
    parser.add_argument("--algorithm", choices=ALGORITHMS, default="GPz")
    args = parser.parse_args(argv)
    data = np.load(args.rows, allow_pickle=False)
    bands = [str(b) for b in data["bands"]]
    train = rail_table(data["train_mag"], data["train_mag_err"], bands, data["train_z"])
    test_z = np.zeros(len(data["test_mag"]))
    test = rail_table(data["test_mag"], data["test_mag_err"], bands, test_z)
    with tempfile.TemporaryDirectory(prefix="dpz_rail_rate_") as tmp, contextlib.chdir(tmp):
        # RAIL stages may write into the working directory
        _, _, train_s, estimate_s = run_rail(args.algorithm, train, test, bands, Path(tmp))
    rows = len(test_z)
    print(
        json.dumps(
            {
                "algorithm": args.algorithm,
                "rows": rows,
                "train_s": train_s,
                "estimate_s": estimate_s,
                "rows_per_s": rows / estimate_s,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
