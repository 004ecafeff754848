"""Swin Transformer V1 (swin_t, swin_s, swin_b) and V2 (swin_v2_t, swin_v2_s, swin_v2_b),
as torchvision/models/swin_transformer.py builds them: patch 4, window 7 (V2: 8, with
cosine attention, the position bias from a small MLP, and the norms after the attention,
the MLP and the patch merging's reduction), each builder's embed_dim, depths, num_heads
and stochastic depth probability. The windows are padded to the feature map, as
``shifted_window_attention`` pads them, so any image size the 4×4 patches and the
PatchMerging steps take is taken."""

from __future__ import annotations

from shapecalc.architectures._vision import SWIN, SWIN_V2
from shapecalc.architectures._vision import swin as compose
from shapecalc.core.tree import Block

__all__ = ["MODELS", "swin"]

#: name -> the size of :data:`shapecalc.architectures._vision.SWIN` it builds
MODELS: dict[str, str] = {f"swin_{size}": size for size in (*SWIN, *SWIN_V2)}


def swin(name: str, num_classes: int) -> Block:
    """The root of torchvision's ``name`` (a key of :data:`MODELS`)."""
    root = compose(MODELS[name], num_classes).root
    assert isinstance(root, Block)
    return root
