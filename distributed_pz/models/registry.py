"""Model registry (timm style): families and named variants -> configs -> models.

The registry imports no family. Each family's file registers itself and its variants at its
foot (:func:`register_family`, :func:`register_model`), and :mod:`distributed_pz.models` imports
the family files, so ``import distributed_pz.models`` registers everything.

A variant is a function of a :class:`~distributed_pz.bands.BandSet` (and field overrides)
returning its config: it names its bands by role ("every catalogue band", "the bands with cutouts", "the r
cutout"), so one variant serves every survey. ``model_config(name, band_set, **overrides)``
resolves the roles against ``band_set`` (KiDS+VIKING when none is given; training passes the
training tile's band set) and then replaces fields by ``overrides``. A config alone (as stored
in a bundle) rebuilds the same model with :func:`build_model`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from distributed_pz.bands import KIDS_VIKING, BandSet, get_band_set
from distributed_pz.models.base import ModelConfig, PhotoZModel

Variant = Callable[..., ModelConfig]
"""A registered variant: ``(band_set, **overrides) -> config``, its defaults for the band set
updated by the overrides before the config checks itself (so an override may repair what the
band set alone leaves invalid, say ``reference_band="r"`` for a DEEPZ on bands without i)."""
DEFAULT_BAND_SET = KIDS_VIKING
"""Band set of :func:`model_config` when none is given."""
LATER_FIELD = "later"
"""Metadata key of a config field added after bundles were saved (:func:`later_field`)."""


@dataclass(frozen=True)
class Family:
    """A model family: its config class and the module built from such a config."""

    name: str
    config_cls: type
    model_cls: Callable[[Any], PhotoZModel]


_FAMILIES: dict[str, Family] = {}
_VARIANTS: dict[str, Variant] = {}


def register_family(name: str, config_cls: type, model_cls: Callable[[Any], PhotoZModel]) -> Family:
    """Make family ``name`` known: configs of ``config_cls`` (whose ``family`` is ``name``) build ``model_cls``."""
    if getattr(config_cls, "family", None) != name:
        raise ValueError(f"{config_cls.__name__}.family is not {name!r}")
    family = Family(name, config_cls, model_cls)
    if _FAMILIES.get(name, family) != family:
        raise ValueError(f"model family {name!r} is already registered")
    _FAMILIES[name] = family
    return family


def register_model(fn: Variant) -> Variant:
    """Register ``fn`` (``(band_set, **overrides) -> config``) under its function name."""
    if fn.__name__ in _VARIANTS:
        raise ValueError(f"model {fn.__name__!r} is already registered")
    _VARIANTS[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    return sorted(_VARIANTS)


def list_families() -> list[str]:
    """Names of every registered family, sorted."""
    return sorted(_FAMILIES)


def check_overrides(name: str, overrides: Mapping[str, Any]) -> None:
    """Check that model ``name`` is registered and has every field ``overrides`` names.

    Raises
    ------
    KeyError
        Unknown model.
    TypeError
        A field its config does not have.
    """
    default = _variant(name)(DEFAULT_BAND_SET)
    fields = {f.name for f in dataclasses.fields(default)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TypeError(f"model {name!r} has no config field {', '.join(unknown)}; fields: {sorted(fields)}")


def model_config(name: str, band_set: BandSet | str | None = None, **overrides: Any) -> ModelConfig:
    """Default config of ``name`` for ``band_set`` with ``overrides`` applied (list values become tuples).

    Parameters
    ----------
    name
        A registered model.
    band_set
        The bands the variant's band roles resolve against: a :class:`BandSet`, a registered
        band set's name, or ``None`` for :data:`DEFAULT_BAND_SET` (KiDS+VIKING).
    overrides
        Config fields to replace; they win over what the band set gives.
    """
    check_overrides(name, overrides)
    if band_set is None:
        band_set = DEFAULT_BAND_SET
    elif isinstance(band_set, str):
        band_set = get_band_set(band_set)
    return _variant(name)(band_set, **{k: _tuples(v) for k, v in overrides.items()})


def build_model(config: ModelConfig) -> PhotoZModel:
    """The model a config describes (freshly initialised)."""
    return _family(config.family).model_cls(config)


def create_model(name: str, band_set: BandSet | str | None = None, **overrides: Any) -> PhotoZModel:
    """Build the registered model ``name`` for ``band_set`` with config fields replaced by ``overrides``."""
    return build_model(model_config(name, band_set, **overrides))


def later_field(default: Any) -> Any:
    """A config field added after bundles were saved: :func:`config_to_dict` leaves it out while it
    holds ``default``, so the configs and content hashes of the bundles saved before it stay as
    they were (and :func:`config_from_dict` gives them ``default``)."""
    return dataclasses.field(default=default, metadata={LATER_FIELD: True})


def config_to_dict(config: ModelConfig) -> dict[str, Any]:
    """JSON-ready description of a config: its family plus every field (a :func:`later_field` only
    when it differs from its default)."""
    left_out = {
        f.name
        for f in dataclasses.fields(config)
        if f.metadata.get(LATER_FIELD) and getattr(config, f.name) == f.default
    }
    fields = {k: _lists(v) for k, v in dataclasses.asdict(config).items() if k not in left_out}
    return {"family": config.family, **fields}


def config_from_dict(d: Mapping[str, Any]) -> ModelConfig:
    """Inverse of :func:`config_to_dict`."""
    fields = dict(d)
    family = _family(fields.pop("family"))
    return family.config_cls(**{k: _tuples(v) for k, v in fields.items()})


def _variant(name: str) -> Variant:
    try:
        return _VARIANTS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known: {list_models()}") from None


def _family(name: str) -> Family:
    try:
        return _FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown model family {name!r}; known: {list_families()}") from None


def _tuples(v: Any) -> Any:
    return tuple(_tuples(x) for x in v) if isinstance(v, list | tuple) else v


def _lists(v: Any) -> Any:
    return [_lists(x) for x in v] if isinstance(v, list | tuple) else v
