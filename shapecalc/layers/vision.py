"""Layers torchvision has and torch.nn lacks: ``torchvision.ops.StochasticDepth``.

Not a torch.nn kind, so not in ``LAYER_KINDS``; a torchvision model's tree uses it where
torchvision's module holds one (EfficientNet's ``block.N.M.stochastic_depth``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from shapecalc.core.dims import product
from shapecalc.core.errors import echo
from shapecalc.core.frozen import frozen
from shapecalc.core.spec import LayerSpec, Param, Shape, Stored, Work
from shapecalc.layers._shapes import one_input

__all__ = ["StochasticDepth"]


@frozen
class StochasticDepth(LayerSpec):
    """``torchvision.ops.StochasticDepth(p, mode)``: in training, each sample's residual
    branch (``mode="row"``) or the whole batch's (``"batch"``) is zeroed with probability
    ``p`` and the rest scaled by 1/(1 - p); at inference the identity. No parameters.

    torchvision's ``stochastic_depth`` (torchvision/ops/stochastic_depth.py) draws a noise
    tensor of shape (B, 1, ...) for "row" and (1, ...) for "batch" and returns
    ``input * noise``, which autograd keeps for backward.

        >>> StochasticDepth(0.2, "row").work((8, 64, 7, 7)).saved[0].shape
        (8, 1, 1, 1)
    """

    p: float
    mode: str

    kind: ClassVar[str] = "StochasticDepth"
    family: ClassVar[str] = "torchvision"
    summary: ClassVar[str] = "drops a residual branch per sample in training; identity at inference"
    example: ClassVar[dict[str, Any]] = {"p": 0.2, "mode": "row"}
    formula_args: ClassVar[dict[str, Any]] = {}
    example_input: ClassVar[tuple[Shape, ...]] = ((32, 64, 28, 28),)

    def __post_init__(self) -> None:
        self._check_number("p", 0.0, 1.0)
        if self.mode not in ("batch", "row"):
            self._fail("mode", self.mode, 'mode is "batch" or "row"', f"got {echo(self.mode)}")

    def params(self) -> Iterator[Param]:
        return iter(())

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        """The input shape."""
        return (one_input(self, inputs),)

    def work(self, *inputs: Shape) -> Work:
        """In training a multiply per number by the noise, which autograd keeps (one number
        per sample in "row" mode, one for the batch in "batch" mode)."""
        (shape,) = self.output_shapes(*inputs)
        if self.p == 0.0:
            return Work((shape,))
        noise = (
            (shape[0], *(1 for _ in shape[1:])) if self.mode == "row" else tuple(1 for _ in shape)
        )
        return Work(
            (shape,),
            other=product(shape),
            other_rule="a multiply by the noise, 1 per number (in training)",
            saved=(Stored("noise", noise),),
        )
