"""A module's own tensors: ``nn.Parameter`` and registered buffers of any shape, held by
a block beside its children, named as the module names them.

A :class:`Parameter` or :class:`Buffer` is a child of a :class:`~shapecalc.core.tree.Block`
under the attribute name the module gives it (``class_token``, ``pos_embedding``,
``layer_scale``); it is listed before the block's children, as ``named_parameters()``
lists a module's own tensors before its submodules'. Named in the block's flow, it is the
tensor itself (its input unused): ``summed((), "pos_embedding")`` is ``x +
self.pos_embedding``, ``multiply("layer_scale", "block")`` is ``self.layer_scale *
self.block(x)``.

    >>> Parameter((1, 1, 768)).total()
    768
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from shapecalc.core.dims import Dim, as_size, shape_str
from shapecalc.core.errors import echo
from shapecalc.core.frozen import frozen
from shapecalc.core.spec import STORED_BYTES, LayerSpec, Param, Shape, Work

__all__ = ["Buffer", "Own", "Parameter"]


class Own(LayerSpec):
    """A tensor a module holds itself (its name is the child's name in the block)."""

    shape: Any
    family: ClassVar[str] = "own"

    def _check_shape(self) -> None:
        value = self.shape
        if isinstance(value, list):
            value = tuple(value)
        if not isinstance(value, tuple):
            self._fail("shape", value, "shape is a tuple of sizes", f"got {echo(value)}")
        label = f"{self.kind}(shape={shape_str(value) if value else '()'})"
        sizes = tuple(as_size(d, owner=label, field="shape", minimum=0) for d in value)
        object.__setattr__(self, "shape", sizes)

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        """The tensor's own shape, whatever the input."""
        return (self.shape,)

    def work(self, *inputs: Shape) -> Work:
        """No compute; the tensor is the module's, not an activation (``own``)."""
        return Work(self.output_shapes(*inputs), own=True)

    @property
    def dims(self) -> tuple[Dim, ...]:
        return tuple(self.shape)

    def __str__(self) -> str:
        """``Parameter(1, 1, 768)``: the kind and the shape."""
        return f"{self.kind}{shape_str(self.dims) if self.dims else '()'}"


@frozen
class Parameter(Own):
    """``nn.Parameter(torch.empty(*shape), requires_grad)`` held by its block under the
    child's name (ViT's ``class_token`` (1, 1, D), ConvNeXt's ``layer_scale`` (C, 1, 1))."""

    shape: Any
    requires_grad: bool = True
    role: str = "a tensor of the module's own"

    kind: ClassVar[str] = "Parameter"
    summary: ClassVar[str] = "a tensor of the module's own, any shape"

    def __post_init__(self) -> None:
        self._check_shape()

    def params(self) -> Iterator[Param]:
        yield Param("", self.dims, self.role, trainable=self.requires_grad)


@frozen
class Buffer(Own):
    """``module.register_buffer(name, torch.empty(*shape, dtype=dtype), persistent)``:
    state of the module's own that is not trained (Swin's ``relative_position_index``,
    int64). ``dtype`` is torch's name (``int64``); empty: the weights' dtype."""

    shape: Any
    dtype: str = ""
    persistent: bool = True
    role: str = "a buffer of the module's own"

    kind: ClassVar[str] = "Buffer"
    summary: ClassVar[str] = "a buffer of the module's own, any shape"

    def __post_init__(self) -> None:
        self._check_shape()
        if self.dtype and self.dtype not in STORED_BYTES:
            listed = ", ".join(sorted(STORED_BYTES))
            self._fail("dtype", self.dtype, f"dtype is one of {listed}", f"got {echo(self.dtype)}")

    def params(self) -> Iterator[Param]:
        return iter(())

    def buffers(self) -> Iterator[Param]:
        yield Param("", self.dims, self.role, trainable=False, dtype=self.dtype)
