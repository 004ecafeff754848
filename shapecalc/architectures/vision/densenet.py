"""DenseNet-121, 161, 169 and 201, as torchvision/models/densenet.py builds them: growth
rate, block config and initial features of each builder, bn_size 4."""

from __future__ import annotations

from shapecalc.architectures._vision import DENSENET
from shapecalc.architectures._vision import densenet as compose
from shapecalc.core.tree import Block

__all__ = ["MODELS", "densenet"]

#: name -> the depth of :data:`shapecalc.architectures._vision.DENSENET` it builds
MODELS: dict[str, int] = {f"densenet{depth}": depth for depth in DENSENET}


def densenet(name: str, num_classes: int) -> Block:
    """The root of torchvision's ``name`` (a key of :data:`MODELS`)."""
    root = compose(MODELS[name], num_classes).root
    assert isinstance(root, Block)
    return root
