"""Training: learning-rate schedules, losses and the per-member loop that orchestration wraps."""

from distributed_pz.train.member import (
    EpochRecord,
    EpochReport,
    TrainConfig,
    TrainingDiverged,
    TrainResult,
    evaluate_loss,
    load_train_state,
    save_train_state,
    train_member,
)
from distributed_pz.train.schedule import learning_rate

__all__ = [
    "EpochRecord",
    "EpochReport",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "evaluate_loss",
    "learning_rate",
    "load_train_state",
    "save_train_state",
    "train_member",
]
