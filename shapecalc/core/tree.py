"""Model trees: leaves, blocks of named children, and runs of repeated children.

A node is a :class:`Leaf` (one layer spec) or a :class:`Block`: named children in order
and a :mod:`data flow <shapecalc.core.flow>`. A :class:`Repeat` among a block's children
stands for ``count`` equal children numbered ``start, start + 1, ...``, as torch's
``ModuleList`` and ``Sequential`` number theirs; the count may be a symbol. A repeated
child is described, counted and analysed once and multiplied, so a thousand blocks cost
what two do.

Full names follow ``named_parameters()``: ``transformer.h.7.attn.c_attn.weight``. A run
shown as one row is written with its range, ``transformer.h.{0..11}.attn.c_attn.weight``
(``{0..L-1}`` when the count is a symbol); ``{...}`` parts never contain a dot that
:func:`split_name` would split on.

    >>> from shapecalc.layers.linear import Linear
    >>> mlp = Sequential(Linear(784, 512), Linear(512, 512), Linear(512, 512), Linear(512, 10))
    >>> [c.name if isinstance(c, Child) else c.part() for c in mlp.children]
    ['0', '{1..2}', '3']
    >>> node_total(mlp)
    932362
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from shapecalc.core.dims import Dim, as_size, dim_str, known
from shapecalc.core.errors import InvalidArgumentError, ShapecalcError, echo
from shapecalc.core.flow import (
    Add,
    Chain,
    Each,
    Flow,
    Multiply,
    Opaque,
    Parallel,
    Product,
    Sum,
    as_chain,
)
from shapecalc.core.spec import LayerSpec, Param, expand

__all__ = [
    "MAX_LISTED",
    "Block",
    "Child",
    "Leaf",
    "ModuleList",
    "Node",
    "Placed",
    "Repeat",
    "Sequential",
    "StructureError",
    "as_node",
    "execute",
    "find_node",
    "find_param",
    "join_name",
    "node_total",
    "placed_leaves",
    "split_name",
]

#: a run of up to this many repeats is listed child by child; a longer one (or one whose
#: count is a symbol) is one row per tensor with its range (``h.{0..95}.mlp.weight``)
MAX_LISTED = 4

_PART = re.compile(r"\{[^{}]*\}|[^.{]+(?:\{[^{}]*\}[^.{]*)*")


def split_name(name: str) -> tuple[str, ...]:
    """``transformer.h.{0..11}.attn`` -> its parts; a dot inside braces does not split.

    Example:

        >>> split_name("lstm.weight_ih_l{1..95}")
        ('lstm', 'weight_ih_l{1..95}')
        >>> split_name("h.{0..L-1}.attn")
        ('h', '{0..L-1}', 'attn')
    """
    return tuple(_PART.findall(name)) if name else ()


def join_name(*parts: str) -> str:
    """The dotted name of parts, skipping empty ones (a block's own tensors)."""
    return ".".join(p for p in parts if p)


@dataclass(frozen=True)
class Leaf:
    """One layer of the tree: a layer spec and what it does in its model; ``role`` names
    its part in a few words (``query``, ``gate``, ``router``) and leads each of its
    tensors' roles."""

    spec: LayerSpec
    description: str = ""
    role: str = ""


@dataclass(frozen=True)
class Child:
    """A named child of a block (its attribute name in the torch module). The name ``""``
    holds the block's own tensors (a module with parameters of its own and children)."""

    name: str
    node: Node


@dataclass(frozen=True)
class Repeat:
    """``count`` equal children numbered from ``start``: ``h.0``, ``h.1``, ... The count is
    an int or a size name; each child is its own module with its own tensors."""

    node: Node
    count: Dim
    start: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "node", as_node(self.node))
        count = as_size(self.count, owner="Repeat", field="count")
        object.__setattr__(self, "count", count)
        if isinstance(self.start, bool) or not isinstance(self.start, int) or self.start < 0:
            raise InvalidArgumentError(
                f"start must be an integer >= 0, got {echo(self.start)}",
                layer="Repeat",
                field="start",
                value=self.start,
                rule="start must be an integer >= 0",
            )

    def part(self) -> str:
        """``{0..11}``, or ``{1..L}`` for a symbolic count: the name part of the run."""
        last = dim_str(self.start + self.count - 1).replace(" ", "")
        return f"{{{self.start}..{last}}}"

    def indices(self) -> range | None:
        """The children's numbers, when the count is known."""
        n = known(self.count)
        return None if n is None else range(self.start, self.start + n)

    def holds(self, index: int) -> bool:
        """Whether child ``index`` is in the run (any index from start on, when the count
        is a symbol)."""
        numbers = self.indices()
        return index >= self.start if numbers is None else index in numbers


