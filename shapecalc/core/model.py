"""A model: a tree of layers with its ties, its named sizes and its symbolic twin.

A :class:`Model` built from concrete sizes carries a *template*: the same model built with
every size replaced by its symbol (V, E, H, ...). Each row pairs a parameter with its twin
in the template, which gives the formula column without a second formula anywhere.

    >>> from shapecalc.layers.linear import Linear
    >>> m = Model("two linears", {"up": Linear(8, 16), "down": Linear(16, 4)})
    >>> [(r.name, r.shape) for r in m.rows()]
    [('up.weight', (16, 8)), ('up.bias', (16,)), ('down.weight', (4, 16)), ('down.bias', (4,))]
    >>> m.total
    212
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from shapecalc.core.dims import (
    Dim,
    Expr,
    as_size,
    dim_str,
    exact_div,
    int_text,
    known,
    same_shape,
    shape_str,
    symbol,
)
from shapecalc.core.errors import (
    InvalidArgumentError,
    ShapecalcError,
    TieError,
    echo,
    expect,
    require_one_of,
)
from shapecalc.core.flow import Chain, _Branches
from shapecalc.core.spec import LayerSpec, Param, expand, shown
from shapecalc.core.tree import (
    MAX_LISTED as LISTED_RUN,
)
from shapecalc.core.tree import (
    Block,
    Child,
    Leaf,
    Node,
    Placed,
    Repeat,
    StructureError,
    as_node,
    every_leaf,
    find_node,
    find_param,
    join_name,
    listed,
    node_total,
    part_holds,
    placed_leaves,
    split_name,
)
from shapecalc.core.units import DTYPE_BYTES

__all__ = ["Layer", "Model", "Row", "full_name", "layer_model"]


def full_name(layer: str, name: str) -> str:
    """``lstm.weight_ih_l0``; a model of one unnamed layer keeps torch's bare names, and
    a tensor held under its child's name (a Parameter, name ``""``) is the child's."""
    if not name:
        return layer
    return f"{layer}.{name}" if layer else name


@dataclass(frozen=True)
class Layer:
    """A leaf of a model's tree as the model lists it: its path (``transformer.h.{0..11}.
    attn``; ``""`` for a model of one bare layer), its spec, what it does, and how many
    copies a repeated block makes of it."""

    name: str
    spec: LayerSpec
    description: str = ""
    copies: Dim = 1
    #: its part in a few words (``query``, ``gate``, ``router``), as its leaf names it
    role: str = ""


_MISSING = object()


@dataclass(frozen=True)
class Row:
    """One parameter of a model, as a table row."""

    layer: str
    param: Param
    #: the same parameter in the symbolic template: its shape and count are the formulas
    template: Param
    tied_to: str | None = None
    #: the node whose subtotal closes the row's group (see :attr:`Model.group_depth`)
    group: str = ""

    @property
    def name(self) -> str:
        """PyTorch's full name inside the model, e.g. ``lstm.weight_ih_l0``."""
        return full_name(self.layer, self.param.name)

    @property
    def shape(self) -> tuple[Dim, ...]:
        return self.param.shape

    @property
    def count(self) -> Dim:
        return self.param.count

    @property
    def counted(self) -> Dim:
        """What the row adds to the total: 0 for a tied (shared) parameter."""
        return 0 if self.tied_to else self.param.count

    @property
    def formula(self) -> Dim:
        return self.template.count

    @property
    def formula_shape(self) -> tuple[Dim, ...]:
        return self.template.shape

    @property
    def role(self) -> str:
        return self.param.role


def _copied(param: Param, copies: Dim) -> Param:
    return param if copies == 1 else replace(param, repeat=copies * param.repeat)


def as_root(value: Any) -> Node:
    """A tree from a node, a layer spec, or ``{name: layer}`` (children in turn)."""
    if isinstance(value, Mapping) or (
        isinstance(value, (list, tuple)) and all(isinstance(v, tuple) for v in value)
    ):
        return Block("Module", value)
    return as_node(value)


