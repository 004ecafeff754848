"""Plain-words explanations of a model, as titled sections of text lines (no I/O).

:func:`explain` answers "what are the 512 hidden nodes?" for the model at hand: the cell
equations with the shape of every gate's matrix, how PyTorch stacks them, where the total
comes from term by term, and the usual confusions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shapecalc.dims import Dim, dim_str, shape_str
from shapecalc.layers import LSTM
from shapecalc.model import Model

__all__ = ["Section", "explain"]

_LAYER_SUFFIX = re.compile(r"_l(\d+)(?:_reverse)?$")


@dataclass(frozen=True)
class Section:
    title: str
    lines: tuple[str, ...]


def _n(value: Dim) -> str:
    return f"{value:,}" if isinstance(value, int) else dim_str(value)


def explain(model: Model) -> list[Section]:
    """Sections of text about ``model``; models without an LSTM get the totals only."""
    lstms = [(layer.name, layer.spec) for layer in model.layers if isinstance(layer.spec, LSTM)]
    sections: list[Section] = []
    if lstms:
        sections.extend(_explain_lstm(model, *lstms[0]))
    sections.append(_where_total_comes_from(model))
    if lstms:
        sections.append(_confusions(model, *lstms[0]))
    return sections


def _input_of_layer(model: Model, lstm: LSTM, layer: int) -> str:
    if layer > 0:
        d = "2 directions × " if lstm.bidirectional else ""
        what = "P" if lstm.projects else "H"
        return f"h_t of layer {layer - 1}, {d}{what}"
    if any(layer.name == "embedding" for layer in model.layers):
        return "the token embedding, E"
    return "the one-hot vector of a token, V"


def _explain_lstm(model: Model, name: str, lstm: LSTM) -> list[Section]:
    h = lstm.hidden_size
    g4 = 4 * h
    h_out = lstm.output_hidden
    layers = lstm.num_layers
    d_ins = [lstm.layer_input_size(i) for i in range(layers if isinstance(layers, int) else 2)]
    what = [
        f"hidden_size H = {_n(h)} is the length of the LSTM's hidden state h_t and of its "
        f"cell state c_t: {_n(h)} numbers each, in every layer and every direction.",
        "It is neither the vocabulary nor the input size nor the number of time steps. "
        f"Each of the four gates (i, f, g, o) has its own {_n(h)} × d_in input matrix, its "
        f"own {_n(h)} × {_n(h_out)} recurrent matrix and its own biases.",
        f"This model: {dim_str(layers)} layer{'' if layers == 1 else 's'}"
        + (
            ", two directions (forward and backward, outputs concatenated)"
            if lstm.bidirectional
            else ", one direction"
        )
        + "; d_in is "
        + "; ".join(
            f"{_n(d)} for layer {i} ({_input_of_layer(model, lstm, i)})"
            for i, d in enumerate(d_ins)
        )
        + ".",
    ]
    proj = lstm.projects
    h_line = (
        f"  h_t = W_hr (o_t ⊙ tanh(c_t))                    projected: W_hr is "
        f"{_n(lstm.proj_size)} × {_n(h)}, so h_t has {_n(h_out)} numbers"
        if proj
        else "  h_t = o_t ⊙ tanh(c_t)"
    )
    cell = [
        "  i_t = σ(W_ii x_t + b_ii + W_hi h_(t-1) + b_hi)      input gate",
        "  f_t = σ(W_if x_t + b_if + W_hf h_(t-1) + b_hf)      forget gate",
        "  g_t = tanh(W_ig x_t + b_ig + W_hg h_(t-1) + b_hg)   cell candidate",
        "  o_t = σ(W_io x_t + b_io + W_ho h_(t-1) + b_ho)      output gate",
        "  c_t = f_t ⊙ c_(t-1) + i_t ⊙ g_t",
        h_line,
        f"Shapes: each W_i*, W_f*, W_g*, W_o* on the x side is {_n(h)} × d_in; each on the "
        f"h side is {_n(h)} × {_n(h_out)}; each b is {_n(h)}; x_t has d_in numbers, c_t has "
        f"{_n(h)} and h_t {_n(h_out)}. σ is the logistic sigmoid, ⊙ the elementwise product.",
    ]
    stacked = [
        f"{name}.weight_ih_l0 = [W_ii; W_if; W_ig; W_io] stacked in gate order i, f, g, o: "
        f"{shape_str((g4, d_ins[0]))} = (4·H, d_in)",
        f"{name}.weight_hh_l0 = [W_hi; W_hf; W_hg; W_ho]: {shape_str((g4, h_out))} = "
        + ("(4·H, P)" if proj else "(4·H, H)"),
    ]
    if lstm.bias:
        stacked.append(
            f"{name}.bias_ih_l0 = [b_ii; b_if; b_ig; b_io] and {name}.bias_hh_l0 = "
            f"[b_hi; b_hf; b_hg; b_ho]: {shape_str((g4,))} each"
        )
    else:
        stacked.append("bias=False: there are no b vectors at all")
    if proj:
        stacked.append(f"{name}.weight_hr_l0 = W_hr: {shape_str((lstm.proj_size, h))} = (P, H)")
    if len(d_ins) > 1:
        stacked.append(
            f"Layer 1 has the same tensors with suffix _l1; its input is layer 0's h_t, so "
            f"{name}.weight_ih_l1 is {shape_str((g4, d_ins[1]))}"
            + (" (different from layer 0's)" if d_ins[1] != d_ins[0] else "")
            + "."
        )
    if lstm.bidirectional:
        stacked.append(
            "The backward direction has its own copy of every tensor, named with _reverse "
            "(weight_ih_l0_reverse, ...)."
        )
    stacked.append(
        "torch stores every weight as (out, in) and computes x·Wᵀ: the 4·H rows are the "
        "outputs of the four gates."
    )
    counts = _per_layer(model, name)
    per_layer = [
        f"layer {i}: d_in = {_n(d)} -> {_n(counts[i][0])} = {dim_str(counts[i][1])} parameters"
        for i, d in enumerate(d_ins)
    ]
    return [
        Section(f'What "hidden {_n(h)}" means', tuple(what)),
        Section("The LSTM cell (one layer, one direction, one time step)", tuple(cell)),
        Section("How PyTorch stores the gate matrices", tuple(stacked)),
        Section("Parameters per LSTM layer", tuple(per_layer)),
    ]


def _per_layer(model: Model, name: str) -> dict[int, tuple[Dim, Dim]]:
    """Count and formula of each recurrent layer index, both directions, from the rows."""
    out: dict[int, tuple[Dim, Dim]] = {}
    for row in model.rows():
        match = _LAYER_SUFFIX.search(row.param.name)
        if row.layer == name and match:
            count, formula = out.get(int(match.group(1)), (0, 0))
            out[int(match.group(1))] = (count + row.count, formula + row.formula)
    return out


def _where_total_comes_from(model: Model) -> Section:
    lines = []
    for layer in model.layers:
        lines.append(
            f"{layer.name} ({layer.description}): {_n(model.layer_total(layer.name))} "
            f"= {dim_str(model.layer_formula(layer.name))}"
        )
    for tied, source in model.ties.items():
        lines.append(f"{tied} is the same tensor as {source}: counted once")
    lines.append(f"total: {_n(model.total)} = {dim_str(model.total_formula)}")
    return Section("Where the total comes from", tuple(lines))


def _confusions(model: Model, name: str, lstm: LSTM) -> Section:
    bias = [r.count for r in model.rows() if r.name == f"{name}.bias_hh_l0"]
    lines = [
        '"Nodes" or "units" is H, the size of h_t (and c_t). The matrices are not H × H '
        "only: the input side is H × d_in per gate, and d_in is the embedding size, or V "
        "for a one-hot input.",
        "PyTorch keeps two bias vectors per gate (b_ih and b_hh, for cuDNN compatibility); "
        "the textbook equations and Keras keep one, so Keras' LSTM has 4·H = "
        f"{_n(bias[0])} fewer parameters per layer and direction."
        if bias
        else "With bias=False PyTorch and Keras agree: no bias vectors.",
        "torch stores weights as (out, in), e.g. weight_ih_l0 is (4·H, d_in); Keras stores "
        "its kernel as (d_in, 4·H). Keras names the gates i, f, c, o: the same order as "
        "PyTorch's i, f, g, o.",
        "The character-level input and output are not H-sized: the vocabulary V enters "
        "through the embedding (or the one-hot input) and leaves through the head, a "
        "V × H matrix (W_hy in the classic RNN code) plus a V bias.",
    ]
    return Section("Common confusions", tuple(lines))