Entry = Child | Repeat


@dataclass(frozen=True, init=False)
class Block:
    """A module with named children (and runs of repeated ones) and its data flow.

    ``kind`` is the torch class it stands for (``Sequential``, ``BasicBlock``); ``flow``
    says how its forward uses the children (``None``: each child in turn; a sequence of
    steps is a chain). Children may be given as a mapping ``{name: node}``, ``(name,
    node)`` pairs, :class:`Child` and :class:`Repeat` entries; a layer spec stands for its
    :class:`Leaf`.
    """

    kind: str
    children: tuple[Entry, ...]
    flow: Flow | None
    description: str
    #: name -> child, built once
    _by_name: dict[str, Child] = field(init=False, repr=False, compare=False)

    def __init__(
        self,
        kind: str = "Module",
        children: Mapping[str, Any] | Iterable[Any] = (),
        flow: Any = None,
        description: str = "",
    ) -> None:
        entries = _entries(kind, children)
        for name, value in (("kind", kind), ("children", entries), ("description", description)):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_by_name", {e.name: e for e in entries if isinstance(e, Child)})
        _check_names(kind, entries)
        if flow is not None and not isinstance(flow, (Opaque, Chain, Sum, Product, Parallel, Each)):
            flow = as_chain(flow)
        object.__setattr__(self, "flow", flow)
        if flow is not None and not isinstance(flow, Opaque):
            missing = [n for n in flow.names() if n not in self._by_name]
            if missing:
                known_names = ", ".join(self._by_name) or "none"
                raise InvalidArgumentError(
                    f"the flow uses {echo(missing[0])}, which is not a child of {kind} "
                    f"(children: {known_names})",
                    layer=kind,
                    field="flow",
                    value=missing[0],
                    rule="a flow step names a child of its block",
                )

    def child(self, name: str) -> Child:
        return self._by_name[name]

    def steps(self) -> Chain | Sum | Product | Parallel | Each:
        """The flow, or the default: every child in order (a run as one step)."""
        if self.flow is not None and not isinstance(self.flow, Opaque):
            return self.flow
        return Chain(tuple(e.name if isinstance(e, Child) else e for e in self.children))  # type: ignore[misc]


Node = Leaf | Block


def as_node(value: Any) -> Node:
    """A node from a node or a layer spec (which becomes a leaf)."""
    if isinstance(value, (Leaf, Block)):
        return value
    if isinstance(value, LayerSpec):
        return Leaf(value)
    raise InvalidArgumentError(
        f"a child is a layer spec, a Leaf or a Block, got {type(value).__name__}",
        field="children",
        value=echo(value),
        rule="children are layer specs or blocks",
    )


def _entries(kind: str, children: Any) -> tuple[Entry, ...]:
    items: Iterable[Any] = children.items() if isinstance(children, Mapping) else children
    out: list[Entry] = []
    for item in items:
        if isinstance(item, (Child, Repeat)):
            out.append(item)
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            out.append(Child(item[0], as_node(item[1])))
        else:
            raise InvalidArgumentError(
                f"{kind}: a child is given as (name, node), Child or Repeat, got "
                f"{type(item).__name__}",
                layer=kind,
                field="children",
                value=repr(item)[:80],
                rule="children are named",
            )
    return tuple(Child(e.name, as_node(e.node)) if isinstance(e, Child) else e for e in out)


