"""Layer specs, one module per family. The families load on first use: importing this
package costs nothing, and :func:`load_all` (which reading ``LAYER_KINDS`` calls) imports
every family so that the registry is complete."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from shapecalc.core.spec import REGISTERED, LayerSpec

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
    "activation": (
        "ELU",
        "GELU",
        "Hardswish",
        "LeakyReLU",
        "LogSoftmax",
        "Mish",
        "PReLU",
        "ReLU",
        "ReLU6",
        "SiLU",
        "Sigmoid",
        "Softmax",
        "Softplus",
        "Tanh",
    ),
    "pooling": (
        "AdaptiveAvgPool1d",
        "AdaptiveAvgPool2d",
        "AdaptiveAvgPool3d",
        "AdaptiveMaxPool1d",
        "AdaptiveMaxPool2d",
        "AdaptiveMaxPool3d",
        "AvgPool1d",
        "AvgPool2d",
        "AvgPool3d",
        "MaxPool1d",
        "MaxPool2d",
        "MaxPool3d",
        "Upsample",
    ),
}
_MODULE_OF = {name: module for module, names in FAMILY_MODULES.items() for name in names}

__all__ = [
    "ELU",
    "GELU",
    "GRU",
    "LAYER_KINDS",
    "LSTM",
    "RNN",
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AdaptiveAvgPool3d",
    "AdaptiveMaxPool1d",
    "AdaptiveMaxPool2d",
    "AdaptiveMaxPool3d",
    "AvgPool1d",
    "AvgPool2d",
    "AvgPool3d",
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
    "Hardswish",
    "Identity",
    "InstanceNorm1d",
    "InstanceNorm2d",
    "InstanceNorm3d",
    "LSTMCell",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "LogSoftmax",
    "MaxPool1d",
    "MaxPool2d",
    "MaxPool3d",
    "Mish",
    "MultiheadAttention",
    "PReLU",
    "RMSNorm",
    "RNNCell",
    "ReLU",
    "ReLU6",
    "RecurrentSpec",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Tanh",
    "TransformerDecoderLayer",
    "TransformerEncoderLayer",
    "Upsample",
    "load_all",
]


def load_all() -> None:
    """Import every family module (each registers its kinds)."""
    for module in FAMILY_MODULES:
        importlib.import_module(f"shapecalc.layers.{module}")


class _Registry(Mapping[str, "type[LayerSpec]"]):
    """Every layer kind by its torch.nn class name. Reading it loads every family module
    first (they load lazily); registering (``shapecalc.core.spec.register``) does not."""

    def __init__(self) -> None:
        self._complete = False

    def _all(self) -> dict[str, type[LayerSpec]]:
        if not self._complete:
            self._complete = True
            load_all()
        return REGISTERED

    def __getitem__(self, kind: str) -> type[LayerSpec]:
        return self._all()[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __contains__(self, kind: object) -> bool:
        return kind in self._all()


#: every registered layer kind by its torch.nn class name
LAYER_KINDS = _Registry()


def __getattr__(name: str) -> Any:
    if name in _MODULE_OF:
        return getattr(importlib.import_module(f"shapecalc.layers.{_MODULE_OF[name]}"), name)
    raise AttributeError(f"module 'shapecalc.layers' has no attribute {name!r}")


if TYPE_CHECKING:
    from shapecalc.layers.activation import (
        ELU,
        GELU,
        Hardswish,
        LeakyReLU,
        LogSoftmax,
        Mish,
        PReLU,
        ReLU,
        ReLU6,
        Sigmoid,
        SiLU,
        Softmax,
        Softplus,
        Tanh,
    )
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
    from shapecalc.layers.pooling import (
        AdaptiveAvgPool1d,
        AdaptiveAvgPool2d,
        AdaptiveAvgPool3d,
        AdaptiveMaxPool1d,
        AdaptiveMaxPool2d,
        AdaptiveMaxPool3d,
        AvgPool1d,
        AvgPool2d,
        AvgPool3d,
        MaxPool1d,
        MaxPool2d,
        MaxPool3d,
        Upsample,
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
