"""Tensor functions of a forward, used inline in a flow or as a child: concatenation
(``torch.cat``), ``expand``, ``permute``, ``transpose`` and ``reshape``. None holds a
tensor; none computes anything (``torch.cat`` copies, the others are views), so their
FLOPs are 0 and autograd keeps nothing for them. torchvision's ``ops.misc.Permute``
module is :class:`Permute` as a child.

    >>> Cat(1).output_shapes((2, 64, 8, 8), (2, 32, 8, 8))
    ((2, 96, 8, 8),)
    >>> Permute((0, 2, 3, 1)).output_shapes((2, 64, 8, 8))
    ((2, 8, 8, 64),)
"""

from __future__ import annotations

from typing import Any, ClassVar

from shapecalc.core.dims import Dim, exact_div, known, product, same_size, shape_str
from shapecalc.core.errors import echo
from shapecalc.core.frozen import frozen
from shapecalc.core.spec import Shape, Stored, Work
from shapecalc.layers._function import _Function

__all__ = [
    "Cat",
    "Contiguous",
    "Expand",
    "MatMul",
    "Mean",
    "Permute",
    "Reshape",
    "Split",
    "Tile",
    "Transpose",
    "Unflatten",
]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _TensorFunction(_Function):
    family: ClassVar[str] = "tensors"

    def _int_field(self, name: str) -> None:
        value = getattr(self, name)
        if not _is_int(value):
            self._fail(name, value, f"{name} is an integer", f"got {echo(value)}")

    def _ints_field(self, name: str) -> tuple[int, ...]:
        value = getattr(self, name)
        if isinstance(value, list):
            value = tuple(value)
        if not isinstance(value, tuple) or not all(_is_int(v) for v in value):
            self._fail(name, value, f"{name} is a tuple of integers", f"got {echo(value)}")
        object.__setattr__(self, name, value)
        return tuple(value)

    def _axis(self, dim: int, rank: int, inputs: Any) -> int:
        """``dim`` of a tensor of ``rank`` dims, from 0 (a negative one counts from the end,
        as torch's); refused when out of range."""
        if not -rank <= dim < rank:
            self._fail_shape(f"dim {dim} is out of range for a {rank}-D input", inputs)
        return dim % rank


@frozen
class Cat(_TensorFunction):
    """``torch.cat(inputs, dim)``: the inputs joined along ``dim`` (DenseNet's features,
    ViT's class token before the patches). Every input has the same rank and the same
    sizes but at ``dim``. A copy: no FLOPs; autograd keeps nothing (the gradient is split
    by the sizes)."""

    dim: int = 0

    kind: ClassVar[str] = "cat"
    summary: ClassVar[str] = "joins its inputs along a dimension"

    def __post_init__(self) -> None:
        self._int_field("dim")

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        if not inputs:
            self._fail_shape("takes at least one input", inputs)
        rank = len(inputs[0])
        if rank == 0 or any(len(s) != rank for s in inputs):
            listed = ", ".join(shape_str(s) for s in inputs)
            self._fail_shape(f"inputs {listed} must have one rank, at least 1-D", inputs)
        axis = self._axis(self.dim, rank, inputs)
        for shape in inputs[1:]:
            for i in range(rank):
                if i != axis and not same_size(shape[i], inputs[0][i]):
                    self._fail_shape(
                        f"inputs {shape_str(inputs[0])} and {shape_str(shape)} differ at dim "
                        f"{i}, not only at dim {self.dim}",
                        inputs,
                    )
        joined = sum((s[axis] for s in inputs), start=0)
        out = list(inputs[0])
        out[axis] = joined
        return (tuple(out),)

    def work(self, *inputs: Shape) -> Work:
        return Work(self.output_shapes(*inputs))


