"""``SiLU`` and what the activations without parameters share, apart from
:mod:`shapecalc.layers.activation`'s other kinds, so that a model whose only activation is
SiLU (the gated MLPs of LLaMA-like models and their experts) loads only what it builds.
Import them from :mod:`shapecalc.layers.activation`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from shapecalc.core.dims import Dim, product
from shapecalc.core.frozen import frozen
from shapecalc.core.spec import LayerSpec, Param, Shape, Stored, Work, register
from shapecalc.layers._shapes import one_input

__all__ = ["SiLU"]


@frozen
class _Activation(LayerSpec):
    """An activation without parameters: any input shape (a scalar too) to the same shape,
    a fixed number of FLOPs per number, and one tensor of that shape kept for backward.
    A kind whose only argument is ``inplace`` (or that has none) subclasses
    :class:`_InPlace` (or this class) without a dataclass decorator of its own: the fields
    are the same, and each decorator costs the import about half a millisecond."""

    family: ClassVar[str] = "activation"
    example: ClassVar[dict[str, Any]] = {}
    formula_args: ClassVar[dict[str, Any]] = {}
    example_input: ClassVar[tuple[Shape, ...]] = ((32, 64, 28, 28),)
    #: FLOPs per number, and how they are counted
    flops: ClassVar[int]
    rule: ClassVar[str]
    #: what autograd keeps: the call's "input" or its "output" (the result)
    keeps: ClassVar[str] = "input"
    #: in place: "output" (the result, in the input's storage) or "copy" (of the input,
    #: taken before it is overwritten)
    keeps_in_place: ClassVar[str] = "output"

    def params(self) -> Iterator[Param]:
        return iter(())

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        """The input shape, of any rank (a scalar too)."""
        return (one_input(self, inputs, least=0),)

    def elementwise(self, shape: Shape) -> tuple[Dim, str]:
        """The FLOPs on an input of this shape, and their rule."""
        return self.flops * product(shape), self.rule

    def work(self, *inputs: Shape) -> Work:
        """The FLOPs of :meth:`elementwise`; keeps the input or the result (of the input's
        shape), or in place a copy of the input."""
        outputs = self.output_shapes(*inputs)
        shape = outputs[0]
        other, rule = self.elementwise(shape)
        inplace = bool(getattr(self, "inplace", False))
        keeps = self.keeps_in_place if inplace else self.keeps
        kept = (
            Stored("input before the in-place change", shape)
            if keeps == "copy"
            else Stored("result" if keeps == "output" else "input", shape, of=keeps)
        )
        return Work(outputs, other=other, other_rule=rule, saved=(kept,), inplace=inplace)


@frozen
class _InPlace(_Activation):
    """An activation whose one argument is ``inplace``."""

    inplace: bool = False


@register
class SiLU(_InPlace):
    """``nn.SiLU(inplace=False)``: x·σ(x) (swish)."""

    kind: ClassVar[str] = "SiLU"
    summary: ClassVar[str] = "x·σ(x) (swish); no parameters"
    flops: ClassVar[int] = 2
    rule: ClassVar[str] = "a sigmoid and a multiply, 2 per number"
    keeps_in_place: ClassVar[str] = "copy"
