"""shapecalc: which matrices a network has, their exact PyTorch shapes, counts and formulas.

>>> import shapecalc
>>> shapecalc.lstm_lm(vocab=65, hidden=512, layers=2).total
4269121

Importing shapecalc imports neither torch, rich, click nor sympy.
"""

from shapecalc.architectures import gru_lm, layer_model, lstm_lm, rnn_lm
from shapecalc.dims import Dim, Expr, symbol
from shapecalc.errors import (
    InvalidArgumentError,
    MissingDependencyError,
    ShapecalcError,
    TieError,
)
from shapecalc.layers import LSTM, Embedding, Linear
from shapecalc.model import DTYPE_BYTES, Layer, Model, Row
from shapecalc.solve import Candidate, Solution, parse_budget, solve
from shapecalc.spec import LAYER_KINDS, LayerSpec, Param

__version__ = "0.1.0"

__all__ = [
    "DTYPE_BYTES",
    "LAYER_KINDS",
    "LSTM",
    "Candidate",
    "Dim",
    "Embedding",
    "Expr",
    "InvalidArgumentError",
    "Layer",
    "LayerSpec",
    "Linear",
    "MissingDependencyError",
    "Model",
    "Param",
    "Row",
    "ShapecalcError",
    "Solution",
    "TieError",
    "__version__",
    "gru_lm",
    "layer_model",
    "lstm_lm",
    "parse_budget",
    "rnn_lm",
    "solve",
    "symbol",
]
