"""Building blocks shared by the model families: VGG conv blocks and fully connected stacks."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


def conv_block(in_channels: int, out_channels: int, n_convs: int, batch_norm: bool = True) -> nn.Sequential:
    """VGG block: ``n_convs`` × (3×3 conv, [batch norm], ReLU), then 2×2 max pooling.

    ``(B, in_channels, H, W) -> (B, out_channels, H // 2, W // 2)``.
    """
    layers: list[nn.Module] = []
    for k in range(n_convs):
        layers.append(
            nn.Conv2d(
                in_channels if k == 0 else out_channels, out_channels, 3, padding=1, bias=not batch_norm
            )
        )
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.ReLU(inplace=True))
    layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


def fc_stack(
    in_features: int,
    widths: Sequence[int],
    batch_norm: bool = True,
    dropout: float | Sequence[float] = 0.0,
) -> nn.Sequential:
    """Fully connected layers, each (linear, [batch norm], ReLU, [dropout]).

    Parameters
    ----------
    in_features
        Input width.
    widths
        Output width of each layer; empty gives the identity.
    batch_norm
        Batch norm after every linear layer.
    dropout
        One probability for every layer, or one per layer (0 = none).
    """
    rates = (
        [float(dropout)] * len(widths) if isinstance(dropout, int | float) else [float(p) for p in dropout]
    )
    if len(rates) != len(widths):
        raise ValueError(f"{len(rates)} dropout rates for {len(widths)} layers")
    layers: list[nn.Module] = []
    width = in_features
    for out, p in zip(widths, rates, strict=True):
        layers.append(nn.Linear(width, out, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm1d(out))
        layers.append(nn.ReLU(inplace=True))
        if p > 0:
            layers.append(nn.Dropout(p))
        width = out
    return nn.Sequential(*layers)
