"""``shapecalc gru``: the recurrent language model with a GRU."""

from __future__ import annotations

from typing import Any, ClassVar

from shapecalc.architectures import _recurrent as lm
from shapecalc.architectures._recurrent import RecurrentLanguageModel
from shapecalc.core.frozen import frozen
from shapecalc.layers.recurrent import GRU

__all__ = ["GRULanguageModel", "gru_lm"]


@frozen
class GRULanguageModel(RecurrentLanguageModel):
    """A GRU language model: embedding (V -> E), L-layer GRU (H), head (-> V); the GRU has
    3 gates (r, z, n) where the LSTM has 4.

    Example:

        >>> gru_lm(vocab=65, hidden=512, layers=2).total
        3218497
    """

    command: ClassVar[str] = "gru"
    function: ClassVar[str] = "gru_lm"
    title: ClassVar[str] = "GRU language model"
    example: ClassVar[str] = "--layers 2 --hidden 512 --vocab 65"
    explains: ClassVar[str] = "Explain the GRU equations, its matrices and their shapes."
    extra_options: ClassVar[tuple[str, ...]] = ("reset-after",)
    cell: ClassVar[type[GRU]] = GRU

    vocab: Any = lm.vocab()
    hidden: Any = lm.hidden()
    layers: Any = lm.layers("GRU")
    embed_dim: Any = lm.embed_dim()
    one_hot: bool = lm.one_hot("GRU")
    bias: bool = lm.bias("GRU")
    bidirectional: bool = lm.bidirectional("GRU")
    tie_weights: bool = lm.tie_weights()
    dropout: float = lm.dropout("GRU")
    batch_first: bool = lm.batch_first()


gru_lm = GRULanguageModel.function_for()
