"""Layer specs, one module per family; importing this package registers them all."""

from shapecalc.layers.embedding import Embedding
from shapecalc.layers.linear import Linear
from shapecalc.layers.recurrent import LSTM, RecurrentSpec

__all__ = ["LSTM", "Embedding", "Linear", "RecurrentSpec"]
