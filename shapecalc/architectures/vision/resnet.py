"""ResNet, ResNeXt and Wide ResNet as torchvision/models/resnet.py builds them (ResNet v1.5:
the stride on the 3×3 of the bottleneck)."""

from __future__ import annotations

from typing import Any

from shapecalc.core.flow import chain, residual
from shapecalc.core.tree import Block, Sequential
from shapecalc.layers.activation import ReLU
from shapecalc.layers.conv import Conv2d
from shapecalc.layers.linear import Flatten, Linear
from shapecalc.layers.norm import BatchNorm2d
from shapecalc.layers.pooling import AdaptiveAvgPool2d, MaxPool2d

__all__ = ["MODELS", "resnet"]

#: name -> (depth, groups, width_per_group), as the builders of resnet.py set them
MODELS: dict[str, tuple[int, int, int]] = {
    "resnet18": (18, 1, 64),
    "resnet34": (34, 1, 64),
    "resnet50": (50, 1, 64),
    "resnet101": (101, 1, 64),
    "resnet152": (152, 1, 64),
    "resnext50_32x4d": (50, 32, 4),
    "resnext101_32x8d": (101, 32, 8),
    "resnext101_64x4d": (101, 64, 4),
    "wide_resnet50_2": (50, 1, 128),
    "wide_resnet101_2": (101, 1, 128),
}

_LAYERS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}


def _conv3x3(cin: int, cout: int, stride: int = 1, groups: int = 1) -> Conv2d:
    return Conv2d(cin, cout, 3, stride=stride, padding=1, groups=groups, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> Conv2d:
    return Conv2d(cin, cout, 1, stride=stride, bias=False)


def _basic(cin: int, planes: int, stride: int, downsample: bool, groups: int, width: int) -> Block:
    children: dict[str, Any] = {
        "conv1": _conv3x3(cin, planes, stride),
        "bn1": BatchNorm2d(planes),
        "relu": ReLU(inplace=True),
        "conv2": _conv3x3(planes, planes),
        "bn2": BatchNorm2d(planes),
    }
    if downsample:
        children["downsample"] = Sequential(_conv1x1(cin, planes, stride), BatchNorm2d(planes))
    shortcut = ("downsample",) if downsample else ()
    body = residual("conv1", "bn1", "relu", "conv2", "bn2", shortcut=shortcut)
    return Block("BasicBlock", children, flow=chain(body, "relu"))


def _bottleneck(
    cin: int, planes: int, stride: int, downsample: bool, groups: int, base_width: int
) -> Block:
    width = int(planes * (base_width / 64.0)) * groups
    out = planes * 4
    children: dict[str, Any] = {
        "conv1": _conv1x1(cin, width),
        "bn1": BatchNorm2d(width),
        "conv2": _conv3x3(width, width, stride, groups),
        "bn2": BatchNorm2d(width),
        "conv3": _conv1x1(width, out),
        "bn3": BatchNorm2d(out),
        "relu": ReLU(inplace=True),
    }
    if downsample:
        children["downsample"] = Sequential(_conv1x1(cin, out, stride), BatchNorm2d(out))
    shortcut = ("downsample",) if downsample else ()
    body = residual(
        "conv1", "bn1", "relu", "conv2", "bn2", "relu", "conv3", "bn3", shortcut=shortcut
    )
    return Block("Bottleneck", children, flow=chain(body, "relu"))


def resnet(name: str, num_classes: int) -> Block:
    """The root of torchvision's ``name`` (a key of :data:`MODELS`)."""
    depth, groups, width = MODELS[name]
    kind, blocks = _LAYERS[depth]
    make, expansion = (_basic, 1) if kind == "basic" else (_bottleneck, 4)
    stages: dict[str, Any] = {}
    cin = 64
    for i, (planes, count) in enumerate(zip((64, 128, 256, 512), blocks, strict=True)):
        stride = 1 if i == 0 else 2
        first = make(cin, planes, stride, stride != 1 or cin != planes * expansion, groups, width)
        cin = planes * expansion
        rest = [make(cin, planes, 1, False, groups, width) for _ in range(count - 1)]
        stages[f"layer{i + 1}"] = Sequential(first, *rest)
    return Block(
        "ResNet",
        {
            "conv1": Conv2d(3, 64, 7, stride=2, padding=3, bias=False),
            "bn1": BatchNorm2d(64),
            "relu": ReLU(inplace=True),
            "maxpool": MaxPool2d(3, stride=2, padding=1),
            **stages,
            "avgpool": AdaptiveAvgPool2d((1, 1)),
            "fc": Linear(512 * expansion, num_classes),
        },
        flow=chain("conv1", "bn1", "relu", "maxpool", *stages, "avgpool", Flatten(1), "fc"),
    )
