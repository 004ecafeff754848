"""Data flow: how a block's forward uses its children, declared once, in torch's terms.

A flow is a small value, not code, so that shapes, FLOPs and memory (``analysis.cost``)
and the real torch module (``adapters.torch_bridge``) follow the same declaration:

- :class:`Chain` ``(a, b, c)``: ``c(b(a(x)))``, each step taking the previous step's main
  output (an LSTM's ``output``, not ``h_n``); the last step's outputs are the chain's;
- :class:`Sum` ``(f, g)``: ``f(x) + g(x)``; an empty branch is ``x`` itself, so
  :func:`residual` ``(f, g)`` is ``x + g(f(x))``;
- :class:`Product` ``(f, g)``: ``f(x) * g(x)``, elementwise (a gated MLP);
- :class:`Parallel` ``(q, k, v)``: the branches' outputs side by side, as the next step's
  inputs (queries, keys and values into attention);
- :class:`Each` ``(f, g)``: branch i on value i of several (a fused q, k, v split in
  three, each turned by its own rotary step);
- :data:`OPAQUE`: a forward shapecalc does not know (a module read from torch).

A step is a child's name, a stateless layer spec applied inline (``ReLU()``), or a flow.

    >>> flow = chain(residual("attn"), residual("mlp"))
    >>> flow.names()
    ('attn', 'mlp')
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from shapecalc.core.dims import Dim, known, product, same_size, shape_str
from shapecalc.core.errors import InvalidArgumentError, ShapeError, echo
from shapecalc.core.spec import LayerSpec, Shape, Stored, Work

__all__ = [
    "OPAQUE",
    "Add",
    "Chain",
    "Each",
    "Flow",
    "Multiply",
    "Opaque",
    "Parallel",
    "Positions",
    "Product",
    "Step",
    "Sum",
    "as_chain",
    "broadcast",
    "chain",
    "each",
    "multiply",
    "parallel",
    "residual",
    "summed",
]


@dataclass(frozen=True)
class Chain:
    """Steps in order, each on the previous step's main output."""

    steps: tuple[Step, ...] = ()

    def names(self) -> tuple[str, ...]:
        """Every child name the flow refers to, in order of first use."""
        return tuple(dict.fromkeys(_names(self)))


@dataclass(frozen=True)
class _Branches:
    branches: tuple[Chain, ...]

    #: how the branches combine ("sum", "product", "parallel")
    combine: ClassVar[str]

    def __post_init__(self) -> None:
        if not self.branches:
            raise InvalidArgumentError(
                f"a {self.combine} needs at least one branch",
                field="flow",
                value=(),
                rule=f"a {self.combine} has at least one branch",
            )

    def names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(_names(self)))


@dataclass(frozen=True)
class Sum(_Branches):
    """``f(x) + g(x) + ...``: every branch on the same input, added (an empty branch is
    the input itself)."""

    combine: ClassVar[str] = "sum"


@dataclass(frozen=True)
class Product(_Branches):
    """``f(x) * g(x) * ...``: every branch on the same input, multiplied elementwise."""

    combine: ClassVar[str] = "product"


@dataclass(frozen=True)
class Parallel(_Branches):
    """``(f(x), g(x), ...)``: the branches' main outputs, all passed to the next step."""

    combine: ClassVar[str] = "parallel"


@dataclass(frozen=True)
class Each(_Branches):
    """``(f(a), g(b), ...)``: each branch on its own value of the values it is given."""

    combine: ClassVar[str] = "each"


@dataclass(frozen=True)
class Opaque:
    """A forward shapecalc does not know: names and counts hold, shapes cannot follow."""

    def names(self) -> tuple[str, ...]:
        return ()


#: the flow of a block read from a torch module, whose forward is code shapecalc cannot see
OPAQUE = Opaque()

Flow = Chain | Sum | Product | Parallel | Each | Opaque
Step = str | LayerSpec | Chain | Sum | Product | Parallel | Each


