"""shapecalc: which matrices a network has, their exact PyTorch shapes, counts and formulas.

    >>> import shapecalc
    >>> shapecalc.lstm_lm(vocab=65, hidden=512, layers=2).total
    4269121

Importing shapecalc imports neither torch, rich, click nor sympy, and the names below are
loaded on first use, so a command pays only for the parts it runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> the module that defines it
_WHERE = {
    "gru_lm": "architectures",
    "layer_model": "architectures",
    "lstm_lm": "architectures",
    "rnn_lm": "architectures",
    "Cost": "cost",
    "analyze": "cost",
    "Dim": "dims",
    "Expr": "dims",
    "symbol": "dims",
    "InvalidArgumentError": "errors",
    "MissingDependencyError": "errors",
    "ShapeError": "errors",
    "ShapecalcError": "errors",
    "TieError": "errors",
    "DTYPE_BYTES": "model",
    "Layer": "model",
    "Model": "model",
    "Row": "model",
    "Candidate": "sizing",
    "Solution": "sizing",
    "parse_budget": "sizing",
    "solve": "sizing",
    "LAYER_KINDS": "spec",
    "build": "torch_bridge",
    "from_module": "torch_bridge",
    "compare": "torch_bridge",
    "assert_matches": "torch_bridge",
    "MismatchError": "torch_bridge",
    "read_checkpoint": "checkpoint",
    "LayerSpec": "spec",
    "Param": "spec",
}

__all__ = [
    "DTYPE_BYTES",
    "LAYER_KINDS",
    "LSTM",
    "Candidate",
    "Cost",
    "Dim",
    "Embedding",
    "Expr",
    "InvalidArgumentError",
    "Layer",
    "LayerSpec",
    "Linear",
    "MismatchError",
    "MissingDependencyError",
    "Model",
    "Param",
    "Row",
    "ShapeError",
    "ShapecalcError",
    "Solution",
    "TieError",
    "__version__",
    "analyze",
    "assert_matches",
    "build",
    "compare",
    "from_module",
    "gru_lm",
    "layer_model",
    "lstm_lm",
    "parse_budget",
    "read_checkpoint",
    "rnn_lm",
    "solve",
    "symbol",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(f"shapecalc.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    if name.startswith("_") or not name[:1].isupper():
        raise AttributeError(f"module 'shapecalc' has no attribute {name!r}")
    spec = importlib.import_module("shapecalc.spec")
    if name in spec.LAYER_KINDS:  # layer kinds: shapecalc.LSTM, shapecalc.Conv2d, ...
        return spec.LAYER_KINDS[name]
    raise AttributeError(f"module 'shapecalc' has no attribute {name!r}")


def __dir__() -> list[str]:
    spec = importlib.import_module("shapecalc.spec")
    return sorted({*__all__, *spec.LAYER_KINDS})


if TYPE_CHECKING:  # the static view of the lazy names above
    from shapecalc.architectures import gru_lm, layer_model, lstm_lm, rnn_lm
    from shapecalc.checkpoint import read_checkpoint
    from shapecalc.cost import Cost, analyze
    from shapecalc.dims import Dim, Expr, symbol
    from shapecalc.errors import (
        InvalidArgumentError,
        MissingDependencyError,
        ShapecalcError,
        ShapeError,
        TieError,
    )
    from shapecalc.layers.embedding import Embedding
    from shapecalc.layers.linear import Linear
    from shapecalc.layers.recurrent import LSTM
    from shapecalc.model import DTYPE_BYTES, Layer, Model, Row
    from shapecalc.sizing import Candidate, Solution, parse_budget, solve
    from shapecalc.spec import LAYER_KINDS, LayerSpec, Param
    from shapecalc.torch_bridge import (
        MismatchError,
        assert_matches,
        build,
        compare,
        from_module,
    )
