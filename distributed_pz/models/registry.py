"""Model registry: names -> default configs -> models (``create_model``, ``list_models``).

A registered name is a function returning the variant's default config; ``create_model(name,
**overrides)`` replaces fields of that config and builds the model. A config alone (as stored in
a bundle) rebuilds the same model with :func:`build_model`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from distributed_pz.bands import KIDS_VIKING
from distributed_pz.models.base import PhotoZModel
from distributed_pz.models.deepz import DeepZ, DeepZConfig
from distributed_pz.models.gaznet import GaZNet, GaZNetConfig

ModelConfig = GaZNetConfig | DeepZConfig
_FAMILIES: dict[str, tuple[type, Callable[[Any], PhotoZModel]]] = {
    "gaznet": (GaZNetConfig, GaZNet),
    "deepz": (DeepZConfig, DeepZ),
}
_REGISTRY: dict[str, Callable[[], ModelConfig]] = {}

OPTICAL = KIDS_VIKING.image_bands
ALL_BANDS = KIDS_VIKING.bands


def register_model(fn: Callable[[], ModelConfig]) -> Callable[[], ModelConfig]:
    """Register ``fn`` (returning a default config) under its function name."""
    if fn.__name__ in _REGISTRY:
        raise ValueError(f"model {fn.__name__!r} is already registered")
    _REGISTRY[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    return sorted(_REGISTRY)


def model_config(name: str, **overrides: Any) -> ModelConfig:
    """Default config of ``name`` with ``overrides`` applied (list values become tuples)."""
    try:
        config = _REGISTRY[name]()
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known: {list_models()}") from None
    return dataclasses.replace(config, **{k: _tuples(v) for k, v in overrides.items()})


def build_model(config: ModelConfig) -> PhotoZModel:
    """The model a config describes (freshly initialised)."""
    return _FAMILIES[config.family][1](config)


def create_model(name: str, **overrides: Any) -> PhotoZModel:
    """Build the registered model ``name`` with config fields replaced by ``overrides``."""
    return build_model(model_config(name, **overrides))


def config_to_dict(config: ModelConfig) -> dict[str, Any]:
    """JSON-ready description of a config (its family plus every field)."""
    return {"family": config.family, **{k: _lists(v) for k, v in dataclasses.asdict(config).items()}}


def config_from_dict(d: Mapping[str, Any]) -> ModelConfig:
    """Inverse of :func:`config_to_dict`."""
    fields = dict(d)
    family = fields.pop("family")
    if family not in _FAMILIES:
        raise ValueError(f"unknown model family {family!r}; known: {sorted(_FAMILIES)}")
    return _FAMILIES[family][0](**{k: _tuples(v) for k, v in fields.items()})


def _tuples(v: Any) -> Any:
    return tuple(_tuples(x) for x in v) if isinstance(v, list | tuple) else v


def _lists(v: Any) -> Any:
    return [_lists(x) for x in v] if isinstance(v, list | tuple) else v


@register_model
def gaznet_i4() -> ModelConfig:
    """GaZNet-I4: u,g,r,i cutouts only (morpho-z)."""
    return GaZNetConfig(name="gaznet_i4", bands=(), image_bands=OPTICAL, neck_widths=(256, 64))


@register_model
def gaznet_c4() -> ModelConfig:
    """GaZNet-C4: u,g,r,i magnitudes and colours."""
    return GaZNetConfig(name="gaznet_c4", bands=OPTICAL, image_bands=(), neck_widths=())


@register_model
def gaznet_c9() -> ModelConfig:
    """GaZNet-C9: nine-band KiDS+VIKING magnitudes and colours."""
    return GaZNetConfig(name="gaznet_c9", bands=ALL_BANDS, image_bands=(), neck_widths=())


@register_model
def gaznet_1() -> ModelConfig:
    """GaZNet-1: r-band cutouts + nine-band catalogue, fused."""
    return GaZNetConfig(name="gaznet_1", bands=ALL_BANDS, image_bands=("r",))


@register_model
def gaznet_c9i4() -> ModelConfig:
    """GaZNet-C9I4 (paper §4.2): u,g,r,i cutouts + nine-band catalogue."""
    return GaZNetConfig(name="gaznet_c9i4", bands=ALL_BANDS, image_bands=OPTICAL)


@register_model
def gaznet_1_mdn() -> ModelConfig:
    """GaZNet-1 backbone with a mixture density head: p(z) (beyond the paper)."""
    return GaZNetConfig(name="gaznet_1_mdn", bands=ALL_BANDS, image_bands=("r",), head="mdn")


@register_model
def deepz() -> ModelConfig:
    """DEEPZ: flux ratios over i, autoencoder + 10-Gaussian mixture density network."""
    return DeepZConfig(name="deepz", bands=ALL_BANDS)
