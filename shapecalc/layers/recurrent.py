"""Recurrent layers: ``RNN``, ``GRU``, ``LSTM`` and the cells ``RNNCell``, ``GRUCell``,
``LSTMCell``. The gate count G is the one difference between them (RNN 1, GRU 3, LSTM 4).

PyTorch's ``RNNBase`` builds, for each layer ``l`` and direction (``""`` then
``"_reverse"``), the tensors

- ``weight_ih_l{l}``: ``(G·H, d_in)`` where ``d_in`` is ``input_size`` for layer 0 and
  ``D·H_out`` above it (``H_out`` is ``proj_size`` when set, else ``hidden_size``);
- ``weight_hh_l{l}``: ``(G·H, H_out)``;
- ``bias_ih_l{l}`` and ``bias_hh_l{l}``: ``(G·H,)`` each, when ``bias``;
- ``weight_hr_l{l}``: ``(proj_size, H)``, LSTM only, when ``proj_size > 0``;

with ``G`` gates stacked along the first dimension (LSTM: i f g o, GRU: r z n). A cell is
one layer, one direction, one time step: ``weight_ih``, ``weight_hh``, ``bias_ih``,
``bias_hh`` without suffix.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from shapecalc.core.dims import Dim, count_str, product
from shapecalc.core.frozen import frozen
from shapecalc.core.spec import LayerSpec, Param, Shape, Stored, Work, register
from shapecalc.layers._lstm import (
    GATE_RULE,
    KEPT_PER_STEP,
    LSTM,
    RecurrentSpec,
    _gate_params,
    _sequence_input,
    _step,
)
from shapecalc.layers._lstm import MAX_LISTED_LAYERS as MAX_LISTED_LAYERS
from shapecalc.layers._lstm import NONLINEARITIES as NONLINEARITIES
from shapecalc.layers._lstm import layer_range as layer_range

__all__ = ["GRU", "LSTM", "RNN", "CellSpec", "GRUCell", "LSTMCell", "RNNCell", "RecurrentSpec"]


@register
@frozen
class GRU(RecurrentSpec):
    """``nn.GRU(input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
    dropout=0.0, bidirectional=False)``: 3 gates, r z n.

        >>> GRU(65, 512, num_layers=2).total()
        2465280
    """

    input_size: Dim
    hidden_size: Dim
    num_layers: Dim = 1
    bias: bool = True
    batch_first: bool = False
    dropout: float = 0.0
    bidirectional: bool = False

    kind: ClassVar[str] = "GRU"
    summary: ClassVar[str] = "multi-layer GRU: 3 gates (r, z, n)"
    example: ClassVar[dict[str, Any]] = {"input_size": 512, "hidden_size": 512, "num_layers": 2}
    formula_args: ClassVar[dict[str, Any]] = {
        "input_size": "I",
        "hidden_size": "H",
        "num_layers": 2,
    }
    example_input: ClassVar[tuple[Shape, ...]] = ((100, 32, 512),)
    gates: ClassVar[tuple[str, ...]] = ("r", "z", "n")
    keras_layer: ClassVar[str] = "GRU"
    keras_gates: ClassVar[str] = "Keras orders the GRU gates z, r, h; PyTorch r, z, n."

    def equations(self) -> list[str]:
        return [
            "  r_t = σ(W_ir x_t + b_ir + W_hr h_(t-1) + b_hr)              reset gate",
            "  z_t = σ(W_iz x_t + b_iz + W_hz h_(t-1) + b_hz)              update gate",
            "  n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_(t-1) + b_hn))   new gate",
            "  h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_(t-1)",
        ]

    def keras_biases(self, bias: Dim) -> str:
        return (
            "PyTorch keeps two bias vectors per gate (b_ih and b_hh), as Keras' GRU does "
            "with reset_after=True (its default; a (2, 3·H) bias), so the counts agree; "
            "with reset_after=False Keras keeps one and has 3·H = "
            f"{count_str(bias)} fewer per layer and direction."
        )


@register
@frozen
class RNN(RecurrentSpec):
    """``nn.RNN(input_size, hidden_size, num_layers=1, nonlinearity='tanh', bias=True,
    batch_first=False, dropout=0.0, bidirectional=False)``: h_t = tanh(W_ih x + W_hh h + b).

        >>> RNN(65, 512, num_layers=2).total()
        821760
    """

    input_size: Dim
    hidden_size: Dim
    num_layers: Dim = 1
    nonlinearity: str = "tanh"
    bias: bool = True
    batch_first: bool = False
    dropout: float = 0.0
    bidirectional: bool = False

    kind: ClassVar[str] = "RNN"
    summary: ClassVar[str] = "multi-layer Elman RNN (tanh or relu): 1 gate"
    example: ClassVar[dict[str, Any]] = {"input_size": 65, "hidden_size": 128}
    formula_args: ClassVar[dict[str, Any]] = {"input_size": "I", "hidden_size": "H"}
    example_input: ClassVar[tuple[Shape, ...]] = ((100, 32, 65),)
    gates: ClassVar[tuple[str, ...]] = ("h",)
    keras_layer: ClassVar[str] = "SimpleRNN"

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_choice("nonlinearity", NONLINEARITIES)

    def equations(self) -> list[str]:
        f = "relu" if self.nonlinearity == "relu" else "tanh"
        return [f"  h_t = {f}(W_ih x_t + b_ih + W_hh h_(t-1) + b_hh)"]


class CellSpec(LayerSpec):
    """One recurrent cell: one layer, one direction, one time step."""

    gates: ClassVar[tuple[str, ...]]
    family: ClassVar[str] = "recurrent"
    output_names: ClassVar[tuple[str, ...]] = ("h'", "c'")
    size_fields: ClassVar[dict[str, int]] = {"input_size": 0, "hidden_size": 0}
    bool_fields: ClassVar[tuple[str, ...]] = ("bias",)

    input_size: Dim
    hidden_size: Dim
    bias: bool

    def __post_init__(self) -> None:
        self._check_fields()

    def params(self) -> Iterator[Param]:
        h = self.hidden_size
        return _gate_params(self.gates, h, self.input_size, h, self.bias, "", "", 1)

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        """h' (and c' for an LSTM cell) for an input (N, input_size) or (input_size,)."""
        shape, batched = _sequence_input(self, inputs, self.input_size, False, (1, 2))
        out: Shape = (shape[0], self.hidden_size) if batched else (self.hidden_size,)
        return (out, out) if len(self.gates) == 4 else (out,)

    def work(self, *inputs: Shape) -> Work:
        """One step of :meth:`RecurrentSpec.work`; the state is the output itself."""
        outputs = self.output_shapes(*inputs)
        shape = inputs[0]
        rows = product(shape[:-1])
        h, g = self.hidden_size, len(self.gates)
        macs, other, kept = _step(g, h, self.input_size, h, self.bias, False)
        kept += self.input_size
        if g == 1:  # h_(t-1) too: in a layer it is the previous step's output, kept there
            kept += h
        return Work(
            outputs,
            macs=rows * macs,
            other=rows * other,
            other_rule=GATE_RULE[g],
            saved=(
                Stored(
                    f"input and {KEPT_PER_STEP[g].removesuffix(' per step')}", (*shape[:-1], kept)
                ),
            ),
        )


@register
@frozen
class LSTMCell(CellSpec):
    """``nn.LSTMCell(input_size, hidden_size, bias=True)``.

    Example:

        >>> LSTMCell(512, 512).total()
        2101248
    """

    input_size: Dim
    hidden_size: Dim
    bias: bool = True

    kind: ClassVar[str] = "LSTMCell"
    summary: ClassVar[str] = "one LSTM step: 4 gates (i, f, g, o)"
    example: ClassVar[dict[str, Any]] = {"input_size": 512, "hidden_size": 512}
    formula_args: ClassVar[dict[str, Any]] = {"input_size": "I", "hidden_size": "H"}
    example_input: ClassVar[tuple[Shape, ...]] = ((32, 512),)
    gates: ClassVar[tuple[str, ...]] = ("i", "f", "g", "o")


@register
@frozen
class GRUCell(CellSpec):
    """``nn.GRUCell(input_size, hidden_size, bias=True)``."""

    input_size: Dim
    hidden_size: Dim
    bias: bool = True

    kind: ClassVar[str] = "GRUCell"
    summary: ClassVar[str] = "one GRU step: 3 gates (r, z, n)"
    example: ClassVar[dict[str, Any]] = {"input_size": 512, "hidden_size": 512}
    formula_args: ClassVar[dict[str, Any]] = {"input_size": "I", "hidden_size": "H"}
    example_input: ClassVar[tuple[Shape, ...]] = ((32, 512),)
    gates: ClassVar[tuple[str, ...]] = ("r", "z", "n")


@register
@frozen
class RNNCell(CellSpec):
    """``nn.RNNCell(input_size, hidden_size, bias=True, nonlinearity='tanh')``.

    torch's constructor accepts any ``nonlinearity`` and fails at the first forward;
    shapecalc refuses anything but ``'tanh'`` and ``'relu'`` at once.
    """

    input_size: Dim
    hidden_size: Dim
    bias: bool = True
    nonlinearity: str = "tanh"

    kind: ClassVar[str] = "RNNCell"
    summary: ClassVar[str] = "one Elman RNN step (tanh or relu)"
    example: ClassVar[dict[str, Any]] = {"input_size": 65, "hidden_size": 128}
    formula_args: ClassVar[dict[str, Any]] = {"input_size": "I", "hidden_size": "H"}
    example_input: ClassVar[tuple[Shape, ...]] = ((32, 65),)
    gates: ClassVar[tuple[str, ...]] = ("h",)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_choice("nonlinearity", NONLINEARITIES)
