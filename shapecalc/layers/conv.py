"""Convolutions: ``Conv1d/2d/3d`` and ``ConvTranspose1d/2d/3d``.

A convolution's weight is ``(out_channels, in_channels / groups, *kernel_size)``; a
transposed one's is ``(in_channels, out_channels / groups, *kernel_size)``; the bias is
``(out_channels,)``. Validation follows ``torch.nn.modules.conv._ConvNd``: groups > 0 and
dividing both channel counts, padding an int, a tuple, ``'same'`` (stride 1 only) or
``'valid'``, padding_mode one of zeros, reflect, replicate, circular (zeros only when
transposed). Arguments torch's constructor takes but no forward can use (a kernel tuple
of the wrong length, a string padding for a transposed convolution, which torch turns into
a tuple of letters) are refused here at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from shapecalc.core.dims import Dim, Expr, dim_str, int_text, known, product, shape_str
from shapecalc.core.errors import echo
from shapecalc.core.frozen import frozen
from shapecalc.core.spec import LayerSpec, Param, Shape, Stored, Work, register, shown
from shapecalc.layers._shapes import (
    bias_adds,
    check_features,
    conv_out,
    one_input,
    transposed_out,
    tuple_of,
)

__all__ = [
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class _ConvBase(LayerSpec):
    """Checks, parameters and output shapes shared by every convolution."""

    in_channels: Dim
    out_channels: Dim
    kernel_size: Any
    stride: Any
    padding: Any
    dilation: Any
    groups: int
    bias: bool
    padding_mode: str

    #: spatial dimensions (1, 2, 3)
    dims: ClassVar[int]
    transposed: ClassVar[bool] = False
    family: ClassVar[str] = "conv"
    size_fields: ClassVar[dict[str, int]] = {"in_channels": 0, "out_channels": 0}
    bool_fields: ClassVar[tuple[str, ...]] = ("bias",)

    def __post_init__(self) -> None:
        self._check_fields()
        n = self.dims
        tuple_of(self, "kernel_size", n, minimum=0, symbolic=True)
        tuple_of(self, "stride", n)
        tuple_of(self, "dilation", n)
        groups: Any = self.groups
        if isinstance(groups, bool) or not isinstance(groups, int) or groups <= 0:
            self._fail("groups", groups, "groups must be a positive integer", f"got {echo(groups)}")
        for field in ("in_channels", "out_channels"):
            channels = known(getattr(self, field))
            if channels is not None and channels % groups:
                self._fail(
                    field,
                    channels,
                    f"{field} must be divisible by groups",
                    f"{channels} % {int_text(groups)} = {int_text(channels % groups)}",
                    "groups",
                )
            if channels is None and groups != 1:
                self._fail(
                    field,
                    getattr(self, field),
                    f"a symbolic {field} needs groups=1",
                    f"{dim_str(getattr(self, field))} / {int_text(groups)} is not a polynomial",
                    "groups",
                )
        self._check_padding()
        self._check_choice("padding_mode", PADDING_MODES)
        if self.transposed and self.padding_mode != "zeros":
            self._fail(
                "padding_mode",
                self.padding_mode,
                f"only 'zeros' padding_mode is supported for {self.kind}",
                f"got {echo(self.padding_mode)}",
            )

    def _check_padding(self) -> None:
        padding = self.padding
        if not isinstance(padding, str):
            tuple_of(self, "padding", self.dims)
            return
        if self.transposed:
            self._fail(
                "padding",
                padding,
                f"{self.kind} takes an int or a tuple as padding",
                f"got the string {echo(padding)}",
            )
        if padding not in ("same", "valid"):
            self._fail(
                "padding",
                padding,
                "padding must be 'same', 'valid', an int or a tuple",
                f"got {echo(padding)}",
            )
        if padding == "same" and any(s != 1 for s in tuple_of(self, "stride", self.dims)):
            self._fail(
                "padding",
                padding,
                "padding='same' is not supported for strided convolutions",
                f"stride={self.stride}",
                "stride",
            )

    @property
    def kernel(self) -> tuple[Dim, ...]:
        return tuple_of(self, "kernel_size", self.dims, symbolic=True)

    def params(self) -> Iterator[Param]:
        c_in, c_out, g = self.in_channels, self.out_channels, self.groups
        k = self.kernel
        window = " × ".join(str(x) for x in k)
        if self.transposed:
            per = c_out if g == 1 else _divide(c_out, g)
            shape: tuple[Dim, ...] = (c_in, per, *k)
            role = (
                f"for each of {dim_str(c_in)} input channels, {dim_str(per)} output "
                f"kernels of {window}"
            )
        else:
            per = c_in if g == 1 else _divide(c_in, g)
            shape = (c_out, per, *k)
            role = f"{dim_str(c_out)} filters, each {dim_str(per)} channels × {window}"
        if g != 1:
            role += f" ({g} groups)"
        yield Param("weight", shape, role)
        if self.bias:
            yield Param("bias", (c_out,), f"bias: one per output channel, {dim_str(c_out)}")

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        """(N, C_in, *spatial) or (C_in, *spatial) -> the same with C_out and the
        spatial sizes from PyTorch's formula; refused as torch's forward refuses (see
        :meth:`_check_run`, :meth:`_check_window`). An input of 0 channels (in_channels
        0) gives 0 channels, as torch returns it."""
        n = self.dims
        shape = one_input(self, inputs, n + 1, n + 2)
        channel_axis = len(shape) - n - 1
        check_features(self, shape, channel_axis, self.in_channels, "in_channels")
        k, s, d = self.kernel, tuple_of(self, "stride", n), tuple_of(self, "dilation", n)
        self._check_run(k, s, d)
        spatial = shape[channel_axis + 1 :]
        if self.transposed:
            p, op = tuple_of(self, "padding", n), tuple_of(self, "output_padding", n)
            self._check_window(shape, k, d, (0,) * n)
            out = tuple(
                transposed_out(self, x, k[i], s[i], p[i], d[i], op[i])
                for i, x in enumerate(spatial)
            )
        elif self.padding == "same":
            total = tuple(d[i] * (k[i] - 1) for i in range(n))
            self._check_window(shape, k, d, total)
            # F.pad pads the larger half on the right
            self._check_pad_mode(spatial, tuple(t - t // 2 for t in total))
            out = tuple(spatial)
        else:
            p = (0,) * n if self.padding == "valid" else tuple_of(self, "padding", n)
            self._check_pad_mode(spatial, p)
            self._check_window(shape, k, d, tuple(2 * x for x in p))
            out = tuple(conv_out(self, x, k[i], s[i], p[i], d[i]) for i, x in enumerate(spatial))
        channels: Dim = self.out_channels
        if not self.transposed and known(shape[channel_axis]) == 0:
            channels = 0  # torch returns an empty input's 0 channels
        return ((*shape[:channel_axis], channels, *out),)

    def _check_run(
        self, kernel: tuple[Dim, ...], stride: tuple[int, ...], dilation: tuple[int, ...]
    ) -> None:
        """The arguments torch's constructor stores and its forward refuses: padding
        below 0 (with padding_mode 'zeros'), output_padding below 0, stride, dilation or
        kernel_size below 1, no output channels (the weight's first dimension, out_channels
        or a transposed convolution's in_channels, below groups; a transposed one's
        out_channels of 0)."""
        n = self.dims
        zeros = not isinstance(self.padding, str) and self.padding_mode == "zeros"
        if zeros and any(p < 0 for p in tuple_of(self, "padding", n)):
            self._refuse_run("padding", "padding must be >= 0", "negative padding is not supported")
        if self.transposed and any(p < 0 for p in tuple_of(self, "output_padding", n)):
            self._refuse_run(
                "output_padding",
                "output_padding must be >= 0",
                "negative output_padding is not supported",
            )
        if any(x < 1 for x in stride):
            self._refuse_run(
                "stride", "stride must be >= 1", "non-positive stride is not supported"
            )
        if any(x < 1 for x in dilation):
            self._refuse_run(
                "dilation", "dilation must be >= 1", "dilation should be greater than zero"
            )
        if any(x is not None and x < 1 for x in map(known, kernel)):
            self._refuse_run(
                "kernel_size", "kernel_size must be >= 1", "kernel size should be greater than zero"
            )
        first = "in_channels" if self.transposed else "out_channels"
        g = self.groups
        if known(getattr(self, first)) == 0:
            self._refuse_run(
                first,
                f"{first} must be >= groups ({g})",
                f"expected weight to be at least {g} at dimension 0",
            )
        if self.transposed and known(self.out_channels) == 0:
            self._refuse_run(
                "out_channels", "out_channels must be >= 1", "non-empty weight tensor expected"
            )

    def _refuse_run(self, field: str, rule: str, torch_says: str) -> None:
        value = getattr(self, field)
        self._fail(
            field,
            value,
            f"{rule} to run a forward (torch: {torch_says})",
            f"got {shown(value)}",
        )

    def _check_window(
        self,
        shape: Shape,
        kernel: tuple[Dim, ...],
        dilation: tuple[int, ...],
        padded_by: tuple[Dim, ...],
    ) -> None:
        """An input empty in a spatial dimension is refused (torch runs only an empty
        batch or channel dimension, and with padding_mode 'zeros'); a convolution's input
        padded by ``padded_by`` must hold the kernel's extent, dilation·(kernel_size - 1)
        + 1."""
        n = self.dims
        spatial = shape[-n:]
        lead = shape[:-n]
        empty_ok = self.padding_mode == "zeros" and any(known(x) == 0 for x in lead)
        for i, x in enumerate(spatial):
            size = known(x)
            if size == 0 and not empty_ok:
                self._fail_shape(
                    f"input {shape_str(shape)} is empty in spatial dimension {i}; torch runs "
                    "an empty batch or channel dimension only",
                    shape,
                )
            k, pad = known(kernel[i]), known(padded_by[i])
            if self.transposed or size is None or k is None or pad is None:
                continue
            extent = dilation[i] * (k - 1) + 1
            if size + pad < extent:
                self._fail_shape(
                    f"input {shape_str(shape)} padded to {size + pad} in spatial dimension "
                    f"{i} is smaller than the kernel's extent {extent} (dilation·(kernel_size "
                    "- 1) + 1; torch: Kernel size can't be greater than actual input size)",
                    shape,
                )

    def _check_pad_mode(self, spatial: Shape, padding: tuple[Any, ...]) -> None:
        """torch's F.pad rules: reflect padding smaller than the input, circular padding
        at most the input (a padding torch refuses is refused, not given a shape)."""
        mode = self.padding_mode
        if mode not in ("reflect", "circular"):
            return
        for x, p in zip(spatial, padding, strict=True):
            size = known(x)
            if size is None or not isinstance(p, int):
                continue
            if (mode == "reflect" and p >= size) or (mode == "circular" and p > size):
                bound = "smaller than" if mode == "reflect" else "at most"
                rule = f"{mode} padding must be {bound} the input's size"
                self._fail_shape(f"{rule} ({p} against {size})", spatial)

    def work(self, *inputs: Shape) -> Work:
        """batch · C_out · output positions · (C_in / groups) · window MACs; for a
        transposed convolution the input positions take the output's place (each input
        value is spread over a window of every output channel of its group). One add per
        output for the bias. Keeps its input."""
        (out,) = outputs = self.output_shapes(*inputs)
        shape = inputs[0]
        n = self.dims
        batch = shape[0] if len(shape) == n + 2 else 1
        g = self.groups
        if self.transposed:
            per = self.out_channels if g == 1 else _divide(self.out_channels, g)
            positions = product(shape[-n:])
            macs = batch * self.in_channels * positions * per * product(self.kernel)
        else:
            per = self.in_channels if g == 1 else _divide(self.in_channels, g)
            macs = batch * self.out_channels * product(out[-n:]) * per * product(self.kernel)
        other, rule = bias_adds(self.bias, out)
        return Work(outputs, macs=macs, other=other, other_rule=rule, saved=self._kept(shape))

    def _kept(self, shape: Shape) -> tuple[Stored, ...]:
        """The input the convolution's backward reads: the input itself; for a padding
        mode other than zeros the padded copy F.pad makes (reflect and replicate padding
        keep the input too); for 'same' with an odd total padding, the input padded by
        the extra one on the right."""
        n = self.dims
        if self.transposed:
            return (Stored("input", shape, of="input"),)
        spatial = shape[-n:]
        total: list[Dim]
        if self.padding == "same":
            total = [
                d * (k - 1) for d, k in zip(tuple_of(self, "dilation", n), self.kernel, strict=True)
            ]
            if not all(isinstance(t, int) for t in total):
                self._fail_shape(
                    "with padding='same' the input is padded by one more on the right when "
                    "dilation·(kernel_size - 1) is odd: give kernel_size as a number",
                    shape,
                )
        else:
            pads = (0,) * n if self.padding == "valid" else tuple_of(self, "padding", n)
            total = [2 * p for p in pads]
        if self.padding_mode == "zeros":
            odd = [t % 2 if isinstance(t, int) else 0 for t in total]  # ints past the check
            if self.padding != "same" or not any(odd):
                return (Stored("input", shape, of="input"),)
            extra = tuple(x + o for x, o in zip(spatial, odd, strict=True))
            return (Stored("input padded on the right", (*shape[:-n], *extra)),)
        padded = tuple(x + t for x, t in zip(spatial, total, strict=True))
        copy = Stored(f"{self.padding_mode}-padded input", (*shape[:-n], *padded))
        return (
            (copy,)
            if self.padding_mode == "circular"
            else (Stored("input", shape, of="input"), copy)
        )


def _divide(value: Dim, by: int) -> Dim:
    assert isinstance(value, int) and not isinstance(value, Expr)  # checked in __post_init__
    return value // by


@frozen
class _Conv(_ConvBase):
    in_channels: Dim
    out_channels: Dim
    kernel_size: Any
    stride: Any = 1
    padding: Any = 0
    dilation: Any = 1
    groups: int = 1
    bias: bool = True
    padding_mode: str = "zeros"


@frozen
class _ConvTranspose(_ConvBase):
    in_channels: Dim
    out_channels: Dim
    kernel_size: Any
    stride: Any = 1
    padding: Any = 0
    output_padding: Any = 0
    groups: int = 1
    bias: bool = True
    dilation: Any = 1
    padding_mode: str = "zeros"

    transposed: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        tuple_of(self, "output_padding", self.dims)


@register
class Conv1d(_Conv):
    """``nn.Conv1d(in_channels, out_channels, kernel_size, stride=1, padding=0,
    dilation=1, groups=1, bias=True, padding_mode='zeros')``."""

    kind: ClassVar[str] = "Conv1d"
    summary: ClassVar[str] = "1-D convolution: weight (out, in/groups, k)"
    example: ClassVar[dict[str, Any]] = {
        "in_channels": 16,
        "out_channels": 33,
        "kernel_size": 3,
        "stride": 2,
    }
    formula_args: ClassVar[dict[str, Any]] = {
        "in_channels": "C_in",
        "out_channels": "C_out",
        "kernel_size": 3,
    }
    example_input: ClassVar[tuple[Shape, ...]] = ((20, 16, 50),)
    dims: ClassVar[int] = 1


@register
class Conv2d(_Conv):
    """``nn.Conv2d(...)``: weight (out_channels, in_channels/groups, kh, kw).

    Example:

        >>> Conv2d(3, 64, kernel_size=7, stride=2, padding=3).total()
        9472
        >>> Conv2d(3, 64, kernel_size=7, stride=2, padding=3).output_shapes((1, 3, 224, 224))
        ((1, 64, 112, 112),)
    """

    kind: ClassVar[str] = "Conv2d"
    summary: ClassVar[str] = "2-D convolution: weight (out, in/groups, kh, kw)"
    example: ClassVar[dict[str, Any]] = {
        "in_channels": 3,
        "out_channels": 64,
        "kernel_size": 7,
        "stride": 2,
        "padding": 3,
        "bias": False,
    }
    formula_args: ClassVar[dict[str, Any]] = {
        "in_channels": "C_in",
        "out_channels": "C_out",
        "kernel_size": (3, 3),
    }
    example_input: ClassVar[tuple[Shape, ...]] = ((1, 3, 224, 224),)
    dims: ClassVar[int] = 2


@register
class Conv3d(_Conv):
    """``nn.Conv3d(...)``: weight (out_channels, in_channels/groups, kd, kh, kw)."""

    kind: ClassVar[str] = "Conv3d"
    summary: ClassVar[str] = "3-D convolution: weight (out, in/groups, kd, kh, kw)"
    example: ClassVar[dict[str, Any]] = {
        "in_channels": 16,
        "out_channels": 33,
        "kernel_size": 3,
        "stride": 2,
    }
    formula_args: ClassVar[dict[str, Any]] = {
        "in_channels": "C_in",
        "out_channels": "C_out",
        "kernel_size": (3, 3, 3),
    }
    example_input: ClassVar[tuple[Shape, ...]] = ((20, 16, 10, 50, 100),)
    dims: ClassVar[int] = 3


@register
class ConvTranspose1d(_ConvTranspose):
    """``nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride=1, padding=0,
    output_padding=0, groups=1, bias=True, dilation=1, padding_mode='zeros')``."""

    kind: ClassVar[str] = "ConvTranspose1d"
    summary: ClassVar[str] = "1-D transposed convolution: weight (in, out/groups, k)"
    example: ClassVar[dict[str, Any]] = {
        "in_channels": 33,
        "out_channels": 16,
        "kernel_size": 3,
        "stride": 2,
    }
    formula_args: ClassVar[dict[str, Any]] = {
        "in_channels": "C_in",
        "out_channels": "C_out",
        "kernel_size": 3,
    }
    example_input: ClassVar[tuple[Shape, ...]] = ((20, 33, 24),)
    dims: ClassVar[int] = 1


@register
class ConvTranspose2d(_ConvTranspose):
    """``nn.ConvTranspose2d(...)``: weight (in_channels, out_channels/groups, kh, kw).

    Example:

        >>> ConvTranspose2d(64, 3, 4, stride=2, padding=1).output_shapes((1, 64, 16, 16))
        ((1, 3, 32, 32),)
    """

    kind: ClassVar[str] = "ConvTranspose2d"
    summary: ClassVar[str] = "2-D transposed convolution: weight (in, out/groups, kh, kw)"
    example: ClassVar[dict[str, Any]] = {
        "in_channels": 64,
        "out_channels": 3,
        "kernel_size": 4,
        "stride": 2,
        "padding": 1,
    }
    formula_args: ClassVar[dict[str, Any]] = {
        "in_channels": "C_in",
        "out_channels": "C_out",
        "kernel_size": (4, 4),
    }
    example_input: ClassVar[tuple[Shape, ...]] = ((1, 64, 16, 16),)
    dims: ClassVar[int] = 2


@register
class ConvTranspose3d(_ConvTranspose):
    """``nn.ConvTranspose3d(...)``: weight (in_channels, out_channels/groups, kd, kh, kw)."""

    kind: ClassVar[str] = "ConvTranspose3d"
    summary: ClassVar[str] = "3-D transposed convolution: weight (in, out/groups, kd, kh, kw)"
    example: ClassVar[dict[str, Any]] = {
        "in_channels": 33,
        "out_channels": 16,
        "kernel_size": 3,
        "stride": 2,
    }
    formula_args: ClassVar[dict[str, Any]] = {
        "in_channels": "C_in",
        "out_channels": "C_out",
        "kernel_size": (3, 3, 3),
    }
    example_input: ClassVar[tuple[Shape, ...]] = ((20, 33, 4, 12, 24),)
    dims: ClassVar[int] = 3
