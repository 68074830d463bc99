"""Catalogue flag bits: why a source's photo-z is missing or less trustworthy.

A catalogue's ``flags`` column is the bitwise OR of the bits below. The low four bits are the
model input/output flags of :mod:`distributed_pz.models.features`; the others are the ensemble's.
A source with any bit of :data:`NO_ESTIMATE` set has NaN redshift columns and ``n_members``
0; no other source has a NaN there. The meanings travel in every catalogue's metadata
(:data:`FLAG_BITS`).
"""

from __future__ import annotations

import numpy as np

from distributed_pz.models.features import FLAG_BAD_OUTPUT, FLAG_NO_IMAGE, FLAG_NO_PHOTOMETRY, FLAG_NO_REFERENCE

NO_PHOTOMETRY = FLAG_NO_PHOTOMETRY
"""No catalogue band the models read is measured."""
NO_REFERENCE = FLAG_NO_REFERENCE
"""DEEPZ: the reference band is missing or its flux is not positive (no flux ratios)."""
NO_IMAGE = FLAG_NO_IMAGE
"""An image model got a cutout with a channel without any finite pixel."""
BAD_OUTPUT = FLAG_BAD_OUTPUT
"""The inputs were usable but no ensemble member returned a finite result."""
MEMBER_DROPPED = 1 << 4
"""Some (not all) members returned non-finite results; the PDF pools the ``n_members`` others."""
PARTIAL_INPUT = 1 << 5
"""Some inputs are missing or non-finite (a band not measured, a NaN pixel): the members saw fill values."""
WIDTH_FLOOR = 1 << 6
"""Point-estimate members with fewer than two finite results: the width is the floor, not a spread."""

NO_ESTIMATE = NO_PHOTOMETRY | NO_REFERENCE | NO_IMAGE | BAD_OUTPUT
"""Bits that mean "no redshift": the redshift columns are NaN."""

FLAG_BITS: dict[int, str] = {
    NO_PHOTOMETRY: "NO_PHOTOMETRY: no catalogue band the models read is measured (no estimate)",
    NO_REFERENCE: "NO_REFERENCE: reference-band flux missing or not positive (no estimate)",
    NO_IMAGE: "NO_IMAGE: a cutout channel has no finite pixel (no estimate)",
    BAD_OUTPUT: "BAD_OUTPUT: no ensemble member returned a finite result (no estimate)",
    MEMBER_DROPPED: "MEMBER_DROPPED: some members returned non-finite results; pooled over n_members",
    PARTIAL_INPUT: "PARTIAL_INPUT: some inputs missing or non-finite; the members saw fill values",
    WIDTH_FLOOR: "WIDTH_FLOOR: fewer than two finite point estimates; the PDF width is the floor",
}
"""Bit value -> one-line meaning, written into catalogue metadata."""

FLAG_DTYPE = np.dtype("int32")
"""Dtype of the ``flags`` column."""


def describe(flags: int) -> list[str]:
    """Names of the bits set in ``flags``, e.g. ``["NO_PHOTOMETRY", "PARTIAL_INPUT"]``."""
    return [text.split(":", 1)[0] for bit, text in FLAG_BITS.items() if flags & bit]
