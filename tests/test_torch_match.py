"""Every spec against the real PyTorch module: exact names, shapes, order and totals.

Modules are built on the meta device, so large sizes allocate nothing.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import shapecalc
from shapecalc import LSTM, Embedding, Linear
from shapecalc.spec import LayerSpec
from tests.strategies import embedding_args, linear_args, lstm_args, lstm_lm_args

torch = pytest.importorskip("torch")
nn = torch.nn


def torch_params(module: Any) -> list[tuple[str, tuple[int, ...]]]:
    return [(name, tuple(p.shape)) for name, p in module.named_parameters()]


def spec_params(spec: LayerSpec) -> list[tuple[str, tuple[Any, ...]]]:
    return [(p.name, p.shape) for p in spec.params()]


def build(kind: str, args: dict[str, Any]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dropout with one layer: torch warns, as it should
        return getattr(nn, kind)(**args, device="meta")


@pytest.mark.parametrize(
    ("spec_cls", "strategy"),
    [(Embedding, embedding_args()), (Linear, linear_args()), (LSTM, lstm_args())],
    ids=["Embedding", "Linear", "LSTM"],
)
@given(data=st.data())
def test_spec_names_and_shapes_equal_torch(
    spec_cls: type[LayerSpec], strategy: st.SearchStrategy[dict[str, Any]], data: st.DataObject
) -> None:
    args = data.draw(strategy)
    spec = spec_cls(**args)
    module = build(spec.kind, args)
    assert spec_params(spec) == torch_params(module)
    assert spec.total() == sum(p.numel() for p in module.parameters())
    # the spec's own arguments rebuild the same module (fields are torch's argument names)
    assert torch_params(build(spec.kind, spec.arguments())) == torch_params(module)


def _outcome(make: Any) -> bool:
    try:
        make()
    except (
        ValueError,
        TypeError,
        RuntimeError,
        AssertionError,
        IndexError,
        shapecalc.ShapecalcError,
    ):
        return False
    return True


LOOSE_SIZE = st.integers(min_value=-3, max_value=12)


@given(
    input_size=LOOSE_SIZE,
    hidden_size=LOOSE_SIZE,
    num_layers=st.integers(min_value=-1, max_value=3),
    proj_size=LOOSE_SIZE,
    dropout=st.sampled_from([-0.5, 0.0, 0.3, 1.0, 1.5]),
    bias=st.sampled_from([True, False, 1]),
)
def test_lstm_refuses_exactly_what_torch_refuses(**args: Any) -> None:
    assert _outcome(lambda: LSTM(**args)) == _outcome(lambda: build("LSTM", args))


@given(
    num_embeddings=LOOSE_SIZE,
    embedding_dim=LOOSE_SIZE,
    padding_idx=st.one_of(st.none(), st.integers(min_value=-15, max_value=15)),
)
def test_embedding_refuses_exactly_what_torch_refuses(**args: Any) -> None:
    assert _outcome(lambda: Embedding(**args)) == _outcome(lambda: build("Embedding", args))


@given(in_features=LOOSE_SIZE, out_features=LOOSE_SIZE, bias=st.booleans())
def test_linear_refuses_exactly_what_torch_refuses(**args: Any) -> None:
    assert _outcome(lambda: Linear(**args)) == _outcome(lambda: build("Linear", args))


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
