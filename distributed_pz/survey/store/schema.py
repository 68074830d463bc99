"""The survey store schema (version 2): what a tile holds and how it is laid out.

A store is a Zarr v3 group; each tile is a child group whose arrays all share the row
(source) axis. ``N`` = sources, ``B`` = bands of the band set, ``C`` = image bands,
``E`` = individual exposures per band (NaN-padded), ``P`` = cutout side in pixels.
Magnitudes are AB; NaN means "no measurement" and ``mag_flag`` says why.
Fluxes are linear in the tile's zero point: ``mag = zeropoint - 2.5 log10(flux)``.

Tile names become file names of catalogues (``OUT/TILE.parquet``), so they must match
:data:`TILE_NAME_PATTERN`: letters, digits and ``_ . + -``, starting with a letter or digit
(``KIDS_129.0_-0.5``, ``SIM_0003``); no separator, no ``..``, nothing absolute.

Version 2 adds a crc32c checksum to every chunk of every array (version 1 had one on the
shard index only), so any corrupted byte is an error naming its chunk; version-1 stores
still open and read. Each tile written by version 2 also carries a ``write_id`` attribute,
new at every (re)write, that resumable readers key their work by.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCHEMA_VERSION = 2
READABLE_SCHEMA_VERSIONS = (1, 2)
"""Versions this package opens: 1 lacks chunk checksums and ``write_id``."""
TILE_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,199}"
"""A tile name, whole (it becomes a file name under every output directory)."""
CUTOUT_SIZE = 40
"""Cutout side in pixels (GaZNet: 40×40 px = 8″ at 0.2″/px)."""

# mag_flag codes (per source and band)
FLAG_OK = 0
FLAG_NOT_DETECTED = 1
"""Observed but not detected (KiDS sentinel 99); ``mag_err`` may hold the limiting magnitude."""
FLAG_NOT_OBSERVED = 2
"""No observation in this band (KiDS sentinel -99)."""
FLAG_BAD = 3
"""Measured value unusable (non-finite or outside the physical range)."""

# class codes
CLASS_GALAXY = 0
CLASS_STAR = 1
CLASS_QSO = 2
CLASS_UNKNOWN = 255
CLASS_NAMES = {CLASS_GALAXY: "galaxy", CLASS_STAR: "star", CLASS_QSO: "qso", CLASS_UNKNOWN: "unknown"}


@dataclass(frozen=True)
class ArraySpec:
    """One array of a tile: its name, dtype, trailing dimensions and whether it must exist."""

    name: str
    dtype: np.dtype
    trailing: tuple[str, ...]
    required: bool
    doc: str

    def shape(self, n_rows: int, dims: dict[str, int]) -> tuple[int, ...]:
        return (n_rows, *(dims[d] for d in self.trailing))


ARRAYS: tuple[ArraySpec, ...] = (
    ArraySpec("object_id", np.dtype("int64"), (), True, "unique source identifier"),
    ArraySpec("ra", np.dtype("float64"), (), True, "right ascension [deg]"),
    ArraySpec("dec", np.dtype("float64"), (), True, "declination [deg]"),
    ArraySpec("mag", np.dtype("float32"), ("B",), True, "AB magnitude per band (NaN = missing)"),
    ArraySpec("mag_err", np.dtype("float32"), ("B",), True, "1σ magnitude error per band"),
    ArraySpec("mag_flag", np.dtype("uint8"), ("B",), True, "0 ok, 1 not detected, 2 not observed, 3 bad"),
    ArraySpec("cutout", np.dtype("float32"), ("C", "P", "P"), False, "image cutouts, flux per pixel"),
    ArraySpec(
        "flux_exp", np.dtype("float32"), ("B", "E"), False, "flux per individual exposure (NaN-padded)"
    ),
    ArraySpec("flux_exp_err", np.dtype("float32"), ("B", "E"), False, "1σ flux error per exposure"),
    ArraySpec("z_spec", np.dtype("float32"), (), False, "spectroscopic redshift (NaN = none)"),
    ArraySpec("class", np.dtype("uint8"), (), False, "0 galaxy, 1 star, 2 QSO, 255 unknown"),
)
ARRAY_SPECS: dict[str, ArraySpec] = {a.name: a for a in ARRAYS}

REQUIRED_ATTRS = (
    "schema_version",  # int, in READABLE_SCHEMA_VERSIONS
    "tile",  # str, the tile's name
    "band_set",  # str, a name known to distributed_pz.bands
    "bands",  # list[str], the band axis
    "image_bands",  # list[str], the cutout channel axis (may be empty)
    "pixel_scale_arcsec",  # float
    "psf_fwhm_arcsec",  # dict band -> float
    "zeropoint",  # dict band -> float (AB zero point of flux_exp)
    "n_rows",  # int
    "complete",  # bool: True once every row has been written
)
