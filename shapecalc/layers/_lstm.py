"""What every multi-layer recurrent spec shares, and ``LSTM``: apart from
:mod:`shapecalc.layers.recurrent`'s other kinds, so that an LSTM model loads only what it
builds. Import them from :mod:`shapecalc.layers.recurrent`."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from typing import Any, ClassVar

from shapecalc.core.dims import Dim, count_str, dim_str, product, shape_str
from shapecalc.core.errors import echo
from shapecalc.core.frozen import frozen
from shapecalc.core.spec import LayerSpec, Param, Shape, Stored, Work, less_than, register

__all__ = ["LSTM", "MAX_LISTED_LAYERS", "NONLINEARITIES", "RecurrentSpec", "layer_range"]

NONLINEARITIES = ("tanh", "relu")
#: up to this many layers every layer has its own rows; above it the identical layers
#: form one repeated block (its rows expand to PyTorch's names on demand), so 96 layers
#: cost what 2 do and a million layers nothing
MAX_LISTED_LAYERS = 4


def _compact(value: Dim) -> str:
    """``L-1``: a dim without spaces, for parameter names."""
    return dim_str(value).replace(" ", "")


def layer_range(index: str) -> range | None:
    """``{1..95}`` -> range(1, 96); a single index or a symbolic block -> None."""
    match = re.fullmatch(r"\{(\d+)\.\.(\d+)\}", index)
    return range(int(match.group(1)), int(match.group(2)) + 1) if match else None


def _gate_params(
    gates: tuple[str, ...],
    h: Dim,
    d_in: Dim,
    h_out: Dim,
    bias: bool,
    suffix: str,
    where: str,
    copies: Dim,
) -> Iterator[Param]:
    """weight_ih, weight_hh, bias_ih, bias_hh of one layer and direction (or a cell)."""
    g = len(gates)
    if g == 1:
        of, stack_in, stack_hh, stack_b = (
            "",
            f"{dim_str(h)} × {dim_str(d_in)}",
            (f"{dim_str(h)} × {dim_str(h_out)}"),
            dim_str(h),
        )
    else:
        of = f" of gates {', '.join(gates)}"
        stack_in = f"stacked: {g} × ({dim_str(h)} × {dim_str(d_in)})"
        stack_hh = f"stacked: {g} × ({dim_str(h)} × {dim_str(h_out)})"
        stack_b = f"{g} × {dim_str(h)}"
    yield Param(
        "weight_ih" + suffix,
        (g * h, d_in),
        f"input-to-hidden weights{of} {stack_in}{where}".replace("  ", " "),
        repeat=copies,
    )
    yield Param(
        "weight_hh" + suffix,
        (g * h, h_out),
        f"hidden-to-hidden (recurrent) weights{of} {stack_hh}{where}".replace("  ", " "),
        repeat=copies,
    )
    if bias:
        yield Param(
            "bias_ih" + suffix,
            (g * h,),
            f"input-side biases{of}: {stack_b}{where}",
            repeat=copies,
        )
        yield Param(
            "bias_hh" + suffix,
            (g * h,),
            f"hidden-side biases{of}: {stack_b} (PyTorch's second bias; Keras has one){where}",
            repeat=copies,
        )


def _sequence_input(
    spec: LayerSpec, inputs: tuple[Shape, ...], size: Dim, batch_first: bool, ranks: tuple[int, int]
) -> tuple[Shape, bool]:
    """The one input of a recurrent layer or cell, checked: (shape, batched)."""
    if len(inputs) != 1:
        spec._fail_shape(f"takes one input shape, got {len(inputs)}", inputs)
    shape = inputs[0]
    if len(shape) not in ranks:
        spec._fail_shape(
            f"expects a {ranks[0]}-D or {ranks[1]}-D input, got {len(shape)}-D {shape_str(shape)}",
            shape,
        )
    if shape[-1] != size and isinstance(shape[-1], int) and isinstance(size, int):
        spec._fail_shape(
            f"input {shape_str(shape)} has {shape[-1]} features, expected input_size={size}",
            shape,
        )
    return shape, len(shape) == ranks[1]


#: elementwise FLOPs per hidden unit, per row and time step, by gate count, as PyTorch's
#: cells compute them: (without biases, per bias vector)
_GATE_WORK = {
    # LSTM: ih + hh (4H), σ(i) σ(f) tanh(g) σ(o) (4H), c = f·c + i·g (3H), h = o·tanh(c) (2H)
    4: (13, 4),
    # GRU: r and z: add + σ (4H); n = tanh(ih_n + r·hh_n) (3H); h = (h - n)·z + n (3H)
    3: (10, 3),
    # RNN: ih + hh (H), tanh or relu (H)
    1: (2, 1),
}
GATE_RULE = {
    4: "per step and unit: ih + hh (4), σ(i) σ(f) tanh(g) σ(o) (4), c = f·c + i·g (3), "
    "h = o·tanh(c) (2): 13·H, plus 4·H per bias vector",
    3: "per step and unit: r, z: add and σ (4), n = tanh(ih_n + r·hh_n) (3), "
    "h = (h - n)·z + n (3): 10·H, plus 3·H per bias vector",
    1: "per step and unit: ih + hh (1), tanh or relu (1): 2·H, plus H per bias vector",
}


#: what a recurrent layer keeps per step (besides its input), by gate count
KEPT_PER_STEP = {
    4: "gates i f g o, c_(t-1), tanh(c_t), h_(t-1) per step",
    3: "gate pre-activations (input and hidden side), h_(t-1) per step",
    1: "h_t per step",
}


def _step(
    gates: int, h: Dim, d_in: Dim, h_out: Dim, bias: bool, projects: bool
) -> tuple[Dim, Dim, Dim]:
    """(MACs, elementwise FLOPs, numbers kept for backward) of one layer and direction for
    one row and one time step. Kept, as PyTorch's cell code keeps them (the CPU path
    without oneDNN, and GRU/RNN always): LSTM: the gates (4·H), c_(t-1), tanh(c_t) and
    h_(t-1) (and o·tanh(c_t) before a projection); GRU: the input- and hidden-side gate
    pre-activations (3·H each) and h_(t-1); RNN: h_t. The layer's input (d_in) is kept
    once per layer, whatever the directions: it is not part of this count."""
    g = gates
    macs = g * h * (d_in + h_out) + (h_out * h if projects else 0)
    base, per_bias = _GATE_WORK[g]
    other = (base + (2 * per_bias if bias else 0)) * h
    kept = {4: 6 * h + h_out + (h if projects else 0), 3: 7 * h, 1: h}[g]
    return macs, other, kept


class RecurrentSpec(LayerSpec):
    """What every multi-layer recurrent spec shares; subclasses set the gates."""

    #: gate names in PyTorch's stacking order; their number is the only difference
    gates: ClassVar[tuple[str, ...]]
    #: a second state beside h_t (the LSTM's cell state c_t)
    cell_state: ClassVar[bool] = False
    #: Keras' layer of the same cell, and how its gate names read against PyTorch's
    keras_layer: ClassVar[str]
    keras_gates: ClassVar[str] = ""

    input_size: Dim
    hidden_size: Dim
    num_layers: Dim
    bias: bool
    batch_first: bool
    dropout: float
    bidirectional: bool

    family: ClassVar[str] = "recurrent"
    output_names: ClassVar[tuple[str, ...]] = ("output", "h_n", "c_n")
    size_fields: ClassVar[dict[str, int]] = {"input_size": 1, "hidden_size": 1, "num_layers": 1}
    bool_fields: ClassVar[tuple[str, ...]] = ("bias", "batch_first", "bidirectional")

    def __post_init__(self) -> None:
        self._check_fields()
        self._check_recurrent()

    def equations(self) -> list[str]:
        """The cell equations, one line each, as PyTorch's documentation writes them."""
        raise NotImplementedError

    def keras_biases(self, bias: Dim) -> str:
        """How Keras' layer keeps the biases beside PyTorch's two (``bias``: the size of
        one of them), in one sentence."""
        gh = f"{len(self.gates)}·H" if len(self.gates) > 1 else "H"
        fewer = gh if count_str(bias) == gh else f"{gh} = {count_str(bias)}"
        return (
            f"PyTorch keeps two bias vectors{' per gate' if len(self.gates) > 1 else ''} "
            "(b_ih and b_hh, for cuDNN compatibility); the textbook equations and Keras keep "
            f"one, so Keras' {self.keras_layer} has {fewer} fewer parameters per layer and "
            "direction."
        )

    def _check_recurrent(self) -> None:
        dropout: Any = self.dropout
        if (
            isinstance(dropout, bool)
            or not isinstance(dropout, (int, float))
            or not 0 <= dropout <= 1
        ):
            self._fail(
                "dropout",
                dropout,
                "dropout must be a number in [0, 1], the probability of zeroing an element",
                f"got {echo(dropout)}",
            )
        object.__setattr__(self, "dropout", float(dropout))

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def projects(self) -> bool:
        return False

    @property
    def output_hidden(self) -> Dim:
        """``H_out``: the size of h_t (``proj_size`` when projecting)."""
        return self.hidden_size

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        """``output``, ``h_n`` (and ``c_n`` for an LSTM) for an input (T, N, input_size),
        (N, T, input_size) with ``batch_first``, or unbatched (T, input_size)."""
        shape, batched = _sequence_input(self, inputs, self.input_size, self.batch_first, (2, 3))
        d, h_out = self.num_directions, self.output_hidden
        states = d * self.num_layers
        if batched:
            batch = shape[0] if self.batch_first else shape[1]
            out: Shape = (*shape[:2], d * h_out)
            h_n: Shape = (states, batch, h_out)
            c_n: Shape = (states, batch, self.hidden_size)
        else:
            out, h_n, c_n = (shape[0], d * h_out), (states, h_out), (states, self.hidden_size)
        return (out, h_n, c_n) if len(self.gates) == 4 else (out, h_n)

    def work(self, *inputs: Shape) -> Work:
        """Every gate matmul and the elementwise gate work of every step, layer and
        direction (see :data:`GATE_RULE`); dropout between layers adds a mask and 2 FLOPs
        per number. Kept for backward: what PyTorch's own cell code keeps (see
        :func:`_step`); oneDNN's LSTM kernel keeps a larger workspace instead."""
        outputs = self.output_shapes(*inputs)
        shape = inputs[0]
        row_steps = product(shape[:-1])  # T·B (T unbatched)
        d, g = self.num_directions, len(self.gates)
        macs: Dim = 0
        other: Dim = 0
        saved: list[Stored] = []
        for block, (index, d_in, copies) in enumerate(self.layer_blocks()):
            m, o, kept = _step(
                g, self.hidden_size, d_in, self.output_hidden, self.bias, self.projects
            )
            macs += copies * d * row_steps * m
            other += copies * d * row_steps * o
            if block == 0:  # the first block holds layer 0, whose input is the layer's
                saved.append(Stored("layer 0: input", (*shape[:-1], d_in), of="input"))
                if copies != 1:  # a block of identical layers from 0: the others apart
                    above = index.replace("{0..", "{1..")
                    saved.append(
                        Stored(f"layer {above}: input", (*shape[:-1], d_in), copies=copies - 1)
                    )
            else:
                saved.append(Stored(f"layer {index}: input", (*shape[:-1], d_in), copies=copies))
            # a batch-first input reaches the reverse direction of layer 0 as its own copy
            # (when the batch-first transpose is not contiguous: batched, B > 1 and T > 1)
            transposed = len(shape) == 3 and self.batch_first and 1 not in shape[:2]
            if block == 0 and d == 2 and transposed:  # the first block holds layer 0
                saved.append(Stored("layer 0: the reverse direction's copy of the input", shape))
            saved.append(
                Stored(
                    f"layer {index}: {KEPT_PER_STEP[g]}" + (", each direction" if d == 2 else ""),
                    (*shape[:-1], kept),
                    copies=copies * d,
                )
            )
        if g == 1:  # an RNN keeps h_0 as well: its output is h_t, the input of step t + 1
            saved.append(Stored("h_0 per layer", outputs[1], copies=1))
        if self.dropout > 0:
            between = self.num_layers - 1
            numbers = row_steps * d * self.output_hidden
            other += between * 2 * numbers
            saved.append(
                Stored(
                    "dropout mask between layers (a float tensor here)",
                    (*shape[:-1], d * self.output_hidden),
                    copies=between,
                )
            )
        return Work(
            outputs,
            macs=macs,
            other=other,
            other_rule=GATE_RULE[g],
            saved=tuple(saved),
            state=tuple(Stored(n, s) for n, s in zip(("h", "c"), outputs[1:], strict=False)),
        )

    def layer_input_size(self, layer: int) -> Dim:
        """``d_in`` of layer ``layer``: ``input_size``, then ``D·H_out`` above layer 0."""
        return self.input_size if layer == 0 else self.num_directions * self.output_hidden

    def layer_blocks(self) -> list[tuple[str, Dim, Dim]]:
        """``(index, d_in, copies)`` per layer; with a symbolic ``num_layers`` the layers
        above 0 form one repeated block, and layer 0 joins it when its input size is the same.

            >>> LSTM("E", "H", num_layers="L").layer_blocks()
            [('0', Expr('E'), 1), ('{1..L-1}', Expr('H'), Expr('L - 1'))]
        """
        n = self.num_layers
        if isinstance(n, int) and n <= MAX_LISTED_LAYERS:
            return [(str(i), self.layer_input_size(i), 1) for i in range(n)]
        # a symbolic count, or more layers than a table can list: one repeated block
        first, rest = self.layer_input_size(0), self.layer_input_size(1)
        if first == rest:
            return [(f"{{0..{_compact(n - 1)}}}", rest, n)]
        return [("0", first, 1), (f"{{1..{_compact(n - 1)}}}", rest, n - 1)]

    def params(self) -> Iterator[Param]:
        h, h_out = self.hidden_size, self.output_hidden
        for index, d_in, copies in self.layer_blocks():
            for direction in range(self.num_directions):
                suffix = f"_l{index}" + ("_reverse" if direction else "")
                where = ", backward direction" if direction else ""
                if copies != 1:
                    where += f"; one per layer, {dim_str(copies)} layers"
                block = [
                    *_gate_params(self.gates, h, d_in, h_out, self.bias, suffix, where, copies),
                    *self._extra_params(suffix, where, copies),
                ]
                numbers = layer_range(index)
                for param in block:
                    yield dataclasses.replace(param, layers=numbers) if numbers else param

    def _extra_params(self, suffix: str, where: str, copies: Dim) -> Iterator[Param]:
        return iter(())


