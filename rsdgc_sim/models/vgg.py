"""VGG-11/13/16/19, with and without batch norm (Simonyan & Zisserman, 2015).

Written for rsdgc-sim; the layout, parameter names (``features.N``, ``avgpool``,
``classifier.N``) and parameter counts match torchvision's ``vgg*`` models, so that
per-layer results can be compared with torchvision-based work (the RS-DGC paper uses
VGG-19 on NWPU-RESISC45). The classifier is torchvision's: adaptive average pooling to
7x7, then 25088 -> 4096 -> 4096 -> ``num_classes``, so the count does not depend on the
input size.
"""

from __future__ import annotations

import torch
from torch import nn

from .catalog import VGG_MIN_INPUT

#: Output channels of each 3x3 conv; ``"M"`` is a 2x2 max-pool (the paper's configs A, B, D, E).
CONFIGS: dict[int, list[int | str]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
         512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512, "M"],
}  # fmt: skip

#: Five 2x2 max-pools: inputs below 32 pixels would pool to nothing.
MIN_INPUT_SIZE = VGG_MIN_INPUT


def make_features(config: list[int | str], batch_norm: bool, in_channels: int = 3) -> nn.Sequential:
    """The convolutional trunk: conv [bn] relu ... with max-pools where ``config`` says."""
    layers: list[nn.Module] = []
    channels = in_channels
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        assert isinstance(item, int)
        layers.append(nn.Conv2d(channels, item, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(item))
        layers.append(nn.ReLU(inplace=True))
        channels = item
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """VGG network: ``features`` -> ``avgpool`` (7x7) -> flatten -> ``classifier``."""

    def __init__(self, features: nn.Sequential, num_classes: int, dropout: float = 0.5):
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


def vgg(depth: int, batch_norm: bool, num_classes: int, in_channels: int = 3) -> VGG:
    """An uninitialised VGG of ``depth`` in {11, 13, 16, 19} (initialise with ``init``)."""
    return VGG(make_features(CONFIGS[depth], batch_norm, in_channels), num_classes)