@frozen
class Expand(_TensorFunction):
    """The first input expanded along ``dims`` to the sizes of the second, the second and
    any others passed on as they are: ViT's ``class_token.expand(n, -1, -1)`` with ``n =
    x.shape[0]``, then ``Cat(1)``. A first input of fewer dims gains leading dims of 1
    first (CLIP's ``class_embedding`` (D,) ``.expand(n, 1, -1)``). The expanded dims are 1
    in the first input. A view: no compute, nothing kept."""

    dims: Any = (0,)

    kind: ClassVar[str] = "expand"
    summary: ClassVar[str] = "expands its first input to the second's sizes along dims"
    passes_all: ClassVar[bool] = True

    def __post_init__(self) -> None:
        self._ints_field("dims")

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        if len(inputs) < 2:
            self._fail_shape(f"takes a tensor and a reference, got {len(inputs)} input(s)", inputs)
        first, like = inputs[0], inputs[1]
        if len(first) > len(like):
            self._fail_shape(f"{shape_str(first)} has more dims than {shape_str(like)}", inputs)
        first = (*(1 for _ in range(len(like) - len(first))), *first)
        out = list(first)
        for dim in self.dims:
            axis = self._axis(dim, len(first), inputs)
            if first[axis] != 1:
                self._fail_shape(
                    f"{shape_str(first)} has {first[axis]} at dim {dim}; torch expands a size 1",
                    inputs,
                )
            out[axis] = like[axis]
        return (tuple(out), *inputs[1:])

    def work(self, *inputs: Shape) -> Work:
        return Work(self.output_shapes(*inputs), inplace=True, passes_rest=True)


@frozen
class Permute(_TensorFunction):
    """``x.permute(*dims)`` (torchvision's ``ops.misc.Permute`` module as a child):
    dimension i of the output is dimension ``dims[i]`` of the input. A view."""

    dims: Any

    kind: ClassVar[str] = "permute"
    summary: ClassVar[str] = "reorders the dimensions (a view)"

    def __post_init__(self) -> None:
        dims = self._ints_field("dims")
        rank = len(dims)
        inside = [d % rank for d in dims if -rank <= d < rank]
        if len(inside) != rank or sorted(inside) != list(range(rank)):
            self._fail("dims", dims, "dims is a permutation of 0 .. n-1", f"got {echo(dims)}")

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        if len(inputs) != 1 or len(inputs[0]) != len(self.dims):
            self._fail_shape(f"takes one {len(self.dims)}-D input, got {inputs}", inputs)
        shape = inputs[0]
        return (tuple(shape[d] for d in self.dims),)

    def work(self, *inputs: Shape) -> Work:
        return Work(self.output_shapes(*inputs), inplace=True)


@frozen
class Transpose(_TensorFunction):
    """``x.transpose(dim0, dim1)``: two dimensions swapped. A view."""

    dim0: int
    dim1: int

    kind: ClassVar[str] = "transpose"
    summary: ClassVar[str] = "swaps two dimensions (a view)"

    def __post_init__(self) -> None:
        self._int_field("dim0")
        self._int_field("dim1")

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        if len(inputs) != 1:
            self._fail_shape(f"takes one input, got {len(inputs)}", inputs)
        shape = list(inputs[0])
        a = self._axis(self.dim0, len(shape), inputs)
        b = self._axis(self.dim1, len(shape), inputs)
        shape[a], shape[b] = shape[b], shape[a]
        return (tuple(shape),)

    def work(self, *inputs: Shape) -> Work:
        return Work(self.output_shapes(*inputs), inplace=True)


@frozen
class Reshape(_TensorFunction):
    """``x.reshape(*shape)``: the same numbers in another shape; one size may be -1 (the
    rest of the numbers), sizes may be letters. Counted as a view (torch copies a tensor
    whose layout does not allow one, after a permute; shapecalc does not know layouts)."""

    shape: Any

    kind: ClassVar[str] = "reshape"
    summary: ClassVar[str] = "the same numbers in another shape (a view)"

    def __post_init__(self) -> None:
        from shapecalc.core.dims import as_size

        value = tuple(self.shape) if isinstance(self.shape, list) else self.shape
        if not isinstance(value, tuple) or not value:
            self._fail("shape", value, "shape is a tuple of sizes", f"got {echo(value)}")
        sizes: list[Dim] = []
        for d in value:
            sizes.append(
                d if d == -1 and _is_int(d) else as_size(d, owner="Reshape", field="shape")
            )
        if sum(1 for d in sizes if d == -1 and _is_int(d)) > 1:
            self._fail("shape", value, "at most one size is -1", f"got {echo(value)}")
        object.__setattr__(self, "shape", tuple(sizes))

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        if len(inputs) != 1:
            self._fail_shape(f"takes one input, got {len(inputs)}", inputs)
        numbers = product(inputs[0])
        given = product(d for d in self.shape if not (_is_int(d) and d == -1))
        if any(_is_int(d) and d == -1 for d in self.shape):
            rest = exact_div(numbers, given)
            if rest is None or (known(rest) is not None and known(rest) == 0 and numbers != 0):
                self._fail_shape(
                    f"{shape_str(inputs[0])} cannot be viewed as {shape_str(self.shape)}", inputs
                )
            return (tuple(rest if _is_int(d) and d == -1 else d for d in self.shape),)
        if not same_size(numbers, given):
            self._fail_shape(
                f"{shape_str(inputs[0])} cannot be viewed as {shape_str(self.shape)}", inputs
            )
        return (tuple(self.shape),)

    def work(self, *inputs: Shape) -> Work:
        return Work(self.output_shapes(*inputs), inplace=True)


