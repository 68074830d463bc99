"""GaZNet (Li, Napolitano et al. 2022, §2.1): VGG image path, MLP catalogue path, fused.

- I4: four VGG blocks of 2, 2, 3, 3 conv layers on u,g,r,i cutouts, flatten, three fully
  connected layers (two hidden here + the output layer of the head).
- C4 / C9: two blocks of four fully connected layers on magnitudes + adjacent colours of four /
  nine bands, then the output layer.
- GaZNet-1: the image path on r-band cutouts and the catalogue path on nine bands, concatenated,
  then five fully connected layers (four hidden + the output layer).
- C9I4 (§4.2): GaZNet-1 with u,g,r,i cutouts.

The paper gives layer counts but its text does not list the widths; the defaults below are
VGG-like choices of ours (conv 32-64-128-256, catalogue 128×4 + 256×4, fusion 512-256-128-64)
and every width is a config field. Batch norm after each conv / linear layer is on by default
(off gives the plain VGG layers). The point head is trained with the Huber loss, δ = 0.001
(paper §3.1), and its output goes through a softplus so that no redshift is negative.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from distributed_pz.bands import BandSet
from distributed_pz.models.base import PhotoZModel
from distributed_pz.models.features import InputSpec
from distributed_pz.models.heads import ClassHead, MDNHead, PointHead
from distributed_pz.models.layers import conv_block, fc_stack
from distributed_pz.models.registry import register_family, register_model


@dataclass(frozen=True)
class GaZNetConfig:
    """Configuration of a GaZNet variant.

    Parameters
    ----------
    name
        Registry name of the variant (stored in bundles).
    bands
        Catalogue bands (magnitudes + adjacent colours); empty = no catalogue path. The
        registered variants take them from the band set (:mod:`distributed_pz.models.registry`).
    image_bands
        Cutout channels; empty = no image path.
    conv_widths, conv_depths
        Channels and number of 3×3 conv layers of each VGG block (each block halves the size).
    catalog_widths
        Widths of the catalogue path's fully connected layers (two blocks of four).
    neck_widths
        Hidden fully connected layers after the paths (concatenated when both exist).
    head
        ``"point"`` (Huber loss) or ``"mdn"`` (mixture density, −log p loss).
    n_components
        Gaussians of the mixture density head.
    huber_delta
        δ of the Huber loss (paper §3.1: 0.001).
    nonnegative
        Point head through a softplus, so no redshift is negative (the registered variants set
        it; off only for bundles saved before it existed).
    classify
        Add a galaxy/star/QSO head whose cross-entropy joins the loss when labels exist.
    batch_norm, dropout
        Batch norm after every layer; dropout rate after every fully connected layer.
    cutout_size
        Side of the cutouts in pixels.
    """

    family: ClassVar[str] = "gaznet"

    name: str = "gaznet_1"
    bands: tuple[str, ...] = ()
    image_bands: tuple[str, ...] = ()
    conv_widths: tuple[int, ...] = (32, 64, 128, 256)
    conv_depths: tuple[int, ...] = (2, 2, 3, 3)
    catalog_widths: tuple[int, ...] = (128, 128, 128, 128, 256, 256, 256, 256)
    neck_widths: tuple[int, ...] = (512, 256, 128, 64)
    head: Literal["point", "mdn"] = "point"
    n_components: int = 10
    huber_delta: float = 1e-3
    nonnegative: bool = False
    classify: bool = False
    n_classes: int = 3
    batch_norm: bool = True
    dropout: float = 0.0
    cutout_size: int = 40

    def __post_init__(self) -> None:
        if not self.bands and not self.image_bands:
            raise ValueError(f"{self.name}: a GaZNet needs catalogue bands, image bands or both")
        if len(self.conv_widths) != len(self.conv_depths):
            raise ValueError(f"{self.name}: conv_widths and conv_depths differ in length")
        if self.bands and not self.catalog_widths:
            raise ValueError(f"{self.name}: the catalogue path needs at least one layer")
        if self.head not in ("point", "mdn"):
            raise ValueError(f"{self.name}: head must be 'point' or 'mdn', not {self.head!r}")
        if self.image_bands and self.cutout_size // 2 ** len(self.conv_widths) < 1:
            raise ValueError(
                f"{self.name}: {len(self.conv_widths)} blocks shrink a {self.cutout_size} px cutout to nothing"
            )

    def input_spec(self) -> InputSpec:
        return InputSpec(
            catalog="mag_colour" if self.bands else "none", bands=self.bands, image_bands=self.image_bands
        )

    def tiny_overrides(self) -> dict[str, Any]:
        """Narrow layers, same layer counts (tests and smoke runs)."""
        tiny: dict[str, Any] = {"conv_widths": (4, 4, 8, 8), "catalog_widths": (16,) * 8}
        if self.neck_widths:
            tiny["neck_widths"] = (16,) * len(self.neck_widths)
        return tiny


class GaZNet(PhotoZModel):
    """Any GaZNet variant: optional image path, optional catalogue path, neck, heads."""

    def __init__(self, config: GaZNetConfig) -> None:
        super().__init__()
        self.config = config
        width = 0
        self.image_path: nn.Module | None = None
        if config.image_bands:
            channels, blocks = len(config.image_bands), []
            for out, depth in zip(config.conv_widths, config.conv_depths, strict=True):
                blocks.append(conv_block(channels, out, depth, config.batch_norm))
                channels = out
            self.image_path = nn.Sequential(*blocks, nn.Flatten())
            side = config.cutout_size // 2 ** len(config.conv_widths)
            width += channels * side * side
        self.catalog_path: nn.Module | None = None
        if config.bands:
            n_in = 2 * config.input_spec().n_catalog
            self.catalog_path = fc_stack(n_in, config.catalog_widths, config.batch_norm, config.dropout)
            width += config.catalog_widths[-1]
        self.neck = fc_stack(width, config.neck_widths, config.batch_norm, config.dropout)
        width = config.neck_widths[-1] if config.neck_widths else width
        self.head: nn.Module = (
            MDNHead(width, config.n_components)
            if config.head == "mdn"
            else PointHead(width, config.nonnegative)
        )
        self.class_head = ClassHead(width, config.n_classes) if config.classify else None

    def forward_features(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = []
        if self.image_path is not None:
            parts.append(self.image_path(inputs["image"]))  # (B, C' * s * s)
        if self.catalog_path is not None:
            parts.append(self.catalog_path(inputs["catalog"]))  # (B, catalog_widths[-1])
        return self.neck(torch.cat(parts, dim=1))  # (B, D)

    def forward_head(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.head(features)
        if self.class_head is not None:
            out.update(self.class_head(features))
        return out


register_family("gaznet", GaZNetConfig, GaZNet)


# Variants: bands by role in the band set. ``band_set.bands`` = every catalogue band (KiDS+VIKING:
# the nine of C9), ``band_set.image_bands`` = the bands with cutouts (KiDS: u,g,r,i).


@register_model
def gaznet_i4(band_set: BandSet, **overrides: Any) -> GaZNetConfig:
    """GaZNet-I4: cutouts of every imaged band (KiDS: u,g,r,i) only (morpho-z)."""
    defaults = {"bands": (), "image_bands": band_set.image_bands, "neck_widths": (256, 64)}
    return GaZNetConfig(**{"name": "gaznet_i4", "nonnegative": True, **defaults, **overrides})


@register_model
def gaznet_c4(band_set: BandSet, **overrides: Any) -> GaZNetConfig:
    """GaZNet-C4: magnitudes and colours of the imaged bands (KiDS: u,g,r,i)."""
    defaults = {"bands": band_set.image_bands, "image_bands": (), "neck_widths": ()}
    return GaZNetConfig(**{"name": "gaznet_c4", "nonnegative": True, **defaults, **overrides})


@register_model
def gaznet_c9(band_set: BandSet, **overrides: Any) -> GaZNetConfig:
    """GaZNet-C9: magnitudes and colours of every catalogue band (KiDS+VIKING: nine)."""
    defaults = {"bands": band_set.bands, "image_bands": (), "neck_widths": ()}
    return GaZNetConfig(**{"name": "gaznet_c9", "nonnegative": True, **defaults, **overrides})


@register_model
def gaznet_1(band_set: BandSet, **overrides: Any) -> GaZNetConfig:
    """GaZNet-1: r-band cutouts + every catalogue band, fused."""
    defaults = {"bands": band_set.bands, "image_bands": ("r",)}
    return GaZNetConfig(**{"name": "gaznet_1", "nonnegative": True, **defaults, **overrides})


@register_model
def gaznet_c9i4(band_set: BandSet, **overrides: Any) -> GaZNetConfig:
    """GaZNet-C9I4 (paper §4.2): cutouts of every imaged band + every catalogue band."""
    defaults = {"bands": band_set.bands, "image_bands": band_set.image_bands}
    return GaZNetConfig(**{"name": "gaznet_c9i4", "nonnegative": True, **defaults, **overrides})


@register_model
def gaznet_1_mdn(band_set: BandSet, **overrides: Any) -> GaZNetConfig:
    """GaZNet-1 backbone with a mixture density head: p(z) (beyond the paper)."""
    defaults = {"bands": band_set.bands, "image_bands": ("r",), "head": "mdn"}
    return GaZNetConfig(**{"name": "gaznet_1_mdn", "nonnegative": True, **defaults, **overrides})
