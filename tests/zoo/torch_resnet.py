"""ResNet in PyTorch as torchvision's ``models/resnet.py`` writes it (names, order, forward).

torchvision itself cannot be imported beside the CPU build of torch the tests use (its
wheels on the registry are built against the CUDA torch: ``operator torchvision::nms does
not exist``), so this is its structure written out: BasicBlock, Bottleneck, _make_layer
and ResNet with the same attribute names and the same forward.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def conv3x3(cin: int, cout: int, stride: int = 1, device: Any = None) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False, device=device)


def conv1x1(cin: int, cout: int, stride: int = 1, device: Any = None) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False, device=device)


class BasicBlock(nn.Module):  # type: ignore[misc]
    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: Any = None,
        device: Any = None,
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride, device)
        self.bn1 = nn.BatchNorm2d(planes, device=device)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes, device=device)
        self.bn2 = nn.BatchNorm2d(planes, device=device)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Any) -> Any:
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        out = self.relu(out)
        return out


class Bottleneck(nn.Module):  # type: ignore[misc]
    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: Any = None,
        device: Any = None,
    ) -> None:
        super().__init__()
        width = planes
        self.conv1 = conv1x1(inplanes, width, device=device)
        self.bn1 = nn.BatchNorm2d(width, device=device)
        self.conv2 = conv3x3(width, width, stride, device)
        self.bn2 = nn.BatchNorm2d(width, device=device)
        self.conv3 = conv1x1(width, planes * self.expansion, device=device)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion, device=device)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Any) -> Any:
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        out = self.relu(out)
        out = self.conv3(out)
        out = self.bn3(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        out = self.relu(out)
        return out


class ResNet(nn.Module):  # type: ignore[misc]
    def __init__(
        self, block: Any, layers: list[int], num_classes: int = 1000, device: Any = None
    ) -> None:
        super().__init__()
        self.inplanes = 64
        self.device = device
        self.conv1 = nn.Conv2d(3, self.inplanes, 7, stride=2, padding=3, bias=False, device=device)
        self.bn1 = nn.BatchNorm2d(self.inplanes, device=device)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes, device=device)

    def _make_layer(self, block: Any, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride, self.device),
                nn.BatchNorm2d(planes * block.expansion, device=self.device),
            )
        layers = [block(self.inplanes, planes, stride, downsample, device=self.device)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, device=self.device))
        return nn.Sequential(*layers)

    def forward(self, x: Any) -> Any:
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.maxpool(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        x = self.fc(x)
        return x


def resnet(depth: int, device: Any = "meta") -> ResNet:
    block, layers = {
        18: (BasicBlock, [2, 2, 2, 2]),
        34: (BasicBlock, [3, 4, 6, 3]),
        50: (Bottleneck, [3, 4, 6, 3]),
        101: (Bottleneck, [3, 4, 23, 3]),
        152: (Bottleneck, [3, 8, 36, 3]),
    }[depth]
    return ResNet(block, layers, device=device)
