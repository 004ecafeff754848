"""ResNet-18 and ResNet-50 with shapecalc's composition API, in torchvision's names.

This is the example of docs/howto/compose.md, run by tests/test_zoo.py against a torch twin
written as torchvision's ``resnet.py`` writes it.
"""

from __future__ import annotations

from typing import Any

from shapecalc import (
    AdaptiveAvgPool2d,
    BatchNorm2d,
    Block,
    Conv2d,
    Flatten,
    Linear,
    MaxPool2d,
    Model,
    ReLU,
    Sequential,
    chain,
    residual,
)


def conv3x3(cin: Any, cout: Any, stride: int = 1) -> Conv2d:
    return Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def conv1x1(cin: Any, cout: Any, stride: int = 1) -> Conv2d:
    return Conv2d(cin, cout, 1, stride=stride, bias=False)


def basic_block(cin: Any, planes: Any, stride: int = 1) -> Block:
    """x -> relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), as torchvision's BasicBlock."""
    children: dict[str, Any] = {
        "conv1": conv3x3(cin, planes, stride),
        "bn1": BatchNorm2d(planes),
        "relu": ReLU(inplace=True),
        "conv2": conv3x3(planes, planes),
        "bn2": BatchNorm2d(planes),
    }
    shortcut: tuple[str, ...] = ()
    if stride != 1 or cin != planes:
        children["downsample"] = Sequential(conv1x1(cin, planes, stride), BatchNorm2d(planes))
        shortcut = ("downsample",)
    body = residual("conv1", "bn1", "relu", "conv2", "bn2", shortcut=shortcut)
    return Block("BasicBlock", children, flow=chain(body, "relu"))


def bottleneck(cin: Any, planes: Any, stride: int = 1) -> Block:
    """1x1 down to ``planes``, 3x3 (strided), 1x1 up to 4 x planes; torchvision's Bottleneck
    (ResNet v1.5: the stride on the 3x3)."""
    out = planes * 4
    children: dict[str, Any] = {
        "conv1": conv1x1(cin, planes),
        "bn1": BatchNorm2d(planes),
        "conv2": conv3x3(planes, planes, stride),
        "bn2": BatchNorm2d(planes),
        "conv3": conv1x1(planes, out),
        "bn3": BatchNorm2d(out),
        "relu": ReLU(inplace=True),
    }
    shortcut: tuple[str, ...] = ()
    if stride != 1 or cin != out:
        children["downsample"] = Sequential(conv1x1(cin, out, stride), BatchNorm2d(out))
        shortcut = ("downsample",)
    body = residual(
        "conv1", "bn1", "relu", "conv2", "bn2", "relu", "conv3", "bn3", shortcut=shortcut
    )
    return Block("Bottleneck", children, flow=chain(body, "relu"))


def resnet(depth: int, classes: int = 1000) -> Model:
    """ResNet-18, 34, 50, 101 or 152 as torchvision builds it."""
    block, expansion, blocks = {
        18: (basic_block, 1, (2, 2, 2, 2)),
        34: (basic_block, 1, (3, 4, 6, 3)),
        50: (bottleneck, 4, (3, 4, 6, 3)),
        101: (bottleneck, 4, (3, 4, 23, 3)),
        152: (bottleneck, 4, (3, 8, 36, 3)),
    }[depth]
    stages: dict[str, Any] = {}
    cin = 64
    for i, (planes, count) in enumerate(zip((64, 128, 256, 512), blocks, strict=True)):
        first = block(cin, planes, 1 if i == 0 else 2)
        cin = planes * expansion
        stages[f"layer{i + 1}"] = Sequential(first, *[block(cin, planes) for _ in range(count - 1)])
    root = Block(
        "ResNet",
        {
            "conv1": Conv2d(3, 64, 7, stride=2, padding=3, bias=False),
            "bn1": BatchNorm2d(64),
            "relu": ReLU(inplace=True),
            "maxpool": MaxPool2d(3, stride=2, padding=1),
            **stages,
            "avgpool": AdaptiveAvgPool2d((1, 1)),
            "fc": Linear(512 * expansion, classes),
        },
        flow=chain("conv1", "bn1", "relu", "maxpool", *stages, "avgpool", Flatten(1), "fc"),
    )
    return Model(f"ResNet-{depth}", root, input_layout=(("B", 3, 224, 224),))
