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
    zeropoint_scatter_mag
        RMS of a tile's coadd zero-point offset per band [mag]: the survey's calibration scatter
        from tile to tile (default :data:`DEFAULT_ZEROPOINT_SCATTER_MAG` in every band).
        Training jitters each source's photometry by it, so a model does not learn the zero
        points of its training tiles.
    exposure_zeropoint_scatter_mag
        RMS of one exposure's zero-point offset per band [mag], for models that read individual
        exposures (default 0: coadds only).
    """

    name: str
    bands: tuple[str, ...]
    depth_5sigma: tuple[float, ...] = ()
    image_bands: tuple[str, ...] = ()
    zeropoint_scatter_mag: tuple[float, ...] = ()
    exposure_zeropoint_scatter_mag: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.depth_5sigma and len(self.depth_5sigma) != len(self.bands):
            raise ValueError(f"band set {self.name!r}: one depth per band expected")
        for name in ("zeropoint_scatter_mag", "exposure_zeropoint_scatter_mag"):
            value = getattr(self, name)
            if value and (len(value) != len(self.bands) or min(value) < 0):
                raise ValueError(f"band set {self.name!r}: {name} needs one value >= 0 per band")
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

    def zeropoint_scatter(
        self, bands: tuple[str, ...] | list[str]
    ) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Tile (coadd) and exposure zero-point scatter [mag] of ``bands``, in their order."""
        tile = self.zeropoint_scatter_mag or (DEFAULT_ZEROPOINT_SCATTER_MAG,) * self.n_bands
        exposure = self.exposure_zeropoint_scatter_mag or (0.0,) * self.n_bands
        return tuple(tile[i] for i in self.indices(bands)), tuple(exposure[i] for i in self.indices(bands))


DEFAULT_ZEROPOINT_SCATTER_MAG = 0.01
"""Tile-to-tile zero-point RMS [mag] of a band set that does not say its own (1 %, a well-calibrated survey)."""


KIDS_VIKING = BandSet(
    name="kids_viking",
    bands=("u", "g", "r", "i", "Z", "Y", "J", "H", "Ks"),
    depth_5sigma=(24.23, 25.12, 25.02, 23.68, 23.1, 22.3, 22.1, 21.5, 21.2),
    image_bands=("u", "g", "r", "i"),
    zeropoint_scatter_mag=(0.013,) * 9,
    exposure_zeropoint_scatter_mag=(0.02,) * 9,
)
"""KiDS DR4 ugri + VIKING ZYJHKs (Kuijken et al. 2019 depths, as in GaZNet §2). Zero points: 0.013 mag
RMS per band per tile after the DR4 calibration (as the simulator draws them: 0.01 per tile and 0.02
per exposure, averaged over a band's exposures)."""

SDSS = BandSet(
    name="sdss",
    bands=("u", "g", "r", "i", "z"),
    depth_5sigma=(22.0, 22.2, 22.2, 21.3, 20.5),
    zeropoint_scatter_mag=(0.02, 0.01, 0.01, 0.01, 0.01),
)
"""SDSS ugriz, catalogue only (imaging-survey 5σ point-source depths, York et al. 2000 / DR7; zero
points uniform to 1 % in griz and 2 % in u, Padmanabhan et al. 2008)."""

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
