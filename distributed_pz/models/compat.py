"""Can an ensemble predict these tiles? Checked on the client, from JSON only, before any cluster starts.

A model trained on one band system must not predict another one silently, even when band
names agree (KiDS ``u g r i`` are not SDSS ``u g r i``): an ensemble records the ``band_set``
of its training tiles, a single bundle (a distilled student) its teacher's, and a tile of another
``band_set`` is refused. Every band and image band
the members read must also be on the tile's axes. Tiles whose metadata cannot be read are left
to the run, which fails each of them on its own (``--on-error skip`` then finishes the others).
"""

from __future__ import annotations

from collections.abc import Sequence

from distributed_pz.models.ensemble import Ensemble
from distributed_pz.survey.store.errors import StoreError
from distributed_pz.survey.store.store import SurveyStore


def check_homogenise(ensemble: Ensemble) -> None:
    """Raise ``ValueError`` if ``ensemble`` has no stellar locus to homogenise tiles with."""
    if ensemble.locus is None:
        raise ValueError(
            f"--homogenise: the ensemble {ensemble.location!r} has no stellar locus (trained without stars)"
        )


class BandMismatch(ValueError):
    """The ensemble was trained on other bands than a tile holds (one-line message)."""


def check_bands(ensemble: Ensemble, store: SurveyStore, tiles: Sequence[str] = ()) -> None:
    """Raise :class:`BandMismatch` for the first tile ``ensemble`` cannot predict.

    Parameters
    ----------
    ensemble
        The ensemble (read without weights is enough).
    store
        The survey store.
    tiles
        Tiles to predict; default every tile of the store.
    """
    band_set, bands, image_bands = ensemble.band_set, ensemble.bands, ensemble.image_bands
    for name in tiles or store.tile_names():
        try:
            tile = store.tile(name)
            tile_set = tile.attrs.get("band_set")
            tile_bands, tile_image_bands = tile.bands, tile.image_bands
        except (StoreError, KeyError):
            continue
        where = f"store {store.url!r}, tile {name!r}"
        if band_set is not None and tile_set != band_set:
            raise BandMismatch(
                f"{where}: band set {tile_set!r}, but the ensemble {ensemble.location!r} was trained on "
                f"{band_set!r}; predict it with a model trained on {tile_set!r}"
            )
        missing = [b for b in bands if b not in tile_bands]
        missing_images = [b for b in image_bands if b not in tile_image_bands]
        if missing or missing_images:
            raise BandMismatch(
                f"{where}: the ensemble {ensemble.location!r} reads bands {missing + missing_images} "
                f"that the tile lacks (bands {list(tile_bands)}, image bands {list(tile_image_bands)})"
            )
