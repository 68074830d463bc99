"""Catalogue flag bits: why a source's photo-z is missing or less trustworthy.

A catalogue's ``flags`` column is the bitwise OR of the bits below. A source with
:data:`NO_INPUT` or :data:`NO_PREDICTION` set has NaN redshift columns; no other source
has a NaN there. The meanings travel in every catalogue's metadata (:data:`FLAG_BITS`).
"""

from __future__ import annotations

import numpy as np

NO_INPUT = 1 << 0
"""Every input the model reads (magnitudes, fluxes, pixels) is missing or non-finite: no prediction."""
PARTIAL_INPUT = 1 << 1
"""Some inputs are missing or non-finite (e.g. a band not measured); the members saw their fill values."""
MEMBER_DROPPED = 1 << 2
"""At least one ensemble member gave a non-finite result; the PDF pools the ``n_members`` others."""
NO_PREDICTION = 1 << 3
"""The inputs were usable but no ensemble member gave a finite result."""
WIDTH_FLOOR = 1 << 4
"""Point-estimate members only and fewer than two of them finite: ``z_std`` is the floor, not a spread."""
MODEL_FLAG = 1 << 5
"""At least one member raised a flag of its own (``flags`` returned by the model's prediction)."""

FLAG_BITS: dict[int, str] = {
    NO_INPUT: "NO_INPUT: every input missing or non-finite; no prediction (redshift columns NaN)",
    PARTIAL_INPUT: "PARTIAL_INPUT: some inputs missing or non-finite",
    MEMBER_DROPPED: "MEMBER_DROPPED: some ensemble members gave non-finite results; pooled over n_members",
    NO_PREDICTION: "NO_PREDICTION: no ensemble member gave a finite result (redshift columns NaN)",
    WIDTH_FLOOR: "WIDTH_FLOOR: fewer than two finite point-estimate members; z_std is the width floor",
    MODEL_FLAG: "MODEL_FLAG: at least one member raised a flag of its own",
}
"""Bit value -> one-line meaning, written into catalogue metadata."""

FLAG_DTYPE = np.dtype("int32")
"""Dtype of the ``flags`` column."""


def describe(flags: int) -> list[str]:
    """Names of the bits set in ``flags``, e.g. ``["NO_INPUT"]``."""
    return [text.split(":", 1)[0] for bit, text in FLAG_BITS.items() if flags & bit]