def _check_names(kind: str, entries: tuple[Entry, ...]) -> None:
    def refuse(value: str, rule: str, why: str) -> None:
        raise InvalidArgumentError(
            f"{kind}: {why}", layer=kind, field="children", value=value, rule=rule
        )

    seen: set[str] = set()
    for i, e in enumerate(entries):
        if isinstance(e, Repeat):
            continue
        if e.name == "" and (i != 0 or not isinstance(e.node, Leaf)):
            refuse("", "a child has a name", "the unnamed child (own tensors) is a leaf, first")
        if "." in e.name or "{" in e.name:
            refuse(e.name, "names have no dots", f"child name {echo(e.name)} holds '.' or '{{'")
        if e.name in seen:
            refuse(e.name, "names are unique", f"two children are named {echo(e.name)}")
        seen.add(e.name)
    numbered = [int(n) for n in seen if n.isdigit()]
    runs = [e for e in entries if isinstance(e, Repeat)]
    for r in runs:
        clash = [n for n in numbered if r.holds(n)]
        if clash:
            refuse(str(clash[0]), "names are unique", f"child {clash[0]} is also in run {r.part()}")
    for a in runs:
        for b in runs:
            if a is not b and a.start <= b.start and a.holds(b.start):
                refuse(b.part(), "names are unique", f"runs {a.part()} and {b.part()} overlap")


# -- constructors in torch's terms ----------------------------------------------------------
def Sequential(*children: Any, kind: str = "Sequential", description: str = "") -> Block:
    """torch's ``nn.Sequential``: children numbered 0, 1, ... (or named, from one mapping),
    each on the previous one's output. Equal neighbours become one run, so
    ``Sequential(*[block] * 96)`` is described once.

    Example:

        >>> from shapecalc.layers.linear import Linear
        >>> [c.name for c in Sequential({"fc": Linear(4, 2)}).children]
        ['fc']
    """
    if len(children) == 1 and isinstance(children[0], Mapping):
        return Block(kind, tuple(children[0].items()), description=description)
    nodes = [as_node(c) for c in children]
    entries: list[Entry] = []
    i = 0
    while i < len(nodes):
        j = i
        while j + 1 < len(nodes) and nodes[j + 1] == nodes[i]:
            j += 1
        if j > i:
            entries.append(Repeat(nodes[i], j - i + 1, start=i))
        else:
            entries.append(Child(str(i), nodes[i]))
        i = j + 1
    return Block(kind, tuple(entries), description=description)


def ModuleList(node: Any, count: Any, *, kind: str = "ModuleList", description: str = "") -> Block:
    """``count`` equal children numbered 0 .. count - 1, applied in turn (a stack of
    transformer blocks); ``count`` may be a size name."""
    return Block(kind, (Repeat(as_node(node), count),), description=description)


# -- walking -----------------------------------------------------------------------------------
class StructureError(ShapecalcError):
    """Two trees that should have the same structure (a model and its symbolic template)
    do not."""


@dataclass(frozen=True)
class Placed:
    """A leaf at its place: its path parts and how many copies a run makes of it."""

    parts: tuple[str, ...]
    leaf: Leaf
    copies: Dim = 1

    @property
    def path(self) -> str:
        return join_name(*self.parts)


#: decides whether a run is listed child by child: (the run, the parts of its block)
Expand = Callable[[Repeat, tuple[str, ...]], bool]


def listed(run: Repeat, parts: tuple[str, ...]) -> bool:
    """The default: a run of up to :data:`MAX_LISTED` children is listed child by child."""
    n = known(run.count)
    return n is not None and n <= MAX_LISTED


