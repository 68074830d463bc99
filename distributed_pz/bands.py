"""Band sets: the photometric systems distributed_pz knows, in wavelength order.

A band set fixes the order of the band axis of every ``mag[N, B]``, ``mag_err[N, B]``
and ``flux_exp[N, B, E]`` array in a tile, and of every feature vector built from them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BandSet:
    """An ordered set of photometric bands.

    Parameters
    ----------
    name
        Identifier stored in tile attributes (``band_set``).
    bands
        Band names, bluest first.
    depth_5sigma
        5σ limiting AB magnitude per band (used by the simulator), or empty.
    image_bands
        Bands for which the survey provides high-resolution cutouts.
    """

    name: str
    bands: tuple[str, ...]
    depth_5sigma: tuple[float, ...] = ()
    image_bands: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.depth_5sigma and len(self.depth_5sigma) != len(self.bands):
            raise ValueError(f"band set {self.name!r}: one depth per band expected")
        unknown = set(self.image_bands) - set(self.bands)
        if unknown:
            raise ValueError(f"band set {self.name!r}: image bands {sorted(unknown)} not in bands")

    @property
    def n_bands(self) -> int:
        return len(self.bands)

    def index(self, band: str) -> int:
        """Position of ``band`` on the band axis."""
        try:
            return self.bands.index(band)
        except ValueError:
            raise KeyError(f"band {band!r} is not in band set {self.name!r} {self.bands}") from None

    def indices(self, bands: tuple[str, ...] | list[str]) -> list[int]:
        """Positions of several bands on the band axis."""
        return [self.index(b) for b in bands]


KIDS_VIKING = BandSet(
    name="kids_viking",
    bands=("u", "g", "r", "i", "Z", "Y", "J", "H", "Ks"),
    depth_5sigma=(24.23, 25.12, 25.02, 23.68, 23.1, 22.3, 22.1, 21.5, 21.2),
    image_bands=("u", "g", "r", "i"),
)
"""KiDS DR4 ugri + VIKING ZYJHKs (Kuijken et al. 2019 depths, as in GaZNet §2)."""

SDSS = BandSet(name="sdss", bands=("u", "g", "r", "i", "z"), depth_5sigma=(22.0, 22.2, 22.2, 21.3, 20.5))
"""SDSS ugriz, catalogue only (imaging-survey 5σ point-source depths, York et al. 2000 / DR7)."""

_REGISTRY: dict[str, BandSet] = {b.name: b for b in (KIDS_VIKING, SDSS)}


def register_band_set(band_set: BandSet) -> BandSet:
    """Make ``band_set`` known by name (e.g. one declared in an ingest column map)."""
    existing = _REGISTRY.get(band_set.name)
    if existing is not None and existing != band_set:
        raise ValueError(f"band set {band_set.name!r} is already registered differently")
    _REGISTRY[band_set.name] = band_set
    return band_set


def get_band_set(name: str) -> BandSet:
    """Look a band set up by name."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown band set {name!r}; known: {sorted(_REGISTRY)}") from None


def list_band_sets() -> list[str]:
    return sorted(_REGISTRY)