class UnknownLayerError(InvalidArgumentError, KeyError):
    """A layer name the model does not have (a KeyError too, as a mapping's would be)."""

    def __str__(self) -> str:
        return self._render()


#: how deep blocks and flows may nest (real models nest a dozen deep)
MAX_DEPTH = 64


def _check_depth(root: Node, name: str) -> None:
    """Blocks nested, and flows nested in a block's flow, at most :data:`MAX_DEPTH` deep:
    measured without recursion, before anything walks the tree with it."""
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            rule = f"blocks and flows nest at most {MAX_DEPTH} deep"
            raise InvalidArgumentError(
                f"{rule}; this model nests deeper",
                layer=name,
                field="root",
                value=depth,
                rule=rule,
            )
        if isinstance(item, Block):
            for entry in item.children:
                stack.append((entry.node, depth + 1))
            if item.flow is not None:
                stack.append((item.flow, depth + 1))
        elif isinstance(item, Chain):
            stack.extend((step, depth + 1) for step in item.steps)
        elif isinstance(item, _Branches):
            stack.extend((branch, depth + 1) for branch in item.branches)


#: the most tensors a model lists one by one (named_parameters); counts need no listing
MAX_LISTED = 10_000_000


@dataclass(frozen=True)
class Model:
    """A tree of layers with ties, named sizes and (for formulas) a symbolic template.

    ``root`` is a :class:`~shapecalc.core.tree.Block`, a single layer (whose tensors keep
    torch's bare names), or ``{name: layer}`` for a chain of named layers. ``factory`` and
    ``arguments`` say how the model was made, so that :meth:`evaluate` can rebuild it with
    symbols replaced by values; ``make_template`` builds the symbolic twin on first use
    (totals never need it; formulas do). ``group_depth`` is the depth of the nodes whose
    subtotals close the table's groups (1: the root's children).
    """

    name: str
    root: Node
    #: tied parameter full name -> the full name of the parameter it shares
    ties: Mapping[str, str] = field(default_factory=dict)
    #: the named sizes of the model, in display order: {"V": 65, "H": 512, ...}
    sizes: Mapping[str, Dim] = field(default_factory=dict)
    make_template: Callable[[], Model | None] | None = field(
        default=None, repr=False, compare=False
    )
    factory: Callable[..., Model] | None = None
    arguments: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    #: the model's input shapes: (("B", "T"),) for token ids, batch first; "B" and "T" take
    #: the batch and sequence length, other names the model's sizes, ints stay
    input_layout: tuple[tuple[str | int, ...], ...] = ()
    #: what made the model, for the JSON report (``lstm_lm``); the factory's name if None
    kind: str | None = None
    group_depth: int = 1
    #: the architecture configuration that made the model, if one did
    config: Any = field(default=None, repr=False, compare=False)
    #: how the model's maker names the configuration's arguments (a config file's fields:
    #: ``hidden`` -> ``hidden_size``), for ``--explain``; the command's flags if empty
    argument_names: Mapping[str, str] = field(default_factory=dict, compare=False)
    #: fields of the config it was read from that change no tensor (``--explain``)
    unshaped: tuple[str, ...] = field(default=(), compare=False)
    #: the leaf that maps vectors back to tokens (``lm_head``), if any
    head: str = ""
    #: name prefixes of the real class's tensors this model does not count yet -> what
    #: they are (a multimodal class's vision tower): a comparison with the class leaves
    #: them out and says so
    uncounted: Mapping[str, str] = field(default_factory=dict, compare=False)
    #: the quantization the tensors are stored under (see :mod:`shapecalc.quant`), and the
    #: model before it: its parameters are the model's, the stored tensors these rows
    quantization: Any = field(default=None, compare=False)
    unquantized: Model | None = field(default=None, repr=False, compare=False)
    #: the model_type of the Hugging Face config it was read from (``qwen2``), if one was:
    #: peft's default LoRA targets are chosen by it
    model_type: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        for field_name, value in (("ties", self.ties), ("sizes", self.sizes)):
            expect(value, Mapping, function="Model", argument=field_name, what="a mapping")
        object.__setattr__(self, "root", as_root(self.root))
        _check_depth(self.root, self.name)
        layout: Any = self.input_layout
        if not isinstance(layout, tuple) or not all(isinstance(s, tuple) for s in layout):
            raise TypeError(
                f"Model: input_layout must be a tuple of shapes, each a tuple of sizes "
                f"(('B', 'T'),), got {echo(layout)}"
            )
        depth: Any = self.group_depth
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise InvalidArgumentError(
                f"group_depth must be an integer >= 1, got {echo(depth)}",
                layer=self.name,
                field="group_depth",
                value=depth,
                rule="group_depth must be an integer >= 1",
            )
        for tied, source in self.ties.items():
            self._check_tie(tied, source)

    def _check_tie(self, tied: str, source: str) -> None:
        a, b = find_param(self.root, tied), find_param(self.root, source)
        if a is None or b is None:
            missing = tied if a is None else source
            raise TieError(
                f"cannot tie {tied} to {source}: the model has no parameter {missing}",
                layer=self.name,
                field="ties",
                value=missing,
                rule="tied parameters must exist",
            )
        if not same_shape(a.shape, b.shape):
            raise TieError(
                f"cannot tie {tied} {shape_str(a.shape)} to {source} "
                f"{shape_str(b.shape)}: shared parameters need the same shape",
                layer=self.name,
                field="ties",
                value=(tied, source),
                rule="tied parameters must have the same shape",
            )

    # -- the tree, as places and rows ----------------------------------------------------
    @cached_property
    def template(self) -> Model:
        """The same model with its sizes as symbols: its counts are the formulas (itself
        when there is none, or its maker gives None)."""
        made = self.make_template() if self.make_template else None
        return made if made is not None else self

    @cached_property
    def _tie_parts(self) -> tuple[tuple[str, ...], ...]:
        return tuple(split_name(n) for pair in self.ties.items() for n in pair)

    def _expand(self, run: Repeat, parts: tuple[str, ...]) -> bool:
        """A run is listed child by child when short (and not one of several runs of a
        long stack: ``layers.{0..2}`` dense before ``layers.{3..60}`` experts), or when a tie
        points inside it."""
        if listed(run, parts) and not self._crowded(parts):
            return True
        if run.indices() is None:
            return False
        n = len(parts)
        return any(
            t[:n] == parts and len(t) > n and t[n].isdigit() and run.holds(int(t[n]))
            for t in self._tie_parts
        )

    def _crowded(self, parts: tuple[str, ...]) -> bool:
        """The block at ``parts`` holds runs of different blocks, more than
        :data:`~shapecalc.core.tree.MAX_LISTED` children in all: its runs are shown as
        runs, however short."""
        found = self._crowding.get(parts)
        if found is None:
            block = find_node(self.root, parts)
            found = False
            if isinstance(block, Repeat):
                block = block.node
            if isinstance(block, Block):
                runs = [e for e in block.children if isinstance(e, Repeat)]
                counts = [known(r.count) for r in runs]
                numbered = sum(
                    1 for e in block.children if isinstance(e, Child) and e.name.isdigit()
                )
                found = len(runs) > 1 and (
                    None in counts or sum(c or 0 for c in counts) + numbered > LISTED_RUN
                )
            self._crowding[parts] = found
        return found

    @cached_property
    def _crowding(self) -> dict[tuple[str, ...], bool]:
        return {}

    @cached_property
    def _places(self) -> tuple[tuple[Placed, Placed], ...]:
        """Every leaf with its twin in the template (itself when the template's tree has
        another structure, then the formulas are the counts)."""
        template = self.template
        if template is not self:
            try:
                pairs = placed_leaves((self.root, template.root), self._expand)
                return tuple((a, b) for a, b in pairs)
            except StructureError:
                pass
        return tuple((a, a) for (a,) in placed_leaves((self.root,), self._expand))

    @cached_property
    def layers(self) -> tuple[Layer, ...]:
        """The leaves in order, a long run of repeated blocks as one place per leaf."""
        return tuple(
            Layer(p.path, p.leaf.spec, p.leaf.description, p.copies, p.leaf.role)
            for p, _ in self._places
        )

    def group_of(self, path: str) -> str:
        """The group a leaf's rows belong to: its ancestor at :attr:`group_depth`."""
        parts = split_name(path)
        return join_name(*parts[: self.group_depth]) if parts else ""

    def rows(self) -> list[Row]:
        """Every parameter of every leaf, in PyTorch's order, tied ones included."""
        return list(self._rows)

    @cached_property
    def _rows(self) -> tuple[Row, ...]:
        rows: list[Row] = []
        for place, twin in self._places:
            own = list(place.leaf.spec.params())
            twins = list(twin.leaf.spec.params())
            if len(own) != len(twins):
                # a symbolic layer count merges equal blocks; sizes that are equal here but
                # distinct symbols in the template keep them apart: follow the template
                own = [p.substitute(self.sizes) for p in twins]
            group = self.group_of(place.path)
            if place.leaf.role:
                own = [replace(p, role=f"{place.leaf.role}: {p.role}") for p in own]
            for param, twin_param in zip(own, twins, strict=True):
                full = full_name(place.path, param.name)
                rows.append(
                    Row(
                        place.path,
                        _copied(param, place.copies),
                        _copied(twin_param, twin.copies),
                        self.ties.get(full),
                        group,
                    )
                )
        return tuple(rows)

    def groups(self) -> list[str]:
        """The groups of the rows, in order."""
        return list(dict.fromkeys(r.group for r in self._rows))

    def buffer_rows(self) -> Iterator[tuple[str, Param]]:
        for place, _ in self._places:
            for buf in place.leaf.spec.buffers():
                yield full_name(place.path, buf.name), _copied(buf, place.copies)

    def tensor_count(self) -> Dim:
        """How many tensors :meth:`named_parameters` lists (tied ones once), counted without
        listing them."""
        copies = {layer.name: layer.copies for layer in self.layers}
        count: Dim = 0
        for row in self.rows():
            if row.tied_to:
                continue
            numbers = row.param.layers
            count += copies.get(row.layer, 1) * (1 if numbers is None else len(numbers))
        return count

    def _listable(self) -> None:
        count = self.tensor_count()
        if isinstance(count, int) and count > MAX_LISTED:
            rule = f"a model lists at most {MAX_LISTED:,} tensors by name"
            raise InvalidArgumentError(
                f"{rule}; this one holds {int_text(count)} (its total, rows and formulas "
                "are counted without listing them)",
                layer=self.name,
                field="named_parameters",
                value=count,
                rule=rule,
            )

    def memo(self, key: str, make: Callable[[], Any]) -> Any:
        """``make()``, computed once per model and kept under ``key`` (a model is frozen):
        for analyses that ask a model for the same derived facts many times."""
        found = self._memo.get(key, _MISSING)
        if found is _MISSING:
            found = self._memo[key] = make()
        return found

    @cached_property
    def _memo(self) -> dict[str, Any]:
        return {}

    def named_parameters(self) -> list[tuple[str, tuple[Dim, ...]]]:
        """``(name, shape)`` as ``torch.nn.Module.named_parameters()`` gives them: every
        repeated block expanded (while its count is known), a tied parameter once, under
        the name it was first registered with; refused past :data:`MAX_LISTED` tensors."""
        return list(self._named_parameters)

    @cached_property
    def _named_parameters(self) -> tuple[tuple[str, tuple[Dim, ...]], ...]:
        """The list, made once (a model is frozen)."""
        self._listable()
        params: dict[int, list[Param]] = {}  # a run's layers share their specs
        out = []
        for path, leaf in every_leaf(self.root):
            spec = leaf.spec
            found = params.get(id(spec))
            if found is None:
                found = params[id(spec)] = list(expand(spec.params()))
            for p in found:
                name = full_name(path, p.name)
                if name not in self.ties:
                    out.append((name, p.shape))
        return tuple(out)

    def named_buffers(self) -> list[tuple[str, tuple[Dim, ...]]]:
        """``(name, shape)`` as ``torch.nn.Module.named_buffers()`` gives them, every
        repeated block expanded (while its count is known)."""
        self._listable()
        return [
            (full_name(path, b.name), b.shape)
            for path, leaf in every_leaf(self.root)
            for b in expand(leaf.spec.buffers())
        ]

    # -- totals --------------------------------------------------------------------------
    def _total(self, trainable: bool) -> Dim:
        total = node_total(self.root, trainable=trainable)
        for tied in self.ties:
            param = find_param(self.root, tied)
            assert param is not None  # checked when the model was made
            if param.trainable or not trainable:
                total = total - param.count
        return total

    @cached_property
    def total(self) -> Dim:
        """Parameters, each shared tensor counted once."""
        return self._total(False)

    @property
    def parameters(self) -> Dim:
        """The model's parameters: :attr:`total`, or for a quantized model its
        unquantized twin's (4-bit numbers packed into int32 are not parameters)."""
        return self.unquantized.total if self.unquantized is not None else self.total

    @cached_property
    def trainable(self) -> Dim:
        return self._total(True)

    @cached_property
    def trainable_own(self) -> tuple[Dim, Dim]:
        """(parameters, bytes) of the trainable tensors stored in a dtype of their own
        (LoRA's adapters, float32 as peft keeps them): their gradients and optimizer state
        follow that dtype, not the model's."""
        count: Dim = 0
        size: Dim = 0
        for row in self.rows():
            if row.param.trainable and row.param.dtype and not row.tied_to:
                count += row.count
                size += row.param.nbytes(1)
        return count, size

    def trainable_bytes(self, size: int) -> Dim:
        """Bytes of one number per trainable parameter: ``size`` each, or its own dtype's
        for a tensor stored in one (a gradient, an optimizer state kept like the tensor)."""
        count, own = self.trainable_own
        return (self.trainable - count) * size + own

    @property
    def total_formula(self) -> Dim:
        return self.template.total

    # -- what one token uses -------------------------------------------------------------
    @cached_property
    def routed(self) -> bool:
        """A mixture: some layer chooses, per token, which of its tensors it uses (the
        top k of E routed experts), so that fewer parameters are active than held."""
        seen: set[int] = set()

        def routed(node: Node) -> bool:
            if id(node) in seen:
                return False
            seen.add(id(node))
            if isinstance(node, Leaf):
                return node.spec.routed
            return any(routed(entry.node) for entry in node.children)

        return routed(self.root)

    @cached_property
    def active(self) -> Dim:
        """Parameters one token's forward uses: all but the routed experts it is not sent
        to (attention, dense and shared MLPs, routers, norms, the top k of E experts), the
        embedding table and head counted whole, as published totals count them."""
        total = node_total(self.root, active=True)
        for tied in self.ties:
            param = find_param(self.root, tied)
            assert param is not None  # checked when the model was made
            total = total - param.count
        return total

    @property
    def active_formula(self) -> Dim:
        return self.template.active

    @cached_property
    def embeddings(self) -> Dim:
        """The parameters of every embedding table (token, position, type): what
        "non-embedding" counts leave out first."""
        return node_total(
            self.root, count=lambda spec: spec.total() if spec.kind == "Embedding" else 0
        )

    @cached_property
    def head_params(self) -> Dim:
        """The parameters of the head that maps vectors back to tokens (``lm_head``) that
        are its own: none of a head tied to the embedding but its bias."""
        head = find_node(self.root, split_name(self.head)) if self.head else None
        if not isinstance(head, Leaf):
            return 0
        return sum(
            (p.count for p in head.spec.params() if full_name(self.head, p.name) not in self.ties),
            start=0,
        )

    @property
    def vocabulary(self) -> Dim:
        """The parameters that map tokens to vectors and back: every embedding table and
        the head's own, what "non-embedding" counts leave out."""
        return self.embeddings + self.head_params

    @property
    def vocabulary_formula(self) -> Dim:
        return self.template.vocabulary

    @cached_property
    def _subtotals(self) -> dict[tuple[str, ...], tuple[Dim, Dim]]:
        """(count, formula) under every node of the rows' names, in one pass."""
        sums: dict[tuple[str, ...], tuple[Dim, Dim]] = {}
        for row in self._rows:
            counted, formula = row.counted, 0 if row.tied_to else row.template.count
            parts = split_name(row.name)
            for i in range(len(parts) + 1):
                count, total = sums.get(parts[:i], (0, 0))
                sums[parts[:i]] = (count + counted, total + formula)
        return sums

    def subtotal(self, path: str) -> Dim:
        """Parameters under ``path`` (a leaf, a block or a run: ``transformer.h``), each
        shared tensor counted where it is first registered; one child of a run shown as
        one row (``layers.5``) has its run's share."""
        return self._subtotal(path)[0]

    def subtotal_formula(self, path: str) -> Dim:
        return self._subtotal(path)[1]

    def _subtotal(self, path: str) -> tuple[Dim, Dim]:
        expect(path, str, function="Model.subtotal", argument="path", what="a name (str)")
        wanted = split_name(path)
        if wanted in self._subtotals:
            return self._subtotals[wanted]
        for key, (count, formula) in self._subtotals.items():
            if len(key) != len(wanted) or not all(
                a == b or (b.isdigit() and a.startswith("{") and part_holds(a, int(b)))
                for a, b in zip(key, wanted, strict=True)
            ):
                continue
            for i, (a, b) in enumerate(zip(key, wanted, strict=True)):
                if a == b:
                    continue
                run = find_node(self.root, key[: i + 1])
                twin = find_node(self.template.root, key[: i + 1])
                if not isinstance(run, Repeat):
                    return 0, 0
                twin = twin if isinstance(twin, Repeat) else run
                share, share_formula = exact_div(count, run.count), exact_div(formula, twin.count)
                if share is None or share_formula is None:
                    return 0, 0
                count, formula = share, share_formula
            return count, formula
        return 0, 0

    def rows_of(self) -> dict[str, list[Row]]:
        """The rows by layer (leaf path), in order."""
        out: dict[str, list[Row]] = {}
        for row in self._rows:
            out.setdefault(row.layer, []).append(row)
        return out

    def describe(self, path: str) -> str:
        """What the node at ``path`` is: a layer's spec (``Linear(in_features=512, ...)``),
        a block's kind, or ``12 × GPT2Block`` for a run."""
        expect(path, str, function="Model.describe", argument="path", what="a name (str)")
        node = find_node(self.root, split_name(path))
        if isinstance(node, Leaf):
            return str(node.spec)
        if isinstance(node, Repeat):
            inner = node.node
            kind = str(inner.spec) if isinstance(inner, Leaf) else inner.kind
            return f"{dim_str(node.count)} × {kind}"
        if isinstance(node, Block):
            return node.kind + (f": {node.description}" if node.description else "")
        return ""

    def description(self, path: str) -> str:
        """The plain words given to the node at ``path`` (a leaf's or a block's)."""
        node = find_node(self.root, split_name(path))
        if isinstance(node, Repeat):
            node = node.node
        if isinstance(node, (Leaf, Block)):
            return node.description
        return ""

    @property
    def nested(self) -> bool:
        """Whether the tree is more than a chain of layers (blocks inside blocks, runs)."""
        root = self.root
        if isinstance(root, Leaf):
            return False
        return any(isinstance(e, Repeat) or isinstance(e.node, Block) for e in root.children)

    def bytes(self, dtype: str = "fp32") -> Dim:
        """Bytes to store the parameters at ``dtype`` (see :data:`DTYPE_BYTES`); a tensor
        with a dtype of its own (MXFP4's uint8 blocks and scales) at its own."""
        require_one_of("dtype", dtype, tuple(DTYPE_BYTES), layer=self.name)
        size = DTYPE_BYTES[dtype]
        total: Dim = self.total * size
        for row in self.rows():  # tensors stored in a dtype of their own (uint8 blocks)
            if row.param.dtype and not row.tied_to:
                total += row.param.nbytes(size) - row.count * size
        return total

    def layer(self, name: str) -> Layer:
        """The layer at ``name`` (``lstm``, ``transformer.h.{0..11}.attn``); a child of a
        run shown as one row finds its run's layer (``layers.5.mlp`` finds
        ``layers.{3..60}.mlp``)."""
        expect(name, str, function="Model.layer", argument="name", what="a name (str)")
        for layer in self.layers:
            if layer.name == name:
                return layer
        wanted = split_name(name)
        for layer in self.layers:
            parts = split_name(layer.name)
            if len(parts) == len(wanted) and all(
                a == b or (b.isdigit() and a.startswith("{") and part_holds(a, int(b)))
                for a, b in zip(parts, wanted, strict=True)
            ):
                return layer
        names = ", ".join(layer.name for layer in self.layers[:8])
        more = ", ..." if len(self.layers) > 8 else ""
        raise UnknownLayerError(
            f"no layer {shown(name)}; its layers are {names}{more}",
            layer=self.name,
            field="name",
            value=name,
            rule="a layer's name is one of the model's",
        )

    # -- symbols ------------------------------------------------------------------------
    @property
    def symbolic(self) -> bool:
        return isinstance(self.total, Expr)

    def evaluate(self, **values: Any) -> Model:
        """Rebuild the model with named sizes replaced by values: ``evaluate(H=512)``."""
        numbers: dict[str, Dim] = {
            name: as_size(value, owner=f"{self.name}.evaluate", field=name)
            for name, value in values.items()
        }
        if self.factory is None:
            return replace(
                self,
                root=_substitute(self.root, numbers),
                sizes={k: _subs(v, numbers) for k, v in self.sizes.items()},
                make_template=lambda: self.template,
            )
        arguments = {
            k: v.subs(numbers) if isinstance(v, Expr) else v for k, v in self.arguments.items()
        }
        return self.factory(**arguments)

    def input_shapes(self, batch: Dim, seq_len: Dim) -> tuple[tuple[Dim, ...], ...]:
        """The model's input shapes for a batch and a sequence length (ints or symbols)."""
        values: dict[str, Dim] = {**self.sizes, "B": batch, "T": seq_len}
        return tuple(
            tuple(values[d] if isinstance(d, str) else d for d in shape)
            for shape in self.input_layout
        )

    def describe_sizes(self) -> str:
        """``V=65, H=512, L=2``; a size left as its own symbol is named alone (``H``)."""
        return ", ".join(
            k if dim_str(v) == k else f"{k}={dim_str(v)}" for k, v in self.sizes.items()
        )

    # -- how it prints: the summary table, in plain text (no rich: import stays light) -----
    def summary(self) -> str:
        """The model as ``shapecalc COMMAND`` lists it, in plain text: one line per tensor
        (PyTorch's name, shape, count, formula) and the total with its formula."""
        header = ("tensor", "shape", "parameters", "formula")
        lines: list[tuple[str, ...]] = []
        for row in self.rows():
            count = "shared" if row.tied_to else _count_text(row.count)
            formula = (
                f"tied to {row.tied_to}" if row.tied_to else _formula_text(row.formula, row.count)
            )
            lines.append((row.name or row.param.name, shape_str(row.shape), count, formula))
        total = (
            "Total",
            "",
            _count_text(self.total),
            _formula_text(self.total_formula, self.total),
        )
        widths = [max(len(line[i]) for line in (header, *lines, total)) for i in range(4)]

        def fmt(line: tuple[str, ...]) -> str:
            cells = [line[0].ljust(widths[0]), line[1].ljust(widths[1])]
            cells += [line[2].rjust(widths[2]), line[3]]
            return "  ".join(cells).rstrip()

        sizes = self.describe_sizes()
        title = f"{self.name}" + (f" ({sizes})" if sizes else "")
        rule = "-" * len(fmt(tuple("-" * w for w in widths)))
        return "\n".join([title, fmt(header), rule, *map(fmt, lines), rule, fmt(total)])

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return self.summary()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """IPython and Jupyter: the summary table."""
        printer.text(f"Model({self.name!r})" if cycle else self.summary())


