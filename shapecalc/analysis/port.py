"""Port weights between frameworks: for every tensor of one convention, the tensor(s) of
another it is made of, and how (transposed, gate blocks reordered, placed, summed).

:func:`port` gives the map for a model with numbers for every size; :meth:`PortMap.apply`
carries it out on a dict of arrays (numpy, or anything ``numpy.asarray`` takes). Every map
goes through PyTorch's names: PyTorch to Keras or ONNX is the conversion of
:mod:`shapecalc.analysis.conventions`; back to PyTorch each piece is undone (a transpose
transposed back, the gate blocks put back in PyTorch's order, a part taken out), and where
the other framework keeps one bias for PyTorch's two, the sum goes to ``bias_ih`` and
``bias_hh`` is zeros, which computes the same. Keras to ONNX is the two maps in turn.

Example:

    >>> import numpy as np, shapecalc
    >>> model = shapecalc.lstm_lm(vocab=5, hidden=2, layers=1)
    >>> to_keras = port(model, "pytorch", "keras")
    >>> entry = to_keras.entry("lstm/lstm_cell/bias")
    >>> entry.how
    'lstm.bias_ih_l0 + lstm.bias_hh_l0'
    >>> weights = {name: np.ones(shape) for name, shape in to_keras.inputs.items()}
    >>> to_keras.apply(weights)["lstm/lstm_cell/bias"].tolist()
    [2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from shapecalc.analysis.conventions import (
    CONVENTIONS,
    FRAMEWORK_NAMES,
    Converted,
    Op,
    Piece,
    convert,
    describe_pieces,
)
from shapecalc.core.dims import Expr, int_text, shape_str
from shapecalc.core.errors import (
    InvalidArgumentError,
    MissingDependencyError,
    echo,
    expect,
    field_error,
    require_one_of,
)
from shapecalc.core.model import Model
from shapecalc.core.tree import run_indices

__all__ = ["Entry", "PortMap", "port"]

_RANGE = re.compile(r"\{\d+(?:,\d+)?\.\.\d+\}")


@dataclass(frozen=True)
class Entry:
    """One tensor of the target convention: its name, its shape, and the source tensors
    it is made of (no pieces: zeros, with ``note`` saying why)."""

    target: str
    shape: tuple[int, ...]
    pieces: tuple[Piece, ...]
    note: str = ""

    @property
    def how(self) -> str:
        """How the tensor is made, in one line (``lstm.bias_ih_l0 + lstm.bias_hh_l0``)."""
        return describe_pieces(self.pieces)

    @property
    def sources(self) -> list[str]:
        """The source tensors, in order, each once."""
        return list(dict.fromkeys(p.source for p in self.pieces))


@dataclass(frozen=True)
class PortMap:
    """The map from one convention's tensors (``source``) to another's (``target``)."""

    model: str
    source: str
    target: str
    entries: tuple[Entry, ...]
    #: the source tensors the map reads, with their shapes
    inputs: dict[str, tuple[int, ...]]
    #: gate orders and the like, one line each
    notes: tuple[str, ...] = ()
    #: Keras to ONNX and back: the map to PyTorch, applied first
    first: PortMap | None = None
    #: source tensors the map may be given but does not read (tied twins, batch counters)
    unused: frozenset[str] = field(default_factory=frozenset)
    #: through PyTorch: the PyTorch tensors the second map reads
    middle: dict[str, tuple[int, ...]] = field(default_factory=dict)
    #: a tied tensor -> the one it shares, read in its place when it is not given
    #: (``named_parameters()`` lists a shared tensor once, ``state_dict()`` twice)
    aliases: dict[str, str] = field(default_factory=dict)

    def entry(self, target: str) -> Entry:
        """The entry of one target tensor, by name."""
        for entry in self.entries:
            if entry.target == target:
                return entry
        raise InvalidArgumentError(
            f"{echo(target)} is not a {FRAMEWORK_NAMES[self.target]} tensor of {self.model}",
            field="target",
            value=target,
            rule="a tensor of the map",
        )

    def apply(self, weights: Mapping[str, Any], *, strict: bool = True) -> dict[str, Any]:
        """The target's tensors as numpy arrays, made from ``weights`` (source name ->
        array). ``strict`` refuses a name the source convention does not have."""
        expect(
            weights,
            Mapping,
            function="PortMap.apply",
            argument="weights",
            what="a mapping of tensor names to arrays",
        )
        if self.first is not None:
            return self._second().apply(self.first.apply(weights, strict=strict))
        try:
            import numpy as np
        except ImportError:  # pragma: no cover - numpy comes with torch and keras
            raise MissingDependencyError(
                "PortMap.apply needs numpy: pip install numpy",
                field="numpy",
                rule="numpy installed",
            ) from None
        arrays = self._arrays(weights, np, strict)
        out: dict[str, Any] = {}
        for entry in self.entries:
            dtype = arrays[entry.pieces[0].source].dtype if entry.pieces else np.float32
            if len(entry.pieces) == 1 and not entry.pieces[0].at:
                out[entry.target] = np.ascontiguousarray(
                    _run(arrays[entry.pieces[0].source], entry.pieces[0].ops)
                )
                continue
            tensor = np.zeros(entry.shape, dtype=dtype)
            for piece in entry.pieces:
                tensor[_numpy_index(piece.at)] += _run(arrays[piece.source], piece.ops)
            out[entry.target] = tensor
        return out

    def stages(self) -> list[PortMap]:
        """The maps applied in turn: this one, or (Keras to ONNX and back) the map to
        PyTorch's names and the map from them."""
        return [self] if self.first is None else [self.first, self._second()]

    def _second(self) -> PortMap:
        return PortMap(
            self.model,
            "pytorch",
            self.target,
            self.entries,
            self.middle,
            self.notes,
            aliases=self.aliases,
        )

    def _arrays(self, weights: Mapping[str, Any], np: Any, strict: bool) -> dict[str, Any]:
        framework = FRAMEWORK_NAMES[self.source]
        if strict:
            unknown = [k for k in weights if k not in self.inputs and k not in self.unused]
            if unknown:
                raise InvalidArgumentError(
                    f"weights: {echo(unknown[0])} is not a {framework} tensor of {self.model}"
                    + (f" ({len(unknown) - 1} more)" if len(unknown) > 1 else ""),
                    field="weights",
                    value=unknown[0],
                    rule=f"names of the model's {framework} tensors",
                )
        weights = {
            **{t: weights[s] for t, s in self.aliases.items() if t not in weights and s in weights},
            **weights,
        }
        missing = [name for name in self.inputs if name not in weights]
        if missing:
            raise InvalidArgumentError(
                f"weights: no {echo(missing[0])}"
                + (f" ({len(missing) - 1} more missing)" if len(missing) > 1 else "")
                + f"; the map reads {len(self.inputs)} {framework} tensors",
                field="weights",
                value=missing[0],
                rule="every tensor the map reads",
            )
        arrays = {}
        for name, shape in self.inputs.items():
            array = np.asarray(_numpy(weights[name]))
            if tuple(array.shape) != shape:
                raise InvalidArgumentError(
                    f"weights: {name} has shape {shape_str(tuple(array.shape))}, "
                    f"{self.model} needs {shape_str(shape)}",
                    field="weights",
                    value=name,
                    rule="each tensor in the model's shape",
                )
            arrays[name] = array
        return arrays


