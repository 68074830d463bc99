"""distributed_pz's RAIL catalogue tags: ``kids_viking`` (KiDS DR4 ugri + VIKING ZYJHKs GAaP magnitudes).

RAIL keeps per-catalogue column names, sentinels, 5σ limits and per-band reddening (``a_env``) as
catalogue tags (:class:`rail.utils.catalog_tag.CatalogTag`). :func:`load_catalog_tags` registers
ours from :data:`CATALOG_TAGS`; then ``rail.utils.catalog_utils.apply("kids_viking")`` sets RAIL's
shared parameters (``bands``, ``err_bands``, ``mag_limits``, ``band_a_env``, ``ref_band``, ...)
for every stage defined afterwards — as ``rail pipe build --catalog_tag`` does before it imports a
pipeline. The ``a_env`` values and where they come from are in the YAML file.
"""

from __future__ import annotations

from importlib.resources import files

from rail.utils import catalog_utils

CATALOG_TAGS = str(files("rail.dpz") / "catalog_tags.yaml")
"""The YAML file of our bands and catalogue tags, in RAIL's ``Bands``/``CatalogTags`` format."""


def load_catalog_tags() -> None:
    """Register the bands and catalogue tags of :data:`CATALOG_TAGS` with RAIL (again: no effect)."""
    catalog_utils.load_yaml(CATALOG_TAGS)
