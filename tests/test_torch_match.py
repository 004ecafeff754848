"""The language models against PyTorch models written by hand: exact names, shapes, order
and totals. (Every layer kind on its own: tests/test_layers_torch.py.)

Modules are built on the meta device, so large sizes allocate nothing.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import shapecalc
from tests.strategies import lstm_lm_args

torch = pytest.importorskip("torch")
nn = torch.nn


def torch_params(module: Any) -> list[tuple[str, tuple[int, ...]]]:
    return [(name, tuple(p.shape)) for name, p in module.named_parameters()]


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


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@given(data=st.data())
def test_language_models_equal_hand_written_torch_models(cell: str, data: st.DataObject) -> None:
    args = data.draw(lstm_lm_args(cell=cell))
    model = getattr(shapecalc, f"{cell}_lm")(**args)
    module = TorchLM(**args, cell=cell)
    assert model.named_parameters() == torch_params(module)
    assert model.total == sum(p.numel() for p in module.parameters())
    assert model.trainable == sum(p.numel() for p in module.parameters() if p.requires_grad)


def test_headline_against_torch() -> None:
    module = TorchLM(vocab=65, hidden=512, layers=2)
    assert sum(p.numel() for p in module.parameters()) == 4_269_121
    assert shapecalc.lstm_lm(vocab=65, hidden=512, layers=2).named_parameters() == torch_params(
        module
    )
