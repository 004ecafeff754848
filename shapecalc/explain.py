"""Plain-words explanations of a model, as titled sections of text lines (no I/O).

:func:`explain` answers "what are the 512 hidden nodes?" for the model at hand: the cell
equations with the shape of every gate's matrix, how PyTorch stacks them, where the total
comes from term by term, and the usual confusions.
"""

from __future__ import annotations

from dataclasses import dataclass

from shapecalc.dims import Dim, dim_str, shape_str
from shapecalc.layers import LSTM
from shapecalc.model import Model

__all__ = ["Section", "explain"]


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


def _input_of_layer(model: Model, lstm: LSTM, label: str) -> str:
    d = "2 directions × " if lstm.bidirectional else ""
    below = f"h_t of the layer below, {d}{'P' if lstm.projects else 'H'}"
    if not label.startswith("0"):
        return below
    if any(layer.name == "embedding" for layer in model.layers):
        first = "the token embedding, E"
    else:
        first = "the one-hot vector of a token, V"
    return f"layer 0 reads {first}, the others the {below}" if "." in label else first


def _layer_groups(lstm: LSTM) -> list[tuple[str, str, Dim, Dim]]:
    """``(label, name index, d_in, copies)``: layer 0, then the layers above it as one
    group (they all read the layer below, so they all have the same tensors)."""
    n = lstm.num_layers
    if not isinstance(n, int):
        return [(i.strip("{}"), i, d, c) for i, d, c in lstm.layer_blocks()]
    groups: list[tuple[str, str, Dim, Dim]] = [("0", "0", lstm.layer_input_size(0), 1)]
    if n > 1:
        label = "1" if n == 2 else f"1..{n - 1}"
        groups.append((label, "1", lstm.layer_input_size(1), n - 1))
    return groups


def _explain_lstm(model: Model, name: str, lstm: LSTM) -> list[Section]:
    h = lstm.hidden_size
    g4 = 4 * h
    h_out = lstm.output_hidden
    layers = lstm.num_layers
    groups = _layer_groups(lstm)
    d_ins = [d for _, _, d, _ in groups]
    what = [
        f"hidden_size {'H = ' if isinstance(h, int) else ''}{_n(h)} is the length of the "
        f"LSTM's hidden state h_t and of its cell state c_t: {_n(h)} numbers each, "
        "in every layer and every direction.",
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
            f"{_n(d)} for layer{'s' if '.' in label else ''} {label} "
            f"({_input_of_layer(model, lstm, label)})"
            for label, _, d, _ in groups
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
    first = f"{name}.weight_ih_l{groups[0][1]}"
    suffix = groups[0][1]
    stacked = [
        f"{first} = [W_ii; W_if; W_ig; W_io] stacked in gate order i, f, g, o: "
        f"{shape_str((g4, d_ins[0]))} = (4·H, d_in)",
        f"{name}.weight_hh_l{suffix} = [W_hi; W_hf; W_hg; W_ho]: {shape_str((g4, h_out))} = "
        + ("(4·H, P)" if proj else "(4·H, H)"),
    ]
    if lstm.bias:
        stacked.append(
            f"{name}.bias_ih_l{suffix} = [b_ii; b_if; b_ig; b_io] and {name}.bias_hh_l{suffix} "
            f"= [b_hi; b_hf; b_hg; b_ho]: {shape_str((g4,))} each"
        )
    else:
        stacked.append("bias=False: there are no b vectors at all")
    if proj:
        stacked.append(
            f"{name}.weight_hr_l{suffix} = W_hr: {shape_str((lstm.proj_size, h))} = (P, H)"
        )
    if len(groups) > 1:
        label, index, d_in, _ = groups[1]
        names = (
            f"suffix _l{index}" if label == index else f"suffixes _l{label.replace('..', ' to _l')}"
        )
        many = "." in label
        stacked.append(
            f"Layer{'s' if many else ''} {label} {'have' if many else 'has'} the same tensors, "
            f"{names}; {'their' if many else 'its'} input is the h_t of the layer below, so "
            f"{name}.weight_ih_l{index} is {shape_str((g4, d_in))}"
            + (" (different from layer 0's)" if d_in != d_ins[0] else "")
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
    per_layer = []
    for label, index, d_in, copies in groups:
        count, formula = _one_layer(model, name, index)
        same = _n(count) == dim_str(formula)
        text = (
            f"layer{'s' if '.' in label else ''} {label}: d_in = {_n(d_in)} -> {_n(count)}"
            + ("" if same else f" = {dim_str(formula)}")
            + " parameters"
        )
        if copies != 1:
            text += f" each, {_n(copies)} layers"
        per_layer.append(text)
    return [
        Section(f'What "hidden {_n(h)}" means', tuple(what)),
        Section("The LSTM cell (one layer, one direction, one time step)", tuple(cell)),
        Section("How PyTorch stores the gate matrices", tuple(stacked)),
        Section("Parameters per LSTM layer", tuple(per_layer)),
    ]


def _one_layer(model: Model, name: str, index: str) -> tuple[Dim, Dim]:
    """Count and formula of one recurrent layer (both directions), from the rows."""
    count: Dim = 0
    formula: Dim = 0
    for row in model.rows():
        base = row.param.name.removesuffix("_reverse")
        if row.layer == name and base.endswith(f"_l{index}"):
            count = count + row.param.size
            formula = formula + row.template.size
    return count, formula


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
