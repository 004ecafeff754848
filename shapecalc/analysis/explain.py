"""Plain-words explanations of a model, as titled sections of text lines (no I/O).

:func:`explain` answers "what are the 512 hidden nodes?" for the model at hand: the cell
equations with the shape of every gate's matrix, how PyTorch stacks them, where the total
comes from term by term, and the usual confusions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shapecalc.core.declare import Architecture, arguments_of
from shapecalc.core.dims import Dim, dim_str, shape_str
from shapecalc.core.dims import count_str as _n
from shapecalc.core.model import Model
from shapecalc.layers.recurrent import MAX_LISTED_LAYERS, RecurrentSpec

__all__ = ["Section", "explain", "legend"]


@dataclass(frozen=True)
class Section:
    title: str
    lines: tuple[str, ...]


def explain(model: Model, convention: str = "pytorch") -> list[Section]:
    """Sections of text about ``model``. A model with a recurrent layer gets its cell
    equations, how PyTorch stores the gate matrices and the gate order in ``convention``
    (pytorch, keras, onnx); a model made from another architecture gets the legend of its
    sizes, from the architecture's declaration; every model gets where its total comes
    from."""
    rnns = [
        (layer.name, layer.spec) for layer in model.layers if isinstance(layer.spec, RecurrentSpec)
    ]
    sections: list[Section] = []
    if rnns:
        sections.extend(_explain_recurrent(model, *rnns[0]))
        sections.append(_gate_order(rnns[0][1].kind, convention))
    elif model.config is not None:
        sections.append(legend(model.config, model.argument_names))
        if model.unshaped:
            sections.append(
                Section(
                    "Fields that change no tensor",
                    ("Read and checked, and counted without: " + ", ".join(model.unshaped) + ".",),
                )
            )
        sections += [Section(t, tuple(lines)) for t, lines in model.config.explanation(model)]
    sections.append(_where_total_comes_from(model))
    if rnns:
        sections.append(_confusions(model, *rnns[0]))
    return sections


def legend(config: Architecture, names: Mapping[str, str] | None = None) -> Section:
    """What each argument of an architecture is, with its value and its letter in the
    formulas, as the architecture declares it; each named by its flag, or by ``names``
    (a config file's fields) when given: a size the file does not name is left out, an
    argument it does not name is the class's own."""
    lines = []
    for f, argument in arguments_of(type(config)):
        value = getattr(config, f.name)
        flag = "--" + f.name.replace("_", "-")
        if names:
            flag = names.get(f.name, "")
        if argument.kind == "size":
            if value is None or value == argument.unset:
                if names and not flag:
                    continue
                meaning = f"the default, {argument.default_text}" if argument.default_text else ""
                shown = f"{argument.letter} ({flag}) not set" + (f": {meaning}" if meaning else "")
            else:
                letter = argument.letter
                shown = letter if dim_str(value) == letter else f"{letter} = {dim_str(value)}"
                shown += f" ({flag or 'worked out'})"
            lines.append(f"{shown}: {argument.help}")
        elif value != f.default:
            lines.append(f"{f.name} = {value} ({flag or 'the class'}): {argument.help}")
    return Section("The sizes", tuple(lines))


def _input_of_layer(model: Model, lstm: RecurrentSpec, label: str) -> str:
    d = "2 directions × " if lstm.bidirectional else ""
    below = f"h_t of the layer below, {d}{'P' if lstm.projects else 'H'}"
    if not label.startswith("0"):
        return below
    if any(layer.name == "embedding" for layer in model.layers):
        first = "the token embedding, E"
    else:
        first = "the one-hot vector of a token, V"
    return f"layer 0 reads {first}, the others the {below}" if "." in label else first


def _layer_groups(lstm: RecurrentSpec) -> list[tuple[str, str, Dim, Dim]]:
    """``(label, name index, d_in, copies)``: layer 0, then the layers above it as one
    group (they all read the layer below, so they all have the same tensors)."""
    n = lstm.num_layers
    if not isinstance(n, int) or n > MAX_LISTED_LAYERS:  # the rows are blocks already
        return [(i.strip("{}"), i, d, c) for i, d, c in lstm.layer_blocks()]
    groups: list[tuple[str, str, Dim, Dim]] = [("0", "0", lstm.layer_input_size(0), 1)]
    if n > 1:
        label = "1" if n == 2 else f"1..{n - 1}"
        groups.append((label, "1", lstm.layer_input_size(1), n - 1))
    return groups


_NUMBER = {1: "one", 3: "three", 4: "four"}


def _stack(gates: tuple[str, ...], side: str) -> str:
    """``[W_ii; W_if; W_ig; W_io]``, or ``W_ih`` for a single gate."""
    if len(gates) == 1:
        return f"W_{side}h" if side != "b" else "b"
    return (
        "["
        + "; ".join(
            f"{'W' if side != 'b' else 'b'}_{side if side != 'b' else ''}{g}" for g in gates
        )
        + "]"
    )


def _explain_recurrent(model: Model, name: str, rnn: RecurrentSpec) -> list[Section]:
    h = rnn.hidden_size
    gates = rnn.gates
    count = len(gates)
    gh = count * h
    gh_text = f"{count}·H" if count > 1 else "H"
    h_out = rnn.output_hidden
    layers = rnn.num_layers
    groups = _layer_groups(rnn)
    d_ins = [d for _, _, d, _ in groups]
    lstm = rnn.cell_state
    state = "hidden state h_t and of its cell state c_t" if lstm else "hidden state h_t"
    if count > 1:
        per_gate = (
            f"Each of the {_NUMBER.get(count, count)} gates ({', '.join(gates)}) has its own "
            f"{_n(h)} × d_in input matrix, its own {_n(h)} × {_n(h_out)} recurrent matrix "
            "and its own biases."
        )
    else:
        per_gate = (
            f"The layer has one {_n(h)} × d_in input matrix, one {_n(h)} × {_n(h)} recurrent "
            "matrix and its biases."
        )
    what = [
        f"hidden_size {'H = ' if isinstance(h, int) else ''}{_n(h)} is the length of the "
        f"{rnn.kind}'s {state}: {_n(h)} numbers each, in every layer and every direction.",
        "It is neither the vocabulary nor the input size nor the number of time steps. " + per_gate,
        f"This model: {dim_str(layers)} layer{'' if layers == 1 else 's'}"
        + (
            ", two directions (forward and backward, outputs concatenated)"
            if rnn.bidirectional
            else ", one direction"
        )
        + "; d_in is "
        + "; ".join(
            f"{_n(d)} for layer{'s' if '.' in label else ''} {label} "
            f"({_input_of_layer(model, rnn, label)})"
            for label, _, d, _ in groups
        )
        + ".",
    ]
    shapes = (
        f"Shapes: each W on the x side is {_n(h)} × d_in; each on the h side is "
        f"{_n(h)} × {_n(h_out)}; each b is {_n(h)}; x_t has d_in numbers"
        + (f", c_t has {_n(h)}" if lstm else "")
        + f" and h_t {_n(h_out)}."
        + (" σ is the logistic sigmoid, ⊙ the elementwise product." if count > 1 else "")
    )
    cell = [*rnn.equations(), shapes]
    suffix = groups[0][1]
    order = f" stacked in gate order {', '.join(gates)}" if count > 1 else ""
    stacked = [
        f"{name}.weight_ih_l{suffix} = {_stack(gates, 'i')}{order}: "
        f"{shape_str((gh, d_ins[0]))} = ({gh_text}, d_in)",
        f"{name}.weight_hh_l{suffix} = {_stack(gates, 'h')}: {shape_str((gh, h_out))} = "
        f"({gh_text}, {'P' if rnn.projects else 'H'})",
    ]
    if rnn.bias:
        b_i = "[" + "; ".join(f"b_i{g}" for g in gates) + "]" if count > 1 else "b_ih"
        b_h = "[" + "; ".join(f"b_h{g}" for g in gates) + "]" if count > 1 else "b_hh"
        stacked.append(
            f"{name}.bias_ih_l{suffix} = {b_i} and {name}.bias_hh_l{suffix} = {b_h}: "
            f"{shape_str((gh,))} each"
        )
    else:
        stacked.append("bias=False: there are no b vectors at all")
    if rnn.projects:
        p = rnn.output_hidden
        stacked.append(f"{name}.weight_hr_l{suffix} = W_hr: {shape_str((p, h))} = (P, H)")
    if len(groups) > 1:
        label, index, d_in, _ = groups[1]
        names = (
            f"suffix _l{index}" if label == index else f"suffixes _l{label.replace('..', ' to _l')}"
        )
        many = "." in label
        stacked.append(
            f"Layer{'s' if many else ''} {label} {'have' if many else 'has'} the same tensors, "
            f"{names}; {'their' if many else 'its'} input is the h_t of the layer below, so "
            f"{name}.weight_ih_l{index} is {shape_str((gh, d_in))}"
            + (" (different from layer 0's)" if d_in != d_ins[0] else "")
            + "."
        )
    if rnn.bidirectional:
        stacked.append(
            "The backward direction has its own copy of every tensor, named with _reverse "
            "(weight_ih_l0_reverse, ...)."
        )
    stacked.append(
        "torch stores every weight as (out, in) and computes x·Wᵀ"
        + (
            f": the {gh_text} rows are the outputs of the {_NUMBER.get(count, count)} gates."
            if count > 1
            else "."
        )
    )
    per_layer = []
    for label, index, d_in, copies in groups:
        total, formula = _one_layer(model, name, index)
        same = _n(total) == dim_str(formula)
        text = (
            f"layer{'s' if '.' in label else ''} {label}: d_in = {_n(d_in)} -> {_n(total)}"
            + ("" if same else f" = {dim_str(formula)}")
            + " parameters"
        )
        if copies != 1:
            text += f" each, {_n(copies)} layers"
        per_layer.append(text)
    return [
        Section(f'What "hidden {_n(h)}" means', tuple(what)),
        Section(f"The {rnn.kind} cell (one layer, one direction, one time step)", tuple(cell)),
        Section(
            "How PyTorch stores the " + ("gate matrices" if count > 1 else "matrices"),
            tuple(stacked),
        ),
        Section(f"Parameters per {rnn.kind} layer", tuple(per_layer)),
    ]


def _gate_order(kind: str, convention: str) -> Section:
    """The gate blocks' order in the chosen framework, and in the others."""
    from shapecalc.analysis.conventions import CONVENTIONS, FRAMEWORK_NAMES, gate_order

    names = FRAMEWORK_NAMES
    lines = [
        f"{names[convention]} stacks the {kind} gate blocks as {gate_order(convention, kind)}."
    ]
    lines += [
        f"{names[other]}: {gate_order(other, kind)}" for other in CONVENTIONS if other != convention
    ]
    if kind != "RNN":
        lines.append(
            "Copying weights between frameworks means reordering these blocks along the "
            "gate axis (and transposing for Keras, whose kernels are stored (in, out))."
        )
    return Section(f"Gate order ({names[convention]})", tuple(lines))


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
    for group in model.groups():
        what = model.description(group) or model.describe(group)
        lines.append(
            f"{group} ({what}): {_n(model.subtotal(group))} "
            f"= {dim_str(model.subtotal_formula(group))}"
        )
    for tied, source in model.ties.items():
        lines.append(f"{tied} is the same tensor as {source}: counted once")
    lines.append(f"total: {_n(model.total)} = {dim_str(model.total_formula)}")
    return Section("Where the total comes from", tuple(lines))


def _confusions(model: Model, name: str, rnn: RecurrentSpec) -> Section:
    bias = next(
        (
            r.param.size
            for r in model.rows()
            if r.layer == name and r.param.name.startswith("bias_hh")
        ),
        None,
    )
    gh = f"{len(rnn.gates)}·H" if len(rnn.gates) > 1 else "H"
    if bias is None:
        biases = "With bias=False PyTorch and Keras agree: no bias vectors."
    else:
        biases = rnn.keras_biases(bias)
    order = rnn.keras_gates
    lines = [
        f'"Nodes" or "units" is H, the size of h_t{" (and c_t)" if rnn.cell_state else ""}.'
        f" The matrices are not H × H only: the input side is H × d_in"
        f"{' per gate' if len(rnn.gates) > 1 else ''}, and d_in is the embedding size, or V "
        "for a one-hot input.",
        biases,
        f"torch stores weights as (out, in), e.g. weight_ih_l0 is ({gh}, d_in); Keras stores "
        f"its kernel as (d_in, {gh}). {order}".rstrip(),
        "The character-level input and output are not H-sized: the vocabulary V enters "
        "through the embedding (or the one-hot input) and leaves through the head, a "
        "V × H matrix (W_hy in the classic RNN code) plus a V bias.",
    ]
    return Section("Common confusions", tuple(lines))
