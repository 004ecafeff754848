"""The activation estimate against what PyTorch's autograd really keeps.

Measured with ``torch.autograd.graph.saved_tensors_hooks``: every tensor saved for the
backward pass of one training-mode forward, counted once per storage, parameters and
buffers excluded. oneDNN is switched off so the recurrent layers run PyTorch's own cell
code (its LSTM kernel keeps a workspace instead, about 2-3x larger; see the docs).

Tolerances, stated here and in docs/concepts/compute-and-memory.md:

- the language models and most layer kinds: exact;
- MultiheadAttention and the Transformer layers: within the bounds in ``APPROXIMATE``
  (the fused attention kernels, head reshapes and concatenations decide what is kept);
- a constant ``SLACK`` of bytes for the scalars PyTorch keeps in some ops (dropout with
  p = 1 keeps a 4-byte scalar).
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shapecalc
from shapecalc.analysis.cost import analyze
from shapecalc.core.errors import ShapecalcError
from shapecalc.layers import LAYER_KINDS
from tests.layer_cases import CASES, run_args

torch = pytest.importorskip("torch")

from shapecalc.adapters.torch_bridge import build  # noqa: E402  (after the torch skip)
from tests.measure import kept_bytes  # noqa: E402

SLACK = 8
#: kind -> (lowest, highest) measured / estimated
APPROXIMATE: dict[str, tuple[float, float]] = {
    "MultiheadAttention": (0.75, 1.5),
    "TransformerEncoderLayer": (0.75, 1.25),
    "TransformerDecoderLayer": (0.75, 1.25),
}
CELLS = {"LSTMCell": 2, "GRUCell": 1, "RNNCell": 1}


LM_CASES = [
    # cell, layers, bidirectional, dropout, batch_first, one_hot
    ("LSTM", 1, False, 0.0, True, False),
    ("LSTM", 2, False, 0.0, True, False),
    ("LSTM", 2, True, 0.0, False, False),
    ("LSTM", 3, False, 0.5, True, False),
    ("LSTM", 2, False, 0.0, True, True),
    ("LSTM", 6, True, 0.3, True, False),
    ("GRU", 2, True, 0.3, True, False),
    ("GRU", 3, False, 0.0, False, True),
    ("RNN", 2, True, 0.0, True, False),
    ("RNN", 3, False, 0.5, True, False),
]
FACTORIES = {"LSTM": shapecalc.lstm_lm, "GRU": shapecalc.gru_lm, "RNN": shapecalc.rnn_lm}


def lm_input(model: Any, batch: int, seq_len: int, one_hot: bool) -> Any:
    shape = model.input_shapes(batch, seq_len)[0]
    return torch.randn(*shape) if one_hot else torch.randint(0, model.sizes["V"], shape)


@pytest.mark.parametrize(
    ("cell", "layers", "bidirectional", "dropout", "first", "one_hot"), LM_CASES
)
def test_language_model_activations_are_exact(
    cell: str, layers: int, bidirectional: bool, dropout: float, first: bool, one_hot: bool
) -> None:
    model = FACTORIES[cell](
        vocab=65,
        hidden=128,
        layers=layers,
        embed_dim=None if one_hot else 96,
        one_hot=one_hot,
        bidirectional=bidirectional,
        dropout=dropout,
        batch_first=first,
    )
    cost = analyze(model, batch=4, seq_len=32)
    module = build(model, device="cpu")
    assert kept_bytes(module, [lm_input(model, 4, 32, one_hot)]) == cost.activation_bytes


@settings(deadline=None, max_examples=15)
@given(
    cell=st.sampled_from(["LSTM", "GRU", "RNN"]),
    hidden=st.integers(1, 24),
    layers=st.integers(1, 5),
    bidirectional=st.booleans(),
    dropout=st.sampled_from([0.0, 0.4]),
    first=st.booleans(),
    batch=st.integers(2, 4),
    seq_len=st.integers(2, 6),
)
def test_language_model_activations_for_generated_sizes(
    cell: str,
    hidden: int,
    layers: int,
    bidirectional: bool,
    dropout: float,
    first: bool,
    batch: int,
    seq_len: int,
) -> None:
    model = FACTORIES[cell](
        vocab=11,
        hidden=hidden,
        layers=layers,
        bidirectional=bidirectional,
        dropout=dropout,
        batch_first=first,
    )
    cost = analyze(model, batch=batch, seq_len=seq_len)
    module = build(model, device="cpu")
    assert kept_bytes(module, [lm_input(model, batch, seq_len, False)]) == cost.activation_bytes


def _layer_inputs(kind: str, spec: Any, shapes: Any, indices: bool) -> list[Any]:
    if indices:
        ids = [torch.randint(0, spec.num_embeddings, shapes[0])]
        if len(shapes) == 2:  # EmbeddingBag offsets, as tests/test_layers_torch.py makes them
            ids.append(torch.arange(0, 2 * shapes[1][0], 2))
        return ids
    inputs = [torch.randn(s, requires_grad=True) for s in shapes]
    if getattr(spec, "inplace", False):  # torch changes no leaf in place: give it a copy
        inputs = [x.clone() for x in inputs]
    if kind in CELLS:  # a step inside a loop: the state comes from the previous step
        out = spec.output_shapes(*shapes)[0]
        state = [torch.randn(*out, requires_grad=True) for _ in range(CELLS[kind])]
        inputs.append(tuple(state) if len(state) == 2 else state[0])
    return inputs


@pytest.mark.parametrize("kind", sorted(CASES))
@settings(deadline=None, max_examples=25)
@given(data=st.data())
def test_layer_activations_against_torch(kind: str, data: st.DataObject) -> None:
    case = CASES[kind]
    args = data.draw(run_args(kind), label="args")
    spec = LAYER_KINDS[kind](**args)
    shapes = data.draw(case.inputs(spec), label="inputs")
    try:
        work = spec.work(*shapes)
    except ShapecalcError:
        return  # refused inputs are compared with torch's refusals elsewhere
    estimate = sum(s.nbytes(4) for s in work.saved)
    with warnings.catch_warnings():  # dropout with one layer: torch warns it does nothing
        warnings.simplefilter("ignore")
        module = getattr(torch.nn, kind)(**args)
    try:
        got = kept_bytes(module, _layer_inputs(kind, spec, shapes, case.indices))
    except (RuntimeError, IndexError):
        return  # ids or offsets torch refuses: tests/test_layers_torch.py compares refusals
    low, high = APPROXIMATE.get(kind, (1.0, 1.0))
    assert low * estimate - SLACK <= got <= high * estimate + SLACK, (got, estimate)


def test_headline_activations_and_training_memory() -> None:
    model = shapecalc.lstm_lm(vocab=65, hidden=512, layers=2)
    cost = analyze(model, batch=1, seq_len=100)
    # per layer and step: input 512 + gates 4·512 + c, tanh c, h_(t-1) 3·512 = 4096 floats;
    # the head keeps its input (512), the embedding its int64 ids
    assert cost.activation_bytes == 100 * (2 * 4096 * 4 + 512 * 4 + 8)
    lines = {line.label: line.bytes for line in cost.memory}
    assert lines["weights"] == lines["gradients"] == 4 * 4_269_121
    assert lines["optimizer state"] == 8 * 4_269_121
    assert lines["inference state"] == 2 * 2 * 512 * 4  # h and c, 2 layers, one sequence