def _names(flow: Any) -> Iterator[str]:
    if isinstance(flow, str):
        yield flow
    elif isinstance(flow, Chain):
        for step in flow.steps:
            yield from _names(step)
    elif isinstance(flow, _Branches):
        for branch in flow.branches:
            yield from _names(branch)


def _step(step: Any) -> Step:
    if isinstance(step, (list, tuple)):
        return as_chain(step)
    if isinstance(step, LayerSpec):
        if not step.stateless():
            raise InvalidArgumentError(
                f"{step} holds tensors, so it needs a name: make it a child of the block "
                "and name it in the flow",
                layer=str(step),
                field="flow",
                value=str(step),
                rule="a layer used inline in a flow has no parameters nor buffers",
            )
        return step
    if isinstance(step, (str, Chain, Sum, Product, Parallel, Each)):
        return step
    raise InvalidArgumentError(
        f"a flow step is a child's name, a layer without parameters or a flow, got "
        f"{type(step).__name__} {echo(step)}",
        field="flow",
        value=echo(step),
        rule="a step is a name, a stateless layer or a flow",
    )


def as_chain(steps: Any) -> Chain:
    """A chain from a chain, a single step or a sequence of steps (``()`` is the input
    itself)."""
    if isinstance(steps, Chain):
        return steps
    if isinstance(steps, (list, tuple)):
        return Chain(tuple(_step(s) for s in steps))
    return Chain((_step(steps),))


def chain(*steps: Any) -> Chain:
    """``chain("conv1", "bn1", ReLU())``: each step on the previous step's main output."""
    return as_chain(steps)


def residual(*steps: Any, shortcut: Any = ()) -> Sum:
    """``x + f(x)`` with ``f`` the steps in order; ``shortcut`` replaces the ``x`` of the sum
    (ResNet's ``downsample``): ``shortcut(x) + f(x)``."""
    return Sum((as_chain(shortcut), as_chain(steps)))


def summed(*branches: Any) -> Sum:
    """``f(x) + g(x) + ...``: each branch a step or a sequence of steps."""
    return Sum(tuple(as_chain(b) for b in branches))


def multiply(*branches: Any) -> Product:
    """``f(x) * g(x)``, elementwise: ``multiply(("gate_proj", SiLU()), "up_proj")``."""
    return Product(tuple(as_chain(b) for b in branches))


def parallel(*branches: Any) -> Parallel:
    """``(f(x), g(x), ...)`` as the inputs of the next step."""
    return Parallel(tuple(as_chain(b) for b in branches))


def each(*branches: Any) -> Each:
    """``(f(a), g(b), ...)``: branch i on value i (``()`` passes a value as it is)."""
    return Each(tuple(as_chain(b) for b in branches))


# -- the arithmetic of combining branches ----------------------------------------------------
def broadcast(owner: str, shapes: tuple[Shape, ...]) -> Shape:
    """The shape of an elementwise combination, by torch's broadcasting rules (sizes equal
    or 1, aligned from the right); refuses shapes that do not broadcast, naming them."""
    rank = max(len(s) for s in shapes)
    out: list[Dim] = []
    for axis in range(rank):
        sizes = [s[axis - rank + len(s)] for s in shapes if axis - rank + len(s) >= 0]
        wide = [d for d in sizes if d != 1]
        size: Dim = wide[0] if wide else 1
        if any(not same_size(d, size) for d in wide):
            listed = " and ".join(shape_str(s) for s in shapes)
            raise _combine_error(owner, listed, f"dim {axis} differs")
        out.append(size)
    return tuple(out)


def _combine_error(owner: str, shapes: str, why: str) -> ShapeError:
    rule = "combined branches must have shapes that broadcast"
    return ShapeError(
        f"cannot combine {shapes}: {why}", layer=owner, field="input", value=shapes, rule=rule
    )


