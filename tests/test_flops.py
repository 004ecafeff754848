"""Matrix-product FLOPs equal PyTorch's FlopCounterMode exactly, for every kind it sees.

The recurrent layers are counted with oneDNN switched off: PyTorch then runs its own cell
code, whose matrix products the counter sees (with oneDNN, it reports 0 for nn.LSTM).
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.core.errors import ShapecalcError
from shapecalc.layers import LAYER_KINDS
from tests.layer_cases import CASES, run_args

torch = pytest.importorskip("torch")
FlopCounterMode = pytest.importorskip("torch.utils.flop_counter").FlopCounterMode
attention = pytest.importorskip("torch.nn.attention")
SDPBackend, sdpa_kernel = attention.SDPBackend, attention.sdpa_kernel

#: kinds whose forward FlopCounterMode counts (matmuls and convolutions)
COUNTED = [
    "Linear",
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
    "MultiheadAttention",
    "TransformerEncoderLayer",
    "TransformerDecoderLayer",
    "LSTM",
    "GRU",
    "RNN",
    "LSTMCell",
    "GRUCell",
    "RNNCell",
]
#: kinds whose backward FlopCounterMode counts: 2 products (input and weight gradients)
#: for each forward product, when the input needs a gradient
BACKWARD = ["Linear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d"]


def counted(module: Any, shapes: tuple[tuple[int, ...], ...], backward: bool = False) -> int:
    inputs = [torch.randn(s, requires_grad=backward) for s in shapes]
    # the math kernel of scaled_dot_product_attention: the fused CPU kernels that the
    # Transformer layers use by default are not seen by the counter (it reports 0 for them)
    with (
        warnings.catch_warnings(),
        sdpa_kernel(SDPBackend.MATH),
        torch.backends.mkldnn.flags(enabled=False),
    ):
        warnings.simplefilter("ignore")
        with FlopCounterMode(display=False) as counter:
            out = module(*inputs)
            if backward:
                out.sum().backward()
    return int(counter.get_total_flops())


@pytest.mark.parametrize("kind", COUNTED)
@settings(deadline=None)
@given(data=st.data())
def test_matmul_flops_equal_flop_counter_mode(kind: str, data: st.DataObject) -> None:
    case = CASES[kind]
    args = data.draw(run_args(kind), label="args")
    spec = LAYER_KINDS[kind](**args)
    shapes = data.draw(case.inputs(spec), label="inputs")
    try:
        ours = spec.matmul_flops(*shapes)
    except ShapecalcError:  # an input shapecalc refuses (so does torch: tested elsewhere)
        return
    with warnings.catch_warnings():  # dropout with one layer: torch warns it does nothing
        warnings.simplefilter("ignore")
        module = getattr(torch.nn, kind)(**args)
    assert ours == counted(module, shapes)


@pytest.mark.parametrize("kind", BACKWARD)
@settings(deadline=None, max_examples=30)
@given(data=st.data())
def test_backward_matmul_flops_are_twice_the_forward(kind: str, data: st.DataObject) -> None:
    case = CASES[kind]
    args = data.draw(run_args(kind), label="args")
    # FlopCounterMode counts a grouped convolution's weight gradient as if it were not
    # grouped (groups times the products done), so grouped ones are left out here
    args = {**args, "groups": 1} if "groups" in args else args
    spec = LAYER_KINDS[kind](**args)
    shapes = data.draw(case.inputs(spec), label="inputs")
    try:
        work = spec.work(*shapes)
    except ShapecalcError:
        return
    module = getattr(torch.nn, kind)(**args)
    # forward + backward as counted = our forward matmul FLOPs + our backward rule's share
    assert counted(module, shapes, backward=True) == 3 * work.matmul_flops


def test_recurrent_work_per_step() -> None:
    """The documented per-step formulas: 2·G·H·(d_in + H_out) matmul FLOPs per row and step,
    and the elementwise gate work of GATE_RULE."""
    lstm = LAYER_KINDS["LSTM"](512, 512, num_layers=2, batch_first=True)
    work = lstm.work((1, 100, 512))
    assert work.macs == 100 * 2 * 4 * 512 * (512 + 512)
    assert work.other == 100 * 2 * (13 + 8) * 512
    gru = LAYER_KINDS["GRU"](65, 128, bias=False)
    assert gru.work((10, 3, 65)).other == 10 * 3 * 10 * 128
    rnn = LAYER_KINDS["RNN"](65, 128, bidirectional=True)
    assert rnn.work((10, 3, 65)).other == 10 * 3 * 2 * (2 + 2) * 128


SHAPE_ONLY = sorted(k for k, c in LAYER_KINDS.items() if c.family in ("activation", "pooling"))


@pytest.mark.parametrize("kind", SHAPE_ONLY)
@settings(deadline=None, max_examples=10)
@given(data=st.data())
def test_activations_and_pooling_have_no_matrix_products(kind: str, data: st.DataObject) -> None:
    case = CASES[kind]
    args = data.draw(case.args, label="args")
    spec = LAYER_KINDS[kind](**args)
    shapes = data.draw(case.inputs(spec), label="inputs")
    try:
        ours = spec.matmul_flops(*shapes)
    except ShapecalcError:
        return
    assert ours == 0 == counted(getattr(torch.nn, kind)(**args), shapes)


def test_kinds_without_products_count_zero() -> None:
    norm = LAYER_KINDS["LayerNorm"](8)
    assert norm.matmul_flops((2, 3, 8)) == 0
    assert counted(torch.nn.LayerNorm(8), ((2, 3, 8),)) == 0


def test_headline_numbers() -> None:
    linear = LAYER_KINDS["Linear"](512, 65)
    assert linear.matmul_flops((32, 100, 512)) == 2 * 32 * 100 * 512 * 65
    conv = LAYER_KINDS["Conv2d"](3, 64, 7, stride=2, padding=3, bias=False)
    # ResNet-50's stem on one 224x224 image: 118 million multiply-adds
    assert conv.matmul_flops((1, 3, 224, 224)) == 2 * 118_013_952
