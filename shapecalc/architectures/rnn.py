"""``shapecalc rnn``: the recurrent language model with an Elman RNN."""

from __future__ import annotations

from typing import Any, ClassVar

from shapecalc.architectures import _recurrent as lm
from shapecalc.architectures._recurrent import RecurrentLanguageModel
from shapecalc.core.declare import choice
from shapecalc.core.frozen import frozen
from shapecalc.layers.recurrent import NONLINEARITIES, RNN

__all__ = ["RNNLanguageModel", "rnn_lm"]


@frozen
class RNNLanguageModel(RecurrentLanguageModel):
    """An RNN language model: embedding (V -> E), L-layer Elman RNN (H), head (-> V);
    h_t = tanh(W_ih x_t + W_hh h_(t-1) + b).

    Example:

        >>> rnn_lm(vocab=65, hidden=512, layers=2).total
        1117249
    """

    command: ClassVar[str] = "rnn"
    function: ClassVar[str] = "rnn_lm"
    title: ClassVar[str] = "RNN language model"
    example: ClassVar[str] = "--layers 2 --hidden 512 --vocab 65"
    explains: ClassVar[str] = "Explain the RNN equations, its matrices and their shapes."
    cell: ClassVar[type[RNN]] = RNN

    vocab: Any = lm.vocab()
    hidden: Any = lm.hidden()
    layers: Any = lm.layers("RNN")
    embed_dim: Any = lm.embed_dim()
    one_hot: bool = lm.one_hot("RNN")
    bias: bool = lm.bias("RNN")
    bidirectional: bool = lm.bidirectional("RNN")
    tie_weights: bool = lm.tie_weights()
    dropout: float = lm.dropout("RNN")
    nonlinearity: str = choice(NONLINEARITIES, "The RNN's activation.", "tanh")
    batch_first: bool = lm.batch_first()


rnn_lm = RNNLanguageModel.function_for()