def _numpy(value: Any) -> Any:
    """A torch tensor (even one that needs grad) as something numpy reads."""
    detach = getattr(value, "detach", None)
    return detach().cpu().numpy() if callable(detach) else value


def _numpy_index(at: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(slice(*part) if isinstance(part, tuple) else part for part in at)


def _run(array: Any, ops: tuple[Op, ...]) -> Any:
    for op in ops:
        if op.kind == "take":
            array = array[_numpy_index(op.value)]
        elif op.kind == "gates":
            n = len(op.value)
            blocks = array.reshape(n, array.shape[0] // n, *array.shape[1:])
            array = blocks[list(op.value)].reshape(array.shape)
        else:
            array = array.transpose(op.value)
    return array


# -- building the map ------------------------------------------------------------------------
def port(model: Model, source: str, target: str, *, reset_after: bool = True) -> PortMap:
    """The map that turns ``model``'s tensors in the ``source`` convention (pytorch, keras
    or onnx) into the ``target`` convention's. ``reset_after`` is Keras' GRU option; only
    ``True`` computes what PyTorch's GRU computes."""
    expect(model, Model, function="port", argument="model", what="a shapecalc Model")
    require_one_of("source", source, CONVENTIONS)
    require_one_of("target", target, CONVENTIONS)
    if source == target:
        raise field_error(
            "target",
            target,
            "target names another framework than source",
            f"target must name another framework than source (both {source!r})",
            layer="port",
        )
    _concrete(model)
    if "pytorch" not in (source, target):
        first = port(model, source, "pytorch", reset_after=reset_after)
        second = port(model, "pytorch", target, reset_after=reset_after)
        return PortMap(
            model.name,
            source,
            target,
            second.entries,
            first.inputs,
            first.notes + second.notes,
            first=first,
            unused=first.unused,
            middle=second.inputs,
            aliases=dict(model.ties),
        )
    other = target if source == "pytorch" else source
    converted = convert(model, other, reset_after=reset_after)
    _portable(model, converted, reset_after)
    forward = list(_expanded(converted))
    theirs = {e.target: e.shape for e in forward}
    ours = dict(_pytorch_tensors(model))
    notes = _notes(model, converted)
    if source == "pytorch":
        used = {p.source for e in forward for p in e.pieces}
        inputs = {name: ours[name] for name in ours if name in used}
        unused = frozenset(ours) - set(inputs)
        return PortMap(
            model.name,
            source,
            target,
            tuple(forward),
            inputs,
            notes,
            unused=unused,
            aliases=dict(model.ties),
        )
    backward = _invert(forward, ours, FRAMEWORK_NAMES[other])
    lost = [name for name in ours if name not in {e.target for e in backward}]
    lost = [name for name in lost if name in dict(model.named_parameters())]
    if lost:  # every supported layer stores each of PyTorch's parameters somewhere
        raise InvalidArgumentError(
            f"{lost[0]} has no counterpart in {FRAMEWORK_NAMES[other]}",
            field="source",
            value=source,
            rule="every PyTorch parameter stored",
        )
    return PortMap(model.name, source, target, backward, theirs, notes)


def _concrete(model: Model) -> None:
    if not model.symbolic:
        _listed(model)
        return
    arguments = getattr(model, "arguments", None) or {}
    named = [(k, v) for k, v in arguments.items() if isinstance(v, Expr)]
    named = named or [(k, v) for k, v in model.sizes.items() if isinstance(v, Expr)]
    field, value = named[0] if named else ("size", "a name")
    raise InvalidArgumentError(
        f"{model.name}: porting weights needs a number for every size, "
        f"got {field}={echo(str(value))}",
        field=field,
        value=str(value),
        rule="numbers, not names",
    )


def _portable(model: Model, converted: Converted, reset_after: bool) -> None:
    """Refuse a conversion whose tensors compute something else than PyTorch's."""
    gru = [layer.name for layer in model.layers if layer.spec.kind == "GRU"]
    if converted.convention == "keras" and gru and not reset_after:
        raise InvalidArgumentError(
            f"{gru[0]}: Keras' GRU with reset_after=False applies the reset gate before the "
            "recurrent matrix, PyTorch's after it: no weights compute the same; "
            "use reset_after=True to port a GRU",
            field="reset_after",
            value=False,
            rule="reset_after=True to port a GRU",
        )


def _notes(model: Model, converted: Converted) -> tuple[str, ...]:
    """What the other framework's layers must be made with for the weights to compute
    the same: gate orders, Keras' options."""
    convention = converted.convention
    notes = [
        f"{layer}: {FRAMEWORK_NAMES[convention]} gate order {order}"
        for layer, order in converted.gate_orders.items()
        if "no gates" not in order
    ]
    for layer in model.layers:
        kind = layer.spec.kind
        if convention == "keras" and kind in ("LSTM", "GRU"):
            extra = ", reset_after=True" if kind == "GRU" else ""
            notes.append(
                f"{layer.name}: keras.layers.{kind}(activation='tanh', "
                f"recurrent_activation='sigmoid'{extra}, return_sequences=True), the defaults"
            )
        elif convention == "keras" and kind == "RNN":
            activation = getattr(layer.spec, "nonlinearity", "tanh")
            notes.append(
                f"{layer.name}: keras.layers.SimpleRNN(activation='{activation}', "
                "return_sequences=True)"
            )
        bidirectional = getattr(layer.spec, "num_directions", 1) == 2
        if convention == "keras" and kind in ("LSTM", "GRU", "RNN") and bidirectional:
            notes.append(
                f"{layer.name}: keras.layers.Bidirectional(..., merge_mode='concat'), the default"
            )
        if convention == "onnx" and kind == "GRU":
            notes.append(f"{layer.name}: the ONNX GRU operator with linear_before_reset=1")
    return tuple(notes)


def _pytorch_tensors(model: Model) -> Iterator[tuple[str, tuple[int, ...]]]:
    """Every tensor of ``state_dict()``: parameters (a tied one under each of its names)
    and buffers."""
    shapes = {}
    for name, shape in [*model.named_parameters(), *model.named_buffers()]:
        shapes[name] = tuple(int(d) for d in shape)  # type: ignore[arg-type]
        yield name, shapes[name]
    for tied, source in model.ties.items():
        if source in shapes:
            yield tied, shapes[source]


#: the most tensors a port map names (each with its pieces and steps; the recurrent
#: models it covers hold a few per layer, so 5,000 layers)
MAX_PORTED = 20_000


def _listed(model: Model) -> None:
    """A map names every tensor: refused, before any is listed, past what a model lists."""
    count = model.tensor_count()
    if isinstance(count, int) and count > MAX_PORTED:
        rule = f"a port map names every tensor: at most {MAX_PORTED:,}"
        raise InvalidArgumentError(
            f"{model.name}: {rule}; this model holds {int_text(count)}",
            field="model",
            value=count,
            rule=rule,
        )


def _expanded(converted: Converted) -> Iterator[Entry]:
    """Each converted tensor once per layer: ``lstm_{1..95}/...`` as ``lstm_1/...``,
    ``lstm_2/...``; the same ``{a..b}`` in the sources takes the same number."""
    for (_, param), pieces in zip(converted.tensors, converted.pieces, strict=True):
        names = [param.name, *(p.source for p in pieces)]
        for values in _numberings(names):
            yield Entry(
                _number(param.name, values),
                tuple(int(d) for d in param.shape),  # type: ignore[arg-type]
                tuple(Piece(_number(p.source, values), p.ops, _int_index(p.at)) for p in pieces),
            )


def _int_index(at: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(
        (int(part[0]), int(part[1])) if isinstance(part, tuple) else int(part) for part in at
    )


def _numberings(names: list[str]) -> Iterator[dict[str, int]]:
    patterns = list(dict.fromkeys(m.group(0) for n in names for m in _RANGE.finditer(n)))
    ranges = [run_indices(p) or range(0) for p in patterns]
    for numbers in itertools.product(*ranges):
        yield dict(zip(patterns, numbers, strict=True))


def _number(name: str, values: dict[str, int]) -> str:
    for pattern, number in values.items():
        name = name.replace(pattern, str(number))
    return name


def _invert(
    forward: list[Entry], ours: dict[str, tuple[int, ...]], framework: str
) -> tuple[Entry, ...]:
    """PyTorch's tensors from another framework's: each piece undone; where two PyTorch
    tensors were summed into one place, the first takes it all and the others are zeros."""
    made: dict[str, Entry] = {}
    for entry in forward:
        seen: dict[tuple[Any, ...], str] = {}
        for piece in entry.pieces:
            if piece.at in seen:
                note = (
                    f"zeros: {framework} keeps one tensor, {entry.target}, for the sum; "
                    f"it is ported whole into {seen[piece.at]}"
                )
                made.setdefault(piece.source, Entry(piece.source, ours[piece.source], (), note))
                continue
            seen[piece.at] = piece.source
            take = (Op("take", piece.at, "part"),) if piece.at else ()
            undo = tuple(op.inverse() for op in reversed(piece.ops))
            made.setdefault(
                piece.source,
                Entry(piece.source, ours[piece.source], (Piece(entry.target, take + undo),)),
            )
    for name, shape in ours.items():
        if name not in made and name.endswith("num_batches_tracked"):
            note = f"zeros: {framework} does not count the batches a batch norm has seen"
            made[name] = Entry(name, shape, (), note)
    return tuple(made[name] for name in ours if name in made)
