"""The model file RAIL keeps for a distributed_pz ensemble: JSON, never a pickle.

RAIL's own ``ModelHandle`` pickles whatever model a stage registers and unpickles whatever file
a user names, so a crafted model file runs code. Ours holds two strings,
``{"ensemble": URL, "content_hash": HASH}``: the ensemble directory the informer trained and its
content hash, which the estimator checks against the ensemble it loads (whose members, plan,
calibration and locus are each checked against their own hashes). The trust boundary is the
ensemble directory: whoever can write it can change the networks, not run code at load.
"""

from __future__ import annotations

import json
from typing import Any

from rail.core.data import ModelHandle

from distributed_pz._files import read_bytes, write_json

MODEL_KEYS = ("ensemble", "content_hash")
"""The keys of a model, both strings."""


def check_model(model: Any, where: str) -> dict[str, str]:
    """``model`` if it is ``{"ensemble": str, "content_hash": str}``; else ``ValueError`` naming ``where``."""
    if not (
        isinstance(model, dict)
        and sorted(model) == sorted(MODEL_KEYS)
        and all(isinstance(model[k], str) for k in MODEL_KEYS)
    ):
        raise ValueError(
            f"{where}: not a distributed_pz model ({{'ensemble': URL, 'content_hash': HASH}}); "
            "rerun DistributedPzInformer to write one"
        )
    return model


def read_model(path: str) -> dict[str, str]:
    """The model in the JSON file ``path``; one line naming it when it is missing or anything else."""
    try:
        model = json.loads(read_bytes(path))
    except FileNotFoundError:
        raise ValueError(f"{path}: model file missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        model = None  # a pickle (RAIL's default model format) or other bytes: never unpickled
    return check_model(model, path)


class EnsembleModelHandle(ModelHandle):
    """RAIL data handle of a distributed_pz model file (JSON, see the module docstring)."""

    suffix = "json"

    @classmethod
    def _open(cls, path: str, **kwargs: Any) -> Any:
        if kwargs.get("mode", "r") == "w":
            return open(path, "w", encoding="utf-8")  # RAIL closes it
        return read_model(path)

    @classmethod
    def _read(cls, path: str, **kwargs: Any) -> dict[str, str]:
        return read_model(path)

    @classmethod
    def _write(cls, data: Any, path: str, **kwargs: Any) -> None:
        write_json(path, check_model(data, path))
