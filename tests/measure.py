"""What PyTorch's autograd really keeps for one training-mode forward, measured with
``torch.autograd.graph.saved_tensors_hooks``: every tensor saved for the backward pass,
counted once per storage, parameters and buffers excluded. oneDNN is switched off so the
recurrent layers run PyTorch's own cell code (its LSTM kernel keeps a workspace instead)."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

torch = pytest.importorskip("torch")


def kept_bytes(module: Any, inputs: list[Any]) -> int:
    """Bytes of the tensors autograd keeps for one forward of ``module``."""
    own = {t.untyped_storage().data_ptr() for t in [*module.parameters(), *module.buffers()]}
    seen: dict[int, int] = {}

    def pack(tensor: Any) -> Any:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in own and storage.nbytes():
            seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    module.train()
    with (
        warnings.catch_warnings(),
        torch.backends.mkldnn.flags(enabled=False),
        torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t),
    ):
        warnings.simplefilter("ignore")
        module(*inputs)
    return sum(seen.values())
