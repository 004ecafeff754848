"""Swin's ShiftedWindowAttention and PatchMerging against torchvision's own code, copied
here as torchvision/models/swin_transformer.py writes it (torchvision cannot be imported
beside this torch): names, shapes and buffers, output shapes for drawn maps (padded,
shifted or not), FLOPs against FlopCounterMode, the built module's numbers, and what
autograd keeps."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shapecalc
from shapecalc import PatchMerging, ShapecalcError, ShiftedWindowAttention

torch = pytest.importorskip("torch")
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from tests.measure import kept_bytes  # noqa: E402
from tests.zoo.torch_swin import (  # noqa: E402
    TorchvisionPatchMerging,
    TorchvisionShiftedWindowAttention,
)


# -- the tests ---------------------------------------------------------------------------------
def _same(spec: Any, twin: Any, shape: tuple[int, ...]) -> None:
    built = shapecalc.build(spec, device="cpu")
    assert (
        [(n, tuple(p.shape)) for n, p in built.named_parameters()]
        == [(n, tuple(p.shape)) for n, p in twin.named_parameters()]
        == [(p.name, p.shape) for p in spec.params()]
    )
    assert [(n, tuple(b.shape), b.dtype) for n, b in built.named_buffers()] == [
        (n, tuple(b.shape), b.dtype) for n, b in twin.named_buffers()
    ]
    assert [(b.name, b.shape) for b in spec.buffers()] == [
        (n, tuple(b.shape)) for n, b in twin.named_buffers()
    ]
    built.load_state_dict(twin.state_dict())
    x = torch.randn(*shape, requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        out = twin(x)
    work = spec.work(shape)
    assert work.outputs == (tuple(out.shape),)
    assert counter.get_total_flops() == 2 * work.macs
    assert torch.allclose(built(x), out, atol=1e-5)
    assert kept_bytes(twin, [x]) == work.kept_bytes(4)


@settings(max_examples=25)  # each example builds and runs two modules
@given(
    heads=st.integers(1, 3),
    head_dim=st.integers(1, 4),
    window=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    shifted=st.booleans(),
    n=st.integers(1, 2),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    qkv_bias=st.booleans(),
    proj_bias=st.booleans(),
)
def test_shifted_window_attention_against_torchvisions(
    heads: int,
    head_dim: int,
    window: tuple[int, int],
    shifted: bool,
    n: int,
    h: int,
    w: int,
    qkv_bias: bool,
    proj_bias: bool,
) -> None:
    dim = heads * head_dim
    shift = (window[0] // 2, window[1] // 2) if shifted else (0, 0)
    spec = ShiftedWindowAttention(dim, window, shift, heads, qkv_bias, proj_bias)
    twin = TorchvisionShiftedWindowAttention(
        dim, list(window), list(shift), heads, qkv_bias, proj_bias
    )
    _same(spec, twin, (n, h, w, dim))


@settings(max_examples=25)
@given(
    dim=st.integers(1, 6),
    lead=st.lists(st.integers(1, 2), max_size=2),
    h=st.integers(1, 7),
    w=st.integers(1, 7),
)
def test_patch_merging_against_torchvisions(dim: int, lead: list[int], h: int, w: int) -> None:
    _same(PatchMerging(dim), TorchvisionPatchMerging(dim), (*lead, h, w, dim))


def test_swin_layers_refuse_what_does_not_fit() -> None:
    with pytest.raises(ShapecalcError, match="window_size"):
        ShiftedWindowAttention(8, (7,), (3, 3), 2)
    with pytest.raises(ShapecalcError, match="shift_size"):
        ShiftedWindowAttention(8, (7, 7), (-1, 3), 2)
    with pytest.raises(ShapecalcError, match="divisible"):
        ShiftedWindowAttention(9, (7, 7), (3, 3), 2).output_shapes((1, 7, 7, 9))
    with pytest.raises(ShapecalcError, match="channels"):
        PatchMerging(8).output_shapes((1, 4, 4, 6))
