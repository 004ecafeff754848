"""Shape helpers shared by the layer specs: one input, feature checks, conv arithmetic."""

from __future__ import annotations

from typing import Any

from shapecalc.core.dims import Dim, dim_str, floor_div, product, same_size, shape_str
from shapecalc.core.spec import LayerSpec, Shape

__all__ = [
    "bias_adds",
    "check_features",
    "conv_out",
    "one_input",
    "transposed_out",
    "tuple_of",
]


def one_input(spec: LayerSpec, inputs: tuple[Shape, ...], *ranks: int) -> Shape:
    """The single input shape of a layer, of one of ``ranks`` (any rank >= 1 when none)."""
    if len(inputs) != 1:
        spec._fail_shape(f"takes one input shape, got {len(inputs)}", inputs)
    shape = inputs[0]
    if ranks and len(shape) not in ranks:
        wanted = " or ".join(f"{r}-D" for r in ranks)
        spec._fail_shape(f"expects a {wanted} input, got {len(shape)}-D {shape_str(shape)}", shape)
    if not ranks and not shape:
        spec._fail_shape("expects an input with at least one dimension, got ()", shape)
    return shape


def bias_adds(bias: bool, output: Shape) -> tuple[Dim, str]:
    """(elementwise FLOPs, rule) of adding a bias to every output number, or none."""
    return (product(output), "bias: 1 add per output") if bias else (0, "")


def check_features(spec: LayerSpec, shape: Shape, axis: int, size: Dim, name: str) -> None:
    if not same_size(shape[axis], size):
        spec._fail_shape(
            f"input {shape_str(shape)} has {dim_str(shape[axis])} at dim {axis % len(shape)}, "
            f"expected {name}={dim_str(size)}",
            shape,
        )


def tuple_of(spec: LayerSpec, field: str, n: int, *, minimum: int | None = None) -> tuple[Any, ...]:
    """An int-or-tuple argument as an n-tuple (torch's ``_ntuple``), length checked."""
    value = getattr(spec, field)
    items = tuple(value) if isinstance(value, (tuple, list)) else (value,) * n
    if len(items) != n:
        spec._fail(
            field, value, f"{field} must be an int or a tuple of {n}", f"got {len(items)} values"
        )
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int):
            spec._fail(
                field, value, f"{field} must be an int or a tuple of {n} ints", f"got {value!r}"
            )
        if minimum is not None and item < minimum:
            spec._fail(field, value, f"{field} must be >= {minimum}", f"got {value!r}")
    return items


def conv_out(
    spec: LayerSpec, size: Dim, kernel: int, stride: int, padding: int, dilation: int
) -> Dim:
    """PyTorch's floor formula: ``(size + 2p - d(k - 1) - 1) // s + 1``."""
    if stride < 1 or dilation < 1:
        spec._fail_shape(
            f"stride and dilation must be >= 1 to run (got {stride}, {dilation})", size
        )
    out = floor_div(size + 2 * padding - dilation * (kernel - 1) - 1, stride) + 1
    if isinstance(out, int) and out < 1:
        spec._fail_shape(
            f"a spatial size of {dim_str(size)} is too small for kernel {kernel} "
            f"(dilation {dilation}, padding {padding}): the output would be {out}",
            size,
        )
    return out


def transposed_out(
    spec: LayerSpec,
    size: Dim,
    kernel: int,
    stride: int,
    padding: int,
    dilation: int,
    output_padding: int,
) -> Dim:
    """``(size - 1)·s - 2p + d(k - 1) + output_padding + 1``."""
    if output_padding >= max(stride, dilation):
        spec._fail_shape(
            f"output_padding {output_padding} must be smaller than stride {stride} or "
            f"dilation {dilation}",
            size,
        )
    out = (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1
    if isinstance(out, int) and out < 1:
        spec._fail_shape(f"a spatial size of {dim_str(size)} gives an output of {out}", size)
    return out
