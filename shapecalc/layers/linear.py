"""The linear family: ``Linear``, ``Bilinear``, and layers without parameters that models
are built from (``Identity``, ``Dropout``, ``Flatten``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from shapecalc.core.dims import Dim, dim_str, product, same_size
from shapecalc.core.errors import echo
from shapecalc.core.frozen import frozen
from shapecalc.core.spec import LayerSpec, Param, Shape, Stored, Work, register
from shapecalc.layers._linear import Linear
from shapecalc.layers._shapes import bias_adds, check_features, one_input

__all__ = ["Bilinear", "Dropout", "Flatten", "Identity", "Linear"]


@register
@frozen
class Bilinear(LayerSpec):
    """``nn.Bilinear(in1_features, in2_features, out_features, bias=True)``:
    y = x1ᵀ·A·x2 + b, one in1 × in2 matrix per output.

        >>> Bilinear(20, 30, 40).total()
        24040
    """

    in1_features: Dim
    in2_features: Dim
    out_features: Dim
    bias: bool = True

    kind: ClassVar[str] = "Bilinear"
    family: ClassVar[str] = "linear"
    summary: ClassVar[str] = "y = x1ᵀ·A·x2 + b: weight (out, in1, in2) and bias (out)"
    example: ClassVar[dict[str, Any]] = {"in1_features": 20, "in2_features": 30, "out_features": 40}
    formula_args: ClassVar[dict[str, Any]] = {
        "in1_features": "I1",
        "in2_features": "I2",
        "out_features": "O",
    }
    example_input: ClassVar[tuple[Shape, ...]] = ((128, 20), (128, 30))
    # in1_features 0 is refused by torch too (its initialiser divides by sqrt(in1_features))
    size_fields: ClassVar[dict[str, int]] = {
        "in1_features": 1,
        "in2_features": 0,
        "out_features": 0,
    }
    bool_fields: ClassVar[tuple[str, ...]] = ("bias",)

    def __post_init__(self) -> None:
        self._check_fields()

    def params(self) -> Iterator[Param]:
        a, b, out = self.in1_features, self.in2_features, self.out_features
        yield Param(
            "weight",
            (out, a, b),
            f"one {dim_str(a)} × {dim_str(b)} matrix per output, {dim_str(out)} outputs",
        )
        if self.bias:
            yield Param("bias", (out,), f"bias b: one per output, {dim_str(out)}")

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        """(*, in1_features) and (*, in2_features) -> (*, out_features)."""
        if len(inputs) != 2:
            self._fail_shape(f"takes two input shapes, got {len(inputs)}", inputs)
        x1, x2 = inputs
        if not x1 or not x2:
            self._fail_shape("inputs need at least one dimension", inputs)
        check_features(self, x1, -1, self.in1_features, "in1_features")
        check_features(self, x2, -1, self.in2_features, "in2_features")
        if len(x1) != len(x2) or not all(
            same_size(a, b) for a, b in zip(x1[:-1], x2[:-1], strict=True)
        ):
            self._fail_shape(f"inputs {x1} and {x2} differ before the last dimension", inputs)
        return ((*x1[:-1], self.out_features),)

    def work(self, *inputs: Shape) -> Work:
        """Per row and output: x1ᵀ·A_k (in1·in2 MACs), then ·x2 (in2 MACs); a bias add
        per output. Keeps both inputs."""
        outputs = self.output_shapes(*inputs)
        rows = product(inputs[0][:-1])
        per_output = (self.in1_features + 1) * self.in2_features
        other, rule = bias_adds(self.bias, outputs[0])
        return Work(
            outputs,
            macs=rows * self.out_features * per_output,
            other=other,
            other_rule=rule,
            saved=(
                Stored("input1", inputs[0], of="input"),
                Stored("input2", inputs[1], of="input1"),
            ),
        )


@register
@frozen
class Identity(LayerSpec):
    """``nn.Identity()``: returns its input; no parameters (torch ignores any arguments)."""

    kind: ClassVar[str] = "Identity"
    family: ClassVar[str] = "linear"
    summary: ClassVar[str] = "returns its input; no parameters"
    example: ClassVar[dict[str, Any]] = {}
    formula_args: ClassVar[dict[str, Any]] = {}
    example_input: ClassVar[tuple[Shape, ...]] = ((32, 512),)

    def params(self) -> Iterator[Param]:
        return iter(())

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        return (one_input(self, inputs),)

    def work(self, *inputs: Shape) -> Work:
        return Work(self.output_shapes(*inputs))


@register
@frozen
class Dropout(LayerSpec):
    """``nn.Dropout(p=0.5, inplace=False)``: zeroes elements in training; no parameters."""

    p: float = 0.5
    inplace: bool = False

    kind: ClassVar[str] = "Dropout"
    family: ClassVar[str] = "linear"
    summary: ClassVar[str] = "zeroes each element with probability p in training; no parameters"
    example: ClassVar[dict[str, Any]] = {"p": 0.1}
    formula_args: ClassVar[dict[str, Any]] = {}
    example_input: ClassVar[tuple[Shape, ...]] = ((32, 512),)

    def __post_init__(self) -> None:
        self._check_number("p", 0, 1)

    def params(self) -> Iterator[Param]:
        return iter(())

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        return (one_input(self, inputs),)

    def work(self, *inputs: Shape) -> Work:
        """In training: a mask multiply and a 1/(1 - p) scale per number; keeps the mask,
        a float tensor on the CPU (CUDA's fused kernel keeps one byte per number).
        p = 0 and p = 1 keep nothing."""
        outputs = self.output_shapes(*inputs)
        if self.p in (0, 1):
            return Work(outputs)
        return Work(
            outputs,
            other=2 * product(outputs[0]),
            other_rule="training: mask multiply and scale, 2 per number",
            saved=(Stored("mask", outputs[0]),),
        )


@register
@frozen
class Flatten(LayerSpec):
    """``nn.Flatten(start_dim=1, end_dim=-1)``: merges dims start_dim..end_dim.

    Example:

        >>> Flatten().output_shapes((8, 64, 7, 7))
        ((8, 3136),)
    """

    start_dim: int = 1
    end_dim: int = -1

    kind: ClassVar[str] = "Flatten"
    family: ClassVar[str] = "linear"
    summary: ClassVar[str] = "merges dimensions start_dim..end_dim; no parameters"
    example: ClassVar[dict[str, Any]] = {}
    formula_args: ClassVar[dict[str, Any]] = {}
    example_input: ClassVar[tuple[Shape, ...]] = ((32, 64, 7, 7),)

    def __post_init__(self) -> None:
        for name in ("start_dim", "end_dim"):
            value: Any = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                self._fail(name, value, f"{name} must be an integer", f"got {echo(value)}")

    def params(self) -> Iterator[Param]:
        return iter(())

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        shape = one_input(self, inputs)
        rank = max(len(shape), 1)
        start, end = self.start_dim, self.end_dim
        if not (-rank <= start < rank and -rank <= end < rank):
            self._fail_shape(
                f"start_dim={start} and end_dim={end} must lie within the {len(shape)}-D input",
                shape,
            )
        start, end = start % rank, end % rank
        if start > end:
            self._fail_shape(f"start_dim {start} comes after end_dim {end}", shape)
        if not shape:
            return ((1,),)
        return ((*shape[:start], product(shape[start : end + 1]), *shape[end + 1 :]),)

    def work(self, *inputs: Shape) -> Work:
        """A view: no compute, nothing kept."""
        return Work(self.output_shapes(*inputs))
