"""DEEPZ (Eriksen et al. 2020, §2.2–2.3 and Fig. 1): autoencoder + mixture density network.

Flux ratios over the i band go into an encoder (10 linear layers × 250 nodes, batch norm, ReLU,
2 % dropout after all but the last three linear layers) giving 10 latent features, and a decoder
of the same shape reconstructs the ratios. The photo-z network (10 linear layers × 250, 1 %
dropout) reads the ratios and the latent features and outputs a mixture of 10 Gaussians. Ratios
carry colours only; the option ``reference_magnitude`` (ours) adds the i magnitude to the inputs.
Loss: −log p(z_spec), plus the reconstruction error while pre-training on simulations (§4.2).
The point estimate is the mode of p(z).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from distributed_pz.bands import BandSet
from distributed_pz.models.base import PhotoZModel
from distributed_pz.models.features import InputSpec
from distributed_pz.models.heads import ClassHead, MDNHead
from distributed_pz.models.layers import fc_stack
from distributed_pz.models.registry import later_field, register_family, register_model


@dataclass(frozen=True)
class DeepZConfig:
    """Configuration of DEEPZ.

    Parameters
    ----------
    name
        Registry name (stored in bundles).
    bands
        Bands whose fluxes enter, bluest first; ``reference_band`` divides the others. The
        registered variant takes them from the band set (:mod:`distributed_pz.models.registry`).
    reference_band
        Denominator of the flux ratios.
    use_exposures
        Build fluxes from individual exposures (randomized coadds while training) when the tile
        has them; otherwise from the catalogue magnitudes.
    reference_magnitude
        Also read the reference band's magnitude (from the same flux as the ratios), so the
        networks know the source's brightness, not only its colours.
    hidden, n_layers, latent
        Width and number of linear layers of each of the three networks; latent size.
    autoencoder_dropout, photoz_dropout
        Dropout after the autoencoder's hidden layers (all but the last ``no_dropout_last``
        linear layers) and after every hidden layer of the photo-z network.
    n_components
        Gaussians in p(z).
    classify
        Add a galaxy/star/QSO head on the photo-z network's last hidden layer.
    batch_norm
        Batch norm after every hidden linear layer.
    """

    family: ClassVar[str] = "deepz"

    name: str = "deepz"
    bands: tuple[str, ...] = ()
    reference_band: str = "i"
    use_exposures: bool = True
    reference_magnitude: bool = later_field(False)
    hidden: int = 250
    n_layers: int = 10
    latent: int = 10
    autoencoder_dropout: float = 0.02
    photoz_dropout: float = 0.01
    no_dropout_last: int = 3
    n_components: int = 10
    classify: bool = False
    n_classes: int = 3
    batch_norm: bool = True

    def __post_init__(self) -> None:
        if self.n_layers < 2:
            raise ValueError(f"{self.name}: n_layers must be at least 2")
        if not isinstance(self.reference_magnitude, bool):
            raise TypeError(
                f"{self.name}: reference_magnitude must be true or false, got {self.reference_magnitude!r}"
            )
        self.input_spec()

    @property
    def head(self) -> str:
        return "mdn"

    def input_spec(self) -> InputSpec:
        return InputSpec(
            catalog="flux_ratio",
            bands=self.bands,
            reference_band=self.reference_band,
            use_exposures=self.use_exposures,
            reference_magnitude=self.reference_magnitude,
        )

    def tiny_overrides(self) -> dict[str, Any]:
        """Narrow and shallow networks (tests and smoke runs)."""
        return {"hidden": 16, "n_layers": 4, "latent": 4}


class DeepZ(PhotoZModel):
    """Encoder, decoder and photo-z mixture density network."""

    def __init__(self, config: DeepZConfig) -> None:
        super().__init__()
        self.config = config
        n_values = config.input_spec().n_catalog
        n_hidden = config.n_layers - 1
        ae_rates = [
            config.autoencoder_dropout if k < config.n_layers - config.no_dropout_last else 0.0
            for k in range(n_hidden)
        ]
        widths = [config.hidden] * n_hidden
        bn = config.batch_norm
        self.encoder = nn.Sequential(
            fc_stack(2 * n_values, widths, bn, ae_rates), nn.Linear(config.hidden, config.latent)
        )
        self.decoder = nn.Sequential(
            fc_stack(config.latent, widths, bn, ae_rates), nn.Linear(config.hidden, n_values)
        )
        self.photoz = fc_stack(2 * n_values + config.latent, widths, bn, config.photoz_dropout)
        self.head = MDNHead(config.hidden, config.n_components)
        self.class_head = ClassHead(config.hidden, config.n_classes) if config.classify else None

    def _trunk(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        x = inputs["catalog"]  # (B, 2F): standardised ratios, missing mask
        latent = self.encoder(x)  # (B, L)
        return self.photoz(torch.cat([x, latent], dim=1)), latent  # (B, H), (B, L)

    def forward_features(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._trunk(inputs)[0]

    def forward_head(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.head(features)
        if self.class_head is not None:
            out.update(self.class_head(features))
        return out

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        features, latent = self._trunk(inputs)
        out = self.forward_head(features)
        out["latent"] = latent
        out["reconstruction"] = self.decoder(latent)  # (B, F)
        return out

    def extra_loss(
        self, inputs: dict[str, torch.Tensor], outputs: dict[str, torch.Tensor]
    ) -> torch.Tensor | None:
        """The autoencoder's reconstruction error (DEEPZ pre-training)."""
        return reconstruction_loss(inputs, outputs) if "reconstruction" in outputs else None


def reconstruction_loss(inputs: dict[str, torch.Tensor], outputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean squared error of the decoder over the measured (unmasked) standardised ratios."""
    x = inputs["catalog"]
    n = x.shape[1] // 2
    observed = 1.0 - x[:, n:]  # (B, F)
    err = (outputs["reconstruction"] - x[:, :n]) ** 2 * observed
    return err.sum() / observed.sum().clamp_min(1.0)


register_family("deepz", DeepZConfig, DeepZ)


@register_model
def deepz(band_set: BandSet, **overrides: Any) -> DeepZConfig:
    """DEEPZ: flux ratios of every catalogue band over i, autoencoder + 10-Gaussian mixture density network."""
    return DeepZConfig(**{"name": "deepz", "bands": band_set.bands, **overrides})
