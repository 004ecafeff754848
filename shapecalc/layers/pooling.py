"""Pooling and resampling: ``MaxPool``, ``AvgPool``, ``AdaptiveAvgPool`` and
``AdaptiveMaxPool`` in 1, 2 and 3 dimensions, and ``Upsample``. None has parameters.

torch's constructors store these arguments as given and its forward checks them; what
no input can make right is refused here at once: a kernel, stride, padding or dilation
that is not a positive int (padding: >= 0) or a tuple of one or n of them, padding above
half the kernel, ``ceil_mode`` and ``count_include_pad`` that are not bools, a
``divisor_override`` of 0, an adaptive ``output_size`` below 0, and for ``Upsample`` an
unknown mode, both or neither of size and scale_factor, a scale that is not > 0,
``align_corners`` with a mode that does not interpolate.

What autograd keeps, measured with ``saved_tensors_hooks``: max pooling its input and
the int64 indices of the maxima; average pooling its input; adaptive average pooling to a
single number per channel nothing (torch takes the mean instead); ``Upsample`` nothing
(``'area'``: as adaptive average pooling).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from fractions import Fraction
from typing import Any, ClassVar

from shapecalc.core.dims import Dim, dim_str, floor_div, product, shape_str
from shapecalc.core.errors import echo
from shapecalc.core.frozen import frozen
from shapecalc.core.spec import LayerSpec, Param, Shape, Stored, Work, register
from shapecalc.layers._shapes import conv_out, non_empty, one_input, tuple_of

__all__ = [
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AdaptiveAvgPool3d",
    "AdaptiveMaxPool1d",
    "AdaptiveMaxPool2d",
    "AdaptiveMaxPool3d",
    "AvgPool1d",
    "AvgPool2d",
    "AvgPool3d",
    "MaxPool1d",
    "MaxPool2d",
    "MaxPool3d",
    "Upsample",
]


class _Pool(LayerSpec):
    """A pooling layer over ``dims`` spatial dimensions: (N, C, *spatial) or unbatched
    (C, *spatial)."""

    #: spatial dimensions (1, 2, 3)
    dims: ClassVar[int]
    family: ClassVar[str] = "pooling"
    #: max pooling also returns the indices of the maxima with return_indices=True
    output_names: ClassVar[tuple[str, ...]] = ("output", "indices")

    def params(self) -> Iterator[Param]:
        return iter(())

    def _input(self, inputs: tuple[Shape, ...]) -> Shape:
        n = self.dims
        shape = one_input(self, inputs, n + 1, n + 2)
        non_empty(self, shape, batched=len(shape) == n + 2)
        return shape

    def _returned(self, out: Shape) -> tuple[Shape, ...]:
        """The output; with return_indices (max pooling) the indices of the maxima too,
        of the same shape."""
        return (out, out) if getattr(self, "return_indices", False) else (out,)

    def _kept(self, shape: Shape, outputs: tuple[Shape, ...]) -> tuple[Stored, ...]:
        """Max pooling keeps its input and the int64 indices of the maxima (the second
        output when they are returned)."""
        of = "output1" if len(outputs) > 1 else None
        return (Stored("input", shape, of="input"), Stored("indices", outputs[0], 8, of=of))


class _WindowPool(_Pool):
    """MaxPool and AvgPool: a window of kernel_size moved by stride."""

    kernel_size: Any
    stride: Any
    padding: Any
    ceil_mode: bool

    bool_fields: ClassVar[tuple[str, ...]] = ("ceil_mode",)
    #: the FLOPs per output, by the window's size
    window_rule: ClassVar[str]

    def __post_init__(self) -> None:
        self._check_fields()
        kernel, _, padding, _ = self.windows()
        for k, p in zip(kernel, padding, strict=True):
            if p > k // 2:
                self._fail(
                    "padding",
                    self.padding,
                    "padding must be at most half of kernel_size",
                    f"{echo(p)} > {echo(k)} // 2",
                    "kernel_size",
                )

    def windows(self) -> tuple[tuple[int, ...], ...]:
        """kernel, stride, padding and dilation, one each per spatial dimension; a stride
        of None (or ()) is the kernel."""
        n = self.dims
        kernel = tuple_of(self, "kernel_size", n, minimum=1, one_for_all=True)
        stride = self.stride
        strides = (
            kernel
            if stride is None or stride == () or stride == []
            else tuple_of(self, "stride", n, minimum=1, one_for_all=True)
        )
        padding = tuple_of(self, "padding", n, minimum=0, one_for_all=True)
        return kernel, strides, padding, self._dilation()

    def _dilation(self) -> tuple[int, ...]:
        """1 in every dimension: average pooling has no dilation."""
        return (1,) * self.dims

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        """(N, C, *spatial) or (C, *spatial) -> the same with each spatial size
        ⌊(size + 2·padding - dilation·(kernel - 1) - 1) / stride⌋ + 1 (dilation 1 when
        averaging); with ceil_mode rounded up, less one when the last window would start
        past the input and its left padding. Max pooling with return_indices returns the
        indices of the maxima too, of the same shape."""
        shape = self._input(inputs)
        n = self.dims
        out = tuple(
            conv_out(self, x, k, s, p, d, ceil_mode=self.ceil_mode)
            for x, k, s, p, d in zip(shape[-n:], *self.windows(), strict=True)
        )
        return self._returned((*shape[:-n], *out))

    def work(self, *inputs: Shape) -> Work:
        """One FLOP per window element per output (comparisons for max, adds and the
        divide for average). Keeps what :meth:`_kept` lists."""
        outputs = self.output_shapes(*inputs)
        window = product(self.windows()[0])
        return Work(
            outputs,
            other=window * product(outputs[0]),
            other_rule=self.window_rule.format(window=window),
            saved=self._kept(inputs[0], outputs),
        )


@frozen
class _MaxPool(_WindowPool):
    kernel_size: Any
    stride: Any = None
    padding: Any = 0
    dilation: Any = 1
    return_indices: bool = False
    ceil_mode: bool = False

    window_rule: ClassVar[str] = "a comparison per window element, {window} per output"

    def _dilation(self) -> tuple[int, ...]:
        return tuple_of(self, "dilation", self.dims, minimum=1, one_for_all=True)


@frozen
class _AvgPool(_WindowPool):
    kernel_size: Any
    stride: Any = None
    padding: Any = 0
    ceil_mode: bool = False
    count_include_pad: bool = True

    bool_fields: ClassVar[tuple[str, ...]] = ("ceil_mode", "count_include_pad")
    window_rule: ClassVar[str] = "the window's adds and the divide, {window} per output"

    def _kept(self, shape: Shape, outputs: tuple[Shape, ...]) -> tuple[Stored, ...]:
        """Average pooling keeps its input."""
        return (Stored("input", shape, of="input"),)


@frozen
class _AvgPoolDivisor(_AvgPool):
    divisor_override: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        divisor: Any = self.divisor_override
        if divisor is not None and (
            isinstance(divisor, bool) or not isinstance(divisor, int) or divisor == 0
        ):
            self._fail(
                "divisor_override",
                divisor,
                "divisor_override must be a nonzero integer or None",
                f"got {echo(divisor)}",
            )


@register
class MaxPool1d(_MaxPool):
    """``nn.MaxPool1d(kernel_size, stride=None, padding=0, dilation=1,
    return_indices=False, ceil_mode=False)``: the maximum of each window."""

    kind: ClassVar[str] = "MaxPool1d"
    summary: ClassVar[str] = "1-D max pooling: the maximum of each window; no parameters"
    example: ClassVar[dict[str, Any]] = {"kernel_size": 3, "stride": 2}
    formula_args: ClassVar[dict[str, Any]] = example
    example_input: ClassVar[tuple[Shape, ...]] = ((20, 16, 50),)
    dims: ClassVar[int] = 1


@register
class MaxPool2d(_MaxPool):
    """``nn.MaxPool2d(kernel_size, stride=None, padding=0, dilation=1,
    return_indices=False, ceil_mode=False)``: the maximum of each window.

    Example (ResNet's stem):

        >>> MaxPool2d(3, stride=2, padding=1).output_shapes((1, 64, 112, 112))
        ((1, 64, 56, 56),)
    """

    kind: ClassVar[str] = "MaxPool2d"
    summary: ClassVar[str] = "2-D max pooling: the maximum of each window; no parameters"
    example: ClassVar[dict[str, Any]] = {"kernel_size": 3, "stride": 2, "padding": 1}
    formula_args: ClassVar[dict[str, Any]] = example
    example_input: ClassVar[tuple[Shape, ...]] = ((1, 64, 112, 112),)
    dims: ClassVar[int] = 2


@register
class MaxPool3d(_MaxPool):
    """``nn.MaxPool3d(kernel_size, stride=None, padding=0, dilation=1,
    return_indices=False, ceil_mode=False)``: the maximum of each window."""

    kind: ClassVar[str] = "MaxPool3d"
    summary: ClassVar[str] = "3-D max pooling: the maximum of each window; no parameters"
    example: ClassVar[dict[str, Any]] = {"kernel_size": 3, "stride": 2}
    formula_args: ClassVar[dict[str, Any]] = example
    example_input: ClassVar[tuple[Shape, ...]] = ((20, 16, 50, 44, 31),)
    dims: ClassVar[int] = 3


@register
class AvgPool1d(_AvgPool):
    """``nn.AvgPool1d(kernel_size, stride=None, padding=0, ceil_mode=False,
    count_include_pad=True)``: the mean of each window."""

    kind: ClassVar[str] = "AvgPool1d"
    summary: ClassVar[str] = "1-D average pooling: the mean of each window; no parameters"
    example: ClassVar[dict[str, Any]] = {"kernel_size": 3, "stride": 2}
    formula_args: ClassVar[dict[str, Any]] = example
    example_input: ClassVar[tuple[Shape, ...]] = ((20, 16, 50),)
    dims: ClassVar[int] = 1


@register
class AvgPool2d(_AvgPoolDivisor):
    """``nn.AvgPool2d(kernel_size, stride=None, padding=0, ceil_mode=False,
    count_include_pad=True, divisor_override=None)``: the mean of each window."""

    kind: ClassVar[str] = "AvgPool2d"
    summary: ClassVar[str] = "2-D average pooling: the mean of each window; no parameters"
    example: ClassVar[dict[str, Any]] = {"kernel_size": 2, "stride": 2}
    formula_args: ClassVar[dict[str, Any]] = example
    example_input: ClassVar[tuple[Shape, ...]] = ((1, 256, 56, 56),)
    dims: ClassVar[int] = 2


@register
class AvgPool3d(_AvgPoolDivisor):
    """``nn.AvgPool3d(kernel_size, stride=None, padding=0, ceil_mode=False,
    count_include_pad=True, divisor_override=None)``: the mean of each window."""

    kind: ClassVar[str] = "AvgPool3d"
    summary: ClassVar[str] = "3-D average pooling: the mean of each window; no parameters"
    example: ClassVar[dict[str, Any]] = {"kernel_size": 3, "stride": 2}
    formula_args: ClassVar[dict[str, Any]] = example
    example_input: ClassVar[tuple[Shape, ...]] = ((20, 16, 50, 44, 31),)
    dims: ClassVar[int] = 3

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        """(N, C, D, H, W) or (C, D, H, W) -> the same with each spatial size
        ⌊(size + 2·padding - kernel) / stride⌋ + 1 (with ceil_mode rounded up, less one
        when the last window would start past the input and its left padding); each
        spatial size must be at least the kernel's, padding not counted."""
        shape = self._input(inputs)
        for x, k in zip(shape[-3:], self.windows()[0], strict=True):
            if isinstance(x, int) and x < k:
                self._fail_shape(
                    f"input {shape_str(shape)} is smaller than the kernel {k} in a "
                    "spatial dimension (avg_pool3d does not count the padding)",
                    shape,
                )
        return super().output_shapes(*inputs)


def _window_reads(size: Dim, out: Dim) -> Dim:
    """The numbers torch's adaptive windows read along one dimension: window i spans
    ⌊i·L/O⌋ to ⌈(i + 1)·L/O⌉, L + O - gcd(L, O) in all. With a symbolic L: L when O is L
    or 1, else at most L + O - 1."""
    if out in (size, 1):
        return size
    if isinstance(size, int) and isinstance(out, int):
        return size + out - math.gcd(size, out)
    return size + out - 1


def _adaptive_work(
    shape: Shape, out: Shape, n: int, averages: bool
) -> tuple[Dim, str, tuple[Stored, ...]]:
    """FLOPs, rule and kept tensors of adaptive pooling from ``shape`` to ``out``'s last
    ``n`` sizes. Average pooling to one number per channel keeps nothing (torch takes the
    mean, whose backward needs only sizes); otherwise it keeps its input."""
    reads = product(shape[:-n]) * product(
        _window_reads(x, o) for x, o in zip(shape[-n:], out[-n:], strict=True)
    )
    what = "an add (or the divide)" if averages else "a comparison"
    rule = (
        f"{what} per number a window reads; windows read L + O - gcd(L, O) numbers "
        "along a dimension of L into O"
    )
    kept = () if all(o == 1 for o in out[-n:]) else (Stored("input", shape, of="input"),)
    return reads, rule, kept


class _AdaptivePool(_Pool):
    """AdaptiveAvgPool and AdaptiveMaxPool: windows sized to give output_size."""

    output_size: Any

    #: average (True) or max pooling
    averages: ClassVar[bool]

    def __post_init__(self) -> None:
        self.sizes()

    def sizes(self) -> tuple[int | None, ...]:
        """output_size, one per spatial dimension; None keeps the input's size (2-D and
        3-D only)."""
        n, value = self.dims, self.output_size
        items = tuple(value) if isinstance(value, (tuple, list)) else (value,) * n
        rule = f"output_size must be an int >= 0{' or None' if n > 1 else ''}"
        if len(items) != n:
            self._fail(
                "output_size",
                value,
                f"output_size must be an int or a tuple of {n}",
                f"got {len(items)} values",
            )
        for item in items:
            if item is None and n > 1 and value is not None:
                continue
            if isinstance(item, bool) or not isinstance(item, int) or item < 0:
                self._fail("output_size", value, rule, f"got {echo(value)}")
        return items

    def _resolved(self, inputs: tuple[Shape, ...]) -> tuple[Shape, Shape]:
        """The input shape and the output's spatial sizes. Average pooling to one number
        per channel is a mean over the last dimensions in torch, which takes any rank
        from dims (from dims + 1 with a tuple output_size, whose None entries torch
        fills in first)."""
        n = self.dims
        least = n + isinstance(self.output_size, (tuple, list))
        if self.averages and n > 1 and len(inputs) == 1 and len(inputs[0]) >= least:
            shape = inputs[0]
            out = self._spatial(shape)
            if all(o == 1 for o in out):
                return shape, out
        shape = self._input(inputs)
        return shape, self._spatial(shape)

    def _spatial(self, shape: Shape) -> Shape:
        sizes = zip(shape[-self.dims :], self.sizes(), strict=True)
        return tuple(x if o is None else o for x, o in sizes)

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        """(N, C, *spatial) or (C, *spatial) -> the same with the spatial sizes of
        output_size (None keeps that size). Average pooling to one number per channel
        (2-D, 3-D) takes any rank: torch takes the mean over the last dimensions. Max
        pooling with return_indices returns the indices of the maxima too."""
        shape, out = self._resolved(inputs)
        return self._returned((*shape[: -self.dims], *out))

    def work(self, *inputs: Shape) -> Work:
        """One FLOP per number each window reads; windows of neighbouring outputs overlap
        when the sizes do not divide."""
        outputs = self.output_shapes(*inputs)
        shape = inputs[0]
        other, rule, kept = _adaptive_work(shape, outputs[0], self.dims, self.averages)
        if not self.averages:
            kept = self._kept(shape, outputs)
        return Work(outputs, other=other, other_rule=rule, saved=kept)


@frozen
class _AdaptiveAvgPool(_AdaptivePool):
    output_size: Any

    averages: ClassVar[bool] = True


@frozen
class _AdaptiveMaxPool(_AdaptivePool):
    output_size: Any
    return_indices: bool = False

    averages: ClassVar[bool] = False


@register
class AdaptiveAvgPool1d(_AdaptiveAvgPool):
    """``nn.AdaptiveAvgPool1d(output_size)``: the mean of windows sized to give
    output_size."""

    kind: ClassVar[str] = "AdaptiveAvgPool1d"
    summary: ClassVar[str] = "1-D average pooling to a given output size; no parameters"
    example: ClassVar[dict[str, Any]] = {"output_size": 5}
    formula_args: ClassVar[dict[str, Any]] = example
    example_input: ClassVar[tuple[Shape, ...]] = ((1, 64, 8),)
    dims: ClassVar[int] = 1


@register
class AdaptiveAvgPool2d(_AdaptiveAvgPool):
    """``nn.AdaptiveAvgPool2d(output_size)``: the mean of windows sized to give
    output_size.

    Example (ResNet's head):

        >>> AdaptiveAvgPool2d(1).work((32, 2048, 7, 7)).outputs
        ((32, 2048, 1, 1),)
    """

    kind: ClassVar[str] = "AdaptiveAvgPool2d"
    summary: ClassVar[str] = "2-D average pooling to a given output size; no parameters"
    example: ClassVar[dict[str, Any]] = {"output_size": 1}
    formula_args: ClassVar[dict[str, Any]] = example
    example_input: ClassVar[tuple[Shape, ...]] = ((32, 2048, 7, 7),)
    dims: ClassVar[int] = 2


@register
class AdaptiveAvgPool3d(_AdaptiveAvgPool):
    """``nn.AdaptiveAvgPool3d(output_size)``: the mean of windows sized to give
    output_size."""

    kind: ClassVar[str] = "AdaptiveAvgPool3d"
    summary: ClassVar[str] = "3-D average pooling to a given output size; no parameters"
    example: ClassVar[dict[str, Any]] = {"output_size": (5, 7, 9)}
    formula_args: ClassVar[dict[str, Any]] = example
    example_input: ClassVar[tuple[Shape, ...]] = ((1, 64, 8, 9, 10),)
    dims: ClassVar[int] = 3


@register
class AdaptiveMaxPool1d(_AdaptiveMaxPool):
    """``nn.AdaptiveMaxPool1d(output_size, return_indices=False)``: the maximum of
    windows sized to give output_size."""

    kind: ClassVar[str] = "AdaptiveMaxPool1d"
    summary: ClassVar[str] = "1-D max pooling to a given output size; no parameters"
    example: ClassVar[dict[str, Any]] = {"output_size": 5}
    formula_args: ClassVar[dict[str, Any]] = example
    example_input: ClassVar[tuple[Shape, ...]] = ((1, 64, 8),)
    dims: ClassVar[int] = 1


@register
class AdaptiveMaxPool2d(_AdaptiveMaxPool):
    """``nn.AdaptiveMaxPool2d(output_size, return_indices=False)``: the maximum of
    windows sized to give output_size."""

    kind: ClassVar[str] = "AdaptiveMaxPool2d"
    summary: ClassVar[str] = "2-D max pooling to a given output size; no parameters"
    example: ClassVar[dict[str, Any]] = {"output_size": (5, 7)}
    formula_args: ClassVar[dict[str, Any]] = example
    example_input: ClassVar[tuple[Shape, ...]] = ((1, 64, 8, 9),)
    dims: ClassVar[int] = 2


@register
class AdaptiveMaxPool3d(_AdaptiveMaxPool):
    """``nn.AdaptiveMaxPool3d(output_size, return_indices=False)``: the maximum of
    windows sized to give output_size."""

    kind: ClassVar[str] = "AdaptiveMaxPool3d"
    summary: ClassVar[str] = "3-D max pooling to a given output size; no parameters"
    example: ClassVar[dict[str, Any]] = {"output_size": (5, 7, 9)}
    formula_args: ClassVar[dict[str, Any]] = example
    example_input: ClassVar[tuple[Shape, ...]] = ((1, 64, 8, 9, 10),)
    dims: ClassVar[int] = 3


#: Upsample's modes and the input rank each takes (None: 3-, 4- or 5-D); 'lanczos', which
#: F.interpolate knows, needs antialias=True, which nn.Upsample cannot pass
MODES: dict[str, int | None] = {
    "nearest": None,
    "linear": 3,
    "bilinear": 4,
    "bicubic": 4,
    "trilinear": 5,
    "area": None,
    "nearest-exact": None,
}
#: interpolating modes: FLOPs per output number (2^d products and 2^d - 1 adds; bicubic
#: 16 and 15)
INTERPOLATING = {"linear": 3, "bilinear": 7, "bicubic": 31, "trilinear": 15}


@register
@frozen
class Upsample(LayerSpec):
    """``nn.Upsample(size=None, scale_factor=None, mode='nearest', align_corners=None,
    recompute_scale_factor=None)``: resizes the spatial dimensions to size, or to
    ⌊size·scale_factor⌋; scale_factor is kept as a float (or a tuple of floats), and a
    scale_factor of 0 as None, as torch keeps it.

        >>> Upsample(scale_factor=2).output_shapes((1, 256, 16, 16))
        ((1, 256, 32, 32),)
    """

    size: Any = None
    scale_factor: Any = None
    mode: str = "nearest"
    align_corners: bool | None = None
    recompute_scale_factor: bool | None = None

    kind: ClassVar[str] = "Upsample"
    family: ClassVar[str] = "pooling"
    summary: ClassVar[str] = "resizes the spatial dimensions (nearest, linear, ...); no parameters"
    example: ClassVar[dict[str, Any]] = {"scale_factor": 2}
    formula_args: ClassVar[dict[str, Any]] = example
    example_input: ClassVar[tuple[Shape, ...]] = ((1, 256, 16, 16),)

    def __post_init__(self) -> None:
        self._check_choice("mode", tuple(MODES))
        object.__setattr__(self, "scale_factor", self._scales())
        if (self.size is None) == (self.scale_factor is None):
            given = "both" if self.size is not None else "neither"
            self._fail(
                "size",
                self.size,
                "exactly one of size and scale_factor must be given",
                f"got {given}",
                "scale_factor",
            )
        if self.size is not None:
            low = 0 if self.mode == "area" else 1
            for item in self._entries("size"):
                if isinstance(item, bool) or not isinstance(item, int) or item < low:
                    self._fail(
                        "size", self.size, f"size must be an int >= {low}", f"got {echo(self.size)}"
                    )
            if self.recompute_scale_factor:
                self._fail(
                    "recompute_scale_factor",
                    self.recompute_scale_factor,
                    "recompute_scale_factor needs scale_factor, not size",
                    f"size={echo(self.size)}",
                    "size",
                )
        else:
            for scale in self._entries("scale_factor"):
                if not (math.isfinite(scale) and scale > 0):
                    self._fail(
                        "scale_factor",
                        self.scale_factor,
                        "scale_factor must be finite and > 0",
                        f"got {echo(self.scale_factor)}",
                    )
        self._check_align_corners()

    def _scales(self) -> Any:
        """scale_factor as torch's constructor keeps it: floats, None when falsy."""
        value = self.scale_factor
        try:
            if isinstance(value, tuple):
                return tuple(float(f) for f in value)
            return float(value) if value else None
        except (TypeError, ValueError, OverflowError):
            self._fail(
                "scale_factor",
                value,
                "scale_factor must be a number, a tuple of numbers or None",
                f"got {echo(value)}",
            )

    def _entries(self, field: str) -> tuple[Any, ...]:
        """size or scale_factor as given: one entry, or a tuple with one per spatial
        dimension of the input rank the mode takes."""
        value = getattr(self, field)
        if not isinstance(value, (tuple, list)):
            return (value,)
        rank = MODES[self.mode]
        counts = (rank - 2,) if rank else (1, 2, 3)
        if len(value) not in counts:
            wanted = " or ".join(str(c) for c in counts)
            self._fail(
                field,
                value,
                f"a tuple {field} has one entry per spatial dimension: {wanted} for mode "
                f"{echo(self.mode)}",
                f"got {len(value)}",
                "mode",
            )
        return tuple(value)

    def _check_align_corners(self) -> None:
        corners: Any = self.align_corners
        if corners is None:
            return
        if self.mode not in INTERPOLATING:
            self._fail(
                "align_corners",
                corners,
                "align_corners can only be set with the interpolating modes linear, "
                "bilinear, bicubic and trilinear",
                f"mode={echo(self.mode)}",
                "mode",
            )
        if not isinstance(corners, bool):
            self._fail(
                "align_corners",
                corners,
                "align_corners must be True, False or None",
                f"got {echo(corners)}",
            )

    def params(self) -> Iterator[Param]:
        return iter(())

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        """(N, C, *spatial) -> (N, C, *size), or each spatial size times scale_factor,
        rounded down. 'linear' takes a 3-D input, 'bilinear' and 'bicubic' 4-D,
        'trilinear' 5-D, the others 3-, 4- or 5-D; a tuple size or scale_factor has one
        entry per spatial dimension."""
        rank = MODES[self.mode]
        shape = one_input(self, inputs, *((rank,) if rank else (3, 4, 5)))
        non_empty(self, shape, batched=True)
        spatial = shape[2:]
        field = "size" if self.size is not None else "scale_factor"
        given = self._entries(field)
        if not isinstance(getattr(self, field), (tuple, list)):
            given *= len(spatial)
        elif len(given) != len(spatial):
            self._fail_shape(
                f"{field} has {len(given)} entries for the {len(spatial)} spatial "
                f"dimensions of {shape_str(shape)}",
                shape,
            )
        out = (
            given
            if self.size is not None
            else tuple(self._scaled(x, s) for x, s in zip(spatial, given, strict=True))
        )
        if self.mode != "area" and any(isinstance(o, int) and o < 1 for o in out):
            self._fail_shape(
                f"input {shape_str(shape)} gives an output size of {shape_str(out)}; "
                "every size must be >= 1",
                shape,
            )
        return ((*shape[:2], *out),)

    def _scaled(self, size: Dim, scale: float) -> Dim:
        """⌊size·scale⌋ as torch computes it, in floating point; a symbolic size takes a
        whole scale or a fraction with a power-of-two denominator up to 1024 (exact in
        floating point)."""
        if isinstance(size, int):
            value = size * scale
            if not math.isfinite(value):
                self._fail_shape(f"{size}·{scale} is not a finite size", size)
            return int(value)
        ratio = Fraction(scale)
        if ratio.denominator > 1024:
            self._fail_shape(
                f"scale_factor {scale} on the symbolic size {dim_str(size)}: torch rounds "
                "size·scale in floating point; give the size as a number",
                size,
            )
        return floor_div(ratio.numerator * size, ratio.denominator)

    def work(self, *inputs: Shape) -> Work:
        """Nearest modes copy (no FLOPs, nothing kept); the interpolating modes weigh
        2^d neighbours per output number (linear 3, bilinear 7, trilinear 15 FLOPs;
        bicubic 16 neighbours, 31), keeping nothing; 'area' is adaptive average
        pooling."""
        outputs = self.output_shapes(*inputs)
        out = outputs[0]
        if self.mode == "area":
            other, rule, kept = _adaptive_work(inputs[0], out, len(out) - 2, True)
            return Work(outputs, other=other, other_rule=rule, saved=kept)
        if self.mode in INTERPOLATING:
            per = INTERPOLATING[self.mode]
            rule = f"{self.mode}: weigh and add the neighbours, {per} per output number"
            return Work(outputs, other=per * product(out), other_rule=rule)
        return Work(outputs, other_rule=f"{self.mode}: a copy, no arithmetic")
