"""Torch twins: every architecture written by hand in PyTorch, independently of the engine,
with the names its users know. ``TWINS[command](config)`` builds the twin of a
configuration on the meta device (allocating nothing); tests/test_architectures.py
compares every name, shape and total with the model shapecalc describes.

Adding an architecture adds its twin here (tests/test_architectures.py fails without it).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn


class TorchLM(nn.Module):  # type: ignore[misc]
    """The recurrent language model written by hand in PyTorch, independently of the engine."""

    def __init__(
        self,
        vocab: int,
        hidden: int,
        layers: int = 1,
        embed_dim: int | None = None,
        one_hot: bool = False,
        bias: bool = True,
        bidirectional: bool = False,
        proj_size: int = 0,
        tie_weights: bool = False,
        dropout: float = 0.0,
        cell: str = "lstm",
        nonlinearity: str = "tanh",
    ) -> None:
        super().__init__()
        embed = embed_dim or hidden
        if not one_hot:
            self.embedding = nn.Embedding(vocab, embed, device="meta")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            extra: dict[str, Any] = {"proj_size": proj_size} if cell == "lstm" else {}
            if cell == "rnn":
                extra["nonlinearity"] = nonlinearity
            rnn = getattr(nn, cell.upper())(
                vocab if one_hot else embed,
                hidden,
                num_layers=layers,
                bias=bias,
                dropout=dropout,
                bidirectional=bidirectional,
                device="meta",
                **extra,
            )
            setattr(self, cell, rnn)  # registered before the head, as in the spec
        directions = 2 if bidirectional else 1
        self.head = nn.Linear(directions * (proj_size or hidden), vocab, bias=bias, device="meta")
        if tie_weights:
            self.head.weight = self.embedding.weight


def recurrent_twin(cell: str) -> Callable[[Any], Any]:
    def make(config: Any) -> Any:
        args = config.arguments()
        args.pop("batch_first")
        return TorchLM(**args, cell=cell)

    return make


def mlp_twin(config: Any) -> Any:
    """The multilayer perceptron as torch users write it: Linear, activation, dropout."""
    activation = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
    activation["silu"] = nn.SiLU
    layers: list[Any] = []
    width = config.inputs
    for _ in range(config.layers):
        layers += [nn.Linear(width, config.hidden, bias=config.bias, device="meta")]
        layers.append(activation[config.activation]())
        if config.dropout:
            layers.append(nn.Dropout(config.dropout))
        width = config.hidden
    layers.append(nn.Linear(width, config.outputs, bias=config.bias, device="meta"))
    return nn.Sequential(*layers)


#: command -> a function of the architecture's configuration giving its torch twin
TWINS: dict[str, Callable[[Any], Any]] = {
    "lstm": recurrent_twin("lstm"),
    "gru": recurrent_twin("gru"),
    "rnn": recurrent_twin("rnn"),
    "mlp": mlp_twin,
}
