"""Survey designs the simulator knows: how each band set was observed, and its default selection.

A :class:`SurveyDesign` gives, per band of a band set, the typical seeing, the number of
exposures that cover a source and the sky brightness (for the source's own shot noise), plus
the :class:`~distributed_pz.survey.sim.simulate.SimulationConfig` settings that make a tile of
that survey (:meth:`SimulationConfig.for_survey`). Depths come from the band set itself
(:attr:`distributed_pz.bands.BandSet.depth_5sigma`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from distributed_pz.bands import get_band_set


@dataclass(frozen=True)
class SurveyDesign:
    """How one band set was observed.

    Parameters
    ----------
    band_set
        Band-set name.
    seeing_arcsec
        Typical PSF FWHM per band (the cutout bands' values are overridden by the
        configuration's ``psf_fwhm_arcsec``).
    exposures
        Exposures covering a typical source, per band.
    exposure_loss, exposure_gain
        Probability that a source has one exposure fewer (chip gaps, dither pattern edges) or
        one more (overlaps), per band.
    sky_mag_arcsec2
        Sky surface brightness [AB mag/arcsec²] per band.
    defaults
        Configuration settings of a tile of this survey.
    """

    band_set: str
    seeing_arcsec: tuple[float, ...]
    exposures: tuple[int, ...]
    exposure_loss: tuple[float, ...]
    exposure_gain: tuple[float, ...]
    sky_mag_arcsec2: tuple[float, ...]
    defaults: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        n = len(get_band_set(self.band_set).bands)
        for name in ("seeing_arcsec", "exposures", "exposure_loss", "exposure_gain", "sky_mag_arcsec2"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"survey design {self.band_set!r}: {name} needs one value per band")


KIDS_VIKING_DESIGN = SurveyDesign(
    band_set="kids_viking",
    seeing_arcsec=(1.0, 0.9, 0.7, 0.8, 0.95, 0.9, 0.9, 0.9, 0.85),
    exposures=(4, 5, 5, 5, 2, 2, 2, 2, 2),
    exposure_loss=(0.1, 0.1, 0.1, 0.1, 0.15, 0.15, 0.15, 0.15, 0.15),
    exposure_gain=(0.0, 0.0, 0.0, 0.0, 0.15, 0.15, 0.15, 0.15, 0.15),
    sky_mag_arcsec2=(22.8, 22.0, 21.0, 20.0, 19.5, 18.5, 16.7, 15.8, 14.9),
)
"""KiDS (de Jong et al. 2015: u 4, g r i 5 dithered exposures) and VIKING (Edge et al. 2013: a
tile of 6 pawprints covers most of the sky twice, edges once, overlaps three times)."""

SDSS_DESIGN = SurveyDesign(
    band_set="sdss",
    seeing_arcsec=(1.5, 1.4, 1.3, 1.25, 1.25),
    exposures=(1, 1, 1, 1, 1),
    exposure_loss=(0.0,) * 5,
    exposure_gain=(0.0,) * 5,
    sky_mag_arcsec2=(22.1, 21.8, 20.8, 20.3, 18.9),
    defaults=MappingProxyType(
        {
            "n_exp_min": 1,
            "n_exp_max": 1,
            "psf_fwhm_arcsec": (),
            "pixel_scale_arcsec": 0.396,
            "wide_fraction": 1.0,
            "deep_fraction": 0.0,
            "wide_r_limit": 17.77,
            "r_mag_bright": 14.0,
            "r_mag_limit": 22.0,
            "z_max": 1.0,
            "star_fraction": 0.0,
            "qso_fraction": 0.0,
            "not_observed_fraction": 0.0,
        }
    ),
)
"""SDSS imaging (one drift-scan exposure per band, York et al. 2000) with a Main Galaxy Sample
selection (Strauss et al. 2002: r < 17.77); galaxies only, catalogue only."""

_DESIGNS: dict[str, SurveyDesign] = {d.band_set: d for d in (KIDS_VIKING_DESIGN, SDSS_DESIGN)}


def register_survey_design(design: SurveyDesign) -> SurveyDesign:
    """Make ``design`` the simulator's description of its band set (e.g. a user's own survey)."""
    _DESIGNS[design.band_set] = design
    return design


def get_survey_design(band_set: str) -> SurveyDesign:
    """The survey design of ``band_set``."""
    try:
        return _DESIGNS[band_set]
    except KeyError:
        raise KeyError(f"no survey design for band set {band_set!r}; known: {sorted(_DESIGNS)}") from None


def survey_defaults(band_set: str) -> dict[str, Any]:
    """Configuration settings of a tile of ``band_set``'s survey (``band_set`` included)."""
    return {"band_set": band_set, **get_survey_design(band_set).defaults}
