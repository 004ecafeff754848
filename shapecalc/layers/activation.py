"""Activations with parameters: ``PReLU``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from shapecalc.core.dims import Dim, dim_str, product
from shapecalc.core.spec import LayerSpec, Param, Shape, Stored, Work, register
from shapecalc.layers._shapes import check_features, one_input

__all__ = ["PReLU"]


@register
@dataclass(frozen=True)
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
