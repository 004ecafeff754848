"""Matrix-product FLOPs equal PyTorch's FlopCounterMode exactly, for every kind it sees."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.errors import ShapecalcError
from shapecalc.spec import LAYER_KINDS
from tests.layer_cases import CASES

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
]


def counted(module: Any, shapes: tuple[tuple[int, ...], ...]) -> int:
    inputs = [torch.randn(*s) for s in shapes]
    # the math kernel of scaled_dot_product_attention: the fused CPU kernels that the
    # Transformer layers use by default are not seen by the counter (it reports 0 for them)
    with warnings.catch_warnings(), sdpa_kernel(SDPBackend.MATH):
        warnings.simplefilter("ignore")
        with FlopCounterMode(display=False) as counter:
            module(*inputs)
    return int(counter.get_total_flops())


@pytest.mark.parametrize("kind", COUNTED)
@settings(deadline=None)
@given(data=st.data())
def test_matmul_flops_equal_flop_counter_mode(kind: str, data: st.DataObject) -> None:
    case = CASES[kind]
    args = data.draw(case.args, label="args")
    spec = LAYER_KINDS[kind](**args)
    shapes = data.draw(case.inputs(spec), label="inputs")
    try:
        ours = spec.matmul_flops(*shapes)
    except ShapecalcError:  # an input shapecalc refuses (so does torch: tested elsewhere)
        return
    module = getattr(torch.nn, kind)(**args)
    assert ours == counted(module, shapes)


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