class _Combine(LayerSpec):
    """What combining the branches' outputs elementwise shares: no parameters, the
    broadcast shape, one operation per output number and extra branch."""

    #: the operation, for the rule
    operation: ClassVar[str]

    def params(self) -> Iterator[Any]:
        return iter(())

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        return (broadcast(str(self), inputs),)

    def _work(self, inputs: tuple[Shape, ...], saved: tuple[Stored, ...] = ()) -> Work:
        (out,) = outputs = self.output_shapes(*inputs)
        return Work(
            outputs,
            other=(len(inputs) - 1) * product(out),
            other_rule=f"1 {self.operation} per output number and extra branch",
            saved=saved,
        )


@dataclass(frozen=True)
class Add(_Combine):
    """The sum of a :class:`Sum`'s branches; autograd keeps nothing for it."""

    kind: ClassVar[str] = "add"
    summary: ClassVar[str] = "elementwise sum of the branches"
    operation: ClassVar[str] = "add"

    def work(self, *inputs: Shape) -> Work:
        return self._work(inputs)


@dataclass(frozen=True)
class Multiply(_Combine):
    """The elementwise product of a :class:`Product`'s branches; autograd keeps every
    factor (each one's gradient needs the others)."""

    kind: ClassVar[str] = "multiply"
    summary: ClassVar[str] = "elementwise product of the branches"
    operation: ClassVar[str] = "multiply"

    def work(self, *inputs: Shape) -> Work:
        names = ("input", *(f"input{i}" for i in range(1, len(inputs))))
        factors = tuple(
            Stored(f"factor {i + 1}", shape, of=name)
            for i, (shape, name) in enumerate(zip(inputs, names, strict=True))
        )
        return self._work(inputs, factors)


@dataclass(frozen=True)
class Positions(LayerSpec):
    """The positions of a (B, T) input, as one (1, T) row of indices: what a learned
    position embedding looks up (``torch.arange(start, start + T).unsqueeze(0)``). No
    compute, nothing kept; the embedding that reads them keeps them.

    ``start``: the first position (RoBERTa's positions start after its padding index, at
    2). ``limit``: the rows of the table they index (the context length, n_positions);
    a known T beyond it is refused. ``constant``: the same index ``start`` at every
    position (BERT's token types, all 0 unless given). ``exact``: the input holds
    exactly ``limit`` positions, every row of the table (Whisper's encoder adds all its
    positions whatever its input): a known T of another length is refused."""

    dim: int = 1
    start: int = 0
    limit: Dim | None = None
    constant: bool = False
    exact: bool = False

    kind: ClassVar[str] = "positions"
    summary: ClassVar[str] = "the positions 0 .. T-1 of the input, as indices"

    def __post_init__(self) -> None:
        for name in ("dim", "start"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                self._fail(name, value, f"{name} must be an integer", f"got {echo(value)}")
        if self.start < 0:
            self._fail("start", self.start, "start >= 0", f"got {self.start}")

    def params(self) -> Iterator[Any]:
        return iter(())

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        shape = inputs[0] if len(inputs) == 1 else ()
        if not shape or not -len(shape) <= self.dim < len(shape):
            self._fail_shape(
                f"takes one input with a dim {self.dim}, got {len(inputs)} input(s)", inputs
            )
        length, limit = known(shape[self.dim]), (None if self.limit is None else known(self.limit))
        last = None if length is None else self.start + (0 if self.constant else length - 1)
        if last is not None and limit is not None and last >= limit:
            rule = f"the sequence is at most the context length, {limit - self.start}"
            raise ShapeError(
                f"position {last} is beyond the {limit} positions the table holds ({rule}, "
                f"got {length})",
                layer=str(self),
                field="seq_len",
                value=length,
                rule=rule,
                related=("context",),
            )
        if self.exact and length is not None and limit is not None and length != limit:
            rule = f"the input holds exactly the table's {limit} positions"
            raise ShapeError(
                f"{length} positions where every one of the table's {limit} is added ({rule})",
                layer=str(self),
                field="input",
                value=length,
                rule=rule,
            )
        return ((1, shape[self.dim]),)

    def work(self, *inputs: Shape) -> Work:
        return Work(self.output_shapes(*inputs))