def _count_text(value: Dim) -> str:
    return f"{value:,}" if isinstance(value, int) else dim_str(value)


def _formula_text(formula: Dim, count: Dim) -> str:
    """The formula, unless it says no more than the count (a model without sizes)."""
    text = dim_str(formula)
    return "" if text == _count_text(count) or text == dim_str(count) else text


def _subs(value: Dim, values: Mapping[str, Dim]) -> Dim:
    return value.subs(values) if isinstance(value, Expr) else value


def _substitute(node: Node, values: Mapping[str, Dim]) -> Node:
    """The same tree with named sizes replaced (each spec checks its rules again)."""
    if isinstance(node, Leaf):
        return replace(node, spec=node.spec.substitute(dict(values)))
    children = tuple(
        replace(e, node=_substitute(e.node, values), count=_subs(e.count, values))
        if isinstance(e, Repeat)
        else replace(e, node=_substitute(e.node, values))
        for e in node.children
    )
    return replace(node, children=children)


def layer_model(spec: LayerSpec) -> Model:
    """One layer as a model: rows named as ``named_parameters()`` names them on the bare
    module (``weight_ih_l0``), formulas in the kind's usual letters (``I·O + O`` for a
    Linear), and :meth:`Model.evaluate` rebuilding the layer.

        >>> from shapecalc.layers.linear import Linear
        >>> m = layer_model(Linear(512, 65))
        >>> (m.total, str(m.total_formula), m.describe_sizes())
        (33345, 'I·O + O', 'I=512, O=65')
    """
    expect(
        spec,
        LayerSpec,
        function="layer_model",
        argument="spec",
        what="a layer spec (shapecalc.Linear(4, 3), shapecalc.LSTM(...))",
    )
    cls = type(spec)
    arguments = spec.arguments()
    letters = {
        field: letter
        for field, letter in {**cls.formula_args, **cls.letters}.items()
        if isinstance(letter, str) and field in arguments
    }
    given = {
        field: arguments[field]
        for field in letters
        if arguments[field] is not None and arguments[field] != 0
    }
    sizes = {letters[field]: value for field, value in given.items()}

    def template() -> Model:
        symbolic = {
            field: value if isinstance(value, Expr) else symbol(letters[field])
            for field, value in given.items()
        }
        try:
            twin = cls(**{**arguments, **symbolic})
            if [p.name for p in twin.params()] != [p.name for p in spec.params()]:
                raise ValueError("different structure")
        except (ShapecalcError, ValueError):
            return model  # some rules need numbers (groups dividing channels): no formulas
        return Model(name=model.name, root=Leaf(twin, cls.summary), sizes=sizes)

    def rebuild(**values: Any) -> Model:
        return layer_model(cls(**values))

    rebuild.__name__ = "layer_model"

    model = Model(
        name=str(spec),
        root=Leaf(spec, cls.summary),
        sizes=sizes,
        make_template=template,
        factory=rebuild,
        arguments=arguments,
        notes=tuple(spec.deferred_rules()),
        kind="layer_model",
    )
    return model