def every_child(run: Repeat, parts: tuple[str, ...]) -> bool:
    """Every child of a run with a known count, as ``named_parameters()`` lists them."""
    return known(run.count) is not None


def placed_leaves(trees: tuple[Node, ...], expand: Expand = listed) -> Iterator[tuple[Placed, ...]]:
    """The leaves of one or more trees of the same structure, walked together (a model and
    its template): for each leaf, its place in every tree. A run is listed child by child
    when ``expand`` says so for the first tree and every tree knows the count; else it is
    one place with its range and copies. Raises :class:`StructureError` when the trees
    differ."""
    yield from _walk(trees, (), tuple(1 for _ in trees), expand)


def _walk(
    nodes: tuple[Node, ...],
    parts: tuple[str, ...],
    copies: tuple[Dim, ...],
    expand: Expand,
) -> Iterator[tuple[Placed, ...]]:
    where = join_name(*parts)
    leaves = [n for n in nodes if isinstance(n, Leaf)]
    if leaves:
        if len(leaves) != len(nodes):
            raise StructureError(f"{where} is a leaf in one tree only")
        yield tuple(Placed(parts, n, c) for n, c in zip(leaves, copies, strict=True))
        return
    blocks = [n for n in nodes if isinstance(n, Block)]
    first = blocks[0]
    if any(len(b.children) != len(first.children) for b in blocks):
        raise StructureError(f"{where} has other children in another tree")
    for i, entry in enumerate(first.children):
        if isinstance(entry, Child):
            named = [b.children[i] for b in blocks]
            twins = [c for c in named if isinstance(c, Child) and c.name == entry.name]
            if len(twins) != len(blocks):
                raise StructureError(f"{join_name(where, entry.name)} differs between the trees")
            inside = (*parts, entry.name) if entry.name else parts
            yield from _walk(tuple(c.node for c in twins), inside, copies, expand)
            continue
        runs = [b.children[i] for b in blocks]
        repeats = [r for r in runs if isinstance(r, Repeat) and r.start == entry.start]
        if len(repeats) != len(blocks):
            raise StructureError(f"{join_name(where, entry.part())} differs between the trees")
        counts = {known(r.count) for r in repeats}
        numbers = entry.indices()
        inner = tuple(r.node for r in repeats)
        if numbers is not None and len(counts) == 1 and expand(entry, parts):
            for index in numbers:
                yield from _walk(inner, (*parts, str(index)), copies, expand)
        else:
            more = tuple(c * r.count for c, r in zip(copies, repeats, strict=True))
            yield from _walk(inner, (*parts, entry.part()), more, expand)


def node_total(node: Node, *, trainable: bool = False, memo: dict[int, Dim] | None = None) -> Dim:
    """Parameters of a node, a run counted once and multiplied (ties not considered)."""
    memo = {} if memo is None else memo
    key = id(node)
    if key in memo:
        return memo[key]
    total: Dim = 0
    if isinstance(node, Leaf):
        total = sum((p.count for p in node.spec.params() if p.trainable or not trainable), start=0)
    else:
        for entry in node.children:
            inner = node_total(entry.node, trainable=trainable, memo=memo)
            total += inner if isinstance(entry, Child) else entry.count * inner
    memo[key] = total
    return total


def find_node(root: Node, parts: tuple[str, ...]) -> Node | Repeat | None:
    """The node at ``parts`` (a run written with its range gives the :class:`Repeat`)."""
    node: Node | Repeat = root
    for part in parts:
        if isinstance(node, Repeat):
            node = node.node
        if not isinstance(node, Block):
            return None
        found = _entry_at(node, part)
        if found is None:
            return None
        node = found
    return node


