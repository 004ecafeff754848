"""``Linear``, apart from :mod:`shapecalc.layers.linear`'s other kinds, so that a model of
Linear layers loads only what it builds. Import it from :mod:`shapecalc.layers.linear`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from shapecalc.core.dims import Dim, dim_str, product
from shapecalc.core.frozen import frozen
from shapecalc.core.spec import LayerSpec, Param, Shape, Stored, Work, register
from shapecalc.layers._shapes import bias_adds, check_features, one_input

__all__ = ["Linear"]


@register
@frozen
class Linear(LayerSpec):
    """``nn.Linear(in_features, out_features, bias=True)``: ``y = x·Wᵀ + b``.

    Example:

        >>> [(p.name, p.shape) for p in Linear(512, 65).params()]
        [('weight', (65, 512)), ('bias', (65,))]
    """

    in_features: Dim
    out_features: Dim
    bias: bool = True

    kind: ClassVar[str] = "Linear"
    family: ClassVar[str] = "linear"
    summary: ClassVar[str] = "y = x·Wᵀ + b: weight (out, in) and bias (out)"
    example: ClassVar[dict[str, Any]] = {"in_features": 512, "out_features": 65}
    formula_args: ClassVar[dict[str, Any]] = {"in_features": "I", "out_features": "O"}
    example_input: ClassVar[tuple[Shape, ...]] = ((32, 100, 512),)
    size_fields: ClassVar[dict[str, int]] = {"in_features": 0, "out_features": 0}
    bool_fields: ClassVar[tuple[str, ...]] = ("bias",)

    def __post_init__(self) -> None:
        self._check_fields()

    def params(self) -> Iterator[Param]:
        n_in, n_out = self.in_features, self.out_features
        yield Param(
            "weight",
            (n_out, n_in),
            f"weights of y = x·Wᵀ + b, {dim_str(n_in)} in -> {dim_str(n_out)} out, "
            "stored (out, in)",
        )
        if self.bias:
            yield Param("bias", (n_out,), f"bias b: one per output, {dim_str(n_out)}")

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        """(*, in_features) -> (*, out_features)."""
        shape = one_input(self, inputs)
        check_features(self, shape, -1, self.in_features, "in_features")
        return ((*shape[:-1], self.out_features),)

    def work(self, *inputs: Shape) -> Work:
        """rows · in_features · out_features MACs, rows being every leading dimension;
        one add per output for the bias. Keeps its input (for the weight's gradient)."""
        outputs = self.output_shapes(*inputs)
        other, rule = bias_adds(self.bias, outputs[0])
        return Work(
            outputs,
            macs=product(inputs[0][:-1]) * self.in_features * self.out_features,
            other=other,
            other_rule=rule,
            saved=(Stored("input", inputs[0], of="input"),),
        )
