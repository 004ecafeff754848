"""``Chunk`` and ``Select``, and what every functional step shares, apart from
:mod:`shapecalc.layers.functional`'s other steps, so that a model that needs only these
(DeepSeek's latent attention) loads only what it builds. Import them from
:mod:`shapecalc.layers.functional`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from shapecalc.core.dims import Dim, dim_str, known, same_size, shape_str
from shapecalc.core.frozen import frozen
from shapecalc.core.spec import LayerSpec, Param, Shape, Work

__all__ = ["Chunk", "Select"]


class _Function(LayerSpec):
    """A step without tensors of its own."""

    family: ClassVar[str] = "functional"

    def params(self) -> Iterator[Param]:
        return iter(())


def _heads_of(spec: LayerSpec, shape: Shape, heads: Dim, head_dim: Dim, what: str) -> Shape:
    """(*batch, T) of a tensor given flat (*batch, T, heads·head_dim) or split
    (*batch, T, heads, head_dim); refuses other sizes, naming both. One head fits both
    ways, (B, 1, D) flat with T = 1 and (B, T, 1, D) split: split from rank 4, as the torch
    bridge splits, whatever T happens to be (a number or a letter)."""
    split = len(shape) >= 3 and shape[-1] == head_dim and shape[-2] == heads
    flat = len(shape) >= 2 and shape[-1] == heads * head_dim
    if split and flat:  # one head
        split = len(shape) >= 4
        flat = not split
    if not (split or flat):  # sizes as names: not known to differ; flat unless split fits
        flat = len(shape) >= 2 and same_size(shape[-1], heads * head_dim)
        split = not flat and len(shape) >= 3 and same_size(shape[-1], head_dim)
        split = split and same_size(shape[-2], heads)
    if split:
        return shape[:-2]
    if flat:
        return shape[:-1]
    spec._fail_shape(
        f"{what} {shape_str(shape)} is neither (..., T, {dim_str(heads * head_dim)}) nor "
        f"(..., T, {dim_str(heads)}, {dim_str(head_dim)}) ({dim_str(heads)} heads of "
        f"{dim_str(head_dim)})",
        shape,
    )


@frozen
class Chunk(_Function):
    """The last dimension split into parts of the given sizes (a fused q, k, v or gate and
    up projection); every part is passed on. Views: no compute."""

    sizes: tuple[Dim, ...]

    kind: ClassVar[str] = "chunk"
    summary: ClassVar[str] = "splits the last dimension into parts"
    passes_all: ClassVar[bool] = True

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        if len(inputs) != 1 or not inputs[0]:
            self._fail_shape(f"takes one input with a last dimension, got {inputs}", inputs)
        shape = inputs[0]
        whole = sum(self.sizes, start=0)
        if not same_size(shape[-1], whole):
            self._fail_shape(
                f"input {shape_str(shape)} has {dim_str(shape[-1])} at its last dim, expected "
                f"{' + '.join(dim_str(s) for s in self.sizes)} = {dim_str(whole)}",
                shape,
            )
        return tuple((*shape[:-1], size) for size in self.sizes)

    def work(self, *inputs: Shape) -> Work:
        return Work(self.output_shapes(*inputs), views=True)


@frozen
class Select(_Function):
    """One index of a dimension, which drops it (``x[:, 0]``: the first token): a view."""

    dim: int
    index: int = 0

    kind: ClassVar[str] = "select"
    summary: ClassVar[str] = "one index of a dimension (x[:, 0])"

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        if len(inputs) != 1 or not -len(inputs[0]) <= self.dim < len(inputs[0]):
            self._fail_shape(f"takes one input with a dim {self.dim}, got {inputs}", inputs)
        shape = list(inputs[0])
        length = known(shape[self.dim])
        if length is not None and not 0 <= self.index < length:
            self._fail_shape(f"index {self.index} is outside dim {self.dim} of {length}", inputs)
        del shape[self.dim]
        return (tuple(shape),)

    def work(self, *inputs: Shape) -> Work:
        return Work(self.output_shapes(*inputs), inplace=True)
