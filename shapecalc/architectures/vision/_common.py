"""What torchvision's classification models share: ``Conv2dNormActivation``,
``SqueezeExcitation`` and ``_make_divisible``, as torchvision/ops/misc.py and
torchvision/models/_utils.py write them."""

from __future__ import annotations

from typing import Any

from shapecalc.core.flow import multiply
from shapecalc.core.tree import Block, Sequential
from shapecalc.layers.activation import ReLU
from shapecalc.layers.conv import Conv2d
from shapecalc.layers.norm import BatchNorm2d
from shapecalc.layers.pooling import AdaptiveAvgPool2d

__all__ = ["conv_norm_act", "make_divisible", "norm", "squeeze_excitation"]


def make_divisible(v: float, divisor: int, min_value: int | None = None) -> int:
    """torchvision's ``_make_divisible``: ``v`` rounded to a multiple of ``divisor``, not
    below ``min_value`` (the divisor) nor more than 10% below ``v``."""
    least = divisor if min_value is None else min_value
    new_v = max(least, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def norm(eps: float = 1e-5, momentum: float = 0.1) -> Any:
    """A ``BatchNorm2d`` maker with torchvision's ``partial(nn.BatchNorm2d, ...)`` settings."""

    def make(channels: int) -> BatchNorm2d:
        return BatchNorm2d(channels, eps=eps, momentum=momentum)

    return make


def conv_norm_act(
    cin: int,
    cout: int,
    kernel_size: int = 3,
    stride: int = 1,
    *,
    groups: int = 1,
    dilation: int = 1,
    bn: Any = None,
    activation: Any = ReLU,
) -> Block:
    """``Conv2dNormActivation``: conv (padding (k - 1)//2 · dilation, no bias), norm, and
    the activation made with ``inplace=True`` (None: no activation)."""
    make_norm = bn or norm()
    layers: list[Any] = [
        Conv2d(
            cin,
            cout,
            kernel_size,
            stride,
            (kernel_size - 1) // 2 * dilation,
            dilation=dilation,
            groups=groups,
            bias=False,
        ),
        make_norm(cout),
    ]
    if activation is not None:
        layers.append(activation(inplace=True))
    return Sequential(*layers)


def squeeze_excitation(
    channels: int, squeeze: int, activation: Any, scale_activation: Any
) -> Block:
    """``SqueezeExcitation``: ``scale * input``, the scale from avgpool, fc1 (1×1 conv),
    the activation, fc2 and the scale activation."""
    return Block(
        "SqueezeExcitation",
        {
            "avgpool": AdaptiveAvgPool2d(1),
            "fc1": Conv2d(channels, squeeze, 1),
            "fc2": Conv2d(squeeze, channels, 1),
            "activation": activation,
            "scale_activation": scale_activation,
        },
        flow=multiply(("avgpool", "fc1", "activation", "fc2", "scale_activation"), ()),
    )
