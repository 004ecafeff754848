"""The same network as PyTorch, Keras and ONNX store it: names, shapes, gate order, counts,
and where each tensor comes from (the map that ports weights from one to the other).

The engine's layer specs follow PyTorch. This module turns a model's tensors into another
framework's convention, and says for every tensor which PyTorch tensor(s) it is made of
and how (:class:`Piece`: transposed, gate blocks reordered, placed at an index, summed):

- **Keras** (Keras 3): a weight matrix is stored (in, out): ``kernel`` (d_in, G·H) and
  ``recurrent_kernel`` (H, G·H) of a recurrent cell, ``kernel`` (in, out) of ``Dense``,
  (kh, kw, in/groups, out) of ``Conv2D``. A recurrent layer keeps **one** bias per gate
  block (LSTM: 4·H, SimpleRNN: H), the sum of PyTorch's two, except the GRU with
  ``reset_after=True`` (the default), whose bias is (2, 3·H): PyTorch's two biases. A
  stacked or bidirectional PyTorch layer is one Keras layer per layer (``lstm``,
  ``lstm_1``; ``bidirectional`` wrapping ``forward_lstm`` and ``backward_lstm``).
  ``BatchNormalization`` counts its ``moving_mean`` and ``moving_variance`` among its
  (non-trainable) weights.
- **ONNX**, as ``torch.onnx.export`` writes it (both exporters: the default ``dynamo=True``
  and the TorchScript one, ``dynamo=False``). A recurrent layer is one ONNX operator per
  layer whose inputs are ``W`` (D, G·H, d_in), ``R`` (D, G·H, H) and ``B`` (D, 2·G·H) (the
  input-side biases, then the hidden-side ones), gate blocks reordered (LSTM i, o, f, c;
  GRU z, r, h with ``linear_before_reset=1``). The exporters name these initializers by a
  counter (``onnx::LSTM_225``, ``val_41``), which changes with the graph, so they are shown
  as ``lstm.l0[W]``. The dynamo exporter does not fuse ``nn.RNN``: it unrolls the time steps
  into MatMuls with ``weight_ih`` and ``weight_hh`` transposed, keeps the biases under
  PyTorch's names and folds the first step into a constant that depends on the batch. A
  ``Linear`` fed a 2-D input is a ``Gemm`` that keeps ``weight`` (out, in) and its name; fed
  more dimensions (a language model's head) it is a ``MatMul`` whose initializer is the
  weight transposed (in, out), named by a counter: shown as ``head.weight.T``. Biases,
  embeddings, convolutions and norms keep PyTorch's names and shapes; batch-norm running
  statistics are initializers like any weight. (In eval mode both exporters fold a batch
  norm that directly follows a convolution into the convolution's weight and bias.)

Example:

    >>> import shapecalc
    >>> keras = convert(shapecalc.lstm_lm(vocab=65, hidden=512, layers=2), "keras")
    >>> for _, p in keras.tensors[1:4]:
    ...     print(p.name, p.shape)
    lstm/lstm_cell/kernel (512, 2048)
    lstm/lstm_cell/recurrent_kernel (512, 2048)
    lstm/lstm_cell/bias (2048,)
    >>> keras.total, keras.differences[0].reason
    (4265025, 'Keras keeps one bias per gate block (4·H) where PyTorch keeps two: 4,096 fewer')
    >>> print(describe_pieces(keras.pieces[3]))
    lstm.bias_ih_l0 + lstm.bias_hh_l0
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from shapecalc.core.choices import CONVENTIONS
from shapecalc.core.dims import Dim, count_str, dim_str
from shapecalc.core.errors import (
    InvalidArgumentError,
    ShapecalcError,
    echo,
    field_error,
    require_one_of,
)
from shapecalc.core.model import Model, full_name
from shapecalc.core.spec import LayerSpec, Param, expand
from shapecalc.layers.recurrent import layer_range

if TYPE_CHECKING:
    from shapecalc.analysis.cost import Cost

__all__ = [
    "CONVENTIONS",
    "FRAMEWORK_NAMES",
    "GATE_ORDER",
    "Backend",
    "Converted",
    "Difference",
    "Op",
    "Piece",
    "backends",
    "convert",
    "convert_with_template",
    "describe_pieces",
    "gate_order",
    "gate_permutation",
    "input_ranks",
    "layer_tensors",
    "params",
    "rows",
]

#: each convention's framework, as people write it
FRAMEWORK_NAMES = {"pytorch": "PyTorch", "keras": "Keras", "onnx": "ONNX"}

#: (convention, recurrent kind) -> how the gate blocks are stacked
GATE_ORDER: dict[tuple[str, str], str] = {
    ("pytorch", "LSTM"): "i, f, g, o (input, forget, cell candidate, output)",
    ("keras", "LSTM"): "i, f, c, o (input, forget, cell candidate, output)",
    ("onnx", "LSTM"): "i, o, f, c (input, output, forget, cell candidate)",
    ("pytorch", "GRU"): "r, z, n (reset, update, new)",
    ("keras", "GRU"): "z, r, h (update, reset, candidate)",
    ("onnx", "GRU"): "z, r, h (update, reset, hidden candidate)",
    ("pytorch", "RNN"): "one block, no gates",
    ("keras", "RNN"): "one block, no gates",
    ("onnx", "RNN"): "one block, no gates",
}
#: one gate under each framework's letter (PyTorch's cell candidate g is Keras' c, ...)
_SAME_GATE = {"g": "c", "n": "h"}
_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
#: what both ONNX exporters call an initializer whose name is a counter
_COUNTER = {"legacy": "onnx::{op}_<n>", "dynamo": "val_<n>"}
_KEPT = "the same name in both exporters"


#: an index into a tensor: ints pick along an axis, (start, stop) pairs slice it
Index = tuple["int | tuple[Dim, Dim]", ...]


@dataclass(frozen=True)
class Op:
    """One step from a source tensor towards its place in the target.

    ``kind`` is ``"gates"`` (the blocks along the first axis taken in the order
    ``value``: block i of the result is block ``value[i]`` of the input), ``"permute"``
    (the axes in the order ``value``; a matrix's transpose is ``(1, 0)``) or ``"take"``
    (the part at the :data:`Index` ``value``)."""

    kind: str
    value: tuple[Any, ...]
    #: how people read it: "transposed", "gate blocks r, z, n -> z, r, n", "[1]"
    text: str

    def inverse(self) -> Op:
        """The step that undoes this one (a take has none)."""
        if self.kind == "gates":
            back = tuple(self.value.index(i) for i in range(len(self.value)))
            return Op("gates", back, _reverse_arrow(self.text))
        if self.kind == "permute":
            back = tuple(self.value.index(i) for i in range(len(self.value)))
            return Op("permute", back, _permute_text(back))
        raise ValueError("a take has no inverse")


@dataclass(frozen=True)
class Piece:
    """A source tensor, the steps that shape it, and where it goes in the target
    (``at``: the whole target when empty). Pieces at the same place are summed."""

    source: str
    ops: tuple[Op, ...] = ()
    at: Index = ()


def _reverse_arrow(text: str) -> str:
    head, _, tail = text.partition(": ")
    before, _, after = tail.partition(" -> ")
    return f"{head}: {after} -> {before}"


def _permute_text(axes: tuple[int, ...]) -> str:
    return "transposed" if axes == (1, 0) else f"axes permuted to {axes}"


def index_str(at: Index) -> str:
    """``[0, 2048:4096]``: an index as numpy writes it."""
    return "[" + ", ".join(_part_str(a) for a in at) + "]"


def _part_str(part: int | tuple[Dim, Dim]) -> str:
    if isinstance(part, tuple):
        start, stop = part
        return f"{'' if start == 0 else dim_str(start)}:{dim_str(stop)}".replace(" ", "")
    return str(part)


def _piece_str(piece: Piece) -> str:
    text = piece.source
    for op in piece.ops:
        text += index_str(op.value) if op.kind == "take" else f" ({op.text})"
    return text


def describe_pieces(pieces: tuple[Piece, ...], *, short: bool = False) -> str:
    """How a target tensor is made, in one line: ``lstm.bias_ih_l0 + lstm.bias_hh_l0``,
    ``[0] = lstm.weight_ih_l0 (gate blocks ...)``; ``zeros`` when nothing goes in.
    ``short``: the sources' last names, ``.T`` for a transpose, the places left out and
    the gate order said once (``bias_ih_l0, bias_hh_l0 (gates i, o, f, c)``)."""
    if not pieces:
        return "zeros"
    places: dict[Index, list[Piece]] = {}
    for piece in pieces:
        places.setdefault(piece.at, []).append(piece)
    if short:
        text = ", ".join(" + ".join(_short(p) for p in group) for group in places.values())
        orders = {op.text.split(" -> ")[-1] for p in pieces for op in p.ops if op.kind == "gates"}
        return text + "".join(f" (gates {order})" for order in sorted(orders))
    parts = []
    for at, group in places.items():
        summed = " + ".join(_piece_str(p) for p in group)
        parts.append(summed if not at else f"{index_str(at)} = {summed}")
    return "; ".join(parts)


def _short(piece: Piece) -> str:
    last = piece.source.rsplit(".", 1)[-1]
    text = piece.source if last in ("weight", "bias") else last  # which layer's weight
    for op in piece.ops:
        if op.kind == "permute":
            text += ".T" if op.value == (1, 0) else f" ({op.text})"
        elif op.kind == "take":
            text += index_str(op.value)
    return text


def gate_permutation(kind: str, source: str, target: str) -> tuple[int, ...]:
    """Where ``target``'s gate blocks sit in ``source``'s: block i of the target is block
    ``result[i]`` of the source (LSTM, PyTorch to ONNX: (0, 3, 1, 2))."""

    def letters(convention: str) -> list[str]:
        order = gate_order(convention, kind).split(" (")[0]
        return [_SAME_GATE.get(g, g) for g in order.split(", ")]

    if _GATES[kind.removesuffix("Cell")] == 1:
        return (0,)
    theirs, ours = letters(source), letters(target)
    return tuple(theirs.index(g) for g in ours)


def _gates(kind: str, convention: str) -> tuple[Op, ...]:
    """The reorder step from PyTorch's gate blocks to ``convention``'s (none if equal)."""
    order = gate_permutation(kind, "pytorch", convention)
    if order == tuple(range(len(order))):
        return ()
    before = gate_order("pytorch", kind).split(" (")[0]
    after = gate_order(convention, kind).split(" (")[0]
    return (Op("gates", order, f"gate blocks: {before} -> {after}"),)


_T = Op("permute", (1, 0), "transposed")


@dataclass(frozen=True)
class Difference:
    """Why a layer's count differs from PyTorch's: ``delta`` (the convention's count
    minus PyTorch's) and the reason in one line."""

    layer: str
    delta: Dim
    reason: str


@dataclass(frozen=True)
class Converted:
    """A model's tensors in one framework's convention."""

    convention: str
    #: (the model's layer name, the tensor with the framework's full name)
    tensors: tuple[tuple[str, Param], ...]
    differences: tuple[Difference, ...]
    #: recurrent layer -> its gate order in this convention
    gate_orders: dict[str, str]
    #: full name of a tied tensor -> the tensor it shares
    ties: dict[str, str]
    #: for each tensor, the PyTorch tensors it is made of and how (parallel to ``tensors``)
    pieces: tuple[tuple[Piece, ...], ...] = ()
    #: for each tensor, what the framework's files call it (ONNX: each exporter's name)
    stored_as: tuple[str, ...] = ()

    @property
    def total(self) -> Dim:
        """Numbers stored, each shared tensor once (Keras: what ``count_params`` says)."""
        return sum((p.count for _, p in self.tensors if p.name not in self.ties), start=0)

    def twins(self, template: Converted | None) -> list[Param | None]:
        """Each tensor's twin in the symbolic ``template`` (whose counts are the formulas),
        or None throughout when the two do not line up name for name."""
        theirs = [p for _, p in template.tensors] if template else []
        if [p.name for p in theirs] != [p.name for _, p in self.tensors]:
            return [None] * len(self.tensors)
        return list(theirs)

    def params(self) -> list[Param]:
        """Every tensor with its framework name, shared ones once, blocks expanded."""
        return list(expand(p for _, p in self.tensors if p.name not in self.ties))

    def sources(self, i: int) -> list[str]:
        """The PyTorch tensors that tensor ``i`` is made of, in order, each once."""
        return list(dict.fromkeys(p.source for p in self.pieces[i]))


def _fail(convention: str, spec: LayerSpec, field: str, value: Any, rule: str) -> NoReturn:
    """``LSTM(...) in the keras convention: <rule>; use the pytorch convention``."""
    where = f"{spec} in the {convention} convention"
    raise field_error(field, value, rule, f"{rule}; use the pytorch convention", layer=where)


def gate_order(convention: str, kind: str) -> str:
    """The gate order of a recurrent kind (LSTM, GRU, RNN or a cell) in a convention."""
    return GATE_ORDER[(convention, kind.removesuffix("Cell"))]


#: a converted tensor, the pieces it is made of, and its name in the framework's files
Mapped = tuple[Param, tuple[Piece, ...], str]


# -- one layer ---------------------------------------------------------------------------------
#: a layer's converted tensors, and its count differences from PyTorch with their reasons
Result = tuple[list[Mapped], list[tuple[Dim, str]]]


@dataclass(frozen=True)
class _To:
    """Where one layer goes: the convention, its name there (``prefix``, empty for the
    layer's default), its PyTorch name (``source``), Keras' GRU ``reset_after``, the rank
    of its input, and the Keras layer's default name."""

    convention: str
    prefix: str
    source: str
    reset_after: bool
    rank: int
    keras_name: str = ""


#: how one kind of layer is converted to one convention
Converter = Callable[[Any, _To], Result]


@dataclass(frozen=True)
class Backend:
    """How one layer class is stored by Keras and by ONNX (None: not supported yet), and
    the Keras layer's default name (``dense``; empty for a recurrent layer, which names
    one Keras layer per PyTorch layer itself: ``lstm``, ``lstm_1``)."""

    keras_name: str
    keras: Converter | None
    onnx: Converter | None


@dataclass(frozen=True)
class _Recurrent:
    """What a recurrent kind's Keras and ONNX layers are called and how they differ."""

    #: Keras' layer and cell names (``lstm``, ``lstm_cell``)
    keras: tuple[str, str]
    #: Keras keeps PyTorch's two biases when ``reset_after`` (the GRU only)
    two_biases: bool = False
    #: the ONNX operator's attributes beyond the defaults
    onnx_attributes: str = ""
    #: the dynamo exporter unrolls the time steps (nn.RNN) instead of one operator
    unrolled: bool = False


def _recurrent(way: _Recurrent) -> Converter:
    def convert(spec: Any, to: _To) -> Result:
        return _recurrent_layer(spec, way, to)

    return convert


def _recurrent_layer(spec: Any, way: _Recurrent, to: _To) -> Result:
    kind, convention = spec.kind, to.convention
    prefix, source = to.prefix or kind.lower(), to.source or kind.lower()
    reset_after = to.reset_after and way.two_biases
    g, h, d = _GATES[kind], spec.hidden_size, spec.num_directions
    if getattr(spec, "projects", False):
        _fail(
            convention,
            spec,
            "proj_size",
            spec.proj_size,
            f"{'Keras' if convention == 'keras' else 'ONNX'} LSTM has no projection (proj_size)",
        )
    out: list[Mapped] = []
    deltas: list[tuple[Dim, str]] = []
    blocks = spec.layer_blocks()
    if convention == "keras" and blocks[0][0].startswith("{0.."):
        # Keras names the first layer "lstm", the others "lstm_1", ...: layer 0 apart
        index, d_in, copies = blocks[0]
        blocks = [("0", d_in, 1), ("{1.." + index[4:], d_in, copies - 1), *blocks[1:]]
    for index, d_in, copies in blocks:
        numbers = layer_range(index)
        shape = _Layer(kind, way, index, g, h, d, d_in, spec.bias, copies, source)
        layer = (
            _onnx_layer(shape, prefix) if convention == "onnx" else _keras_layer(shape, reset_after)
        )
        out += [
            (dataclasses.replace(p, layers=numbers) if numbers else p, pieces, stored)
            for p, pieces, stored in layer
        ]
    if convention == "keras" and spec.bias and not reset_after:
        fewer = g * h * spec.num_layers * d
        what = {4: "4·H", 3: "3·H", 1: "H"}[g]
        extra = " (reset_after=False)" if way.two_biases else ""
        deltas.append(
            (
                -fewer,
                f"Keras keeps one bias per gate block ({what}){extra} where PyTorch keeps two: "
                f"{count_str(fewer)} fewer",
            )
        )
    return out, deltas


@dataclass(frozen=True)
class _Layer:
    """One layer (or a block of identical layers) of a recurrent spec."""

    kind: str
    way: _Recurrent
    index: str
    g: int
    h: Dim
    d: int
    d_in: Dim
    bias: bool
    copies: Dim
    #: the PyTorch module's name (``lstm``), whose tensors the pieces name
    source: str

    def tensor(self, name: str, direction: int) -> str:
        """``lstm.weight_ih_l0_reverse``: a PyTorch tensor of this layer."""
        suffix = "_reverse" if direction else ""
        return full_name(self.source, f"{name}_l{self.index}{suffix}")


def _onnx_layer(layer: _Layer, prefix: str) -> list[Mapped]:
    """W, R and B of one layer: all directions in one operator."""
    kind, g, h, d = layer.kind, layer.g, layer.h, layer.d
    order = gate_order("onnx", kind).split(" (")[0]
    stack = f"{d} direction{'s' if d == 2 else ''}"
    stack += f" × {g} gate blocks ({order})" if g > 1 else ""
    gates = _gates(kind, "onnx")
    where = f"{prefix}.l{layer.index}"
    unrolled = layer.way.unrolled

    def stored(slot: str) -> str:
        legacy = _COUNTER["legacy"].format(op=kind)
        text = f"input {slot} of the {kind} operator: legacy exporter {legacy}"
        if not unrolled:
            return f"{text}, dynamo exporter {_COUNTER['dynamo']}"
        if slot == "B":
            return f"{text}; the dynamo exporter unrolls nn.RNN and keeps each bias's name"
        return (
            f"{text}; the dynamo exporter unrolls nn.RNN and stores each direction's matrix "
            f"transposed ({_COUNTER['dynamo']})"
        )

    def each(name: str, at: Any = ()) -> tuple[Piece, ...]:
        return tuple(Piece(layer.tensor(name, i), gates, (i, *at)) for i in range(d))

    extra = layer.way.onnx_attributes
    out: list[Mapped] = [
        (
            Param(
                f"{where}[W]",
                (d, g * h, layer.d_in),
                f"input weights W: {stack}{extra}",
                repeat=layer.copies,
            ),
            each("weight_ih"),
            stored("W"),
        ),
        (
            Param(
                f"{where}[R]", (d, g * h, h), f"recurrent weights R: {stack}", repeat=layer.copies
            ),
            each("weight_hh"),
            stored("R"),
        ),
    ]
    if layer.bias:
        half = g * h
        out.append(
            (
                Param(
                    f"{where}[B]",
                    (d, 2 * g * h),
                    f"biases B: input side Wb then recurrent side Rb, {stack}",
                    repeat=layer.copies,
                ),
                each("bias_ih", ((0, half),)) + each("bias_hh", ((half, 2 * half),)),
                stored("B"),
            )
        )
    return out


def _keras_layer(layer: _Layer, reset_after: bool) -> list[Mapped]:
    """kernel, recurrent_kernel and bias of one layer, per direction (a Bidirectional
    wrapper holds a forward and a backward layer)."""
    kind, g, h, d, index = layer.kind, layer.g, layer.h, layer.d, layer.index
    base, cell = layer.way.keras
    order = gate_order("keras", kind).split(" (")[0]
    gates = _gates(kind, "keras")
    number = "" if index == "0" else f"_{index}"
    owners = (
        [f"bidirectional{number}/{side}_{base}{number}" for side in ("forward", "backward")]
        if d == 2
        else [f"{base}{number}"]
    )
    out: list[Mapped] = []
    for direction, owner in enumerate(owners):
        where = f"{owner}/{cell}"
        side = f", gate blocks {order} side by side" if g > 1 else ""
        ih, hh = layer.tensor("weight_ih", direction), layer.tensor("weight_hh", direction)
        out += [
            (
                Param(
                    f"{where}/kernel",
                    (layer.d_in, g * h),
                    f"input kernel{side}, stored (in, out)",
                    repeat=layer.copies,
                ),
                (Piece(ih, (*gates, _T)),),
                f"{where}/kernel",
            ),
            (
                Param(
                    f"{where}/recurrent_kernel",
                    (h, g * h),
                    f"recurrent kernel{side}, stored (in, out)",
                    repeat=layer.copies,
                ),
                (Piece(hh, (*gates, _T)),),
                f"{where}/recurrent_kernel",
            ),
        ]
        if not layer.bias:
            continue
        b_ih, b_hh = layer.tensor("bias_ih", direction), layer.tensor("bias_hh", direction)
        if reset_after:
            role = "input-side and recurrent-side biases, as PyTorch's two (reset_after=True)"
            param = Param(f"{where}/bias", (2, g * h), role, repeat=layer.copies)
            pieces = (Piece(b_ih, gates, (0,)), Piece(b_hh, gates, (1,)))
        else:
            role = f"one bias per gate block ({order})" if g > 1 else "one bias"
            param = Param(f"{where}/bias", (g * h,), role, repeat=layer.copies)
            pieces = (Piece(b_ih, gates), Piece(b_hh, gates))
        out.append((param, pieces, f"{where}/bias"))
    return out


def _norm(spec: Any, to: _To) -> Result:
    convention, source = to.convention, to.source
    prefix = to.prefix or (to.keras_name if convention == "keras" else "")
    c = spec.num_features
    affine, shift = spec.affine, spec.affine and spec.bias
    if convention == "onnx":
        stats = [p for p in spec.buffers() if p.name != "num_batches_tracked"]
        deltas = (
            [
                (
                    2 * c,
                    "ONNX stores the running mean and variance as initializers: "
                    f"{count_str(2 * c)} more",
                )
            ]
            if stats
            else []
        )
        return [_kept(prefix, source, p) for p in [*spec.params(), *stats]], deltas
    names = [("weight", "gamma", "scale gamma per channel")] if affine else []
    names += [("bias", "beta", "shift beta per channel")] if shift else []
    out: list[Mapped] = [
        (
            Param(f"{prefix}/{keras}", (c,), role),
            (Piece(full_name(source, ours)),),
            f"{prefix}/{keras}",
        )
        for ours, keras, role in names
    ]
    for ours, keras, what in (
        ("running_mean", "moving_mean", "running mean"),
        ("running_var", "moving_variance", "running variance"),
    ):
        role = f"{what} (a non-trainable weight)"
        param = Param(f"{prefix}/{keras}", (c,), role, trainable=False)
        out.append((param, (Piece(full_name(source, ours)),), f"{prefix}/{keras}"))
    return out, [
        (
            2 * c,
            "Keras counts moving_mean and moving_variance among its weights; "
            f"PyTorch keeps them as buffers: {count_str(2 * c)} more",
        )
    ]


def _named(prefix: str, p: Param) -> Param:
    return dataclasses.replace(p, name=full_name(prefix, p.name))


def _kept(prefix: str, source: str, p: Param, stored: str = _KEPT) -> Mapped:
    """A tensor under PyTorch's own name and shape."""
    return _named(prefix, p), (Piece(full_name(source, p.name)),), stored


def layer_tensors(
    spec: LayerSpec,
    convention: str,
    prefix: str = "",
    *,
    reset_after: bool = True,
    source: str | None = None,
    rank: int = 2,
) -> tuple[list[Param], list[tuple[Dim, str]]]:
    """One layer's tensors in ``convention`` (names prefixed by ``prefix``, the PyTorch
    attribute or the Keras layer name) and the count differences from PyTorch's, each
    with its reason. ``source`` is the layer's PyTorch name (``prefix`` when None);
    ``rank`` the number of dimensions of its input (ONNX: a Linear fed more than 2 is a
    MatMul that stores its weight transposed)."""
    mapped, deltas = _layer(spec, convention, prefix, source, reset_after, rank)
    return [p for p, _, _ in mapped], deltas


def _layer(
    spec: LayerSpec,
    convention: str,
    prefix: str,
    source: str | None,
    reset_after: bool,
    rank: int,
) -> Result:
    _check(convention)
    source = prefix if source is None else source
    if convention == "pytorch" or spec.stateless():
        return [_kept(prefix, source, p, full_name(prefix, p.name)) for p in spec.params()], []
    backend = backends().get(type(spec))
    convert: Converter | None = None
    if backend is not None:
        convert = backend.keras if convention == "keras" else backend.onnx
    if backend is None or convert is None:
        framework = FRAMEWORK_NAMES[convention]
        rule = f"no {framework} convention for {spec.kind} yet"
        _fail(convention, spec, "convention", convention, rule)
    return convert(spec, _To(convention, prefix, source, reset_after, rank, backend.keras_name))


def _keras(to: _To, keras_name: str, ours: Param, shape: Any, role: str, ops: Any = ()) -> Mapped:
    """A Keras weight ``<layer>/<keras_name>`` made from our tensor ``ours``."""
    full = f"{to.prefix or to.keras_name}/{keras_name}"
    return Param(full, shape, role), (Piece(full_name(to.source, ours.name), ops),), full


def _keras_dense(spec: LayerSpec, to: _To) -> Result:
    weight, *rest = spec.params()
    kernel = _keras(to, "kernel", weight, weight.shape[::-1], "kernel, stored (in, out)", (_T,))
    return [kernel, *(_keras(to, "bias", p, p.shape, p.role) for p in rest)], []


def _keras_embedding(spec: LayerSpec, to: _To) -> Result:
    table = next(iter(spec.params()))
    return [_keras(to, "embeddings", table, table.shape, "lookup table, one row per token")], []


def _keras_conv(spec: LayerSpec, to: _To) -> Result:
    weight, *rest = spec.params()  # (out, in/groups, *kernel)
    axes = (*range(2, len(weight.shape)), 1, 0)
    shape = tuple(weight.shape[a] for a in axes)
    permute = Op("permute", axes, _permute_text(axes))
    kernel = _keras(
        to, "kernel", weight, shape, "kernel, stored (*kernel, in/groups, out)", (permute,)
    )
    return [kernel, *(_keras(to, "bias", p, p.shape, p.role) for p in rest)], []


def _keras_layer_norm(spec: LayerSpec, to: _To) -> Result:
    """gamma and beta of normalized_shape."""
    names = {"weight": "gamma", "bias": "beta"}
    return [_keras(to, names[p.name], p, p.shape, p.role) for p in spec.params()], []


def _onnx_kept(spec: LayerSpec, to: _To) -> Result:
    """Exported under PyTorch's own names and shapes."""
    return [_kept(to.prefix, to.source, p) for p in spec.params()], []


def _onnx_linear(spec: Any, to: _To) -> Result:
    """A Gemm fed a 2-D input; a MatMul, its weight transposed, fed more dimensions."""
    prefix, source = to.prefix, to.source
    params = list(spec.params())
    if to.rank > 2:
        weight, *rest = params
        transposed = Param(
            f"{full_name(prefix, 'weight')}.T",
            weight.shape[::-1],
            f"{weight.role}, transposed: the initializer of a MatMul, stored (in, out)",
        )
        matmul = "a MatMul initializer: legacy exporter onnx::MatMul_<n>, dynamo val_<n>"
        mapped: list[Mapped] = [(transposed, (Piece(full_name(source, "weight"), (_T,)),), matmul)]
        return mapped + [_kept(prefix, source, p) for p in rest], []
    if not spec.bias:
        legacy = (
            "a Gemm's input under its own name with the default (dynamo) exporter; the "
            "legacy exporter (dynamo=False) writes it transposed as a MatMul initializer, "
            "onnx::MatMul_<n>"
        )
        return [_kept(prefix, source, p, legacy) for p in params], []
    return _onnx_kept(spec, to)


@functools.cache
def backends() -> dict[type[LayerSpec], Backend]:
    """How each layer class is stored in Keras and ONNX, by its class (the layer families
    are imported on first use). A new layer kind adds one entry here."""
    from shapecalc.layers.conv import Conv1d, Conv2d, Conv3d
    from shapecalc.layers.embedding import Embedding
    from shapecalc.layers.linear import Linear
    from shapecalc.layers.norm import BatchNorm1d, BatchNorm2d, BatchNorm3d, LayerNorm
    from shapecalc.layers.recurrent import GRU, LSTM, RNN

    lstm = _recurrent(_Recurrent(("lstm", "lstm_cell")))
    gru = _Recurrent(
        ("gru", "gru_cell"), two_biases=True, onnx_attributes=", linear_before_reset=1"
    )
    rnn = _recurrent(_Recurrent(("simple_rnn", "simple_rnn_cell"), unrolled=True))
    found: dict[type[LayerSpec], Backend] = {
        LSTM: Backend("", lstm, lstm),
        GRU: Backend("", _recurrent(gru), _recurrent(gru)),
        RNN: Backend("", rnn, rnn),
        Linear: Backend("dense", _keras_dense, _onnx_linear),
        Embedding: Backend("embedding", _keras_embedding, _onnx_kept),
        LayerNorm: Backend("layer_normalization", _keras_layer_norm, _onnx_kept),
    }
    found |= {
        conv: Backend(conv.kind.lower(), _keras_conv, _onnx_kept)
        for conv in (Conv1d, Conv2d, Conv3d)
    }
    found |= {
        norm: Backend("batch_normalization", _norm, _norm)
        for norm in (BatchNorm1d, BatchNorm2d, BatchNorm3d)
    }
    return found


def _check(convention: str) -> None:
    require_one_of("convention", convention, CONVENTIONS)


def input_ranks(model: Model, cost: Cost | None = None) -> dict[str, int]:
    """How many dimensions each layer's (first) input has, from the model's own input
    layout: read from ``cost`` when given (an analysis of ``model`` from that layout, at
    any sizes), else analysed here; empty when the model has no layout or its shapes
    cannot be followed."""
    if not getattr(model, "input_layout", None):
        return {}
    if cost is None:
        from shapecalc.analysis.cost import analyze

        try:
            cost = analyze(model, model.input_shapes(2, 3))
        except (ShapecalcError, ValueError, TypeError):
            return {}
    return {layer.name: len(layer.inputs[0]) for layer in cost.layers if layer.inputs}


# -- a model ---------------------------------------------------------------------------------
def convert(
    model: Model,
    convention: str,
    *,
    reset_after: bool = True,
    ranks: Mapping[str, int] | None = None,
) -> Converted:
    """``model``'s tensors as ``convention`` names and stores them, with every count
    difference from PyTorch and its reason, and the PyTorch tensors each is made of.
    ``ranks``: each layer's input rank (:func:`input_ranks`), which ONNX needs; worked
    out from the model when not given."""
    _check(convention)
    mapped: list[tuple[str, Mapped]] = []
    differences: list[Difference] = []
    orders: dict[str, str] = {}
    keras_names = _keras_layer_names(model) if convention == "keras" else {}
    if ranks is None:
        ranks = input_ranks(model) if convention == "onnx" else {}
    renamed: dict[str, str] = {}
    for layer in model.layers:
        prefix = keras_names.get(layer.name, layer.name)
        tensors, deltas = _layer(
            layer.spec,
            convention,
            prefix,
            layer.name,
            reset_after,
            ranks.get(layer.name, 2),
        )
        if layer.copies != 1:  # a leaf of a block repeated many times, listed once
            if convention == "keras" and tensors:
                raise InvalidArgumentError(
                    f"{layer.name} is {dim_str(layer.copies)} copies of a repeated block; Keras "
                    "names every copy as a layer of its own, which this convention does not list",
                    layer=model.name,
                    field="convention",
                    value=convention,
                    rule="Keras' names need every layer listed",
                )
            tensors = [
                (dataclasses.replace(p, repeat=layer.copies * p.repeat), pieces, stored)
                for p, pieces, stored in tensors
            ]
            deltas = [(layer.copies * delta, reason) for delta, reason in deltas]
        for converted, pieces, stored in tensors:
            mapped.append((layer.name, (converted, pieces, stored)))
            if len(pieces) == 1:
                renamed[pieces[0].source] = converted.name
        differences += [Difference(layer.name, delta, reason) for delta, reason in deltas]
        if layer.spec.kind.removesuffix("Cell") in _GATES:
            orders[layer.name] = gate_order(convention, layer.spec.kind)
    names = [p.name for _, (p, _, _) in mapped]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InvalidArgumentError(
            f"two layers would both be named {echo(repeated[0])} in the "
            f"{convention} convention (one recurrent layer of a kind per model is supported)",
            layer=model.name,
            field="convention",
            value=convention,
            rule="every tensor needs its own name",
        )
    ties = {
        renamed[tied]: renamed[source]
        for tied, source in model.ties.items()
        if tied in renamed and source in renamed
    }
    return Converted(
        convention,
        tuple((layer, p) for layer, (p, _, _) in mapped),
        tuple(differences),
        orders,
        ties,
        tuple(pieces for _, (_, pieces, _) in mapped),
        tuple(stored for _, (_, _, stored) in mapped),
    )


def params(model: Model, convention: str = "pytorch", *, reset_after: bool = True) -> list[Param]:
    """Every tensor of ``model`` as ``convention`` (pytorch, keras or onnx) names and shapes
    it, shared ones once, repeated layers expanded. Keras' BatchNormalization lists its
    moving statistics as (non-trainable) weights.

        >>> from shapecalc.architectures import gru_lm
        >>> for p in params(gru_lm(65, 512), "keras")[1:4]:
        ...     print(p.name, p.shape)
        gru/gru_cell/kernel (512, 1536)
        gru/gru_cell/recurrent_kernel (512, 1536)
        gru/gru_cell/bias (2, 1536)
    """
    return convert(model, convention, reset_after=reset_after).params()


def convert_with_template(
    model: Model,
    convention: str,
    *,
    reset_after: bool = True,
    ranks: Mapping[str, int] | None = None,
) -> tuple[Converted, Converted | None]:
    """``model`` in ``convention``, and its symbolic template there too (whose counts are
    the formulas), or None when the template cannot be converted. The layers' input
    ranks (``ranks``, :func:`input_ranks`) are worked out once, for both."""
    if ranks is None:
        ranks = input_ranks(model) if convention == "onnx" else {}
    converted = convert(model, convention, reset_after=reset_after, ranks=ranks)
    try:
        template: Converted | None = convert(
            model.template, convention, reset_after=reset_after, ranks=ranks
        )
    except ShapecalcError:
        template = None
    return converted, template


def _keras_layer_names(model: Model) -> dict[str, str]:
    """Keras' default names for the model's non-recurrent layers (dense, embedding, ...),
    numbered as Keras numbers layers of the same class (dense, dense_1)."""
    seen: dict[str, int] = {}
    names: dict[str, str] = {}
    for layer in model.layers:
        backend = backends().get(type(layer.spec))
        if backend is None or not backend.keras_name:
            continue
        base = backend.keras_name
        n = seen.get(base, 0)
        seen[base] = n + 1
        names[layer.name] = base if n == 0 else f"{base}_{n}"
    return names


def describe(converted: Converted, pytorch_total: Dim) -> list[str]:
    """One line per difference from PyTorch, or a line saying there is none."""
    if not converted.differences:
        return [f"{converted.convention}: the same count as PyTorch ({count_str(pytorch_total)})"]
    return [f"{d.layer or 'layer'}: {d.reason}" for d in converted.differences]


def rows(converted: list[Converted]) -> list[list[int | None]]:
    """Rows that pair corresponding tensors across conventions: for each row, the index
    of the tensor in each convention's list, or None where that framework has none there.

    The PyTorch convention (``converted[0]``) gives one row per tensor; every other
    framework's tensor sits on the row of the first PyTorch tensor it is made of (a
    Keras LSTM bias beside ``bias_ih_l0``, nothing beside ``bias_hh_l0``); a second
    tensor of one framework made from the same row gets a row of its own below it."""
    width = len(converted)
    pytorch = converted[0]
    groups: list[list[list[int | None]]] = [
        [[i, *[None] * (width - 1)]] for i in range(len(pytorch.tensors))
    ]
    find = _Rows([p.name for _, p in pytorch.tensors])
    for column, other in enumerate(converted[1:], start=1):
        for i in range(len(other.tensors)):
            sources = other.sources(i) if other.pieces else []
            row = next((r for r in map(find, sources) if r is not None), None)
            if row is None:
                groups.append([])
                row = len(groups) - 1
            group = groups[row]
            slot = next((r for r in group if r[column] is None), None)
            if slot is None:
                slot = [None] * width
                group.append(slot)
            slot[column] = i
    return [r for group in groups for r in group]


class _Rows:
    """The row of a PyTorch tensor by name; a layer of a block (``weight_ih_l{1..95}``,
    ``weight_ih_l7``) finds the block's row (``weight_ih_l{0..95}``)."""

    def __init__(self, names: list[str]) -> None:
        self.exact = {name: i for i, name in enumerate(names)}
        self.blocks: list[tuple[re.Pattern[str], int]] = []
        for i, name in enumerate(names):
            if "{" in name:
                parts = re.split(r"\{[^{}]*\}", name)
                pattern = r"(?:\{[^{}]*\}|\d+)".join(re.escape(p) for p in parts)
                self.blocks.append((re.compile(pattern), i))

    def __call__(self, name: str) -> int | None:
        if name in self.exact:
            return self.exact[name]
        return next((i for pattern, i in self.blocks if pattern.fullmatch(name)), None)
