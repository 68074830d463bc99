"""The paper-claims benchmark's learning curve: r-only tiles, one row per size and model, the curve so far."""

from __future__ import annotations

import math

import numpy as np
import torch

from benchmarks.paper_claims import (
    IMAGE_MODELS,
    crossings,
    curve_models,
    first_rows,
    latest_points,
    learning_curve,
    simulated,
)
from distributed_pz.models import model_config


def test_a_tile_with_the_r_cutout_only_is_the_full_tiles_r_channel():
    full, r_only = simulated(600, seed=5), simulated(600, seed=5, image_bands=("r",))
    assert r_only.image_bands == ("r",) and r_only.arrays["cutout"].shape == (600, 1, 40, 40)
    r = full.image_bands.index("r")
    np.testing.assert_array_equal(r_only.arrays["cutout"][:, 0], full.arrays["cutout"][:, r])
    np.testing.assert_array_equal(r_only.arrays["mag"], full.arrays["mag"])


def test_first_rows_are_the_same_whatever_tile_holds_them():
    small, large = first_rows(300, seed=5), first_rows(700, seed=5)
    assert small.n_rows == 300 and large.n_rows == 700 and small.image_bands == ("r",)
    for name in ("cutout", "mag", "z_spec"):
        np.testing.assert_array_equal(small.arrays[name], large.arrays[name][:300])


def test_learning_curve_has_a_row_per_size_and_model():
    torch.set_num_threads(1)
    rows = learning_curve([150, 300], test_sources=400, steps=1, min_epochs=1)
    models = ["C9", "C9 (GaZNet-1 MLP)", "GaZNet-1"]
    assert [(r["model"], r["n_train"]) for r in rows] == [(m, n) for n in (150, 300) for m in models]
    for row in rows:
        assert row["n_val"] == round(row["n_train"] / 4) and row["max_epochs"] == 1
        assert math.isfinite(row["nmad_lowz"]) and row["n_lowz"] > 200 and row["n_highz"] > 0, row
        assert row["train_s"] >= 0 and row["epochs"] == "1 (1)"
    rerun = {**rows[0], "nmad_lowz": -1.0}
    points = latest_points([*rows, rerun])
    assert len(points) == len(rows) and points[0]["nmad_lowz"] == -1.0
    text = crossings(points)
    assert text.count("\n") == 3 and "150, 300" in text  # GaZNet-1 vs C9 and vs its MLP, two z ranges


def test_paper_mlp_curve_pairs_the_wide_gaznet_1_with_its_own_mlp():
    assert IMAGE_MODELS["GaZNet-1 (paper MLP)"] == "C9 + paper neck"
    mlp, image = (model_config(name, **widths) for name, widths in curve_models(paper_mlp=True).values())
    c9 = model_config(*curve_models(paper_mlp=False)["C9"][:1])
    assert image.catalog_widths == mlp.catalog_widths == c9.catalog_widths
    assert image.neck_widths == mlp.neck_widths and len(image.neck_widths) == 4
    assert image.image_bands == ("r",) and not mlp.image_bands and image.conv_widths == (8, 16, 16, 32)
