"""Loaders for the small data files shipped inside the package (``distributed_pz/data``).

The simulator needs filter curves, galaxy templates and a dust attenuation curve; they travel
with the package (see ``distributed_pz/data/README.md`` for origins and licences) and are read
with :mod:`importlib.resources`, so nothing outside the installed package is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.resources import files

import numpy as np

from distributed_pz.bands import BandSet

_DATA = files("distributed_pz") / "data"
_FILTER_FILES = {
    "kids_viking": "filters/kids_viking/KiDSVIKING_aibn139_{band}.res",
    "sdss": "filters/sdss/sdss_{band}0.par",
}
_TEMPLATE_FILE = "templates/cosmos_ilbert09_r250.txt"
_BROWN_FILE = "templates/brown2014_r250.txt"
_SED_CORRECTION_FILE = "templates/sed_correction_zcosmos.txt"
_CALZETTI_FILE = "extinction/calzetti2000.txt"


@dataclass(frozen=True)
class FilterCurve:
    """A transmission curve: wavelength [Å] (increasing) and dimensionless transmission."""

    band: str
    wave: np.ndarray
    trans: np.ndarray


@dataclass(frozen=True)
class TemplateSet:
    """Rest-frame galaxy templates on one log-spaced wavelength grid.

    Attributes
    ----------
    names
        Template names, in the order of ``flux``.
    wave
        Rest wavelength [Å], shape ``(L,)``.
    flux
        f_λ, shape ``(T, L)``, each normalised to mean 1 over 5400–5600 Å.
    """

    names: tuple[str, ...]
    wave: np.ndarray
    flux: np.ndarray


def sed_correction() -> np.ndarray:
    """The empirical rest-frame SED correction table ``(z, log10 λ_rest)`` [mag] (see the file header)."""
    return _read_text(_SED_CORRECTION_FILE)[1]


def _read_text(relative: str) -> tuple[list[str], np.ndarray]:
    """Header comment lines and the numeric table of a shipped text file."""
    return _parse_text((_DATA / relative).read_text())


def _parse_text(text: str) -> tuple[list[str], np.ndarray]:
    """Header comment lines and the numeric table of a whitespace text file (``#`` comments)."""
    header = [line[1:].strip() for line in text.splitlines() if line.startswith("#")]
    table = np.loadtxt(text.splitlines(), comments="#", ndmin=2)
    return header, table


def load_filters(band_set: BandSet, files: tuple[str, ...] = ()) -> tuple[FilterCurve, ...]:
    """Transmission curves of every band of ``band_set``, in band order.

    Parameters
    ----------
    band_set
        The band set; its shipped curves are used unless ``files`` is given.
    files
        A user's own curves, one path per band in band order: two-column text files
        (wavelength [Å], transmission; ``#`` comments, as LePhare ``.res`` or sedpy ``.par``).

    Raises
    ------
    KeyError
        If no curves are shipped for this band set and no ``files`` are given.
    ValueError
        If ``files`` does not hold one path per band.
    """
    if files:
        if len(files) != len(band_set.bands):
            raise ValueError(f"need one filter file per band {band_set.bands}, got {len(files)}")
        return tuple(load_filter_file(path, band) for path, band in zip(files, band_set.bands, strict=True))
    try:
        pattern = _FILTER_FILES[band_set.name]
    except KeyError:
        raise KeyError(
            f"no filter curves shipped for band set {band_set.name!r}; have {sorted(_FILTER_FILES)}"
        ) from None
    return tuple(_load_filter(pattern.format(band=band), band) for band in band_set.bands)


@cache
def _load_filter(relative: str, band: str) -> FilterCurve:
    return _curve(_read_text(relative)[1], band)


@cache
def load_filter_file(path: str, band: str) -> FilterCurve:
    """A transmission curve from a two-column text file outside the package."""
    with open(path) as f:
        return _curve(_parse_text(f.read())[1], band)


def _curve(table: np.ndarray, band: str) -> FilterCurve:
    order = np.argsort(table[:, 0])
    wave, trans = table[order, 0], np.clip(table[order, 1], 0.0, None)
    return FilterCurve(band=band, wave=wave, trans=trans)


@cache
def load_templates() -> TemplateSet:
    """The shipped COSMOS galaxy templates (14 of Ilbert et al. 2009, red to blue)."""
    return _load_template_file(_TEMPLATE_FILE)


@cache
def load_brown_templates() -> TemplateSet:
    """The shipped real-galaxy SEDs (32 of the Brown et al. 2014 atlas, red to blue in rest u − r)."""
    return _load_template_file(_BROWN_FILE)


def _load_template_file(relative: str) -> TemplateSet:
    header, table = _read_text(relative)
    columns = next(line for line in header if line.startswith("columns:")).split()[2:]
    return TemplateSet(names=tuple(columns), wave=table[:, 0], flux=np.ascontiguousarray(table[:, 1:].T))


@cache
def load_calzetti() -> tuple[np.ndarray, np.ndarray]:
    """Calzetti et al. (2000) attenuation curve: wavelength [Å] and k(λ) = A_λ / E(B−V)."""
    _, table = _read_text(_CALZETTI_FILE)
    return table[:, 0], table[:, 1]
