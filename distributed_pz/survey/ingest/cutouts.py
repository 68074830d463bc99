"""Cutouts for ingest, per band, from one of two kinds of FITS file.

- A **tile image** (``--image BAND=PATH``): a 2-D image with a celestial WCS. Each source's
  ``P×P`` cutout is cut at its ra/dec exactly as ``astropy.nddata.Cutout2D(..., mode="partial",
  fill_value=nan)`` would (same centring: the source lies at pixel ``P/2`` of the cutout, rounded
  up); sources near or beyond the image edge get NaN-padded (or all-NaN) cutouts.
- A **cutout cube** (``--cutout-cube BAND=PATH``): the first 3-D image HDU of the file, shaped
  ``(N, P, P)``, where plane ``i`` is the cutout of catalogue row ``i`` (every data row of the
  catalogue, in file order, before any row filter).

Both are memory-mapped and read block by block; use them as context managers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
from astropy.io import fits
from astropy.nddata.utils import NoOverlapError, overlap_slices
from astropy.wcs import WCS
from numpy.lib.stride_tricks import sliding_window_view

from distributed_pz.survey.ingest.ingest_errors import IngestError
from distributed_pz.survey.store.schema import CUTOUT_SIZE


class CutoutSource(Protocol):
    """Where one band's cutouts come from."""

    def cutouts(self, rows: np.ndarray, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
        """Cutouts ``(n, P, P)`` float32 of catalogue rows ``rows`` at positions ``ra``/``dec`` [deg]."""
        ...

    def close(self) -> None: ...


def _open_fits(path: Path, what: str) -> fits.HDUList:
    try:
        return fits.open(path, memmap=True)
    except FileNotFoundError:
        raise IngestError(f"{path}: no such {what} file") from None
    except (OSError, ValueError) as exc:
        raise IngestError(f"{path}: not a readable FITS {what} ({exc})") from None


def _first_hdu(hdul: fits.HDUList, ndim: int, path: Path, what: str) -> fits.ImageHDU:
    for hdu in hdul:
        if hdu.is_image and hdu.header.get("NAXIS") == ndim:
            return hdu
    hdul.close()
    raise IngestError(f"{path}: no {ndim}-D image HDU for a {what}")


class TileImage:
    """A band's tile image with its WCS; cuts ``size×size`` cutouts at sky positions.

    Parameters
    ----------
    path
        FITS file; the first 2-D image HDU and its celestial WCS are used.
    size
        Cutout side in pixels.
    """

    def __init__(self, path: str | Path, size: int = CUTOUT_SIZE) -> None:
        self.path, self.size = Path(path), size
        self._hdul = _open_fits(self.path, "tile image")
        hdu = _first_hdu(self._hdul, 2, self.path, "tile image")
        self.wcs = WCS(hdu.header).celestial
        if not self.wcs.has_celestial:
            self._hdul.close()
            raise IngestError(f"{self.path}: the image header has no celestial WCS")
        self.data = hdu.data  # (ny, nx), memory-mapped

    def cutouts(self, rows: np.ndarray, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
        x, y = self.wcs.all_world2pix(ra, dec, 0, quiet=True)
        return cut_at_pixels(self.data, x, y, self.size)

    def close(self) -> None:
        self._hdul.close()

    def __enter__(self) -> TileImage:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def cut_at_pixels(image: np.ndarray, x: np.ndarray, y: np.ndarray, size: int = CUTOUT_SIZE) -> np.ndarray:
    """Cut ``size×size`` cutouts of ``image`` centred on 0-based pixel positions ``x``, ``y``.

    Same pixels as ``Cutout2D(image, (x, y), size, mode="partial", fill_value=nan)``; a
    cutout that misses the image, or whose position is not finite, is all NaN.

    Returns
    -------
    numpy.ndarray
        ``(n, size, size)`` float32.
    """
    out = np.full((len(x), size, size), np.nan, dtype=np.float32)
    ny, nx = image.shape
    x0 = np.ceil(x - size / 2)  # the first column, as astropy.nddata.utils.overlap_slices rounds it
    y0 = np.ceil(y - size / 2)
    finite = np.isfinite(x0) & np.isfinite(y0)
    inside = finite & (x0 >= 0) & (y0 >= 0) & (x0 + size <= nx) & (y0 + size <= ny)
    idx = np.flatnonzero(inside)
    if idx.size:
        windows = sliding_window_view(image, (size, size))  # (ny-size+1, nx-size+1, size, size) view
        out[idx] = windows[y0[idx].astype(np.intp), x0[idx].astype(np.intp)]
    for i in np.flatnonzero(finite & ~inside):
        try:
            large, small = overlap_slices(image.shape, (size, size), (y[i], x[i]), mode="partial")
        except NoOverlapError:
            continue
        out[i][small] = image[large]
    return out


class CutoutCube:
    """A band's precomputed cutouts: plane ``i`` of an ``(N, P, P)`` cube belongs to catalogue row ``i``.

    Parameters
    ----------
    path
        FITS file; its first 3-D image HDU is the cube.
    n_rows
        Data rows of the catalogue (before any row filter): the cube must have as many planes.
    size
        Cutout side in pixels.
    """

    def __init__(self, path: str | Path, n_rows: int, size: int = CUTOUT_SIZE) -> None:
        self.path = Path(path)
        self._hdul = _open_fits(self.path, "cutout cube")
        hdu = _first_hdu(self._hdul, 3, self.path, "cutout cube")
        self.data = hdu.data  # (N, P, P), memory-mapped
        if self.data.shape != (n_rows, size, size):
            self._hdul.close()
            raise IngestError(
                f"{self.path}: cutout cube has shape {self.data.shape}, expected ({n_rows}, {size}, {size}):"
                f" one {size}x{size} plane per catalogue row, in catalogue order"
            )

    def cutouts(self, rows: np.ndarray, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
        return np.asarray(self.data[rows], dtype=np.float32)

    def close(self) -> None:
        self._hdul.close()

    def __enter__(self) -> CutoutCube:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
