"""The text of every report, shared by the writers: table cells, footers, cost rows, the
name tree. Plain strings only; each writer lays them out (rich, Markdown, LaTeX, JSON)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shapecalc.core.dims import Dim, count_noun, count_str, dim_str, known, shape_str
from shapecalc.core.model import Model, Row
from shapecalc.core.spec import Param, Shape
from shapecalc.core.tree import join_name, split_name
from shapecalc.core.units import DTYPE_BYTES, human_bytes, human_count, human_flops

if TYPE_CHECKING:
    from shapecalc.analysis.conventions import Converted
    from shapecalc.analysis.cost import Cost, LayerCost
    from shapecalc.analysis.model_parallel import ModelParallel
    from shapecalc.analysis.parallel import PerGpu, PlanSweep
    from shapecalc.analysis.sweep import Point, Sweep

__all__ = [
    "COLUMNS",
    "NameNode",
    "Numbers",
    "amount",
    "buffer_lines",
    "cost_cells",
    "cost_columns",
    "cost_summary",
    "fit_cell",
    "fit_headings",
    "fit_legend",
    "flow_text",
    "frontier_cells",
    "kept_column",
    "kept_lines",
    "memory_accounts",
    "memory_rows",
    "memory_title",
    "model_parallel_rows",
    "name_tree",
    "per_gpu_rows",
    "plan_sweep_rows",
    "rule_lines",
    "state_lines",
    "state_rows",
    "summary_lines",
    "table_rows",
    "times",
    "title",
]

#: the storage types the summary shows (JSON carries every one)
SUMMARY_DTYPES = ("fp32", "bf16")
COLUMNS = ("Layer", "Parameter", "Shape", "Count", "Formula", "Role")


def times(param: Param, number: Callable[[Dim], str] = count_str, sign: str = "×") -> str:
    """A count; for a repeated block ``(L - 1) × 4·H²``: copies times one tensor's count
    (``number`` writes a count, ``sign`` the times)."""
    if param.repeat == 1:
        return number(param.count)
    copies = number(param.repeat)
    copies = f"({copies})" if " " in copies else copies
    size = number(param.size)
    size = f"({size})" if " + " in size or " - " in size else size  # (L - 3) × (a + b)
    return f"{copies} {sign} {size}"


def amount(value: Dim) -> str:
    """``847,673,700`` or ``8,476,737·B·T``."""
    return count_str(value) if isinstance(value, int) else value.grouped()


def bytes_text(size: int) -> str:
    """``17.1 MB (17,076,484 bytes)``."""
    return f"{human_bytes(size)} ({size:,} bytes)"


def title(model: Model) -> str:
    return model.name + (f" ({model.describe_sizes()})" if model.sizes else "")


# -- the parameter table --------------------------------------------------------------------
def _total_line(model: Model) -> str:
    total = model.total
    text = _amount(total, "parameter")
    if model.total_formula != total:
        text += f" = {dim_str(model.total_formula)}"
    return text


def _active_line(model: Model) -> str:
    """What one token uses (the top k routed experts and every other tensor), in the
    conventions published figures use: the embedding table and head counted whole, the
    table left out (the head multiplies every token; gpt-oss, DeepSeek), or both (Qwen's
    and GLM's non-embedding figures)."""
    active = model.active
    text = _amount(active, "parameter", " per token")
    if model.active_formula != active:
        text += f" = {dim_str(model.active_formula)}"
    if model.embeddings == 0 and model.head_params == 0:
        return text
    table = active - model.embeddings
    text += f"; {_amount(table)} without the embedding table"
    if model.head_params != 0:
        text += f", {_amount(table - model.head_params)} without it and the head"
    return text


def _amount(value: Dim, noun: str = "", after: str = "") -> str:
    """``12,879,925,248 parameters per token (12.9 B)``: the count, its noun (none when
    empty) and what follows it, then the count in words."""
    text = (count_noun(value, noun) if noun else count_str(value)) + after
    return text + (f" ({human_count(value)})" if isinstance(value, int) else "")


def _memory_line(model: Model) -> str:
    if model.quantization is not None:  # the stored tensors at theirs, the rest at each
        return "quantized tensors as stored, the others at " + " · at ".join(_memory_parts(model))
    return " · ".join(_memory_parts(model))


def _trainable_line(model: Model) -> str:
    """The trainable count and, under a quantization, what is not trained."""
    text = count_str(model.trainable)
    if model.quantization is None:
        return text
    frozen: dict[str, Dim] = {}
    for row in model.rows():
        if not row.param.trainable and not row.tied_to:
            key = row.param.dtype or "at the weights' dtype"
            frozen[key] = frozen.get(key, 0) + row.param.count
    said = ", ".join(f"{count_str(n)} {d}" for d, n in frozen.items())
    return f"{text}; not trained: {said}"


def _memory_parts(model: Model) -> list[str]:
    parts = []
    for dtype in SUMMARY_DTYPES:
        size = model.bytes(dtype)
        if isinstance(size, int):
            parts.append(f"{dtype} {bytes_text(size)}")
        else:
            parts.append(f"{dtype} {DTYPE_BYTES[dtype]} bytes per parameter")
    return parts


def _stored_line(model: Model) -> str:
    return (
        f"{count_str(model.total)} numbers in the stored tensors, {model.quantization.describe()}"
    )


def summary_lines(model: Model) -> list[tuple[str, str]]:
    """The footer: (label, text) pairs shared by every writer."""
    lines = [("Total", _total_line(model.unquantized or model))]
    if model.quantization is not None:  # the parameters above, the stored tensors here
        lines.append(("Stored", _stored_line(model)))
    if model.routed:
        lines.append(("Active", _active_line(model.unquantized or model)))
    if model.trainable != model.total:
        lines.append(("Trainable", _trainable_line(model)))
    lines.append(("Memory", _memory_line(model)))
    for tied, source in model.ties.items():
        lines.append(("Tied", f"{tied} is {source}: one tensor, counted once"))
    if model.sizes:
        lines.append(("Sizes", model.describe_sizes()))
    lines.extend(("Note", note) for note in model.notes)
    return lines


@dataclass(frozen=True)
class Numbers:
    """How a writer writes the numbers of the parameter table: a tensor's count (a block's
    as copies times one), a count or formula alone, a shape. Plain text by default; the
    LaTeX writer passes math mode."""

    count: Callable[[Param], str] = times
    number: Callable[[Dim], str] = count_str
    shape: Callable[[Shape], str] = shape_str


def _param_cells(group: str, row: Row, numbers: Numbers) -> list[str]:
    if row.tied_to:
        count, role = "tied", f"the same tensor as {row.tied_to} (counted there): {row.role}"
    else:
        count, role = numbers.count(row.param), row.role
    return [group, row.name, numbers.shape(row.shape), count, numbers.count(row.template), role]


def _node_cells(model: Model, group: str, path: str, numbers: Numbers) -> list[str]:
    return [
        group,
        path,
        "",
        numbers.number(model.subtotal(path)),
        numbers.number(model.subtotal_formula(path)),
        model.describe(path),
    ]


def table_rows(
    model: Model, depth: int | None = None, numbers: Numbers = Numbers()
) -> Iterator[tuple[list[str], bool]]:
    """Table cells in COLUMNS order, group by group, each group closed by its subtotal (the
    flag is True on subtotal rows). With ``depth``, names longer than ``depth`` parts are
    summed into their node at that depth (one row: count, formula, what the node is; its
    shape cell empty). ``numbers`` writes the counts, formulas and shapes."""
    groups = model.groups()
    items: list[tuple[str, list[str]]] = []  # (group whose subtotal follows, or "", cells)
    shown: set[str] = set()
    for row in model.rows():
        parts = split_name(row.name)
        if depth is None or len(parts) <= depth:
            items.append((row.group, _param_cells(row.group, row, numbers)))
            continue
        node = join_name(*parts[:depth])
        if node in shown:
            continue
        shown.add(node)
        inside = len(split_name(row.group)) < depth  # else the node is its group, or above
        items.append(
            (
                row.group if inside else "",
                _node_cells(model, row.group if inside else "", node, numbers),
            )
        )
    closing = len(groups) > 1
    for i, (group, cells) in enumerate(items):
        first = i == 0 or items[i - 1][1][0] != cells[0]
        yield [cells[0] if first else "", *cells[1:]], False
        last = i + 1 == len(items) or items[i + 1][1][0] != cells[0]
        if closing and last and group:
            yield _subtotal_cells(model, group, numbers), True


def _subtotal_cells(model: Model, group: str, numbers: Numbers) -> list[str]:
    return [
        "",
        f"{group} subtotal",
        "",
        numbers.number(model.subtotal(group)),
        numbers.number(model.subtotal_formula(group)),
        model.describe(group),
    ]


def buffer_lines(model: Model, depth: int | None = None) -> list[tuple[str, str, str, str]]:
    """The buffers as (name, shape, count, role); with ``depth``, those of longer names
    summed into one line per node at that depth."""
    lines: list[tuple[str, str, str, str]] = []
    summed: dict[str, list[Param]] = {}
    for name, buffer in model.buffer_rows():
        parts = split_name(name)
        if depth is None or len(parts) <= depth:
            lines.append((name, shape_str(buffer.shape), times(buffer), buffer.role))
        else:
            node = join_name(*parts[:depth])
            if node not in summed:
                summed[node] = []
                lines.append((node, "", "", ""))
            summed[node].append(buffer)
    out = []
    for name, shape, count, role in lines:
        if name in summed and not shape:
            found = summed[name]
            total = sum((b.count for b in found), start=0)
            many = sum((b.repeat for b in found), start=0)
            what = f"{count_str(many)} buffers, {count_str(total)} numbers"
            out.append((name, "", count_str(total), what))
        else:
            out.append((name, shape, count, role))
    return out


# -- the tree of names ------------------------------------------------------------------------
@dataclass
class NameNode:
    """A node of the name tree: a module (children) or a parameter (``row``)."""

    name: str
    path: str
    count: Dim = 0
    formula: Dim = 0
    row: Row | None = None
    children: dict[str, NameNode] = field(default_factory=dict)


def name_tree(model: Model) -> NameNode:
    """The rows as a tree of their dotted names (a run's range is one part), each node
    with the count and formula of what is under it, shared tensors counted once."""
    root = NameNode(model.name, "")
    for row in model.rows():
        counted, formula = row.counted, 0 if row.tied_to else row.template.count
        node = root
        node.count, node.formula = node.count + counted, node.formula + formula
        parts = split_name(row.name)
        for i, part in enumerate(parts):
            child = node.children.get(part)
            if child is None:
                child = node.children[part] = NameNode(part, join_name(*parts[: i + 1]))
            child.count, child.formula = child.count + counted, child.formula + formula
            node = child
        node.row = row
    return root


# -- shapes, compute and memory ----------------------------------------------------------------
def flow_text(inputs: tuple[Shape, ...], outputs: tuple[Shape, ...]) -> str:
    """``input (32, 512) -> output (32, 65)``."""
    return (
        f"input {', '.join(shape_str(s) for s in inputs)} -> "
        f"output {', '.join(shape_str(s) for s in outputs)}"
    )


def outputs_cell(layer: LayerCost) -> str:
    shapes = layer.outputs
    names = layer.spec.output_names
    if len(shapes) == 1 or len(names) < len(shapes):
        return ", ".join(shape_str(s) for s in shapes)
    return ", ".join(f"{n} {shape_str(s)}" for n, s in zip(names, shapes, strict=False))


def memory_accounts(cost: Cost) -> tuple[str, ...]:
    """The memory accounts a report shows: a training step's (with an optimizer) and
    an inference's, each its own table."""
    return ("inference",) if cost.training == "none" else ("training", "inference")


def memory_title(cost: Cost, account: str = "inference") -> str:
    """``Memory in training (adamw, mixed precision)`` or ``Memory at inference (bf16)``."""
    if account == "training":
        mixed = ", mixed precision" if cost.mixed_precision else ""
        return f"Memory in training ({cost.training}, {cost.dtype}{mixed})"
    return f"Memory at inference ({cost.dtype}, {cost.describe_input()})"


def kept_column(cost: Cost, memory: bool) -> bool:
    """The per-layer table's column of bytes kept for backward: with --memory when
    training (at inference nothing is kept)."""
    return memory and cost.training != "none"


def cost_columns(shapes: bool, flops: bool, memory: bool) -> list[str]:
    columns = ["Layer"]
    if shapes:
        columns += ["Input", "Output"]
    if flops:
        columns += ["MACs", "FLOPs fwd", "FLOPs bwd"]
    if memory:
        columns.append("Kept (bytes)")
    return columns


def _layer_name(layer: LayerCost) -> str:
    return layer.name or layer.spec.kind


def cost_cells(
    cost: Cost, shapes: bool, flops: bool, memory: bool
) -> Iterator[tuple[list[str], bool]]:
    """Per-layer cells, then the total row (flag True)."""
    for layer in cost.layers:
        cells = [_layer_name(layer)]
        if shapes:
            cells += [", ".join(shape_str(s) for s in layer.inputs), outputs_cell(layer)]
        if flops:
            cells += [amount(layer.macs), amount(layer.forward_flops), amount(layer.backward_flops)]
        if memory:
            cells.append(amount(cost.kept_bytes(layer)))
        yield cells, False
    if len(cost.layers) > 1 and (flops or memory):
        total = ["total"]
        if shapes:
            total += ["", ""]
        if flops:
            total += [amount(cost.macs), amount(cost.forward_flops), amount(cost.backward_flops)]
        if memory:
            total.append(amount(cost.activation_bytes))
        yield total, True


def _flops_phrase(cost: Cost) -> str:
    """``848 MFLOPs per forward at B=1, T=100`` or, symbolic, per token."""
    forward = cost.forward_flops
    if isinstance(forward, int):
        return f"{human_flops(forward)} per forward at {cost.describe_input()}"
    per = cost.per_token(forward)
    if isinstance(per, int):
        unit = "token" if cost.seq_len is not None else "sample"
        return f"{human_flops(per)} per {unit} per forward ({amount(forward)} in all)"
    return f"{amount(forward)} FLOPs per forward at {cost.describe_input()}"


def cost_summary(cost: Cost) -> str:
    """The one-line footer: ``4.27 M params · 17.1 MB fp32 · 848 MFLOPs per forward at
    B=1, T=100``."""
    total = cost.model.parameters
    parts = [
        f"{human_count(total) if isinstance(total, int) else amount(total)} "
        f"param{'' if total == 1 else 's'}"
    ]
    size = cost.model.bytes(cost.dtype)
    parts.append(
        f"{human_bytes(size)} {cost.dtype}"
        if isinstance(size, int)
        else f"{amount(size)} bytes {cost.dtype}"
    )
    parts.append(_flops_phrase(cost))
    return " · ".join(parts)


def memory_rows(cost: Cost, account: str = "inference") -> list[tuple[str, str, str]]:
    """The lines of one account (:func:`memory_accounts`) and its total."""

    def bytes_cell(value: Dim) -> str:
        return bytes_text(value) if isinstance(value, int) else amount(value)

    if account == "training":
        rows = [(m.label, bytes_cell(m.bytes), m.rule) for m in cost.memory if m.training]
        rule = f"{cost.training}, everything above but the recomputed line"
        if not any(m.label == "activations, recomputed" for m in cost.memory):
            rule = f"{cost.training}, everything above"
        rows.append(("training total", bytes_cell(cost.training_bytes), rule))
        return rows
    return [(m.label, bytes_cell(m.bytes), m.rule) for m in cost.memory if m.inference]


def model_parallel_rows(split: ModelParallel) -> list[tuple[str, str, str]]:
    """The most loaded rank's tensors of a model-parallel run: (name, count, shape on the
    rank of the whole shape and how it is split), then its total and notes."""
    rows = [(name, f"{count:,}", rule) for name, count, rule in split.tensor_rows()]
    what, count, rule = split.rows()[0]
    rows.append((what, f"{count:,}", rule))
    rows += [("note", "", note) for note in split.ranks.notes]
    return rows


def per_gpu_rows(per_gpu: PerGpu) -> list[tuple[str, str, str]]:
    """The per-GPU account of a data-parallel run: (what, bytes, rule), the totals last."""
    return [
        (what, bytes_text(size) if isinstance(size, int) else amount(size), rule)
        for what, size, rule in per_gpu.rows()
    ]


def plan_sweep_rows(table: PlanSweep) -> tuple[list[str], list[list[Any]]]:
    """A parallel sweep as (header, rows): the varying plan fields, then the model
    states, what is gathered, the activations and the per-GPU total in bytes (and the CPU
    memory when any plan offloads)."""
    from shapecalc.analysis.parallel import PlanSweep as Sweep_

    columns = ["states", "gathered", "activations", "per GPU", "CPU"]
    sums = [Sweep_.summary(per) for _, per in table.points]
    if not any(s["CPU"] for s in sums):
        columns.pop()
    header = [name for name, _ in table.axes] + columns
    rows = [
        [*values, *(s[c] for c in columns)]
        for (values, _), s in zip(table.points, sums, strict=True)
    ]
    return header, rows


def state_rows(cost: Cost) -> list[tuple[str, str, str, str, str]]:
    """The inference state by kind of layer: (kind, layers, bytes each, bytes, what one
    layer holds)."""

    rows: list[tuple[str, str, str, str, str]] = []
    groups = cost.state_groups()
    if all(g.kind == "recurrent" for g in groups):
        return rows  # an RNN module's h and c (its layers inside it): the account says it
    for g in groups:
        kind = g.kind + (f", window {g.sliding_window:,}" if g.sliding_window else "")
        held = "; ".join(  # a shape whole on its line: no space to break it at
            f"{name} {shape_str(shape).replace(', ', ',')}" for name, shape, _ in g.tensors
        ) + ("" if g.grows else " (fixed: it does not grow with the context)")
        rows.append((kind, dim_str(g.layers), amount(g.each), amount(g.total), held))
    return rows


def state_lines(cost: Cost) -> list[str]:
    """Where the state outgrows the weights (the crossover), for a state that grows; why
    the inference activations are not given with B or T a letter."""
    out = []
    total = any(m.label == "inference total" for m in cost.memory)
    if cost.from_layout and not total:
        out.append(
            "the activations at inference and the inference total come with numbers here: "
            "give --batch and --seq-len (no one formula is the largest whatever the sizes)"
        )
    return out + _crossover_lines(cost) + _generation_lines(cost)


def _generation_lines(cost: Cost) -> list[str]:
    """An encoder-decoder's generation: the encoder and the cross-attention keys and
    values once per request, the decoder per token at a context of t tokens."""
    if not cost.from_layout or not any(s.kind == "cross attention" for _, s in cost.state):
        return []
    from shapecalc.analysis.generation import generation

    g = generation(cost.model, batch=cost.batch, context="t", dtype=cost.dtype)
    return [
        f"generating, per batch of {dim_str(g.batch)}: {g.once} once, "
        f"{amount(g.encoder_flops)} FLOPs; the first step projects the cross-attention keys "
        f"and values, {amount(g.cross_flops)} FLOPs, {amount(g.cross_bytes)} bytes kept to "
        f"the end; each generated token, at a context of t tokens, "
        f"{amount(g.step_flops)} FLOPs (matrix products) and {amount(g.token_bytes)} bytes "
        "more of self-attention cache"
    ]


def _crossover_lines(cost: Cost) -> list[str]:
    if not any(s.per_position for _, s in cost.state):
        return []
    weights = cost.model.bytes(cost.dtype)
    batch = cost.batch if known(cost.batch) is not None else 1
    at = cost.crossover()
    if at is not None:
        return [
            f"the inference state outgrows the weights ({amount(weights)} bytes) from a "
            f"context of {at:,} positions at batch {dim_str(batch)}"
        ]
    context = cost.context
    if context is not None:
        most = cost.state_at(context)
        if most is None:
            return []
        return [
            f"within the model's context, {context:,} positions, the inference state at "
            f"batch {dim_str(batch)} reaches at most {bytes_text(most)} and never "
            f"outweighs the weights, {amount(weights)} bytes"
        ]
    most = cost.state_at(2**62)
    if most is None or not all(s.window for _, s in cost.state if s.per_position):
        return []
    return [
        f"every layer whose state grows slides: at batch {dim_str(batch)} the inference "
        f"state reaches at most {bytes_text(most)} and never outweighs the weights, "
        f"{amount(weights)} bytes"
    ]


#: the dtype of a kept tensor whose itemsize is its own: token ids and indices are int64,
#: a 4-byte one fp32 (attention's log-sum-exp, a state-space scan's state)
_OWN_DTYPES = {8: "int64", 4: "fp32"}


def _own_dtype(itemsize: int) -> str:
    return _OWN_DTYPES.get(itemsize, f"{itemsize} bytes")


def kept_lines(cost: Cost) -> Iterator[str]:
    """The tensors each layer keeps for backward; none at inference (nothing is)."""
    if cost.training == "none":
        return
    for layer in cost.layers:
        if layer.work.saved:
            items = "; ".join(
                f"{s.name} {shape_str(s.shape)}"
                + (f" × {dim_str(s.copies)}" if s.copies != 1 else "")
                + (f" ({_own_dtype(s.itemsize)})" if s.itemsize else "")
                for s in layer.work.saved
            )
            yield f"{_layer_name(layer)}: {items}"


def rule_lines(cost: Cost) -> Iterator[str]:
    yield (
        "FLOPs = 2 × MACs of the matrix products (exact) + elementwise work (estimated, "
        "1 per add, multiply, exp, sigmoid, tanh); backward = 2 × the forward matmul "
        "FLOPs + the elementwise work once more"
    )
    for layer in cost.layers:
        if layer.work.other_rule:
            yield f"{_layer_name(layer)}: {layer.work.other_rule}"
    line = six_n_line(cost)
    if line:
        yield line


def six_n_line(cost: Cost) -> str:
    """The FLOPs per training token against 6·N, and what makes the difference; empty
    without tokens or without matrix products."""
    six = cost.six_n()
    if six is None or six.weights == 0:
        return ""
    counted, rule = six.counted, six.rule
    share = (
        f" ({100 * counted / rule:.0f}% of 6·N)"
        if isinstance(counted, int) and isinstance(rule, int) and rule
        else ""
    )
    text = (
        f"6·N rule: 6 × N = 6 × {amount(six.params)} = {amount(rule)} FLOPs per token for a "
        f"training step; counted here: 6 × {amount(six.weights)} (the products with weights)"
    )
    if six.attention != 0:
        text += f" + 6 × {amount(six.attention)} (attention's q·kᵀ and weights·v, growing with T)"
    text += f" + 2 × {amount(six.other)} (elementwise) = {amount(counted)}{share}"
    if cost.model.routed:  # the rule as mixtures are sized: N the active parameters
        active = 6 * cost.model.active
        text += (
            f"; with N the active parameters, 6 × {amount(cost.model.active)} = {amount(active)}"
        )
        if isinstance(counted, int) and isinstance(active, int) and active:
            text += f" (the count is {100 * counted / active:.0f}% of it)"
    idle = six.idle
    if idle != 0:
        text += (
            f". N holds {amount(idle)} parameters no token multiplies (embedding lookups, "
            "position tables, biases and norms, experts a token is not sent to)"
            if not isinstance(idle, int) or idle > 0
            else f". Weights are multiplied {amount(-idle)} times more than N per token "
            "(shared across layers)"
        )
    return text


def percent(distance: int, target: int) -> str:
    share = 100 * distance / target
    return f"{share:+.2g}%" if abs(share) < 1 else f"{share:+.1f}%"


# -- framework conventions --------------------------------------------------------------------
def convention_rows(
    converted: Converted, template: Converted | None
) -> Iterator[tuple[str, Param, Param | None, str | None]]:
    """(model layer, tensor, its symbolic twin or None, tied to) in order."""
    twins = converted.twins(template)
    for (layer, param), twin in zip(converted.tensors, twins, strict=True):
        yield layer, param, twin, converted.ties.get(param.name)


def convention_footer(model: Model, converted: Converted) -> list[tuple[str, str]]:
    from shapecalc.analysis.conventions import FRAMEWORK_NAMES, describe

    name = FRAMEWORK_NAMES[converted.convention]
    lines = [("Total", f"{count_str(converted.total)} numbers stored in {name}'s convention")]
    if converted.convention != "pytorch":
        lines.append(("PyTorch", f"{count_str(model.total)} ({difference(model, converted)})"))
    lines += [("Why", line) for line in describe(converted, model.total)]
    lines += [("Gate order", f"{layer}: {order}") for layer, order in converted.gate_orders.items()]
    lines += [("Tied", f"{t} is {s}: one tensor, counted once") for t, s in converted.ties.items()]
    return lines


def difference(model: Model, converted: Converted) -> str:
    """``+2,048 in Keras``, ``the same``: a convention's total against PyTorch's."""
    from shapecalc.analysis.conventions import FRAMEWORK_NAMES

    delta = converted.total - model.total
    sign = "+" if isinstance(delta, int) and delta > 0 else ""
    framework = FRAMEWORK_NAMES[converted.convention]
    return "the same" if delta == 0 else f"{sign}{amount(delta)} in {framework}"


# -- sweeps ------------------------------------------------------------------------------------
def sweep_heading(table: Sweep) -> str:
    """``LSTM language model over H, L (V=65; B=1, T=1024; fp32, adam)``."""
    swept = ", ".join(a.letter for a in table.axes)
    fixed = ", ".join(f"{k}={v}" for k, v in table.fixed.items())
    settings = table.settings
    training = settings["training"]
    how = f"{settings['dtype']}, " + ("inference" if training == "none" else training)
    how += ", mixed precision" if settings.get("mixed_precision") else ""
    on = ""
    if table.fit is not None:
        on = f" on {table.fit.setting.describe()}"
        if not {"training", "activations"} & {c.key for c in table.columns}:
            how = settings["dtype"]  # no column priced for training
    return (
        f"{table.model} over {swept} ({fixed}; {how}){on}"
        if fixed
        else f"{table.model} over {swept} ({how}){on}"
    )


def formula_text(value: Dim) -> str:
    """A formula, or a constant with separators (``13,476,831,232``)."""
    return count_str(value) if isinstance(value, int) else dim_str(value)


def sweep_cells(table: Sweep, point: Point) -> list[str]:
    """One point's cells: the swept sizes, then each column in its unit (bytes in kB,
    MB, GB; counts with separators)."""
    cells = [f"{v:,}" for v in point.sizes]
    for column, value in zip(table.columns, point.values, strict=True):
        cells.append(human_bytes(value) if column.unit == "bytes" else count_str(value))
    if table.fit is not None and point.fit is not None:
        cells += [fit_cell(key, v) for key, v in zip(table.fit.keys, point.fit, strict=True)]
    return cells


def fit_cell(key: str, value: int | float | bool | None) -> str:
    """One answer against hardware as a cell: ``yes``, ``17,581``, ``none`` (not one
    position, not one sequence), ``> 64`` (GPUs), ``2,487`` (tokens per second)."""
    from shapecalc.analysis.fit import MOST_GPUS
    from shapecalc.analysis.sweep_fit import FIT_COLUMNS

    unit = FIT_COLUMNS[key][1]
    if unit == "verdict":
        return "yes" if value else "no"
    if value is None:
        return f"> {MOST_GPUS}" if unit == "gpus" else "-" if unit == "rate" else "none"
    if unit == "bytes":
        return human_bytes(int(value))
    return f"{value:,.0f}"


def fit_headings(table: Sweep) -> list[str]:
    """The short headings of the answers against hardware (none without hardware)."""
    return [] if table.fit is None else [table.fit.short(k) for k in table.fit.keys]


def fit_legend(table: Sweep) -> list[str]:
    """What the answers against hardware are, a line each, and on what."""
    from shapecalc.analysis.sweep_fit import FIT_RULES

    against = table.fit
    if against is None:
        return []
    return [f"{against.short(key)} = {FIT_RULES[key]}" for key in against.keys]


def frontier_cells(table: Sweep) -> tuple[list[str], list[list[str]]]:
    """The fit frontiers as a table: a heading per swept model (its swept sizes by
    letter), a row per batch: the largest context there (``none``: not one position)."""
    assert table.fit is not None
    letters = {a.name: a.letter for a in table.axes}
    frontiers = table.fit.frontiers
    heads = [
        ", ".join(f"{letters.get(k, k)}={v:,}" for k, v in f.sizes) or "max T" for f in frontiers
    ]
    rows = []
    for i, (batch, _) in enumerate(frontiers[0].contexts if frontiers else ()):
        rows.append([f"{batch:,}", *(fit_cell("max_context", f.contexts[i][1]) for f in frontiers)])
    return heads, rows
