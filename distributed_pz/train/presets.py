"""Training presets: the papers' schedules on a GPU, a documented short version for CPUs.

``paper`` is what the papers trained: DEEPZ (Eriksen et al. 2020 §2.4) 300 epochs at batch 100,
the first 100 at 10⁻³ and the other 200 stepping through 10⁻⁴, 10⁻⁵ and 10⁻⁶ (the ``"deepz"``
schedule gives each a third of them; the paper's sentence can also be read as 200 epochs at each,
which this preset does not do); GaZNet (Li et al. 2022 §3.1) 30 epochs at 10⁻³ then 30 at 10⁻⁴.
``cpu`` keeps the schedules' shapes at a tenth (DEEPZ) or half (GaZNet) of the epochs, which is
what a 2-core machine trains in minutes on ~10⁴ rows. ``auto`` (the ``dpz train`` default) is
``paper`` where torch sees a GPU, else ``cpu``; ``--epochs`` / ``--batch-size`` win over a preset.
"""

from __future__ import annotations

import torch

PRESETS: dict[str, dict[str, dict[str, float]]] = {
    "paper": {
        "deepz": {"epochs": 300, "batch_size": 100, "lr": 1e-3},
        "gaznet": {"epochs": 60, "batch_size": 128, "lr": 1e-3},
    },
    "cpu": {
        "deepz": {"epochs": 30, "batch_size": 100, "lr": 1e-3},
        "gaznet": {"epochs": 30, "batch_size": 128, "lr": 1e-3},
    },
}
"""Preset -> model family -> ``TrainConfig`` fields."""
PRESET_NAMES = ("auto", *PRESETS)


def preset_settings(preset: str, family: str) -> dict[str, float]:
    """``TrainConfig`` fields of ``preset`` (``"auto"``, ``"paper"`` or ``"cpu"``) for a model family."""
    if preset not in PRESET_NAMES:
        raise ValueError(f"unknown preset {preset!r}; known: {list(PRESET_NAMES)}")
    if preset == "auto":
        preset = "paper" if torch.cuda.is_available() else "cpu"
    return dict(PRESETS[preset][family])
