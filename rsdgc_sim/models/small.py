"""``cnn_small``: a tiny CNN for tests and quick runs (about 27 k parameters at 45 classes).

Three 3x3 conv layers with bias (16, 32, 64 channels), batch norm after the first two,
two 2x2 max-pools, global average pooling and one linear classifier. Works for any input of
at least 8x8 pixels.
"""

from __future__ import annotations

import torch
from torch import nn

from .catalog import CNN_SMALL_MIN_INPUT

MIN_INPUT_SIZE = CNN_SMALL_MIN_INPUT


class SmallCNN(nn.Module):
    """``features`` (conv-bn-relu-pool, conv-bn-relu-pool, conv-relu) -> pool -> ``classifier``."""

    def __init__(self, num_classes: int, in_channels: int = 3):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 16, kernel_size=3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, kernel_size=3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier(x)


def cnn_small(num_classes: int, in_channels: int = 3) -> SmallCNN:
    """An uninitialised SmallCNN (initialise with ``init``)."""
    return SmallCNN(num_classes, in_channels)