@frozen
class Tile(_TensorFunction):
    """``x.repeat(*sizes)`` (``torch.Tensor.repeat``): the input copied ``sizes[i]`` times
    along dim i, new leading dims where ``sizes`` is longer (SigLIP's
    ``probe.repeat(batch_size, 1, 1)``). With ``like=True`` the first size is the second
    input's first (the batch), the second input passed on. A copy: no FLOPs, nothing
    kept."""

    sizes: Any
    like: bool = False

    kind: ClassVar[str] = "repeat"
    summary: ClassVar[str] = "the input copied along each dimension (Tensor.repeat)"
    passes_all: ClassVar[bool] = True

    def __post_init__(self) -> None:
        sizes = self._ints_field("sizes")
        if not sizes or any(d < 0 for d in sizes):
            self._fail("sizes", sizes, "sizes are integers >= 0, one or more", f"got {sizes}")

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        wanted = 2 if self.like else 1
        if len(inputs) != wanted:
            self._fail_shape(f"takes {wanted} input(s), got {len(inputs)}", inputs)
        shape = inputs[0]
        if len(self.sizes) < len(shape):
            self._fail_shape(
                f"sizes {self.sizes} are fewer than the dims of {shape_str(shape)}", inputs
            )
        padded = (*(1 for _ in range(len(self.sizes) - len(shape))), *shape)
        times: list[Dim] = list(self.sizes)
        if self.like:
            times[0] = inputs[1][0]
        out = tuple(t * d for t, d in zip(times, padded, strict=True))
        return (out, *inputs[1:])

    def work(self, *inputs: Shape) -> Work:
        return Work(self.output_shapes(*inputs), passes_rest=True)


