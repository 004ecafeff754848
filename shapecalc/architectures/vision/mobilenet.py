"""MobileNet V2 and V3 (large, small) as torchvision/models/mobilenetv2.py and
mobilenetv3.py build them, with their ``width_mult``."""

from __future__ import annotations

from typing import Any

from shapecalc.architectures.vision._common import (
    conv_norm_act,
    make_divisible,
    norm,
    squeeze_excitation,
)
from shapecalc.core.flow import chain, residual
from shapecalc.core.tree import Block, Sequential
from shapecalc.layers.activation import Hardsigmoid, Hardswish, ReLU, ReLU6
from shapecalc.layers.conv import Conv2d
from shapecalc.layers.linear import Dropout, Flatten, Linear
from shapecalc.layers.norm import BatchNorm2d
from shapecalc.layers.pooling import AdaptiveAvgPool2d

__all__ = ["MODELS", "mobilenet"]

MODELS = ("mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small")

#: mobilenetv2.py's inverted_residual_setting: expansion t, channels c, repeats n, stride s
_V2 = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)

#: mobilenetv3.py's bneck_conf rows: input, kernel, expanded, out, SE, activation, stride
_LARGE = (
    (16, 3, 16, 16, False, "RE", 1),
    (16, 3, 64, 24, False, "RE", 2),
    (24, 3, 72, 24, False, "RE", 1),
    (24, 5, 72, 40, True, "RE", 2),
    (40, 5, 120, 40, True, "RE", 1),
    (40, 5, 120, 40, True, "RE", 1),
    (40, 3, 240, 80, False, "HS", 2),
    (80, 3, 200, 80, False, "HS", 1),
    (80, 3, 184, 80, False, "HS", 1),
    (80, 3, 184, 80, False, "HS", 1),
    (80, 3, 480, 112, True, "HS", 1),
    (112, 3, 672, 112, True, "HS", 1),
    (112, 5, 672, 160, True, "HS", 2),
    (160, 5, 960, 160, True, "HS", 1),
    (160, 5, 960, 160, True, "HS", 1),
)
_SMALL = (
    (16, 3, 16, 16, True, "RE", 2),
    (16, 3, 72, 24, False, "RE", 2),
    (24, 3, 88, 24, False, "RE", 1),
    (24, 5, 96, 40, True, "HS", 2),
    (40, 5, 240, 40, True, "HS", 1),
    (40, 5, 240, 40, True, "HS", 1),
    (40, 5, 120, 48, True, "HS", 1),
    (48, 5, 144, 48, True, "HS", 1),
    (48, 5, 288, 96, True, "HS", 2),
    (96, 5, 576, 96, True, "HS", 1),
    (96, 5, 576, 96, True, "HS", 1),
)
#: the last channel before the classifier (``adjust_channels(1280)``, ``(1024)``)
_LAST = {"mobilenet_v3_large": 1280, "mobilenet_v3_small": 1024}


def _head(features: list[Any], children: dict[str, Any], pool: bool) -> Block:
    kind = "MobileNetV3" if "avgpool" in children else "MobileNetV2"
    steps = ("features", "avgpool") if pool else ("features", AdaptiveAvgPool2d((1, 1)))
    return Block(
        kind,
        {"features": Sequential(*features), **children},
        flow=chain(*steps, Flatten(1), "classifier"),
    )


def _v2(num_classes: int, width_mult: float) -> Block:
    relu6 = ReLU6
    cin = make_divisible(32 * width_mult, 8)
    last = make_divisible(1280 * max(1.0, width_mult), 8)
    features: list[Any] = [conv_norm_act(3, cin, stride=2, activation=relu6)]
    for t, c, n, s in _V2:
        cout = make_divisible(c * width_mult, 8)
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = round(cin * t)
            layers: list[Any] = []
            if t != 1:
                layers.append(conv_norm_act(cin, hidden, 1, activation=relu6))
            layers.append(
                conv_norm_act(hidden, hidden, stride=stride, groups=hidden, activation=relu6)
            )
            layers += [Conv2d(hidden, cout, 1, 1, 0, bias=False), BatchNorm2d(cout)]
            res = stride == 1 and cin == cout
            features.append(
                Block(
                    "InvertedResidual",
                    {"conv": Sequential(*layers)},
                    flow=residual("conv") if res else chain("conv"),
                )
            )
            cin = cout
    features.append(conv_norm_act(cin, last, 1, activation=relu6))
    classifier = Sequential(Dropout(0.2), Linear(last, num_classes))
    return _head(features, {"classifier": classifier}, pool=False)


def _v3(name: str, num_classes: int, width_mult: float) -> Block:
    def adjust(channels: int) -> int:
        return make_divisible(channels * width_mult, 8)

    bn = norm(eps=0.001, momentum=0.01)
    rows = _LARGE if name == "mobilenet_v3_large" else _SMALL
    first = adjust(rows[0][0])
    features: list[Any] = [conv_norm_act(3, first, stride=2, bn=bn, activation=Hardswish)]
    for cin_, kernel, expanded_, cout_, se, act, stride in rows:
        cin, expanded, cout = adjust(cin_), adjust(expanded_), adjust(cout_)
        activation = Hardswish if act == "HS" else ReLU
        layers: list[Any] = []
        if expanded != cin:
            layers.append(conv_norm_act(cin, expanded, 1, bn=bn, activation=activation))
        layers.append(
            conv_norm_act(
                expanded, expanded, kernel, stride, groups=expanded, bn=bn, activation=activation
            )
        )
        if se:
            squeeze = make_divisible(expanded // 4, 8)
            layers.append(squeeze_excitation(expanded, squeeze, ReLU(), Hardsigmoid()))
        layers.append(conv_norm_act(expanded, cout, 1, bn=bn, activation=None))
        res = stride == 1 and cin == cout
        features.append(
            Block(
                "InvertedResidual",
                {"block": Sequential(*layers)},
                flow=residual("block") if res else chain("block"),
            )
        )
    last_in = adjust(rows[-1][3])
    last_out = 6 * last_in
    features.append(conv_norm_act(last_in, last_out, 1, bn=bn, activation=Hardswish))
    last = adjust(_LAST[name])
    classifier = Sequential(
        Linear(last_out, last),
        Hardswish(inplace=True),
        Dropout(p=0.2, inplace=True),
        Linear(last, num_classes),
    )
    return _head(features, {"avgpool": AdaptiveAvgPool2d(1), "classifier": classifier}, pool=True)


def mobilenet(name: str, num_classes: int, width_mult: float = 1.0) -> Block:
    """The root of torchvision's ``name`` (one of :data:`MODELS`)."""
    if name == "mobilenet_v2":
        return _v2(num_classes, width_mult)
    return _v3(name, num_classes, width_mult)
