"""The one exception type of ``dpz ingest``: bad column maps, catalogues, images and cutouts."""

from __future__ import annotations


class IngestError(ValueError):
    """An input of an ingest (column map, catalogue, image, cutout cube) is unusable.

    The message is one line naming the file and, where it applies, the column, row and value,
    e.g. ``cat.fits: no column 'MAG_GAAP_Z' (close matches: 'MAG_GAAP_Z_', 'MAGERR_GAAP_Z')``.
    Rows are counted from 0 over the catalogue's data rows, before any row filter.
    """
