"""``shapecalc lstm``: the LSTM language model of the question shapecalc started from."""

from __future__ import annotations

from typing import Any, ClassVar

from shapecalc.architectures import _recurrent as lm
from shapecalc.architectures._recurrent import RecurrentLanguageModel
from shapecalc.core.declare import size
from shapecalc.core.frozen import frozen
from shapecalc.layers._lstm import LSTM

__all__ = ["LSTMLanguageModel", "lstm_lm"]


@frozen
class LSTMLanguageModel(RecurrentLanguageModel):
    """An LSTM language model: embedding (V -> E), L-layer LSTM (H), head (-> V).

    ``embed_dim`` (E) defaults to ``hidden`` (H). ``one_hot`` drops the embedding: the LSTM
    reads the one-hot vector of size V, as the original char-rnn did. ``bias=False`` removes
    the biases of the LSTM and of the head. ``tie_weights`` makes the head share the
    embedding matrix (needs E == D·H_out). Sizes are ints or size names ("H").
    ``batch_first`` (as in PyTorch; True here) makes the input (B, T) token ids rather
    than (T, B).

        >>> m = lstm_lm(vocab=65, hidden=512, layers=2)
        >>> m.total
        4269121
        >>> print(m.total_formula)
        16·H² + 2·V·H + 16·H + V
        >>> [r.name for r in m.rows()][:3]
        ['embedding.weight', 'lstm.weight_ih_l0', 'lstm.weight_hh_l0']
    """

    command: ClassVar[str] = "lstm"
    function: ClassVar[str] = "lstm_lm"
    title: ClassVar[str] = "LSTM language model"
    example: ClassVar[str] = "--layers 2 --hidden 512 --vocab 65"
    explains: ClassVar[str] = "Explain the LSTM equations, its matrices and their shapes."
    cell: ClassVar[type[LSTM]] = LSTM

    vocab: Any = lm.vocab()
    hidden: Any = lm.hidden()
    layers: Any = lm.layers("LSTM")
    embed_dim: Any = lm.embed_dim()
    one_hot: bool = lm.one_hot("LSTM")
    bias: bool = lm.bias("LSTM")
    bidirectional: bool = lm.bidirectional("LSTM")
    proj_size: Any = size(
        "P",
        "Project h_t down to this size (LSTM proj_size); 0 for none.",
        0,
        minimum=0,
        unset=0,
        below="hidden",
        solvable=False,
    )
    tie_weights: bool = lm.tie_weights()
    dropout: float = lm.dropout("LSTM")
    batch_first: bool = lm.batch_first()


lstm_lm = LSTMLanguageModel.function_for()