@register
@frozen
class LSTM(RecurrentSpec):
    """``nn.LSTM(input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
    dropout=0.0, bidirectional=False, proj_size=0)``.

        >>> for p in LSTM(65, 512).params():
        ...     print(p.name, p.shape)
        weight_ih_l0 (2048, 65)
        weight_hh_l0 (2048, 512)
        bias_ih_l0 (2048,)
        bias_hh_l0 (2048,)
        >>> LSTM(512, 512, num_layers=2).total()
        4202496
    """

    input_size: Dim
    hidden_size: Dim
    num_layers: Dim = 1
    bias: bool = True
    batch_first: bool = False
    dropout: float = 0.0
    bidirectional: bool = False
    proj_size: Dim = 0

    kind: ClassVar[str] = "LSTM"
    letters: ClassVar[dict[str, str]] = {"proj_size": "P"}
    summary: ClassVar[str] = "multi-layer LSTM: 4 gates (i, f, g, o), optional projection"
    example: ClassVar[dict[str, Any]] = {"input_size": 512, "hidden_size": 512, "num_layers": 2}
    formula_args: ClassVar[dict[str, Any]] = {
        "input_size": "I",
        "hidden_size": "H",
        "num_layers": 2,
    }
    example_input: ClassVar[tuple[Shape, ...]] = ((100, 32, 512),)
    gates: ClassVar[tuple[str, ...]] = ("i", "f", "g", "o")
    size_fields: ClassVar[dict[str, int]] = {
        **RecurrentSpec.size_fields,
        "proj_size": 0,
    }
    cell_state: ClassVar[bool] = True
    keras_layer: ClassVar[str] = "LSTM"
    keras_gates: ClassVar[str] = (
        "Keras names the gates i, f, c, o: the same order as PyTorch's i, f, g, o."
    )

    def equations(self) -> list[str]:
        h_line = (
            "  h_t = W_hr (o_t ⊙ tanh(c_t))                  projected to proj_size"
            if self.projects
            else "  h_t = o_t ⊙ tanh(c_t)"
        )
        return [
            "  i_t = σ(W_ii x_t + b_ii + W_hi h_(t-1) + b_hi)      input gate",
            "  f_t = σ(W_if x_t + b_if + W_hf h_(t-1) + b_hf)      forget gate",
            "  g_t = tanh(W_ig x_t + b_ig + W_hg h_(t-1) + b_hg)   cell candidate",
            "  o_t = σ(W_io x_t + b_io + W_ho h_(t-1) + b_ho)      output gate",
            "  c_t = f_t ⊙ c_(t-1) + i_t ⊙ g_t",
            h_line,
        ]

    def __post_init__(self) -> None:
        super().__post_init__()
        if less_than(self.proj_size, self.hidden_size) is False:
            self._fail(
                "proj_size",
                self.proj_size,
                "proj_size must be smaller than hidden_size",
                f"{dim_str(self.proj_size)} >= {dim_str(self.hidden_size)}",
                "hidden_size",
            )

    def deferred_rules(self) -> list[str]:
        open_ = self.projects and less_than(self.proj_size, self.hidden_size) is None
        return self._deferred(
            (
                open_,
                f"proj_size must be smaller than hidden_size: {dim_str(self.proj_size)} < "
                f"{dim_str(self.hidden_size)}",
            )
        )

    @property
    def projects(self) -> bool:
        """Whether the layer projects h_t down to ``proj_size`` (a symbolic size does)."""
        return self.proj_size != 0

    @property
    def output_hidden(self) -> Dim:
        return self.proj_size if self.projects else self.hidden_size

    def _extra_params(self, suffix: str, where: str, copies: Dim) -> Iterator[Param]:
        if self.projects:
            p, h = self.proj_size, self.hidden_size
            yield Param(
                "weight_hr" + suffix,
                (p, h),
                f"projection of h_t = W_hr·(o ⊙ tanh c_t) down to proj_size: "
                f"{dim_str(p)} × {dim_str(h)}{where}",
                repeat=copies,
            )