def _entry_at(block: Block, part: str) -> Node | Repeat | None:
    if part in block._by_name:
        return block._by_name[part].node
    for entry in block.children:
        if isinstance(entry, Repeat):
            if part == entry.part():
                return entry
            if part.isdigit() and entry.holds(int(part)):
                return entry.node
    own = block._by_name.get("")
    return own.node if own is not None and part in _own_names(own.node) else None


def _own_names(node: Node) -> set[str]:
    return {p.name for p in expand(node.spec.params())} if isinstance(node, Leaf) else set()


def find_param(root: Node, name: str) -> Param | None:
    """The parameter named ``name`` as ``named_parameters()`` names it (``h.3.attn.weight``,
    ``lstm.weight_ih_l7``), or None."""
    parts = split_name(name)
    node: Node = root
    for i, part in enumerate(parts):
        if isinstance(node, Leaf):
            rest = ".".join(parts[i:])
            return next((p for p in expand(node.spec.params()) if p.name == rest), None)
        own = node._by_name.get("")
        if own is not None and i == len(parts) - 1 and part in _own_names(own.node):
            return find_param(own.node, part)
        found = _entry_at(node, part)
        if found is None or isinstance(found, Repeat):
            return None
        node = found
    return None


# -- running a flow ----------------------------------------------------------------------------
V = TypeVar("V")


class Runner(Protocol[V]):
    """What :func:`execute` asks of whoever follows a flow: shapes, or torch tensors."""

    def node(self, node: Node, parts: tuple[str, ...], values: tuple[V, ...]) -> tuple[V, ...]:
        """Run a child (a leaf, or a block through :func:`execute`)."""

    def repeat(self, run: Repeat, parts: tuple[str, ...], values: tuple[V, ...]) -> tuple[V, ...]:
        """Run a run of repeated children, each on the previous one's main output."""

    def op(self, spec: LayerSpec, parts: tuple[str, ...], values: tuple[V, ...]) -> tuple[V, ...]:
        """Apply a stateless layer used inline in a flow, or the sum or product of branches
        (:class:`~shapecalc.core.flow.Add`, :class:`~shapecalc.core.flow.Multiply`)."""


def execute(
    block: Block, parts: tuple[str, ...], values: tuple[V, ...], runner: Runner[V]
) -> tuple[V, ...]:
    """Follow ``block``'s flow on ``values``: every step through ``runner``."""

    def step(s: Any, vals: tuple[V, ...]) -> tuple[tuple[V, ...], tuple[V, ...]]:
        """(all outputs, the main ones passed on)."""
        if isinstance(s, str):
            out = runner.node(block.child(s).node, (*parts, s) if s else parts, vals)
        elif isinstance(s, Repeat):
            out = runner.repeat(s, parts, vals)
        elif isinstance(s, LayerSpec):
            out = runner.op(s, parts, vals)
            if s.passes_all:
                return out, out
        elif isinstance(s, Chain):
            out, main = run_chain(s, vals)
            return out, main
        elif isinstance(s, Parallel):
            out = tuple(run_chain(b, vals)[1][0] for b in s.branches)
            return out, out
        elif isinstance(s, Each):
            if len(s.branches) != len(vals):
                raise StructureError(
                    f"{join_name(*parts) or block.kind}: each() has {len(s.branches)} branches "
                    f"for {len(vals)} values"
                )
            out = tuple(run_chain(b, (v,))[1][0] for b, v in zip(s.branches, vals, strict=True))
            return out, out
        else:  # Sum, Product
            branches = tuple(run_chain(b, vals)[1][0] for b in s.branches)
            combine: LayerSpec = Add() if isinstance(s, Sum) else Multiply()
            out = runner.op(combine, parts, branches)
        return out, out[:1]

    def run_chain(c: Chain, vals: tuple[V, ...]) -> tuple[tuple[V, ...], tuple[V, ...]]:
        out, main = vals, vals
        for s in c.steps:
            out, main = step(s, main)
        return out, main

    return step(block.steps(), values)[0]
