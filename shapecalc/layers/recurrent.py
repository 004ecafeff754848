"""Recurrent layers: ``torch.nn.LSTM`` (and the shared machinery of the RNN family).

PyTorch's ``RNNBase`` builds, for each layer ``l`` and direction (``""`` then
``"_reverse"``), the tensors

- ``weight_ih_l{l}``: ``(G·H, d_in)`` where ``d_in`` is ``input_size`` for layer 0 and
  ``D·H_out`` above it (``H_out`` is ``proj_size`` when set, else ``hidden_size``);
- ``weight_hh_l{l}``: ``(G·H, H_out)``;
- ``bias_ih_l{l}`` and ``bias_hh_l{l}``: ``(G·H,)`` each, when ``bias``;
- ``weight_hr_l{l}``: ``(proj_size, H)``, LSTM only, when ``proj_size > 0``;

with ``G`` gates stacked along the first dimension (LSTM: 4, i f g o).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from shapecalc.dims import Dim, dim_str
from shapecalc.spec import LayerSpec, Param, less_than, register

__all__ = ["LSTM", "RecurrentSpec"]


def _compact(value: Dim) -> str:
    """``L-1``: a dim without spaces, for parameter names."""
    return dim_str(value).replace(" ", "")


class RecurrentSpec(LayerSpec):
    """What every multi-layer recurrent spec shares; subclasses set the gates."""

    #: gate names in PyTorch's stacking order; their number is the only difference
    gates: ClassVar[tuple[str, ...]]

    input_size: Dim
    hidden_size: Dim
    num_layers: Dim
    bias: bool
    batch_first: bool
    dropout: float
    bidirectional: bool

    size_fields: ClassVar[dict[str, int]] = {"input_size": 1, "hidden_size": 1, "num_layers": 1}
    bool_fields: ClassVar[tuple[str, ...]] = ("bias", "batch_first", "bidirectional")

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
                f"got {dropout!r}",
            )
        object.__setattr__(self, "dropout", float(dropout))

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_hidden(self) -> Dim:
        """``H_out``: the size of h_t (``proj_size`` when projecting)."""
        return self.hidden_size

    def layer_input_size(self, layer: int) -> Dim:
        """``d_in`` of layer ``layer``: ``input_size``, then ``D·H_out`` above layer 0."""
        return self.input_size if layer == 0 else self.num_directions * self.output_hidden

    def _gate_text(self) -> str:
        return ", ".join(self.gates)

    def layer_blocks(self) -> list[tuple[str, Dim, Dim]]:
        """``(index, d_in, copies)`` per layer; with a symbolic ``num_layers`` the layers
        above 0 form one repeated block, and layer 0 joins it when its input size is the same.

        >>> LSTM("E", "H", num_layers="L").layer_blocks()
        [('0', Expr('E'), 1), ('{1..L-1}', Expr('H'), Expr('L - 1'))]
        """
        n = self.num_layers
        if isinstance(n, int):
            return [(str(i), self.layer_input_size(i), 1) for i in range(n)]
        first, rest = self.layer_input_size(0), self.layer_input_size(1)
        if first == rest:
            return [(f"{{0..{_compact(n - 1)}}}", rest, n)]
        return [("0", first, 1), (f"{{1..{_compact(n - 1)}}}", rest, n - 1)]

    def params(self) -> Iterator[Param]:
        g = len(self.gates)
        h, h_out = self.hidden_size, self.output_hidden
        gates = self._gate_text()
        for index, d_in, copies in self.layer_blocks():
            for direction in range(self.num_directions):
                suffix = f"_l{index}" + ("_reverse" if direction else "")
                where = ", backward direction" if direction else ""
                if copies != 1:
                    where += f"; one per layer, {dim_str(copies)} layers"
                yield Param(
                    "weight_ih" + suffix,
                    (g * h, d_in),
                    f"input-to-hidden weights of gates {gates} stacked: "
                    f"{g} × ({dim_str(h)} × {dim_str(d_in)}){where}",
                    repeat=copies,
                )
                yield Param(
                    "weight_hh" + suffix,
                    (g * h, h_out),
                    f"hidden-to-hidden (recurrent) weights of gates {gates} stacked: "
                    f"{g} × ({dim_str(h)} × {dim_str(h_out)}){where}",
                    repeat=copies,
                )
                if self.bias:
                    yield Param(
                        "bias_ih" + suffix,
                        (g * h,),
                        f"input-side biases of gates {gates}: {g} × {dim_str(h)}{where}",
                        repeat=copies,
                    )
                    yield Param(
                        "bias_hh" + suffix,
                        (g * h,),
                        f"hidden-side biases of gates {gates}: {g} × {dim_str(h)} "
                        f"(PyTorch's second bias; Keras has one){where}",
                        repeat=copies,
                    )
                yield from self._extra_params(suffix, where, copies)

    def _extra_params(self, suffix: str, where: str, copies: Dim) -> Iterator[Param]:
        return iter(())


@register
@dataclass(frozen=True)
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
    gates: ClassVar[tuple[str, ...]] = ("i", "f", "g", "o")
    size_fields: ClassVar[dict[str, int]] = {
        **RecurrentSpec.size_fields,
        "proj_size": 0,
    }

    def __post_init__(self) -> None:
        self._check_fields()
        self._check_recurrent()
        if less_than(self.proj_size, self.hidden_size) is False:
            self._fail(
                "proj_size",
                self.proj_size,
                "proj_size must be smaller than hidden_size",
                f"{dim_str(self.proj_size)} >= {dim_str(self.hidden_size)}",
                "hidden_size",
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
