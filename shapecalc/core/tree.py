"""Model trees: leaves, blocks of named children, and runs of repeated children.

A node is a :class:`Leaf` (one layer spec) or a :class:`Block`: named children in order
and a :mod:`data flow <shapecalc.core.flow>`. A :class:`Repeat` among a block's children
stands for ``count`` equal children numbered ``start, start + step, ...``, as torch's
``ModuleList`` and ``Sequential`` number theirs; the count may be a symbol. A repeated
child is described, counted and analysed once and multiplied, so a thousand blocks cost
what two do. A stack whose layers differ (dense layers before the experts, sliding and
full attention taking turns) is several runs in one block, :func:`runs` finds the fewest
for a list of layers; the children of runs that interleave are built, named and run in
index order, as a ``ModuleList`` holds them.

Full names follow ``named_parameters()``: ``transformer.h.7.attn.c_attn.weight``. A run
shown as one row is written with its range, ``transformer.h.{0..11}.attn.c_attn.weight``
(``{0..L-1}`` when the count is a symbol, ``{1,3..11}`` for every other child, and a run
of one child plainly, ``transformer.h.3``); ``{...}`` parts never contain a dot that
:func:`split_name` would split on.

    >>> from shapecalc.layers.linear import Linear
    >>> mlp = Sequential(Linear(784, 512), Linear(512, 512), Linear(512, 512), Linear(512, 10))
    >>> [c.name if isinstance(c, Child) else c.part() for c in mlp.children]
    ['0', '{1..2}', '3']
    >>> node_total(mlp)
    932362
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from shapecalc.core.dims import Dim, as_size, dim_str, floor_div, known
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
from shapecalc.core.own import Own
from shapecalc.core.spec import LayerSpec, Param, expand

__all__ = [
    "MAX_LISTED",
    "Block",
    "Child",
    "Interleaved",
    "Leaf",
    "ModuleList",
    "Node",
    "Placed",
    "Repeat",
    "Sequential",
    "StructureError",
    "as_node",
    "cycle",
    "execute",
    "find_node",
    "find_param",
    "groups",
    "in_order",
    "join_name",
    "map_leaves",
    "node_total",
    "part_holds",
    "placed_leaves",
    "run_in_order",
    "run_indices",
    "runs",
    "split_name",
    "unnumbered",
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
        >>> split_name("layers.{1,3..59}.mlp")
        ('layers', '{1,3..59}', 'mlp')
    """
    if "{" not in name:  # no braces: the runs between dots, as the pattern finds them
        return tuple(p for p in name.split(".") if p)
    return tuple(_PART.findall(name))


