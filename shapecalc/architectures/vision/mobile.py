"""MNASNet (0.5, 0.75, 1.0, 1.3) and ShuffleNet V2 (×0.5, ×1.0, ×1.5, ×2.0), as
torchvision/models/mnasnet.py and shufflenetv2.py build them: MNASNet's stem and stacks
of inverted residuals (BatchNorm momentum 0.0003, widths rounded to multiples of 8 by
``_round_to_multiple_of``); ShuffleNet V2's units, which split the channels in two (or,
striding, run both halves from the whole input), join them and shuffle the channels;
both end in a mean over the map and one linear layer."""

from __future__ import annotations

from typing import Any

from shapecalc.core.flow import chain, each, parallel, residual
from shapecalc.core.tree import Block, Sequential
from shapecalc.layers.activation import ReLU
from shapecalc.layers.conv import Conv2d
from shapecalc.layers.linear import Dropout, Flatten, Linear
from shapecalc.layers.norm import BatchNorm2d
from shapecalc.layers.pooling import MaxPool2d
from shapecalc.layers.tensors import Cat, Mean, Split, Transpose, Unflatten

__all__ = ["BN_MOMENTUM", "MODELS", "mnasnet", "mobile", "shufflenet_v2"]

#: name -> its width (MNASNet's alpha, or ShuffleNet V2's stage channels)
MODELS: dict[str, Any] = {
    "mnasnet0_5": 0.5,
    "mnasnet0_75": 0.75,
    "mnasnet1_0": 1.0,
    "mnasnet1_3": 1.3,
    "shufflenet_v2_x0_5": (24, 48, 96, 192, 1024),
    "shufflenet_v2_x1_0": (24, 116, 232, 464, 1024),
    "shufflenet_v2_x1_5": (24, 176, 352, 704, 1024),
    "shufflenet_v2_x2_0": (24, 244, 488, 976, 2048),
}
#: mnasnet.py's ``_BN_MOMENTUM``
BN_MOMENTUM = 1 - 0.9997


def mobile(name: str, num_classes: int) -> Block:
    """The root of torchvision's ``name`` (a key of :data:`MODELS`)."""
    if name.startswith("mnasnet"):
        return mnasnet(MODELS[name], num_classes)
    return shufflenet_v2(MODELS[name], num_classes)


