"""Models: named layers, tied parameters, per-layer subtotals and the total.

A :class:`Model` built from concrete sizes carries a *template*: the same model built with
every size replaced by its symbol (V, E, H, ...). Each row pairs a parameter with its twin
in the template, which gives the formula column without a second formula anywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from shapecalc.core.dims import Dim, Expr, as_size, dim_str, same_size, shape_str
from shapecalc.core.errors import TieError
from shapecalc.core.spec import LayerSpec, Param, expand
from shapecalc.core.units import DTYPE_BYTES

__all__ = ["Layer", "Model", "Row", "full_name"]


def full_name(layer: str, name: str) -> str:
    """``lstm.weight_ih_l0``; a model of one unnamed layer keeps torch's bare names."""
    return f"{layer}.{name}" if layer else name


@dataclass(frozen=True)
class Layer:
    """A layer of a model: its attribute name in the torch module, its spec, what it does."""

    name: str
    spec: LayerSpec
    description: str = ""


@dataclass(frozen=True)
class Row:
    """One parameter of a model, as a table row."""

    layer: str
    param: Param
    #: the same parameter in the symbolic template: its shape and count are the formulas
    template: Param
    tied_to: str | None = None

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


@dataclass(frozen=True)
class Model:
    """Named layers in order, with ties, sizes and (for formulas) a symbolic template.

    ``factory`` and ``arguments`` say how the model was made, so that
    :meth:`evaluate` can rebuild it with symbols replaced by values. ``make_template``
    builds the symbolic twin on first use (totals never need it; formulas do).
    """

    name: str
    layers: tuple[Layer, ...]
    #: tied parameter full name -> the full name of the parameter it shares
    ties: Mapping[str, str] = field(default_factory=dict)
    #: the named sizes of the model, in display order: {"V": 65, "H": 512, ...}
    sizes: Mapping[str, Dim] = field(default_factory=dict)
    make_template: Callable[[], Model] | None = field(default=None, repr=False, compare=False)
    factory: Callable[..., Model] | None = None
    arguments: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    #: the model's input shapes by size name: (("B", "T"),) for token ids, batch first;
    #: "B" and "T" take the batch and sequence length, other names the model's sizes
    input_layout: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        if not self.ties:
            return
        names = [name for pair in self.ties.items() for name in pair]
        params = {
            full_name(layer.name, p.name): p
            for layer in self.layers
            if not layer.name or any(n.startswith(layer.name + ".") for n in names)
            for p in expand(layer.spec.params())
        }
        for tied, source in self.ties.items():
            a, b = params.get(tied), params.get(source)
            if a is None or b is None:
                missing = tied if a is None else source
                raise TieError(
                    f"cannot tie {tied} to {source}: the model has no parameter {missing}",
                    layer=self.name,
                    field="ties",
                    value=missing,
                    rule="tied parameters must exist",
                )
            if len(a.shape) != len(b.shape) or not all(
                same_size(x, y) for x, y in zip(a.shape, b.shape, strict=True)
            ):
                raise TieError(
                    f"cannot tie {tied} {shape_str(a.shape)} to {source} "
                    f"{shape_str(b.shape)}: shared parameters need the same shape",
                    layer=self.name,
                    field="ties",
                    value=(tied, source),
                    rule="tied parameters must have the same shape",
                )

    # -- rows and totals -----------------------------------------------------------------
    @cached_property
    def template(self) -> Model:
        """The same model with its sizes as symbols: its counts are the formulas."""
        return self.make_template() if self.make_template else self

    @cached_property
    def _own(self) -> tuple[tuple[str, Param, str | None], ...]:
        """(layer, param, tied_to) for every parameter: all that totals need."""
        return tuple(
            (layer.name, p, self.ties.get(full_name(layer.name, p.name)))
            for layer in self.layers
            for p in layer.spec.params()
        )

    def rows(self) -> list[Row]:
        """Every parameter of every layer, in PyTorch's order, tied ones included."""
        return list(self._rows)

    @cached_property
    def _rows(self) -> tuple[Row, ...]:
        rows: list[Row] = []
        for layer, twin in zip(self.layers, self.template.layers, strict=True):
            own = list(layer.spec.params())
            twins = list(twin.spec.params())
            if [p.name for p in own] != [p.name for p in twins]:
                # a symbolic layer count merges equal blocks; sizes that are equal here but
                # distinct symbols in the template keep them apart: follow the template
                own = [p.substitute(self.sizes) for p in twins]
            for param, twin_param in zip(own, twins, strict=True):
                full = full_name(layer.name, param.name)
                rows.append(Row(layer.name, param, twin_param, self.ties.get(full)))
        return tuple(rows)

    def buffer_rows(self) -> Iterator[tuple[str, Param]]:
        for layer in self.layers:
            for buf in layer.spec.buffers():
                yield full_name(layer.name, buf.name), buf

    def named_parameters(self) -> list[tuple[str, tuple[Dim, ...]]]:
        """``(name, shape)`` as ``torch.nn.Module.named_parameters()`` gives them
        (a tied parameter appears once, under the name it was first registered with)."""
        return [
            (full_name(layer.name, p.name), p.shape)
            for layer in self.layers
            for p in expand(layer.spec.params())
            if full_name(layer.name, p.name) not in self.ties
        ]

    @property
    def total(self) -> Dim:
        """Parameters, each shared tensor counted once."""
        return sum((p.count for _, p, tied in self._own if not tied), start=0)

    @property
    def trainable(self) -> Dim:
        return sum((p.count for _, p, tied in self._own if not tied and p.trainable), start=0)

    @property
    def total_formula(self) -> Dim:
        return self.template.total

    def layer_total(self, name: str) -> Dim:
        return sum((p.count for n, p, tied in self._own if n == name and not tied), start=0)

    def layer_formula(self, name: str) -> Dim:
        return self.template.layer_total(name)

    def bytes(self, dtype: str = "fp32") -> Dim:
        """Bytes to store the parameters at ``dtype`` (see :data:`DTYPE_BYTES`)."""
        return self.total * DTYPE_BYTES[dtype]

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    # -- symbols ------------------------------------------------------------------------
    @property
    def symbolic(self) -> bool:
        return isinstance(self.total, Expr)

    def evaluate(self, **values: Any) -> Model:
        """Rebuild the model with named sizes replaced by values: ``evaluate(H=512)``."""
        if self.factory is None:
            raise TypeError(f"{self.name} was not made by a factory and cannot be evaluated")
        numbers: dict[str, Dim] = {
            name: as_size(value, owner=f"{self.name}.evaluate", field=name)
            for name, value in values.items()
        }
        arguments = {
            k: v.subs(numbers) if isinstance(v, Expr) else v for k, v in self.arguments.items()
        }
        return self.factory(**arguments)

    def input_shapes(self, batch: Dim, seq_len: Dim) -> tuple[tuple[Dim, ...], ...]:
        """The model's input shapes for a batch and a sequence length (ints or symbols)."""
        values: dict[str, Dim] = {**self.sizes, "B": batch, "T": seq_len}
        return tuple(tuple(values[name] for name in shape) for shape in self.input_layout)

    def describe_sizes(self) -> str:
        """``V=65, H=512, L=2``; a size left as its own symbol is named alone (``H``)."""
        return ", ".join(
            k if dim_str(v) == k else f"{k}={dim_str(v)}" for k, v in self.sizes.items()
        )