def unnumbered(parts: tuple[str, ...]) -> str:
    """A name with its block numbers left out (``model.layers.#.mlp.gate``): the same for
    every layer of a run, in a model and in its symbolic template."""
    return ".".join("#" if p.isdigit() or p.startswith("{") else p for p in parts)


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
    """``count`` equal children numbered ``start, start + step, ...``: ``h.0``, ``h.1``,
    ... The count is an int or a size name; each child is its own module with its own
    tensors. A step above one leaves room for the children of other runs between them
    (``layers.{1,3..59}`` between ``layers.{0,2..58}``)."""

    node: Node
    count: Dim
    start: int = 0
    step: int = 1
    #: each child also takes the run's inputs after the first, as they came (an
    #: encoder's output into every decoder layer's cross-attention); else the children
    #: after the first take the previous one's main output alone
    carry: bool = False

    def given(self, index: int, values: tuple[V, ...], out: tuple[V, ...]) -> tuple[V, ...]:
        """The inputs of child ``index``: the run's own for the first; then the previous
        child's main output (and, with :attr:`carry`, the run's inputs after the first)."""
        if index == self.start:
            return values
        return (*out[:1], *values[1:]) if self.carry else out[:1]

    def __post_init__(self) -> None:
        object.__setattr__(self, "node", as_node(self.node))
        count = as_size(self.count, owner="Repeat", field="count")
        object.__setattr__(self, "count", count)
        for name, least in (("start", 0), ("step", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise InvalidArgumentError(
                    f"{name} must be an integer >= {least}, got {echo(value)}",
                    layer="Repeat",
                    field=name,
                    value=value,
                    rule=f"{name} must be an integer >= {least}",
                )

    @property
    def last(self) -> Dim:
        """The number of the last child: ``start + step·(count - 1)``."""
        return self.start + self.step * (self.count - 1)

    def part(self) -> str:
        """The name part of the run: ``{0..11}``, ``{1..L}`` for a symbolic count,
        ``{1,3..11}`` with a step, and ``5`` for a run of one child."""
        if known(self.count) == 1:
            return str(self.start)
        last = dim_str(self.last).replace(" ", "")
        second = "" if self.step == 1 else f",{self.start + self.step}"
        return f"{{{self.start}{second}..{last}}}"

    def indices(self) -> range | None:
        """The children's numbers, when the count is known."""
        n = known(self.count)
        return None if n is None else range(self.start, self.start + self.step * n, self.step)

    def holds(self, index: int) -> bool:
        """Whether child ``index`` is in the run (any index from start on, a step apart,
        when the count is a symbol)."""
        numbers = self.indices()
        if numbers is None:
            return index >= self.start and (index - self.start) % self.step == 0
        return index in numbers

    def span_end(self) -> int | None:
        """The last child's number; None when the count is a symbol (no end known)."""
        last = self.last
        return last if isinstance(last, int) else None


_RUN_PART = re.compile(r"\{(\d+)(?:,(\d+))?\.\.(\d+)\}")


_RUN_START = re.compile(r"\{(\d+)(?:,(\d+))?\.\.[^{}]+\}")


def part_holds(part: str, index: int) -> bool:
    """Whether a name part (``5``, ``{0..2}``, ``{1,3..L-1}``) stands for child ``index``
    (any from the first on, a step apart, when the range ends in a symbol)."""
    if part == str(index):
        return True
    numbers = run_indices(part)
    if numbers is not None:
        return index in numbers
    found = _RUN_START.fullmatch(part)
    if found is None:
        return False
    first = int(found.group(1))
    step = 1 if found.group(2) is None else int(found.group(2)) - first
    return step >= 1 and index >= first and (index - first) % step == 0


def run_indices(part: str) -> range | None:
    """The numbers a run's name part stands for (``{0..2}``, ``{1,3..59}``), or None for
    another part (a symbolic range, a plain name).

    Example:

        >>> run_indices("{1,3..9}")
        range(1, 10, 2)
        >>> run_indices("{0..2}")
        range(0, 3)
    """
    found = _RUN_PART.fullmatch(part)
    if found is None:
        return None
    first, last = int(found.group(1)), int(found.group(3))
    step = 1 if found.group(2) is None else int(found.group(2)) - first
    if step < 1 or last < first or (last - first) % step:
        return None
    return range(first, last + 1, step)


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
        entries = _own_first(_entries(kind, children))
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
            own = self._by_name.get("")
            # a quantized layer (quant.Quantized) steps as the layer it stores
            if (
                "" in flow.names()
                and own is not None
                and not getattr(own.node.spec, "layer", own.node.spec).own_step  # type: ignore[union-attr]
            ):
                spec = own.node.spec  # type: ignore[union-attr]
                names = ", ".join(repr(p.name) for p in spec.params()) or "none"
                raise InvalidArgumentError(
                    f'the flow names the block\'s own tensors "", held by {spec}, '
                    f"which is not a step of a flow; hold each tensor as a child of its own "
                    f"(Parameter(shape)) and name it in the flow (its tensors: {names})",
                    layer=kind,
                    field="flow",
                    value="",
                    rule='a flow names "" only for own tensors that are a step (own_step)',
                )

    def child(self, name: str) -> Child:
        return self._by_name[name]

    def steps(self) -> Chain | Sum | Product | Parallel | Each:
        """The flow, or the default: every child in order (a run as one step)."""
        if self.flow is not None and not isinstance(self.flow, Opaque):
            return self.flow
        steps: list[Any] = []
        for group in groups(self.children):
            entries = tuple(self.children[i] for i in group)
            if len(entries) > 1:
                steps.append(Interleaved(entries))
            else:
                (e,) = entries
                steps.append(e.name if isinstance(e, Child) else e)
        return Chain(tuple(steps))


Node = Leaf | Block


def as_node(value: Any) -> Node:
    """A node from a node or a layer spec (which becomes a leaf)."""
    if isinstance(value, Block):
        return value
    if isinstance(value, Leaf):
        check_spec(value.spec)
        return value
    if isinstance(value, LayerSpec):
        check_spec(value)
        return Leaf(value)
    raise InvalidArgumentError(
        f"a child is a layer spec, a Leaf or a Block, got {type(value).__name__}",
        field="children",
        value=echo(value),
        rule="children are layer specs or blocks",
    )


def check_spec(spec: Any) -> None:
    """A layer spec of one's own is a frozen dataclass with a ``kind``: else an
    :class:`InvalidArgumentError` saying what it lacks (not an AttributeError later)."""
    cls = type(spec)
    if not isinstance(spec, LayerSpec):
        raise InvalidArgumentError(
            f"a leaf holds a layer spec, got {cls.__name__}",
            field="spec",
            value=cls.__name__,
            rule="a leaf holds a LayerSpec",
        )
    if not isinstance(getattr(cls, "kind", None), str):
        raise InvalidArgumentError(
            f'{cls.__name__} has no kind: give it kind: ClassVar[str] = "{cls.__name__}"',
            layer=cls.__name__,
            field="kind",
            value=None,
            rule="a layer spec names its kind",
        )
    if not dataclasses.is_dataclass(spec):
        raise InvalidArgumentError(
            f"{cls.__name__} is not a dataclass: decorate it with "
            "@dataclasses.dataclass(frozen=True)",
            layer=cls.__name__,
            field="spec",
            value=cls.__name__,
            rule="a layer spec is a frozen dataclass",
        )


def _own_first(entries: tuple[Entry, ...]) -> tuple[Entry, ...]:
    """The block's own tensors first (``""``, then each :class:`Parameter` and
    :class:`Buffer` child), as ``named_parameters()`` lists a module's own tensors before
    its children's; the rest in the order given."""

    def rank(e: Entry) -> int:
        if isinstance(e, Child) and e.name == "":
            return 0
        if isinstance(e, Child) and isinstance(e.node, Leaf) and isinstance(e.node.spec, Own):
            return 1
        return 2

    return tuple(sorted(entries, key=rank))


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
    for i, a in enumerate(runs):
        for b in runs[i + 1 :]:
            if _shared(a, b) is not None:
                refuse(b.part(), "names are unique", f"runs {a.part()} and {b.part()} overlap")


def _shared(a: Repeat, b: Repeat) -> int | None:
    """The first number two runs both hold, or None (solved, not searched: counts may be
    10**12 or symbols)."""
    g = math.gcd(a.step, b.step)
    if (b.start - a.start) % g:
        return None
    # a.start + i·a.step ≡ b.start (mod b.step)
    modulus = b.step // g
    i = ((b.start - a.start) // g * pow(a.step // g, -1, modulus)) % modulus if modulus > 1 else 0
    first, period = a.start + i * a.step, a.step * modulus
    lowest = max(a.start, b.start)
    if first < lowest:
        first += -(-(lowest - first) // period) * period
    return first if a.holds(first) and b.holds(first) else None


def groups(entries: tuple[Entry, ...]) -> list[list[int]]:
    """The entries' positions in groups: numbered children (runs, and children named by a
    number) whose ranges interleave form one group, run in index order; every other
    entry is a group of its own."""
    out: list[list[int]] = []
    numbered = False  # whether the last group is of numbered entries
    end: int | None = None  # its last number; None: no end (a symbolic count)
    for i, e in enumerate(entries):
        if isinstance(e, Child) and not e.name.isdigit():
            out.append([i])
            numbered = False
            continue
        first = e.start if isinstance(e, Repeat) else int(e.name)
        last = e.span_end() if isinstance(e, Repeat) else first
        # a run that carries the block's other inputs joins the children before it (a
        # first layer of its own, then the rest): they run as one, each given them
        joins = isinstance(e, Repeat) and e.carry
        if numbered and (end is None or first <= end or joins):
            out[-1].append(i)
            end = None if end is None or last is None else max(end, last)
        else:
            out.append([i])
            end = last
        numbered = True
    return out


def in_order(entries: Iterable[Entry]) -> Iterator[tuple[int, Entry]]:
    """The children of numbered entries (known counts) in index order: (number, entry)."""
    streams: list[Iterable[tuple[int, Entry]]] = []
    for e in entries:
        if isinstance(e, Child):
            streams.append(((int(e.name), e),))
        else:
            numbers = e.indices()
            assert numbers is not None, "in_order needs known counts"
            streams.append(zip(numbers, itertools.repeat(e)))
    return heapq.merge(*streams, key=lambda pair: pair[0])


@dataclass(frozen=True)
class Interleaved:
    """A step of a block's default flow: runs (and numbered children) whose children take
    turns, run in index order (``layers.0`` dense, ``layers.1`` experts, ...)."""

    entries: tuple[Entry, ...]

    @property
    def carry(self) -> bool:
        """Whether every child takes the block's inputs after the first (a run carries
        them, see :attr:`Repeat.carry`)."""
        return any(isinstance(e, Repeat) and e.carry for e in self.entries)

    def given(self, k: int, values: tuple[V, ...], out: tuple[V, ...]) -> tuple[V, ...]:
        """The inputs of the ``k``-th child or run: the block's for the first; then the
        previous one's main output (with :attr:`carry`, and the block's other inputs)."""
        if k == 0:
            return values
        return (*out[:1], *values[1:]) if self.carry else out[:1]

    def known(self) -> bool:
        return all(isinstance(e, Child) or e.indices() is not None for e in self.entries)

    def children(self) -> Iterator[tuple[int, Entry]]:
        """(number, entry) for every child, in index order (known counts only)."""
        return in_order(self.entries)


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


def ModuleList(
    node: Any, count: Any, *, kind: str = "ModuleList", description: str = "", carry: bool = False
) -> Block:
    """``count`` equal children numbered 0 .. count - 1, applied in turn (a stack of
    transformer blocks); ``count`` may be a size name. With ``carry``, each child also
    takes the stack's inputs after the first (see :attr:`Repeat.carry`)."""
    return Block(kind, (Repeat(as_node(node), count, carry=carry),), description=description)


def runs(nodes: Sequence[Any], *, start: int = 0) -> tuple[Repeat | Child, ...]:
    """The fewest runs for a list of layers numbered from ``start``: equal neighbours
    become one run, a pattern that repeats (sliding, full, sliding, full, ...) runs a step
    apart, anything else runs of one (a child named by its number).

    Example:

        >>> from shapecalc.layers.linear import Linear
        >>> dense, moe = Linear(4, 4), Linear(4, 8)
        >>> [e.part() if isinstance(e, Repeat) else e.name for e in runs([dense] * 3 + [moe] * 58)]
        ['{0..2}', '{3..60}']
        >>> [e.part() if isinstance(e, Repeat) else e.name for e in runs([dense, moe] * 30)]
        ['{0,2..58}', '{1,3..59}']
    """
    items = [as_node(n) for n in nodes]
    # each node as the number of its kind (nodes compared once each, not pairwise)
    kinds: list[Node] = []
    ids: list[int] = []
    for node in items:
        found = next((k for k, seen in enumerate(kinds) if seen == node), None)
        if found is None:
            kinds.append(node)
            found = len(kinds) - 1
        ids.append(found)
    n = len(ids)
    # best[i]: the fewest entries for ids[i:], and how (a run of equal ones up to j, or a
    # period p to the end)
    best: list[tuple[int, str, int]] = [(0, "", 0)] * (n + 1)
    for i in range(n - 1, -1, -1):
        j = i
        while j + 1 < n and ids[j + 1] == ids[i]:
            j += 1
        choice = (1 + best[j + 1][0], "run", j + 1)
        p = _period(ids[i:])
        if p < n - i and p < choice[0]:
            choice = (p, "cycle", p)
        best[i] = choice
    out: list[Repeat | Child] = []
    i = 0
    while i < n:
        _, how, value = best[i]
        if how == "run":
            out.append(_run(items[i], value - i, start + i, 1))
            i = value
        else:
            out.extend(cycle(items[i : i + value], n - i, start=start + i))
            i = n
    return tuple(out)


def _period(ids: list[int]) -> int:
    """The shortest p with ids[k] == ids[k + p] for every k (the prefix function)."""
    fail = [0] * len(ids)
    for k in range(1, len(ids)):
        m = fail[k - 1]
        while m and ids[k] != ids[m]:
            m = fail[m - 1]
        fail[k] = m + 1 if ids[k] == ids[m] else 0
    return len(ids) - fail[-1] if ids else 0


def _run(node: Node, count: Dim, start: int, step: int) -> Repeat | Child:
    return Child(str(start), node) if known(count) == 1 else Repeat(node, count, start, step)


def cycle(nodes: Sequence[Any], count: Any, *, start: int = 0) -> tuple[Repeat | Child, ...]:
    """``count`` children numbered from ``start`` that take ``nodes`` in turn (a mixture of
    experts every second layer: ``cycle([dense, moe], "L")``); the count may be a symbol,
    each run's count is then a formula. Dense layers first and experts after is
    ``(*runs([dense] * 3), *cycle([moe], L - 3, start=3))``.

    Example:

        >>> from shapecalc.layers.linear import Linear
        >>> [e.part() for e in cycle([Linear(4, 4), Linear(4, 8)], "L")]
        ['{0,2..2·⌊(L+1)/2⌋-2}', '{1,3..2·⌊(L)/2⌋-1}']
    """
    items = [as_node(n) for n in nodes]
    total = as_size(count, owner="cycle", field="count")
    p = len(items)
    if not p:
        raise InvalidArgumentError(
            "cycle takes at least one node", field="nodes", value=0, rule="one node or more"
        )
    n = known(total)
    if n is not None and n < p:
        items = items[:n]
        p = n
    return tuple(
        _run(node, floor_div(total - k + p - 1, p) if p > 1 else total, start + k, p)
        for k, node in enumerate(items)
    )


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


def every_leaf(root: Node) -> list[tuple[str, Leaf]]:
    """Each leaf with its path, every run of a known count listed child by child, in the
    order :func:`placed_leaves` (``every_child``) gives them, as ``named_parameters()``
    lists them: a node met again (a run's children share theirs) is walked once and its
    leaves numbered under each child."""
    return _every_leaf(root, {})


def _every_leaf(node: Node, memo: dict[int, list[tuple[str, Leaf]]]) -> list[tuple[str, Leaf]]:
    found = memo.get(id(node))
    if found is not None:
        return found
    out: list[tuple[str, Leaf]] = []
    if isinstance(node, Leaf):
        out.append(("", node))
    else:
        children = node.children
        for group in groups(children):
            entries = [children[i] for i in group]
            if len(group) > 1 and all(
                not isinstance(e, Repeat) or e.indices() is not None for e in entries
            ):  # interleaved runs, child by child in index order
                for index, entry in in_order(entries):
                    out += _under(str(index), _every_leaf(entry.node, memo))
                continue
            for entry in entries:
                inner = _every_leaf(entry.node, memo)
                if isinstance(entry, Child):
                    out += _under(entry.name, inner) if entry.name else inner
                    continue
                numbers = entry.indices()
                for part in (entry.part(),) if numbers is None else map(str, numbers):
                    out += _under(part, inner)
    memo[id(node)] = out
    return out


def _under(part: str, items: list[tuple[str, Leaf]]) -> list[tuple[str, Leaf]]:
    return [(f"{part}.{path}" if path else part, leaf) for path, leaf in items]


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
    for group in groups(first.children):
        if len(group) > 1 and _listed_together(blocks, group, parts, expand):
            # interleaved runs listed child by child: in index order, as torch lists them
            entries = tuple(first.children[i] for i in group)
            position = {id(e): i for e, i in zip(entries, group, strict=True)}
            for index, entry in in_order(entries):
                inner = tuple(b.children[position[id(entry)]].node for b in blocks)
                yield from _walk(inner, (*parts, str(index)), copies, expand)
            continue
        for i in group:
            yield from _walk_entry(blocks, i, parts, copies, expand)


def _twins(blocks: list[Block], i: int, parts: tuple[str, ...]) -> list[Entry]:
    """Entry ``i`` of every tree, checked to be the same child or run."""
    entry = blocks[0].children[i]
    where = join_name(*parts)
    found = [b.children[i] for b in blocks]
    if isinstance(entry, Child):
        if any(not isinstance(c, Child) or c.name != entry.name for c in found):
            raise StructureError(f"{join_name(where, entry.name)} differs between the trees")
    elif any(
        not isinstance(r, Repeat) or (r.start, r.step) != (entry.start, entry.step) for r in found
    ):
        raise StructureError(f"{join_name(where, entry.part())} differs between the trees")
    return found


def _listed_together(
    blocks: list[Block], group: list[int], parts: tuple[str, ...], expand: Expand
) -> bool:
    """Whether interleaved runs are listed child by child: all of them, in every tree."""
    for i in group:
        found = _twins(blocks, i, parts)
        entry = found[0]
        if isinstance(entry, Repeat):
            counts = {known(r.count) for r in found if isinstance(r, Repeat)}
            if entry.indices() is None or len(counts) != 1 or not expand(entry, parts):
                return False
    return True


def _walk_entry(
    blocks: list[Block],
    i: int,
    parts: tuple[str, ...],
    copies: tuple[Dim, ...],
    expand: Expand,
) -> Iterator[tuple[Placed, ...]]:
    found = _twins(blocks, i, parts)
    entry = found[0]
    if isinstance(entry, Child):
        inside = (*parts, entry.name) if entry.name else parts
        yield from _walk(tuple(c.node for c in found), inside, copies, expand)
        return
    repeats = [r for r in found if isinstance(r, Repeat)]
    counts = {known(r.count) for r in repeats}
    numbers = entry.indices()
    inner = tuple(r.node for r in repeats)
    if numbers is not None and len(counts) == 1 and expand(entry, parts):
        for index in numbers:
            yield from _walk(inner, (*parts, str(index)), copies, expand)
    else:
        more = tuple(c * r.count for c, r in zip(copies, repeats, strict=True))
        yield from _walk(inner, (*parts, entry.part()), more, expand)


def node_total(
    node: Node,
    *,
    trainable: bool = False,
    active: bool = False,
    count: Callable[[LayerSpec], Dim] | None = None,
    memo: dict[int, Dim] | None = None,
) -> Dim:
    """Parameters of a node, a run counted once and multiplied (ties not considered);
    ``active``: those one token uses (the top k of a mixture's routed experts); ``count``:
    what each layer contributes, instead."""
    memo = {} if memo is None else memo
    key = id(node)
    if key in memo:
        return memo[key]
    total: Dim = 0
    if isinstance(node, Leaf) and count is not None:
        total = count(node.spec)
    elif isinstance(node, Leaf) and active:
        total = node.spec.active()
    elif isinstance(node, Leaf):
        total = sum((p.count for p in node.spec.params() if p.trainable or not trainable), start=0)
    else:
        for entry in node.children:
            inner = node_total(
                entry.node, trainable=trainable, active=active, count=count, memo=memo
            )
            total += inner if isinstance(entry, Child) else entry.count * inner
    memo[key] = total
    return total


def map_leaves(
    node: Node, change: Callable[[tuple[str, ...], Leaf], Leaf], parts: tuple[str, ...] = ()
) -> Node:
    """The same tree with every leaf replaced by ``change(parts, leaf)`` (``parts``: its
    place, a run's children under the run's part, ``("layers", "{0..31}", "mlp")``);
    blocks and runs whose leaves do not change are kept as they are."""
    if isinstance(node, Leaf):
        return change(parts, node)
    entries: list[Entry] = []
    changed = False
    for entry in node.children:
        if isinstance(entry, Repeat):
            inner = map_leaves(entry.node, change, (*parts, entry.part()))
            new: Entry = entry if inner is entry.node else dataclasses.replace(entry, node=inner)
        else:
            inner = map_leaves(entry.node, change, (*parts, entry.name))
            new = entry if inner is entry.node else Child(entry.name, inner)
        changed = changed or new is not entry
        entries.append(new)
    if not changed:
        return node
    return Block(node.kind, entries, node.flow, node.description)


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
            if part.isdigit() and entry.holds(int(part)):
                return entry.node
            if part == entry.part():
                return entry
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
    if isinstance(node, Leaf):  # a tensor held under the child's name (a Parameter)
        return next((p for p in expand(node.spec.params()) if p.name == ""), None)
    return None


# -- running a flow ----------------------------------------------------------------------------
V = TypeVar("V")


class Runner(Protocol[V]):
    """What :func:`execute` asks of whoever follows a flow: shapes, or torch tensors."""

    def node(self, node: Node, parts: tuple[str, ...], values: tuple[V, ...]) -> tuple[V, ...]:
        """Run a child (a leaf, or a block through :func:`execute`)."""

    def repeat(self, run: Repeat, parts: tuple[str, ...], values: tuple[V, ...]) -> tuple[V, ...]:
        """Run a run of repeated children, each on the previous one's main output."""

    def interleaved(
        self, runs: Interleaved, parts: tuple[str, ...], values: tuple[V, ...]
    ) -> tuple[V, ...]:
        """Run runs whose children take turns, in index order (see :func:`run_in_order`)."""

    def op(self, spec: LayerSpec, parts: tuple[str, ...], values: tuple[V, ...]) -> tuple[V, ...]:
        """Apply a stateless layer used inline in a flow, or the sum or product of branches
        (:class:`~shapecalc.core.flow.Add`, :class:`~shapecalc.core.flow.Multiply`)."""


def run_in_order(
    runs: Interleaved, parts: tuple[str, ...], values: tuple[V, ...], runner: Runner[V]
) -> tuple[V, ...]:
    """Every child of interleaved runs in index order, each on the previous one's main
    output (the first on all of ``values``), through ``runner.node``."""
    out = values
    for k, (index, entry) in enumerate(runs.children()):
        out = runner.node(entry.node, (*parts, str(index)), runs.given(k, values, out))
    return out


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
        elif isinstance(s, Interleaved):
            out = runner.interleaved(s, parts, vals)
        elif isinstance(s, LayerSpec):
            out = runner.op(s, parts, vals)
            if s.passes_all:
                return out, out
        elif isinstance(s, Chain):
            out, main = run_chain(s, vals)
            return out, main
        elif isinstance(s, Parallel):  # a branch that ends split in parts passes them all
            out = tuple(v for b in s.branches for v in run_chain(b, vals)[1])
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