def _round_to_multiple_of(val: float, divisor: int, round_up_bias: float = 0.9) -> int:
    """mnasnet.py's ``_round_to_multiple_of``: round up unless within 10% above."""
    new_val = max(divisor, int(val + divisor / 2) // divisor * divisor)
    return new_val if new_val >= round_up_bias * val else new_val + divisor


def _bn(channels: int, momentum: float = 0.1) -> BatchNorm2d:
    return BatchNorm2d(channels, momentum=momentum)


def _inverted_residual(cin: int, cout: int, kernel: int, stride: int, expansion: int) -> Block:
    """mnasnet.py's ``_InvertedResidual``: 1×1 expand, k×k depthwise, 1×1 project, the
    input added back when the shape holds (same channels, stride 1)."""
    mid = cin * expansion
    layers = Sequential(
        Conv2d(cin, mid, 1, bias=False),
        _bn(mid, BN_MOMENTUM),
        ReLU(True),
        Conv2d(mid, mid, kernel, padding=kernel // 2, stride=stride, groups=mid, bias=False),
        _bn(mid, BN_MOMENTUM),
        ReLU(True),
        Conv2d(mid, cout, 1, bias=False),
        _bn(cout, BN_MOMENTUM),
    )
    keep = cin == cout and stride == 1
    return Block(
        "_InvertedResidual",
        {"layers": layers},
        flow=residual("layers") if keep else chain("layers"),
    )


def _stack(cin: int, cout: int, kernel: int, stride: int, expansion: int, repeats: int) -> Block:
    first = _inverted_residual(cin, cout, kernel, stride, expansion)
    rest = [_inverted_residual(cout, cout, kernel, 1, expansion) for _ in range(1, repeats)]
    return Sequential(first, *rest)


def mnasnet(alpha: float, num_classes: int = 1000) -> Block:
    """mnasnet.py's ``MNASNet(alpha)`` (its B1 variant): the stem, six stacks, a 1×1
    convolution to 1280, the mean over the map, dropout and the classifier."""
    d = [_round_to_multiple_of(w * alpha, 8) for w in (32, 16, 24, 40, 80, 96, 192, 320)]
    m = BN_MOMENTUM
    layers = Sequential(
        *(Conv2d(3, d[0], 3, padding=1, stride=2, bias=False), _bn(d[0], m), ReLU(True)),
        Conv2d(d[0], d[0], 3, padding=1, stride=1, groups=d[0], bias=False),
        *(_bn(d[0], m), ReLU(True)),
        *(Conv2d(d[0], d[1], 1, bias=False), _bn(d[1], m)),
        _stack(d[1], d[2], 3, 2, 3, 3),
        _stack(d[2], d[3], 5, 2, 3, 3),
        _stack(d[3], d[4], 5, 2, 6, 3),
        _stack(d[4], d[5], 3, 1, 6, 2),
        _stack(d[5], d[6], 5, 2, 6, 4),
        _stack(d[6], d[7], 3, 1, 6, 1),
        *(Conv2d(d[7], 1280, 1, bias=False), _bn(1280, m), ReLU(True)),
    )
    classifier = Sequential(Dropout(0.2, inplace=True), Linear(1280, num_classes))
    return Block(
        "MNASNet",
        {"layers": layers, "classifier": classifier},
        flow=chain("layers", Mean((2, 3)), "classifier"),
    )


def _shuffle(channels: int) -> tuple[Any, ...]:
    """shufflenetv2.py's ``channel_shuffle(x, 2)``: C viewed as (2, C/2), the two
    swapped, flattened back (torch copies to make it contiguous)."""
    return (Unflatten(1, (2, channels // 2)), Transpose(1, 2), Flatten(1, 2))


def _unit(cin: int, cout: int, stride: int) -> Block:
    """shufflenetv2.py's ``InvertedResidual``: stride 1 keeps half the channels and runs
    ``branch2`` on the other half; stride 2 runs ``branch1`` and ``branch2`` on the whole
    input; the halves joined, then shuffled."""
    half = cout // 2

    def depthwise(c: int) -> Conv2d:
        return Conv2d(c, c, 3, stride, 1, bias=False, groups=c)

    branch1 = (
        Sequential(
            depthwise(cin),
            BatchNorm2d(cin),
            Conv2d(cin, half, 1, bias=False),
            BatchNorm2d(half),
            ReLU(True),
        )
        if stride > 1
        else Sequential()
    )
    branch2 = Sequential(
        Conv2d(cin if stride > 1 else half, half, 1, bias=False),
        BatchNorm2d(half),
        ReLU(True),
        depthwise(half),
        BatchNorm2d(half),
        Conv2d(half, half, 1, bias=False),
        BatchNorm2d(half),
        ReLU(True),
    )
    steps = (parallel("branch1", "branch2"),) if stride > 1 else (Split(2, 1), each((), "branch2"))
    return Block(
        "InvertedResidual",
        {"branch1": branch1, "branch2": branch2},
        flow=chain(*steps, Cat(1), *_shuffle(cout)),
    )


def shufflenet_v2(channels: tuple[int, ...], num_classes: int = 1000) -> Block:
    """shufflenetv2.py's ``ShuffleNetV2([4, 8, 4], channels)``: conv1, a max pool, three
    stages (a striding unit, then units of stride 1), conv5, the mean over the map, fc."""
    children: dict[str, Any] = {
        "conv1": Sequential(
            Conv2d(3, channels[0], 3, 2, 1, bias=False), BatchNorm2d(channels[0]), ReLU(True)
        ),
        "maxpool": MaxPool2d(3, stride=2, padding=1),
    }
    cin = channels[0]
    for name, repeats, cout in zip(
        ("stage2", "stage3", "stage4"), (4, 8, 4), channels[1:4], strict=True
    ):
        units = [_unit(cin, cout, 2), *(_unit(cout, cout, 1) for _ in range(repeats - 1))]
        children[name] = Sequential(*units)
        cin = cout
    children["conv5"] = Sequential(
        Conv2d(cin, channels[-1], 1, bias=False), BatchNorm2d(channels[-1]), ReLU(True)
    )
    children["fc"] = Linear(channels[-1], num_classes)
    return Block(
        "ShuffleNetV2",
        children,
        flow=chain("conv1", "maxpool", "stage2", "stage3", "stage4", "conv5", Mean((2, 3)), "fc"),
    )
