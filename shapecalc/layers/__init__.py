"""Layer specs, one module per family. The families load on first use: importing this
package costs nothing, and :func:`load_all` (which reading ``LAYER_KINDS`` calls) imports
every family so that the registry is complete."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: family module -> the kinds it defines
FAMILY_MODULES = {
    "recurrent": ("GRU", "LSTM", "RNN", "GRUCell", "LSTMCell", "RNNCell", "RecurrentSpec"),
    "linear": ("Bilinear", "Dropout", "Flatten", "Identity", "Linear"),
    "embedding": ("Embedding", "EmbeddingBag"),
    "conv": (
        "Conv1d",
        "Conv2d",
        "Conv3d",
        "ConvTranspose1d",
        "ConvTranspose2d",
        "ConvTranspose3d",
    ),
    "norm": (
        "BatchNorm1d",
        "BatchNorm2d",
        "BatchNorm3d",
        "GroupNorm",
        "InstanceNorm1d",
        "InstanceNorm2d",
        "InstanceNorm3d",
        "LayerNorm",
        "RMSNorm",
    ),
    "attention": ("MultiheadAttention", "TransformerDecoderLayer", "TransformerEncoderLayer"),
    "activation": ("PReLU",),
}
_MODULE_OF = {name: module for module, names in FAMILY_MODULES.items() for name in names}

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNorm3d",
    "Bilinear",
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
    "Dropout",
    "Embedding",
    "EmbeddingBag",
    "Flatten",
    "GRUCell",
    "GroupNorm",
    "Identity",
    "InstanceNorm1d",
    "InstanceNorm2d",
    "InstanceNorm3d",
    "LSTMCell",
    "LayerNorm",
    "Linear",
    "MultiheadAttention",
    "PReLU",
    "RMSNorm",
    "RNNCell",
    "RecurrentSpec",
    "TransformerDecoderLayer",
    "TransformerEncoderLayer",
    "load_all",
]


def load_all() -> None:
    """Import every family module (each registers its kinds)."""
    for module in FAMILY_MODULES:
        importlib.import_module(f"shapecalc.layers.{module}")


def __getattr__(name: str) -> Any:
    if name in _MODULE_OF:
        return getattr(importlib.import_module(f"shapecalc.layers.{_MODULE_OF[name]}"), name)
    raise AttributeError(f"module 'shapecalc.layers' has no attribute {name!r}")


if TYPE_CHECKING:
    from shapecalc.layers.activation import PReLU
    from shapecalc.layers.attention import (
        MultiheadAttention,
        TransformerDecoderLayer,
        TransformerEncoderLayer,
    )
    from shapecalc.layers.conv import (
        Conv1d,
        Conv2d,
        Conv3d,
        ConvTranspose1d,
        ConvTranspose2d,
        ConvTranspose3d,
    )
    from shapecalc.layers.embedding import Embedding, EmbeddingBag
    from shapecalc.layers.linear import Bilinear, Dropout, Flatten, Identity, Linear
    from shapecalc.layers.norm import (
        BatchNorm1d,
        BatchNorm2d,
        BatchNorm3d,
        GroupNorm,
        InstanceNorm1d,
        InstanceNorm2d,
        InstanceNorm3d,
        LayerNorm,
        RMSNorm,
    )
    from shapecalc.layers.recurrent import (
        GRU,
        LSTM,
        RNN,
        GRUCell,
        LSTMCell,
        RecurrentSpec,
        RNNCell,
    )
