"""Shape helpers shared by the layer specs: one input, feature checks, int-or-tuple
arguments, the window arithmetic of convolutions and pooling."""

from __future__ import annotations

from typing import Any

from shapecalc.core.dims import (
    LARGEST,
    Dim,
    Expr,
    dim_str,
    floor_div,
    product,
    same_size,
    shape_str,
)
from shapecalc.core.spec import LayerSpec, Shape, shown

__all__ = [
    "bias_adds",
    "check_features",
    "conv_out",
    "non_empty",
    "one_input",
    "transposed_out",
    "tuple_of",
]


def one_input(spec: LayerSpec, inputs: tuple[Shape, ...], *ranks: int, least: int = 1) -> Shape:
    """The single input shape of a layer, of one of ``ranks`` (when none, of any rank >=
    ``least``: 0 takes a scalar too)."""
    if len(inputs) != 1:
        spec._fail_shape(f"takes one input shape, got {len(inputs)}", inputs)
    shape = inputs[0]
    if ranks and len(shape) not in ranks:
        wanted = " or ".join(f"{r}-D" for r in ranks)
        spec._fail_shape(f"expects a {wanted} input, got {len(shape)}-D {shape_str(shape)}", shape)
    if not ranks and len(shape) < least:
        spec._fail_shape(
            f"expects an input with at least {least} dimension{'s' if least > 1 else ''}, "
            f"got {len(shape)}-D {shape_str(shape)}",
            shape,
        )
    return shape


def non_empty(spec: LayerSpec, shape: Shape, batched: bool) -> None:
    """Every dimension but the batch holds at least one number (pooling and resampling
    refuse empty channels and spatial dimensions; an empty batch is fine)."""
    if any(d == 0 for d in shape[1 if batched else 0 :]):
        spec._fail_shape(
            f"input {shape_str(shape)} is empty in a dimension other than the batch", shape
        )


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


def tuple_of(
    spec: LayerSpec,
    field: str,
    n: int,
    *,
    minimum: int | None = None,
    one_for_all: bool = False,
    symbolic: bool = False,
) -> tuple[Any, ...]:
    """An int-or-tuple argument as an n-tuple (torch's ``_ntuple``), length checked;
    ``one_for_all`` takes a tuple of one for every dimension too (as pooling does);
    ``symbolic`` takes a size name (an :class:`Expr`) for an int, as a convolution's
    kernel for a formula (``K·C_in·C_out + C_out``)."""
    value = getattr(spec, field)
    items = tuple(value) if isinstance(value, (tuple, list)) else (value,) * n
    if one_for_all and len(items) == 1:
        items *= n
    if len(items) != n:
        wanted = f"1 or {n}" if one_for_all and n > 1 else str(n)
        spec._fail(
            field,
            value,
            f"{field} must be an int or a tuple of {wanted}",
            f"got {len(items)} values",
        )
    for item in items:
        if symbolic and isinstance(item, Expr):
            continue
        if isinstance(item, bool) or not isinstance(item, int):
            spec._fail(
                field,
                value,
                f"{field} must be an int or a tuple of {n} ints",
                f"got {shown(value)}",
            )
        if abs(item) > LARGEST:
            spec._fail(
                field,
                value,
                f"{field} must be at most 2^63 - 1 (what torch holds)",
                f"got {shown(item)}",
            )
        if minimum is not None and item < minimum:
            spec._fail(field, value, f"{field} must be >= {minimum}", f"got {shown(value)}")
    return items


def conv_out(
    spec: LayerSpec,
    size: Dim,
    kernel: Dim,
    stride: int,
    padding: int,
    dilation: int,
    *,
    ceil_mode: bool = False,
) -> Dim:
    """PyTorch's floor formula: ``(size + 2p - d(k - 1) - 1) // s + 1``. With ``ceil_mode``
    (pooling) the division rounds up, and the last window is dropped when it would start
    past the input and its left padding."""
    if stride < 1 or dilation < 1:
        spec._fail_shape(
            f"stride and dilation must be >= 1 to run (got {stride}, {dilation})", size
        )
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    if not ceil_mode:
        out = floor_div(span, stride) + 1
    else:
        out = floor_div(span + stride - 1, stride) + 1
        if isinstance(out, int) and isinstance(size, int):
            if (out - 1) * stride >= size + padding:
                out -= 1
        elif isinstance(kernel, int) and stride > dilation * (kernel - 1) + 1 - padding:
            # the drop depends on the size modulo the stride; below this stride it never
            # happens (the last window starts before size + padding)
            spec._fail_shape(
                f"with ceil_mode and stride {stride} the output size depends on "
                f"{dim_str(size)} modulo {stride}: give it as a number",
                size,
            )
    if isinstance(out, int) and out < 1:
        spec._fail_shape(
            f"a spatial size of {dim_str(size)} is too small for kernel {dim_str(kernel)} "
            f"(dilation {dilation}, padding {padding}): the output would be {out}",
            size,
        )
    return out


def transposed_out(
    spec: LayerSpec,
    size: Dim,
    kernel: Dim,
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
        spec._fail_shape(
            f"a spatial size of {dim_str(size)} gives an output size of {out} "
            f"((size - 1)·stride - 2·padding + dilation·(kernel_size - 1) + output_padding "
            "+ 1); it must be >= 1 (torch: Output size is too small)",
            size,
        )
    return out
