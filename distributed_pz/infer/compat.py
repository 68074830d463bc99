"""Can an ensemble predict these tiles? Checked on the client, from JSON only, before any cluster starts.

A model trained on one band system must not predict another one silently, even when band
names agree (KiDS ``u g r i`` are not SDSS ``u g r i``): an ensemble records the ``band_set``
of its training tiles and a tile of another ``band_set`` is refused. Every band and image band
the members read must also be on the tile's axes. Tiles whose metadata cannot be read are left
to the run, which fails each of them on its own (``--on-error skip`` then finishes the others).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from distributed_pz.models.bundle import MANIFEST as BUNDLE_MANIFEST
from distributed_pz.models.bundle import BundleError
from distributed_pz.models.ensemble import MANIFEST as ENSEMBLE_MANIFEST
from distributed_pz.models.ensemble import local_directory
from distributed_pz.models.registry import config_from_dict
from distributed_pz.survey.store.errors import StoreError
from distributed_pz.survey.store.store import SurveyStore


class BandMismatch(ValueError):
    """The ensemble was trained on other bands than a tile holds (one-line message)."""


def check_bands(bundle_path: str | Path, store: SurveyStore, tiles: Sequence[str] = ()) -> None:
    """Raise :class:`BandMismatch` for the first tile the ensemble at ``bundle_path`` cannot predict.

    Parameters
    ----------
    bundle_path
        Ensemble or single-bundle directory (local, or a URL: read from its local copy).
    store
        The survey store.
    tiles
        Tiles to predict; default every tile of the store.
    """
    band_set, bands, image_bands = _trained_on(local_directory(bundle_path))
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
                f"{where}: band set {tile_set!r}, but the ensemble {str(bundle_path)!r} was trained on "
                f"{band_set!r}; predict it with a model trained on {tile_set!r}"
            )
        missing = [b for b in bands if b not in tile_bands]
        missing_images = [b for b in image_bands if b not in tile_image_bands]
        if missing or missing_images:
            raise BandMismatch(
                f"{where}: the ensemble {str(bundle_path)!r} reads bands {missing + missing_images} "
                f"that the tile lacks (bands {list(tile_bands)}, image bands {list(tile_image_bands)})"
            )


def _trained_on(root: Path) -> tuple[str | None, list[str], list[str]]:
    """The training band set (if recorded) and the bands and image bands the members read."""
    if (root / ENSEMBLE_MANIFEST).is_file():
        manifest = _json(root / ENSEMBLE_MANIFEST)
        band_set = manifest.get("store", {}).get("band_set")
        members = [root / entry["path"] for entry in manifest["members"]]
    else:
        band_set, members = None, [root]
    bands: dict[str, None] = {}
    image_bands: dict[str, None] = {}
    for member in members:
        spec = config_from_dict(_json(member / BUNDLE_MANIFEST)["config"]).input_spec()
        bands.update(dict.fromkeys(spec.bands if spec.catalog != "none" else ()))
        image_bands.update(dict.fromkeys(spec.image_bands))
    return band_set, list(bands), list(image_bands)


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise BundleError(f"{str(path)!r} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{str(path)!r} is not JSON ({exc})") from None
