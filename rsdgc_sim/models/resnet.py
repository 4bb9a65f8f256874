"""ResNet-18/34/50 (He et al., 2016), torchvision's layout ("ResNet v1.5").

Written for rsdgc-sim; module and parameter names (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer2.0.downsample.0``, ``fc`` ...) and parameter counts match torchvision's
``resnet18/34/50``: a 7x7 stride-2 stem and 3x3 stride-2 max-pool, four stages of 64, 128,
256, 512 base channels, convolutions without bias, BasicBlock (two 3x3 convs) for 18/34,
Bottleneck (1x1, 3x3, 1x1; expansion 4; the stride on the 3x3 conv) for 50, a 1x1 conv +
batch norm shortcut where the shape changes, global average pooling and one linear layer.
"""

from __future__ import annotations

import torch
from torch import nn

from .catalog import RESNET_MIN_INPUT

#: Total downsampling of the trunk: inputs below 32 pixels end below one pixel per stride.
MIN_INPUT_SIZE = RESNET_MIN_INPUT


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs with batch norm; identity or 1x1-conv shortcut."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        # after the main path, as torchvision runs it (the order gradients become ready in)
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries the stride), 1x1 expand (x4), with batch norm."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv1x1(in_planes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        # after the main path, as torchvision runs it (the order gradients become ready in)
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


Block = type[BasicBlock] | type[Bottleneck]

#: depth -> (block type, blocks per stage)
CONFIGS: dict[int, tuple[Block, tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
}


class ResNet(nn.Module):
    """Stem, ``layer1``..``layer4``, ``avgpool``, ``fc``."""

    def __init__(self, block: Block, blocks: tuple[int, int, int, int], num_classes: int,
                 in_channels: int = 3):
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._stage(block, 64, blocks[0], stride=1)
        self.layer2 = self._stage(block, 128, blocks[1], stride=2)
        self.layer3 = self._stage(block, 256, blocks[2], stride=2)
        self.layer4 = self._stage(block, 512, blocks[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

    def _stage(self, block: Block, planes: int, n: int, stride: int) -> nn.Sequential:
        out_planes = planes * block.expansion
        downsample = None
        if stride != 1 or self.in_planes != out_planes:
            downsample = nn.Sequential(
                conv1x1(self.in_planes, out_planes, stride), nn.BatchNorm2d(out_planes)
            )
        layers: list[nn.Module] = [block(self.in_planes, planes, stride, downsample)]
        self.in_planes = out_planes
        layers += [block(self.in_planes, planes) for _ in range(1, n)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def resnet(depth: int, num_classes: int, in_channels: int = 3) -> ResNet:
    """An uninitialised ResNet of ``depth`` in {18, 34, 50} (initialise with ``init``)."""
    block, blocks = CONFIGS[depth]
    return ResNet(block, blocks, num_classes, in_channels)