@frozen
class Split(_TensorFunction):
    """``x.chunk(chunks, dim)``: ``dim`` cut into pieces of ⌈n / chunks⌉, the last
    smaller (so there may be fewer than ``chunks``), every piece passed on (ShuffleNet's
    ``x.chunk(2, dim=1)``). Views: no compute, nothing kept."""

    chunks: int
    dim: int = 0

    kind: ClassVar[str] = "chunk"
    summary: ClassVar[str] = "cuts a dimension into chunks (Tensor.chunk)"
    passes_all: ClassVar[bool] = True

    def __post_init__(self) -> None:
        self._int_field("chunks")
        self._int_field("dim")
        if self.chunks < 1:
            self._fail("chunks", self.chunks, "chunks is an integer >= 1", f"got {self.chunks}")

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        if len(inputs) != 1 or not inputs[0]:
            self._fail_shape(f"takes one input of at least one dim, got {inputs}", inputs)
        shape = inputs[0]
        axis = self._axis(self.dim, len(shape), inputs)
        n = known(shape[axis])
        if n is None:
            self._fail_shape(
                f"needs a number at dim {self.dim} to chunk, got {shape[axis]}", inputs
            )
        if n == 0:
            sizes = [0] * self.chunks
        else:
            piece = -(-n // self.chunks)
            sizes = [piece] * (n // piece) + ([n % piece] if n % piece else [])
        return tuple(tuple(s if i == axis else d for i, d in enumerate(shape)) for s in sizes)

    def work(self, *inputs: Shape) -> Work:
        return Work(self.output_shapes(*inputs), views=True)


@frozen
class Unflatten(_TensorFunction):
    """``x.unflatten(dim, sizes)``: one dimension viewed as several (one size may be
    -1: the rest), as ShuffleNet's channel shuffle views C as (groups, C / groups). A
    view: no compute, nothing kept."""

    dim: int
    sizes: Any

    kind: ClassVar[str] = "unflatten"
    summary: ClassVar[str] = "one dimension viewed as several (Tensor.unflatten)"

    def __post_init__(self) -> None:
        self._int_field("dim")
        sizes = self._ints_field("sizes")
        if not sizes or any(d < -1 for d in sizes) or sizes.count(-1) > 1:
            self._fail(
                "sizes", sizes, "sizes are integers >= 0, at most one -1", f"got {echo(sizes)}"
            )

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        if len(inputs) != 1 or not inputs[0]:
            self._fail_shape(f"takes one input of at least one dim, got {inputs}", inputs)
        shape = inputs[0]
        axis = self._axis(self.dim, len(shape), inputs)
        sizes = Reshape(self.sizes).output_shapes((shape[axis],))[0]
        return ((*shape[:axis], *sizes, *shape[axis + 1 :]),)

    def work(self, *inputs: Shape) -> Work:
        return Work(self.output_shapes(*inputs), inplace=True)


@frozen
class Mean(_TensorFunction):
    """``x.mean(dims, keepdim)``: the average over ``dims`` (ShuffleNet's and MNASNet's
    ``x.mean([2, 3])``, the global pool). No multiply-accumulate (FlopCounterMode counts
    none); its backward needs only the shape: nothing kept."""

    dims: Any
    keepdim: bool = False

    kind: ClassVar[str] = "mean"
    summary: ClassVar[str] = "the average over some dimensions"
    bool_fields: ClassVar[tuple[str, ...]] = ("keepdim",)

    def __post_init__(self) -> None:
        dims = self._ints_field("dims")
        if not dims:
            self._fail("dims", dims, "dims is one or more integers", "got none")

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        if len(inputs) != 1:
            self._fail_shape(f"takes one input, got {len(inputs)}", inputs)
        shape = inputs[0]
        axes = {self._axis(d, max(len(shape), 1), inputs) for d in self.dims}
        if len(axes) != len(self.dims):
            self._fail_shape(f"dims {self.dims} name a dim twice", inputs)
        if self.keepdim:
            return (tuple(1 if i in axes else d for i, d in enumerate(shape)),)
        return (tuple(d for i, d in enumerate(shape) if i not in axes),)

    def work(self, *inputs: Shape) -> Work:
        outputs = self.output_shapes(*inputs)
        return Work(
            outputs,
            other=product(inputs[0]),
            other_rule="one add per number averaged (and a divide per output)",
        )


@frozen
class Contiguous(_TensorFunction):
    """``x.contiguous()`` where torch copies: a tensor whose layout is not contiguous
    (after a transpose) copied into a new one of the same shape (Gemma 3's projector,
    whose ``reshape`` of the transposed image tokens copies them). No FLOPs, nothing kept.
    shapecalc does not follow layouts: a declaration puts this step where torch copies (a
    contiguous tensor's ``.contiguous()`` is the tensor itself: no step)."""

    kind: ClassVar[str] = "contiguous"
    summary: ClassVar[str] = "a copy in the standard layout (Tensor.contiguous)"

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        if len(inputs) != 1:
            self._fail_shape(f"takes one input, got {len(inputs)}", inputs)
        return (inputs[0],)

    def work(self, *inputs: Shape) -> Work:
        return Work(self.output_shapes(*inputs))


@frozen
class MatMul(_TensorFunction):
    """``torch.matmul(x, w)``, ``x @ w``: an input of at least 2 dims (*batch, M, K) times a
    matrix (K, N), to (*batch, M, N), with batch·M·K·N multiply-accumulates. The matrix is
    usually a parameter the block holds, named as a step beside the input:
    ``chain(parallel((), "weight"), MatMul())`` is ``x @ self.weight`` (Gemma 3's projector
    and its ``mm_input_projection_weight``). Autograd keeps both factors; a parameter is
    no activation, so only the input counts then."""

    kind: ClassVar[str] = "matmul"
    summary: ClassVar[str] = "the matrix product of an input and a matrix (x @ w)"

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        if len(inputs) != 2:
            self._fail_shape(f"takes two inputs, x and a matrix, got {len(inputs)}", inputs)
        x, w = inputs
        if len(x) < 2 or len(w) != 2:
            self._fail_shape(
                f"multiplies an input of at least 2 dims by a matrix (K, N), got "
                f"{shape_str(x)} and {shape_str(w)}",
                inputs,
            )
        if not same_size(x[-1], w[0]):
            self._fail_shape(
                f"the input's last dim {x[-1]} is not the matrix's rows {w[0]} "
                f"({shape_str(x)} @ {shape_str(w)})",
                inputs,
            )
        return ((*x[:-1], w[1]),)

    def work(self, *inputs: Shape) -> Work:
        outputs = self.output_shapes(*inputs)
        x, w = inputs
        return Work(
            outputs,
            macs=product(x) * w[1],
            saved=(Stored("input", x, of="input"), Stored("matrix", w, of="input1")),
        )
