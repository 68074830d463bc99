"""Learning-rate schedules: pure functions of the epoch.

- ``"gaznet"`` (Li et al. 2022 §3.1): ``lr`` for the first half of the epochs (30 of 60 in the
  paper), then ``lr / 10``.
- ``"deepz"`` (Eriksen et al. 2020 §2.4): ``lr`` for the first third (100 of 300 epochs), then
  ``lr / 10``, ``lr / 100``, ``lr / 1000`` over equal parts of the remaining epochs.
- ``"constant"``: ``lr`` throughout.
"""

from __future__ import annotations

from collections.abc import Callable

Schedule = Callable[[int, int, float], float]


def gaznet_schedule(epoch: int, epochs: int, lr: float) -> float:
    """``lr`` for epochs ``[0, epochs/2)``, ``lr/10`` after."""
    return lr if epoch < epochs / 2 else lr / 10


def deepz_schedule(epoch: int, epochs: int, lr: float) -> float:
    """``lr`` for the first third, then ``lr/10``, ``lr/100``, ``lr/1000`` over thirds of the rest."""
    first = epochs / 3
    if epoch < first:
        return lr
    step = min(3, 1 + int(3 * (epoch - first) / (epochs - first)))
    return lr / 10**step


def constant_schedule(epoch: int, epochs: int, lr: float) -> float:
    return lr


SCHEDULES: dict[str, Schedule] = {
    "gaznet": gaznet_schedule,
    "deepz": deepz_schedule,
    "constant": constant_schedule,
}


def first_drop(schedule: str, epochs: int, lr: float) -> int:
    """First epoch (0-based) whose learning rate is below the peak; ``epochs`` if it never drops.

    Early stopping waits for it (:class:`distributed_pz.train.member.TrainConfig`): a member is
    not stopped while it still runs at the peak rate.
    """
    return next((e for e in range(epochs) if learning_rate(schedule, e, epochs, lr) < lr), epochs)


def learning_rate(schedule: str, epoch: int, epochs: int, lr: float) -> float:
    """Learning rate of ``epoch`` (0-based) out of ``epochs`` under the named schedule."""
    try:
        return SCHEDULES[schedule](epoch, epochs, lr)
    except KeyError:
        raise KeyError(f"unknown learning-rate schedule {schedule!r}; known: {sorted(SCHEDULES)}") from None
