"""Model bundles: everything needed to predict, in one directory, without pickle.

Layout of a bundle directory::

    bundle.json          format, model name, config, feature statistics, band axes,
                         package version, content hash, training metadata
    weights.safetensors  the state dict (parameters and buffers)

The content hash (SHA-256) covers the config, feature statistics, band axes and every tensor
(name, dtype, shape, bytes); it names the model in catalogues and is checked on load. The
package version and the metadata are recorded but not hashed. A bundle is written to a
temporary directory beside the target and renamed into place, so readers never see half of one.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from distributed_pz import __version__
from distributed_pz._files import local_copy
from distributed_pz.models.base import PhotoZModel
from distributed_pz.models.features import FeatureStats, InputSpec
from distributed_pz.models.registry import ModelConfig, build_model, config_from_dict, config_to_dict

BUNDLE_FORMAT = "distributed_pz.bundle"
BUNDLE_VERSION = 1
BUNDLE_FILE = "bundle.json"
WEIGHTS = "weights.safetensors"


class BundleError(ValueError):
    """A bundle directory is missing, malformed, or fails its content hash."""


@dataclass(frozen=True, eq=False)
class Bundle:
    """A trained model with what it needs to predict.

    Parameters
    ----------
    model
        The network, in eval mode.
    config
        Its config (rebuilds the architecture).
    feature_stats
        Standardisation statistics fitted on the training rows.
    data_bands, data_image_bands
        Band axes of the arrays it was trained on: the default axes when predicting on plain arrays.
    package_version
        ``distributed_pz.__version__`` that made it.
    content_hash
        SHA-256 over config, statistics, band axes and weights.
    metadata
        Free JSON-ready training record (seed, epochs, best epoch, ...); not hashed.
    """

    model: PhotoZModel
    config: ModelConfig
    feature_stats: FeatureStats
    data_bands: tuple[str, ...]
    data_image_bands: tuple[str, ...]
    package_version: str
    content_hash: str
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def model_name(self) -> str:
        return self.config.name

    @property
    def input_spec(self) -> InputSpec:
        return self.config.input_spec()

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: torch.device | str) -> Bundle:
        """The same bundle with a copy of the model on ``device`` (self if already there)."""
        if torch.device(device) == self.device:
            return self
        return dataclasses.replace(self, model=copy.deepcopy(self.model).to(device).eval())

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the bundle to directory ``path`` (see :func:`save_bundle`)."""
        return save_bundle(path, self, overwrite=overwrite)


def make_bundle(
    model: PhotoZModel,
    feature_stats: FeatureStats,
    data_bands: tuple[str, ...],
    data_image_bands: tuple[str, ...] = (),
    metadata: Mapping[str, Any] | None = None,
) -> Bundle:
    """Wrap a trained model (switched to eval mode) and compute its content hash."""
    model.eval()
    data_bands, data_image_bands = tuple(data_bands), tuple(data_image_bands)
    digest = content_hash(model.config, feature_stats, data_bands, data_image_bands, _cpu_state(model))
    return Bundle(
        model=model,
        config=model.config,
        feature_stats=feature_stats,
        data_bands=data_bands,
        data_image_bands=data_image_bands,
        package_version=__version__,
        content_hash=digest,
        metadata=dict(metadata or {}),
    )


def content_hash(
    config: ModelConfig,
    feature_stats: FeatureStats,
    data_bands: tuple[str, ...],
    data_image_bands: tuple[str, ...],
    state: Mapping[str, torch.Tensor],
) -> str:
    """SHA-256 hex digest of the description and every tensor of ``state``."""
    h = hashlib.sha256()
    description = {
        "config": config_to_dict(config),
        "feature_stats": feature_stats.to_dict(),
        "data_bands": list(data_bands),
        "data_image_bands": list(data_image_bands),
    }
    h.update(json.dumps(description, sort_keys=True).encode())
    for name in sorted(state):
        t = state[name]
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(np.ascontiguousarray(t.numpy()).tobytes())
    return h.hexdigest()


def save_bundle(path: str | os.PathLike, bundle: Bundle, overwrite: bool = False) -> Path:
    """Write ``bundle`` to directory ``path`` atomically (temporary directory, then rename).

    Raises ``FileExistsError`` if ``path`` exists, unless ``overwrite``.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not overwrite:
        raise FileExistsError(f"bundle {str(target)!r} exists (pass overwrite=True to replace it)")
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        save_file(
            _cpu_state(bundle.model), str(tmp / WEIGHTS), metadata={"content_hash": bundle.content_hash}
        )
        manifest = {
            "format": BUNDLE_FORMAT,
            "format_version": BUNDLE_VERSION,
            "model_name": bundle.model_name,
            "config": config_to_dict(bundle.config),
            "feature_stats": bundle.feature_stats.to_dict(),
            "data_bands": list(bundle.data_bands),
            "data_image_bands": list(bundle.data_image_bands),
            "package_version": bundle.package_version,
            "content_hash": bundle.content_hash,
            "metadata": dict(bundle.metadata),
        }
        (tmp / BUNDLE_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / target.name)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_bundle(path: str | os.PathLike, device: torch.device | str = "cpu", verify: bool = True) -> Bundle:
    """Read a bundle directory: JSON and safetensors only, never pickle.

    Parameters
    ----------
    path
        The bundle directory.
    device
        Where the model's weights go.
    verify
        Recompute the content hash and raise :class:`BundleError` if it differs.
    """
    root = local_copy(path)
    try:
        manifest = json.loads((root / BUNDLE_FILE).read_text())
    except FileNotFoundError:
        raise BundleError(f"bundle {str(root)!r}: no {BUNDLE_FILE}") from None
    except json.JSONDecodeError as exc:
        raise BundleError(f"bundle {str(root)!r}: {BUNDLE_FILE} is not JSON ({exc})") from None
    if manifest.get("format") != BUNDLE_FORMAT or manifest.get("format_version") != BUNDLE_VERSION:
        raise BundleError(
            f"bundle {str(root)!r}: format {manifest.get('format')!r} v{manifest.get('format_version')}, "
            f"expected {BUNDLE_FORMAT!r} v{BUNDLE_VERSION}"
        )
    config = config_from_dict(manifest["config"])
    stats = FeatureStats.from_dict(manifest["feature_stats"])
    data_bands, data_image_bands = tuple(manifest["data_bands"]), tuple(manifest["data_image_bands"])
    try:
        state = load_file(str(root / WEIGHTS), device="cpu")
    except FileNotFoundError:
        raise BundleError(f"bundle {str(root)!r}: no {WEIGHTS}") from None
    except (SafetensorError, OSError, ValueError) as exc:  # a corrupted header or a truncated file
        raise BundleError(
            f"bundle {str(root)!r}: {WEIGHTS} is unreadable ({type(exc).__name__}: {exc}); corrupt or edited"
        ) from None
    if verify:
        digest = content_hash(config, stats, data_bands, data_image_bands, state)
        if digest != manifest["content_hash"]:
            raise BundleError(
                f"bundle {str(root)!r}: content hash {digest[:12]}… does not match the recorded "
                f"{manifest['content_hash'][:12]}… (corrupt or edited)"
            )
    model = build_model(config)
    model.load_state_dict(state, strict=True)
    model.to(device).eval()
    return Bundle(
        model=model,
        config=config,
        feature_stats=stats,
        data_bands=data_bands,
        data_image_bands=data_image_bands,
        package_version=manifest["package_version"],
        content_hash=manifest["content_hash"],
        metadata=manifest.get("metadata", {}),
    )


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
