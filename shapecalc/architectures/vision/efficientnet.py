"""EfficientNet B0 to B7 and V2 (S, M, L) as torchvision/models/efficientnet.py builds
them: MBConv and FusedMBConv blocks, squeeze-and-excitation, stochastic depth."""

from __future__ import annotations

import math
from typing import Any

from shapecalc.architectures.vision._common import (
    conv_norm_act,
    make_divisible,
    norm,
    squeeze_excitation,
)
from shapecalc.core.flow import chain, residual
from shapecalc.core.tree import Block, Sequential
from shapecalc.layers._activation import SiLU
from shapecalc.layers.activation import Sigmoid
from shapecalc.layers.linear import Dropout, Flatten, Linear
from shapecalc.layers.pooling import AdaptiveAvgPool2d
from shapecalc.layers.vision import StochasticDepth

__all__ = ["MODELS", "efficientnet"]

#: name -> (width_mult, depth_mult, dropout, BatchNorm eps, momentum), as the builders set them
MODELS: dict[str, tuple[float, float, float, float, float]] = {
    "efficientnet_b0": (1.0, 1.0, 0.2, 1e-5, 0.1),
    "efficientnet_b1": (1.0, 1.1, 0.2, 1e-5, 0.1),
    "efficientnet_b2": (1.1, 1.2, 0.3, 1e-5, 0.1),
    "efficientnet_b3": (1.2, 1.4, 0.3, 1e-5, 0.1),
    "efficientnet_b4": (1.4, 1.8, 0.4, 1e-5, 0.1),
    "efficientnet_b5": (1.6, 2.2, 0.4, 0.001, 0.01),
    "efficientnet_b6": (1.8, 2.6, 0.5, 0.001, 0.01),
    "efficientnet_b7": (2.0, 3.1, 0.5, 0.001, 0.01),
    "efficientnet_v2_s": (1.0, 1.0, 0.2, 1e-3, 0.1),
    "efficientnet_v2_m": (1.0, 1.0, 0.3, 1e-3, 0.1),
    "efficientnet_v2_l": (1.0, 1.0, 0.4, 1e-3, 0.1),
}

#: _efficientnet_conf's stages: (fused, expand_ratio, kernel, stride, in, out, layers)
_B = (
    (False, 1, 3, 1, 32, 16, 1),
    (False, 6, 3, 2, 16, 24, 2),
    (False, 6, 5, 2, 24, 40, 2),
    (False, 6, 3, 2, 40, 80, 3),
    (False, 6, 5, 1, 80, 112, 3),
    (False, 6, 5, 2, 112, 192, 4),
    (False, 6, 3, 1, 192, 320, 1),
)
_V2 = {
    "efficientnet_v2_s": (
        (True, 1, 3, 1, 24, 24, 2),
        (True, 4, 3, 2, 24, 48, 4),
        (True, 4, 3, 2, 48, 64, 4),
        (False, 4, 3, 2, 64, 128, 6),
        (False, 6, 3, 1, 128, 160, 9),
        (False, 6, 3, 2, 160, 256, 15),
    ),
    "efficientnet_v2_m": (
        (True, 1, 3, 1, 24, 24, 3),
        (True, 4, 3, 2, 24, 48, 5),
        (True, 4, 3, 2, 48, 80, 5),
        (False, 4, 3, 2, 80, 160, 7),
        (False, 6, 3, 1, 160, 176, 14),
        (False, 6, 3, 2, 176, 304, 18),
        (False, 6, 3, 1, 304, 512, 5),
    ),
    "efficientnet_v2_l": (
        (True, 1, 3, 1, 32, 32, 4),
        (True, 4, 3, 2, 32, 64, 7),
        (True, 4, 3, 2, 64, 96, 7),
        (False, 4, 3, 2, 96, 192, 10),
        (False, 6, 3, 1, 192, 224, 19),
        (False, 6, 3, 2, 224, 384, 25),
        (False, 6, 3, 1, 384, 640, 7),
    ),
}
#: the stochastic depth probability of the last block (EfficientNet's default)
_STOCHASTIC_DEPTH = 0.2


def _mbconv(
    fused: bool, ratio: float, kernel: int, stride: int, cin: int, cout: int, p: float, bn: Any
) -> Block:
    expanded = make_divisible(cin * ratio, 8)
    layers: list[Any] = []
    if fused:
        if expanded != cin:
            layers.append(conv_norm_act(cin, expanded, kernel, stride, bn=bn, activation=SiLU))
            layers.append(conv_norm_act(expanded, cout, 1, bn=bn, activation=None))
        else:
            layers.append(conv_norm_act(cin, cout, kernel, stride, bn=bn, activation=SiLU))
    else:
        if expanded != cin:
            layers.append(conv_norm_act(cin, expanded, 1, bn=bn, activation=SiLU))
        layers.append(
            conv_norm_act(
                expanded, expanded, kernel, stride, groups=expanded, bn=bn, activation=SiLU
            )
        )
        squeeze = max(1, cin // 4)
        layers.append(squeeze_excitation(expanded, squeeze, SiLU(inplace=True), Sigmoid()))
        layers.append(conv_norm_act(expanded, cout, 1, bn=bn, activation=None))
    res = stride == 1 and cin == cout
    return Block(
        "FusedMBConv" if fused else "MBConv",
        {"block": Sequential(*layers), "stochastic_depth": StochasticDepth(p, "row")},
        flow=residual("block", "stochastic_depth") if res else chain("block"),
    )


def efficientnet(name: str, num_classes: int) -> Block:
    """The root of torchvision's ``name`` (a key of :data:`MODELS`)."""
    width_mult, depth_mult, dropout, eps, momentum = MODELS[name]
    bn = norm(eps=eps, momentum=momentum)
    if name in _V2:
        stages = _V2[name]
        last_channel: int | None = 1280
    else:  # MBConvConfig.adjust_channels and adjust_depth
        stages = tuple(
            (
                fused,
                ratio,
                kernel,
                stride,
                make_divisible(cin * width_mult, 8),
                make_divisible(cout * width_mult, 8),
                math.ceil(layers * depth_mult),
            )
            for fused, ratio, kernel, stride, cin, cout, layers in _B
        )
        last_channel = None
    first = stages[0][4]
    features: list[Any] = [conv_norm_act(3, first, 3, 2, bn=bn, activation=SiLU)]
    total = sum(s[6] for s in stages)
    block_id = 0
    for fused, ratio, kernel, stride, cin, cout, layers in stages:
        blocks = []
        for i in range(layers):
            p = _STOCHASTIC_DEPTH * float(block_id) / total
            blocks.append(
                _mbconv(fused, ratio, kernel, 1 if i else stride, cout if i else cin, cout, p, bn)
            )
            block_id += 1
        features.append(Sequential(*blocks))
    last_in = stages[-1][5]
    last_out = last_channel if last_channel is not None else 4 * last_in
    features.append(conv_norm_act(last_in, last_out, 1, bn=bn, activation=SiLU))
    return Block(
        "EfficientNet",
        {
            "features": Sequential(*features),
            "avgpool": AdaptiveAvgPool2d(1),
            "classifier": Sequential(
                Dropout(p=dropout, inplace=True), Linear(last_out, num_classes)
            ),
        },
        flow=chain("features", "avgpool", Flatten(1), "classifier"),
    )
