"""ConvNeXt tiny, small, base and large, as torchvision/models/convnext.py builds them:
each builder's CNBlockConfigs (channels and blocks per stage) and stochastic depth
probability, the probability of block i of n being ``p · i / (n - 1)``."""

from __future__ import annotations

from shapecalc.architectures._vision import CONVNEXT
from shapecalc.architectures._vision import convnext as compose
from shapecalc.core.tree import Block

__all__ = ["MODELS", "convnext"]

#: name -> the size of :data:`shapecalc.architectures._vision.CONVNEXT` it builds
MODELS: dict[str, str] = {f"convnext_{size}": size for size in CONVNEXT}


def convnext(name: str, num_classes: int) -> Block:
    """The root of torchvision's ``name`` (a key of :data:`MODELS`)."""
    root = compose(MODELS[name], num_classes).root
    assert isinstance(root, Block)
    return root
