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

import dataclasses
from dataclasses import dataclass

import torch

from distributed_pz.options import option, positive_float
from distributed_pz.train.config import TRAINING
from distributed_pz.train.member import TrainConfig

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


@dataclass(frozen=True)
class MemberSettings:
    """How ``dpz train`` trains each member: a preset, and the values that win over it."""

    preset: str = option(
        "auto",
        choices=PRESET_NAMES,
        group=TRAINING,
        help="epochs, batch size and peak rate: 'paper' (DEEPZ 300 epochs at batch 100, GaZNet 60), "
        "'cpu' (DEEPZ 30, GaZNet 30); auto = paper on a GPU, else cpu",
    )
    epochs: int | None = option(
        None, minimum=1, group=TRAINING, help="epochs per member (at most); default: the preset's"
    )
    batch_size: int | None = option(
        None, minimum=1, group=TRAINING, help="rows per optimisation step; default: the preset's"
    )
    lr: float | None = option(
        None, parse=positive_float, group=TRAINING, help="peak learning rate; default: the preset's"
    )
    patience: int = option(
        TrainConfig.patience,
        minimum=0,
        group=TRAINING,
        help="stop a member after this many epochs without improvement (0 = never)",
    )
    pretrain_epochs: int | None = option(
        None, minimum=1, group=TRAINING, help="pre-training epochs (default: as --epochs)"
    )
    zeropoint_jitter: float = option(
        TrainConfig.zeropoint_jitter,
        minimum=0,
        group=TRAINING,
        help="random zero-point offsets per source and band at this many times the band set's "
        "tile-to-tile calibration scatter, so members do not learn their tiles' zero points (0 = off)",
    )

    def train_configs(self, family: str) -> tuple[TrainConfig, TrainConfig]:
        """The members' and the pre-training's :class:`TrainConfig` for a model family (stopping on NaN)."""
        chosen = {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr}
        settings = {**preset_settings(self.preset, family), **{k: v for k, v in chosen.items() if v}}
        member = TrainConfig(
            on_nan="stop", patience=self.patience or None, zeropoint_jitter=self.zeropoint_jitter, **settings
        )
        return member, dataclasses.replace(member, epochs=self.pretrain_epochs or member.epochs)
