"""VGG 11, 13, 16 and 19, with and without batch norm, as torchvision/models/vgg.py builds
them."""

from __future__ import annotations

from typing import Any

from shapecalc.core.flow import chain
from shapecalc.core.tree import Block, Sequential
from shapecalc.layers.activation import ReLU
from shapecalc.layers.conv import Conv2d
from shapecalc.layers.linear import Dropout, Flatten, Linear
from shapecalc.layers.norm import BatchNorm2d
from shapecalc.layers.pooling import AdaptiveAvgPool2d, MaxPool2d

__all__ = ["MODELS", "vgg"]

#: vgg.py's ``cfgs``: output channels of each 3×3 conv, "M" a 2×2 max pool
_CFGS: dict[str, list[Any]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [
        *(64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M"),
        *(512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
    ],
}
#: name -> (cfg, batch_norm)
MODELS: dict[str, tuple[str, bool]] = {
    f"vgg{depth}{'_bn' if bn else ''}": (cfg, bn)
    for depth, cfg in ((11, "A"), (13, "B"), (16, "D"), (19, "E"))
    for bn in (False, True)
}


def vgg(name: str, num_classes: int) -> Block:
    """The root of torchvision's ``name`` (a key of :data:`MODELS`)."""
    cfg, batch_norm = MODELS[name]
    layers: list[Any] = []
    cin = 3
    for v in _CFGS[cfg]:
        if v == "M":
            layers.append(MaxPool2d(2, stride=2))
            continue
        layers.append(Conv2d(cin, v, 3, padding=1))
        if batch_norm:
            layers.append(BatchNorm2d(v))
        layers.append(ReLU(inplace=True))
        cin = v
    classifier = Sequential(
        Linear(512 * 7 * 7, 4096),
        ReLU(True),
        Dropout(0.5),
        Linear(4096, 4096),
        ReLU(True),
        Dropout(0.5),
        Linear(4096, num_classes),
    )
    return Block(
        "VGG",
        {
            "features": Sequential(*layers),
            "avgpool": AdaptiveAvgPool2d((7, 7)),
            "classifier": classifier,
        },
        flow=chain("features", "avgpool", Flatten(1), "classifier"),
    )
