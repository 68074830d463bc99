"""A tile's arrays in memory, with the band axes that give them meaning.

Training and prediction take a :class:`TileArrays`: the numpy arrays of a survey tile, named
as in :mod:`distributed_pz.survey.store.schema` (``mag[N, B]``, ``mag_err``, ``mag_flag``,
``cutout[N, C, P, P]``, ``flux_exp[N, B, E]``, ``flux_exp_err``, ``z_spec``, ``class``), plus
the names of the band axis ``B`` and of the cutout channel axis ``C`` and the zero points of
the fluxes. Models pick their bands by name, so a tile may hold more bands than a model uses,
in any order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_ZEROPOINT = 30.0
"""AB zero point of fluxes when a tile does not say: ``flux = 10**(-0.4 * (mag - 30))``."""


@dataclass(frozen=True, eq=False)
class TileArrays:
    """Arrays of one tile (or any set of rows) with their band axes.

    Parameters
    ----------
    arrays
        Schema arrays by name; all share the row axis. Only the arrays a model needs must be
        present (``mag`` for catalogue models, ``cutout`` for image models, ``z_spec`` to train).
    bands
        Names of the band axis of ``mag``, ``mag_err``, ``mag_flag``, ``flux_exp``, ``flux_exp_err``.
    image_bands
        Names of the channel axis of ``cutout``.
    zeropoints
        AB zero point per band of ``flux_exp`` (and of fluxes derived from ``mag``); empty means
        :data:`DEFAULT_ZEROPOINT` for every band.
    band_set
        Name of the photometric system (:mod:`distributed_pz.bands`), if known.
    """

    arrays: Mapping[str, np.ndarray]
    bands: tuple[str, ...]
    image_bands: tuple[str, ...] = ()
    zeropoints: tuple[float, ...] = ()
    band_set: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "bands", tuple(self.bands))
        object.__setattr__(self, "image_bands", tuple(self.image_bands))
        object.__setattr__(self, "zeropoints", tuple(float(z) for z in self.zeropoints))
        if self.zeropoints and len(self.zeropoints) != len(self.bands):
            raise ValueError(f"{len(self.zeropoints)} zero points for {len(self.bands)} bands")
        rows = {name: len(a) for name, a in self.arrays.items()}
        if len(set(rows.values())) > 1:
            raise ValueError(f"arrays differ in their number of rows: {rows}")
        for name in ("mag", "mag_err", "mag_flag", "flux_exp", "flux_exp_err"):
            if name in self.arrays and self.arrays[name].shape[1] != len(self.bands):
                raise ValueError(
                    f"array {name!r} has {self.arrays[name].shape[1]} bands, the band axis names {len(self.bands)}"
                )
        if "cutout" in self.arrays and self.arrays["cutout"].shape[1] != len(self.image_bands):
            raise ValueError(
                f"array 'cutout' has {self.arrays['cutout'].shape[1]} channels, "
                f"image_bands names {len(self.image_bands)}"
            )

    @classmethod
    def from_attrs(cls, arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any]) -> TileArrays:
        """Arrays plus the band axes and zero points read from a tile's attributes."""
        bands = tuple(attrs["bands"])
        zeropoint = attrs.get("zeropoint", {})
        return cls(
            arrays=arrays,
            bands=bands,
            image_bands=tuple(attrs.get("image_bands", ())),
            zeropoints=tuple(zeropoint.get(b, DEFAULT_ZEROPOINT) for b in bands),
            band_set=attrs.get("band_set"),
        )

    @property
    def n_rows(self) -> int:
        return len(next(iter(self.arrays.values()))) if self.arrays else 0

    def zeropoint(self, band: str) -> float:
        """Zero point of ``band``."""
        return self.zeropoints[self.bands.index(band)] if self.zeropoints else DEFAULT_ZEROPOINT

    def band_indices(self, bands: tuple[str, ...]) -> list[int]:
        """Positions of ``bands`` on the band axis (``KeyError`` naming a missing band)."""
        return _indices(bands, self.bands, "bands")

    def image_band_indices(self, bands: tuple[str, ...]) -> list[int]:
        """Positions of ``bands`` on the cutout channel axis."""
        return _indices(bands, self.image_bands, "image_bands")

    def take(self, rows: np.ndarray | slice) -> TileArrays:
        """The same tile restricted to ``rows`` (an index array, boolean mask or slice)."""
        arrays = {name: a[rows] for name, a in self.arrays.items()}
        return TileArrays(arrays, self.bands, self.image_bands, self.zeropoints, self.band_set)


def _indices(wanted: tuple[str, ...], axis: tuple[str, ...], what: str) -> list[int]:
    missing = [b for b in wanted if b not in axis]
    if missing:
        raise KeyError(f"bands {missing} are not in the tile's {what} {axis}")
    return [axis.index(b) for b in wanted]
