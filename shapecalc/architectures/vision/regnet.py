"""RegNet X and Y, every size torchvision publishes, as torchvision/models/regnet.py builds
them: the stage widths and depths computed from (depth, w_0, w_a, w_m, group width) as
``BlockParams.from_init_params`` computes them, in float32 as its tensors do."""

from __future__ import annotations

import math
import struct
from typing import Any

from shapecalc.architectures.vision._common import conv_norm_act, make_divisible, squeeze_excitation
from shapecalc.core.flow import chain, residual
from shapecalc.core.tree import Block
from shapecalc.layers.activation import ReLU, Sigmoid
from shapecalc.layers.linear import Flatten, Linear
from shapecalc.layers.pooling import AdaptiveAvgPool2d

__all__ = ["MODELS", "regnet", "stages"]

#: name -> (depth, w_0, w_a, w_m, group_width, se_ratio), as the builders of regnet.py give them
MODELS: dict[str, tuple[int, int, float, float, int, float | None]] = {
    "regnet_y_400mf": (16, 48, 27.89, 2.09, 8, 0.25),
    "regnet_y_800mf": (14, 56, 38.84, 2.4, 16, 0.25),
    "regnet_y_1_6gf": (27, 48, 20.71, 2.65, 24, 0.25),
    "regnet_y_3_2gf": (21, 80, 42.63, 2.66, 24, 0.25),
    "regnet_y_8gf": (17, 192, 76.82, 2.19, 56, 0.25),
    "regnet_y_16gf": (18, 200, 106.23, 2.48, 112, 0.25),
    "regnet_y_32gf": (20, 232, 115.89, 2.53, 232, 0.25),
    "regnet_y_128gf": (27, 456, 160.83, 2.52, 264, 0.25),
    "regnet_x_400mf": (22, 24, 24.48, 2.54, 16, None),
    "regnet_x_800mf": (16, 56, 35.73, 2.28, 16, None),
    "regnet_x_1_6gf": (18, 80, 34.01, 2.25, 24, None),
    "regnet_x_3_2gf": (25, 88, 26.31, 2.25, 48, None),
    "regnet_x_8gf": (23, 80, 49.56, 2.88, 120, None),
    "regnet_x_16gf": (22, 216, 55.59, 2.1, 128, None),
    "regnet_x_32gf": (23, 320, 69.86, 2.0, 168, None),
}


def _f32(x: float) -> float:
    """``x`` rounded to float32, as a float32 tensor holds it."""
    value: float = struct.unpack("f", struct.pack("f", x))[0]
    return value


def stages(name: str) -> list[tuple[int, int, int]]:
    """Each stage's (width, depth, group width) for ``name``, as ``from_init_params`` and
    ``_adjust_widths_groups_compatibilty`` compute them (bottleneck multiplier 1)."""
    depth, w_0, w_a, w_m, group_width, _ = MODELS[name]
    quant = 8
    log_m = _f32(math.log(w_m))
    widths = []
    for i in range(depth):
        cont = _f32(_f32(i * _f32(w_a)) + w_0)  # torch.arange(depth) * w_a + w_0
        capacity = round(_f32(_f32(math.log(_f32(cont / w_0))) / log_m))
        power = _f32(_f32(w_m) ** capacity)
        widths.append(int(round(_f32(_f32(w_0 * power) / quant)) * quant))
    out: list[tuple[int, int, int]] = []
    for w in widths:
        if out and out[-1][0] == w:
            out[-1] = (w, out[-1][1] + 1, 0)
        else:
            out.append((w, 1, 0))
    adjusted = []
    for w, d, _ in out:
        g = min(group_width, w)
        adjusted.append((make_divisible(w, g), d, g))
    return adjusted


def _block(cin: int, cout: int, stride: int, group_width: int, se_ratio: float | None) -> Block:
    w_b = cout  # bottleneck multiplier 1
    groups = w_b // group_width
    f: dict[str, Any] = {
        "a": conv_norm_act(cin, w_b, 1),
        "b": conv_norm_act(w_b, w_b, 3, stride, groups=groups),
    }
    if se_ratio:
        f["se"] = squeeze_excitation(w_b, round(se_ratio * cin), ReLU(), Sigmoid())
    f["c"] = conv_norm_act(w_b, cout, 1, activation=None)
    children: dict[str, Any] = {}
    project = cin != cout or stride != 1
    if project:
        children["proj"] = conv_norm_act(cin, cout, 1, stride, activation=None)
    children["f"] = Block("BottleneckTransform", f)
    children["activation"] = ReLU(inplace=True)
    body = residual("f", shortcut=("proj",) if project else ())
    return Block("ResBottleneckBlock", children, flow=chain(body, "activation"))


def regnet(name: str, num_classes: int) -> Block:
    """The root of torchvision's ``name`` (a key of :data:`MODELS`)."""
    se_ratio = MODELS[name][5]
    width = 32
    trunk: dict[str, Any] = {}
    for i, (cout, depth, group_width) in enumerate(stages(name), start=1):
        blocks = {
            f"block{i}-{j}": _block(
                width if j == 0 else cout, cout, 2 if j == 0 else 1, group_width, se_ratio
            )
            for j in range(depth)
        }
        trunk[f"block{i}"] = Block("AnyStage", blocks)
        width = cout
    return Block(
        "RegNet",
        {
            "stem": conv_norm_act(3, 32, 3, 2),
            "trunk_output": Block("Sequential", trunk),
            "avgpool": AdaptiveAvgPool2d((1, 1)),
            "fc": Linear(width, num_classes),
        },
        flow=chain("stem", "trunk_output", "avgpool", Flatten(1), "fc"),
    )
