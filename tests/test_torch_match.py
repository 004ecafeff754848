"""The language models against PyTorch models written by hand: exact names, shapes, order
and totals. (Every layer kind on its own: tests/test_layers_torch.py.)

Modules are built on the meta device, so large sizes allocate nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import shapecalc
from tests.strategies import lstm_lm_args
from tests.twins import TorchLM

torch = pytest.importorskip("torch")
nn = torch.nn


def torch_params(module: Any) -> list[tuple[str, tuple[int, ...]]]:
    return [(name, tuple(p.shape)) for name, p in module.named_parameters()]


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
