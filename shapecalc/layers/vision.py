"""Layers torchvision's models hold that torch.nn does not have: ``StochasticDepth``
(``torchvision.ops.StochasticDepth``) and ConvNeXt's ``LayerNorm2d``. The torch bridge
builds each as torchvision's own code computes it (torchvision/ops/stochastic_depth.py,
torchvision/models/convnext.py).

    >>> LayerNorm2d(96, eps=1e-6).output_shapes((2, 96, 56, 56))
    ((2, 96, 56, 56),)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from shapecalc.core.dims import product, same_size, shape_str
from shapecalc.core.frozen import frozen
from shapecalc.core.spec import LayerSpec, Param, Shape, Stored, Work
from shapecalc.layers._norm import _norm_work
from shapecalc.layers._shapes import one_input
from shapecalc.layers.norm import LayerNorm

__all__ = ["LayerNorm2d", "StochasticDepth"]


@frozen
class StochasticDepth(LayerSpec):
    """``torchvision.ops.StochasticDepth(p, mode)``: in training, zeroes the whole input
    (``"batch"``) or each row of the batch (``"row"``) with probability ``p`` and scales
    the rest by 1/(1 - p); at inference, and for p = 0, the input itself. No tensors.

    Training with 0 < p: one multiply per number (and the noise's scale); autograd keeps
    the noise, (N, 1, ..., 1) for rows, (1, ..., 1) for the batch."""

    p: float
    mode: str

    kind: ClassVar[str] = "StochasticDepth"
    family: ClassVar[str] = "vision"
    summary: ClassVar[str] = "drops a residual branch per row or batch in training"

    def __post_init__(self) -> None:
        self._check_number("p", 0, 1)
        self._check_choice("mode", ("batch", "row"))

    def params(self) -> Iterator[Param]:
        return iter(())

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        return (one_input(self, inputs),)

    def work(self, *inputs: Shape) -> Work:
        outputs = self.output_shapes(*inputs)
        shape = inputs[0]
        if self.p == 0:  # stochastic_depth returns its input
            return Work(outputs, inplace=True)
        noise = (
            (shape[0], *(1 for _ in shape[1:])) if self.mode == "row" else tuple(1 for _ in shape)
        )
        return Work(
            outputs,
            other=product(shape) + (product(noise) if self.p < 1 else 0),
            other_rule="training: the noise's 1/(1 - p) (1 per row), times the noise (1 each)",
            saved=(Stored("noise", noise),),
        )


@frozen
class LayerNorm2d(LayerNorm):
    """ConvNeXt's ``LayerNorm2d(normalized_shape, eps)``: ``nn.LayerNorm`` over the channels
    of an (N, C, H, W) input: permuted to (N, H, W, C), normalised, permuted back
    (torchvision/models/convnext.py). Its tensors are LayerNorm's, ``weight`` and ``bias``
    (C,); statistics per pixel, N·H·W of them."""

    kind: ClassVar[str] = "LayerNorm2d"
    family: ClassVar[str] = "vision"
    summary: ClassVar[str] = "LayerNorm over the channels of an NCHW input"
    example: ClassVar[dict[str, Any]] = {"normalized_shape": 96, "eps": 1e-6}
    formula_args: ClassVar[dict[str, Any]] = {"normalized_shape": "C"}
    example_input: ClassVar[tuple[Shape, ...]] = ((32, 96, 56, 56),)

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        shape = one_input(self, inputs, 4)
        dims = self.dims
        if len(dims) != 1 or not same_size(shape[1], dims[0]):
            self._fail_shape(
                f"input {shape_str(shape)} must have normalized_shape {shape_str(dims)} channels "
                "at dim 1",
                shape,
            )
        return (shape,)

    def work(self, *inputs: Shape) -> Work:
        """LayerNorm's work on the permuted input: statistics per pixel (N·H·W); it keeps
        the input (the permuted view of it) and the mean and 1/std per pixel."""
        outputs = self.output_shapes(*inputs)
        n, _, h, w = inputs[0]
        shift = self.elementwise_affine and self.bias
        return _norm_work(outputs, inputs[0], n * h * w, self.elementwise_affine, shift, rms=False)
