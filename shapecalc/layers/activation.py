"""Activations: the elementwise ones (``ReLU``, ``GELU``, ``SiLU``, ...), ``Softmax`` and
``LogSoftmax``, and ``PReLU``, the one with a parameter.

torch's constructors store these arguments unchecked and its forward refuses the bad
ones (a ``GELU`` approximation other than ``'none'`` or ``'tanh'``, a slope that is not a
number, a ``Softmax`` dim that is not an int); shapecalc refuses them at construction.
``inplace`` is taken as torch takes it, by its truth value.

What autograd keeps, measured with ``saved_tensors_hooks``: ReLU, Sigmoid, Tanh, Softmax
and LogSoftmax keep their result; the others keep their input. In place, the result is
the input's own storage (ReLU, LeakyReLU, ELU keep it), or the kernel first copies the
input it is about to overwrite (ReLU6, SiLU, Mish, Hardswish, Hardsigmoid keep that
copy).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from shapecalc.core.dims import Dim, dim_str, product
from shapecalc.core.errors import echo
from shapecalc.core.frozen import frozen
from shapecalc.core.spec import LayerSpec, Param, Shape, Stored, Work, register
from shapecalc.layers._activation import SiLU, _Activation, _InPlace
from shapecalc.layers._shapes import check_features, one_input

__all__ = [
    "ELU",
    "GELU",
    "Hardsigmoid",
    "Hardswish",
    "LeakyReLU",
    "LogSoftmax",
    "Mish",
    "PReLU",
    "ReLU",
    "ReLU6",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Tanh",
]


@register
@frozen
class PReLU(LayerSpec):
    """``nn.PReLU(num_parameters=1, init=0.25)``: max(0, x) + a·min(0, x) with a learned a,
    one shared or one per channel.

        >>> PReLU(64).total()
        64
    """

    num_parameters: Dim = 1
    init: float = 0.25

    kind: ClassVar[str] = "PReLU"
    family: ClassVar[str] = "activation"
    summary: ClassVar[str] = "leaky ReLU with a learned slope: one, or one per channel"
    example: ClassVar[dict[str, Any]] = {"num_parameters": 64}
    formula_args: ClassVar[dict[str, Any]] = {"num_parameters": "C"}
    example_input: ClassVar[tuple[Shape, ...]] = ((32, 64, 28, 28),)
    size_fields: ClassVar[dict[str, int]] = {"num_parameters": 0}

    def __post_init__(self) -> None:
        self._check_fields()
        self._check_number("init")

    def params(self) -> Iterator[Param]:
        n = self.num_parameters
        yield Param("weight", (n,), f"negative slopes a: {dim_str(n)}")

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        """The input shape; with more than one slope, dim 1 (channels) must match."""
        shape = one_input(self, inputs)
        if self.num_parameters != 1:
            if len(shape) < 2:
                self._fail_shape(
                    f"{dim_str(self.num_parameters)} slopes need a channel dimension (dim 1)",
                    shape,
                )
            check_features(self, shape, 1, self.num_parameters, "num_parameters")
        return (shape,)

    def work(self, *inputs: Shape) -> Work:
        """A comparison and a multiply per number; keeps the input."""
        outputs = self.output_shapes(*inputs)
        return Work(
            outputs,
            other=2 * product(inputs[0]),
            other_rule="compare and multiply, 2 per number",
            saved=(Stored("input", inputs[0], of="input"),),
        )


@register
class ReLU(_InPlace):
    """``nn.ReLU(inplace=False)``: max(0, x).

    >>> ReLU().work((8, 512)).other
    4096
    """

    kind: ClassVar[str] = "ReLU"
    summary: ClassVar[str] = "max(0, x); no parameters"
    flops: ClassVar[int] = 1
    rule: ClassVar[str] = "a comparison, 1 per number"
    keeps: ClassVar[str] = "output"


@register
class ReLU6(_InPlace):
    """``nn.ReLU6(inplace=False)``: min(max(0, x), 6)."""

    kind: ClassVar[str] = "ReLU6"
    summary: ClassVar[str] = "min(max(0, x), 6); no parameters"
    flops: ClassVar[int] = 2
    rule: ClassVar[str] = "two comparisons, 2 per number"
    keeps_in_place: ClassVar[str] = "copy"


@register
@frozen
class LeakyReLU(_Activation):
    """``nn.LeakyReLU(negative_slope=0.01, inplace=False)``: x, or negative_slope·x below
    0."""

    negative_slope: float = 0.01
    inplace: bool = False

    kind: ClassVar[str] = "LeakyReLU"
    summary: ClassVar[str] = "x, or negative_slope·x below 0; no parameters"
    example: ClassVar[dict[str, Any]] = {"negative_slope": 0.2}
    flops: ClassVar[int] = 2
    rule: ClassVar[str] = "compare and multiply, 2 per number"

    def __post_init__(self) -> None:
        self._check_number("negative_slope")


@register
@frozen
class ELU(_Activation):
    """``nn.ELU(alpha=1.0, inplace=False)``: x, or alpha·(exp(x) - 1) below 0."""

    alpha: float = 1.0
    inplace: bool = False

    kind: ClassVar[str] = "ELU"
    summary: ClassVar[str] = "x, or alpha·(exp(x) - 1) below 0; no parameters"
    flops: ClassVar[int] = 4
    rule: ClassVar[str] = "compare, exp, subtract and multiply, 4 per number"

    def __post_init__(self) -> None:
        self._check_number("alpha")


@register
@frozen
class GELU(_Activation):
    """``nn.GELU(approximate='none')``: x·Φ(x), Φ the standard normal's distribution
    function (``'none'``, through erf) or its tanh approximation (``'tanh'``)."""

    approximate: str = "none"

    kind: ClassVar[str] = "GELU"
    summary: ClassVar[str] = "x·Φ(x), exact or with tanh; no parameters"

    def __post_init__(self) -> None:
        self._check_choice("approximate", ("none", "tanh"))

    def elementwise(self, shape: Shape) -> tuple[Dim, str]:
        if self.approximate == "tanh":
            rule = "x³ (2), ×0.044715, +x, ×√(2/π), tanh, +1, ×0.5 and ×x: 9 per number"
            return 9 * product(shape), rule
        return 5 * product(shape), "x/√2, erf, +1, ×0.5 and ×x: 5 per number"


@register
class Mish(_InPlace):
    """``nn.Mish(inplace=False)``: x·tanh(softplus(x))."""

    kind: ClassVar[str] = "Mish"
    summary: ClassVar[str] = "x·tanh(softplus(x)); no parameters"
    flops: ClassVar[int] = 5
    rule: ClassVar[str] = "exp, +1, log, tanh and a multiply, 5 per number"
    keeps_in_place: ClassVar[str] = "copy"


@register
class Sigmoid(_Activation):
    """``nn.Sigmoid()``: σ(x) = 1 / (1 + exp(-x))."""

    kind: ClassVar[str] = "Sigmoid"
    summary: ClassVar[str] = "σ(x) = 1 / (1 + exp(-x)); no parameters"
    flops: ClassVar[int] = 1
    rule: ClassVar[str] = "a sigmoid, 1 per number"
    keeps: ClassVar[str] = "output"


@register
class Tanh(_Activation):
    """``nn.Tanh()``: tanh(x)."""

    kind: ClassVar[str] = "Tanh"
    summary: ClassVar[str] = "tanh(x); no parameters"
    flops: ClassVar[int] = 1
    rule: ClassVar[str] = "a tanh, 1 per number"
    keeps: ClassVar[str] = "output"


@register
class Hardswish(_InPlace):
    """``nn.Hardswish(inplace=False)``: x·ReLU6(x + 3)/6."""

    kind: ClassVar[str] = "Hardswish"
    summary: ClassVar[str] = "x·ReLU6(x + 3)/6; no parameters"
    flops: ClassVar[int] = 5
    rule: ClassVar[str] = "+3, two comparisons, a multiply and a divide, 5 per number"
    keeps_in_place: ClassVar[str] = "copy"


@register
class Hardsigmoid(_InPlace):
    """``nn.Hardsigmoid(inplace=False)``: ReLU6(x + 3)/6 (MobileNetV3's squeeze-and-excitation
    gate)."""

    kind: ClassVar[str] = "Hardsigmoid"
    summary: ClassVar[str] = "ReLU6(x + 3)/6; no parameters"
    flops: ClassVar[int] = 4
    rule: ClassVar[str] = "+3, two comparisons and a divide, 4 per number"
    keeps_in_place: ClassVar[str] = "copy"


@register
@frozen
class Softplus(_Activation):
    """``nn.Softplus(beta=1.0, threshold=20.0)``: log(1 + exp(beta·x))/beta, and x where
    beta·x > threshold."""

    beta: float = 1.0
    threshold: float = 20.0

    kind: ClassVar[str] = "Softplus"
    summary: ClassVar[str] = "log(1 + exp(beta·x))/beta, x above the threshold; no parameters"
    flops: ClassVar[int] = 6
    rule: ClassVar[str] = "×beta, compare, exp, +1, log and ÷beta, 6 per number"

    def __post_init__(self) -> None:
        self._check_number("beta")
        self._check_number("threshold")


class _Softmax(_Activation):
    """Softmax and LogSoftmax: along ``dim``, the result kept for backward."""

    dim: int | None

    example: ClassVar[dict[str, Any]] = {"dim": -1}
    example_input: ClassVar[tuple[Shape, ...]] = ((32, 100, 65),)
    flops: ClassVar[int] = 5
    keeps: ClassVar[str] = "output"

    def __post_init__(self) -> None:
        dim: Any = self.dim
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int)):
            self._fail("dim", dim, "dim must be an integer or None", f"got {echo(dim)}")

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        """The input shape, of any rank (a scalar too); dim must lie within it."""
        shape = one_input(self, inputs, least=0)
        self.axis(shape)
        return (shape,)

    def axis(self, shape: Shape) -> int:
        """The dimension the softmax runs along; dim=None takes torch's legacy choice
        (``_get_softmax_dim``): dim 0 for a 0-, 1- or 3-D input, else dim 1."""
        if self.dim is None:
            return 0 if len(shape) in (0, 1, 3) else 1
        rank = max(len(shape), 1)
        if not -rank <= self.dim < rank:
            self._fail_shape(f"dim={self.dim} is outside the {len(shape)}-D input", shape)
        return self.dim % rank


@register
@frozen
class Softmax(_Softmax):
    """``nn.Softmax(dim=None)``: exp(x) / sum(exp(x)) along dim."""

    dim: int | None = None

    kind: ClassVar[str] = "Softmax"
    summary: ClassVar[str] = "exp(x) / sum(exp(x)) along dim; no parameters"
    rule: ClassVar[str] = "max, subtract, exp, sum and divide, 5 per number"


@register
@frozen
class LogSoftmax(_Softmax):
    """``nn.LogSoftmax(dim=None)``: x - log(sum(exp(x))) along dim."""

    dim: int | None = None

    kind: ClassVar[str] = "LogSoftmax"
    summary: ClassVar[str] = "x - log(sum(exp(x))) along dim; no parameters"
    rule: ClassVar[str] = "max, subtract, exp, sum and subtract, 5 per number; a log per row"

    def elementwise(self, shape: Shape) -> tuple[Dim, str]:
        axis = self.axis(shape)
        rows = product(shape[:axis] + shape[axis + 1 :])
        return 5 * product(shape) + rows, self.rule
