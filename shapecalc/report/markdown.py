"""Reports as GitHub-flavoured Markdown, ready to paste."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shapecalc.core.dims import shape_str
from shapecalc.core.model import Model
from shapecalc.report import Report
from shapecalc.report.cells import (
    COLUMNS,
    buffer_lines,
    convention_footer,
    convention_rows,
    cost_cells,
    cost_columns,
    cost_summary,
    flow_text,
    kept_column,
    kept_lines,
    memory_accounts,
    memory_rows,
    memory_title,
    rule_lines,
    state_lines,
    state_rows,
    summary_lines,
    table_rows,
    times,
    title,
)

if TYPE_CHECKING:
    from shapecalc.analysis.conventions import Converted
    from shapecalc.analysis.cost import Cost
    from shapecalc.analysis.explain import Section
    from shapecalc.analysis.port import PortMap
    from shapecalc.analysis.sweep import Sweep

__all__ = ["convention_markdown", "cost_markdown", "memory_notes", "model_markdown", "write"]

#: what is known of oneDNN's LSTM on the CPU (docs/concepts/compute-and-memory.md, measured
#: by tests/test_memory.py's language models, torch 2.13)
ONEDNN_LSTM = (
    "LSTM on the CPU: PyTorch's default kernel (oneDNN) keeps its own workspace; "
    "activations measured 2.1× to 2.7× this count for LSTM language models (torch 2.13), "
    "exact with oneDNN off"
)


def memory_notes(cost: Cost) -> list[str]:
    """Notes under the memory account: what a default PyTorch build keeps beyond the
    rules' count (an LSTM's oneDNN workspace on the CPU, when activations are kept)."""
    if cost.training == "none":
        return []
    if any(layer.spec.kind == "LSTM" for layer in cost.layers):
        return [ONEDNN_LSTM]
    return []


def cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def write(report: Report) -> str:
    """The convention's table (if asked for), the parameter table and summary, the
    explanation, the shapes and the cost sections, in that order."""
    text = model_markdown(report.model, report.explanation, report.depth)
    if report.convention:
        text = convention_markdown(report.model, *report.convention) + "\n" + text
    if report.flow:
        text += f"- **Shapes**: {flow_text(*report.flow)}\n"
    shown = report.shown
    if any(shown.values()):
        assert report.cost is not None
        text += cost_markdown(report.cost, **shown)
    if report.per_gpu is not None:
        from shapecalc.report.cells import per_gpu_rows

        text += f"\n#### {report.per_gpu.title}\n\n| What | Bytes | Rule |\n|---|--:|---|\n"
        text += "".join(
            f"| {cell(a)} | {cell(b)} | {cell(c)} |\n" for a, b, c in per_gpu_rows(report.per_gpu)
        )
    return text


def model_markdown(
    model: Model, explanation: tuple[Section, ...] = (), depth: int | None = None
) -> str:
    """The parameter table and summary; the ``--explain`` sections after them (equations
    as an indented code block)."""
    lines = [
        f"### {title(model)}",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|---|---|---|--:|---|---|",
    ]
    for cells, subtotal in table_rows(model, depth):
        if subtotal:
            cells = [f"*{c}*" if c and i < 5 else c for i, c in enumerate(cells)]
        elif cells[1]:
            cells[1] = f"`{cells[1]}`"
        lines.append("| " + " | ".join(cell(c) for c in cells) + " |")
    buffers = buffer_lines(model, depth)
    if buffers:
        lines += ["", "Buffers (saved with the model, not trained):", ""]
        lines += [
            f"- `{name}` {shape}: {cell(role)}" if shape else f"- `{name}`: {cell(role)}"
            for name, shape, _, role in buffers
        ]
    lines.append("")
    for label, text in summary_lines(model):
        lines.append(f"- **{label}**: {cell(text)}")
    for section in explanation:
        lines.extend(["", f"#### {section.title}", ""])
        for line in section.lines:
            # equations keep their layout as an indented code block; prose is a list
            lines.append(f"    {line}" if line.startswith("  ") else f"- {line}")
    return "\n".join(lines) + "\n"


def cost_markdown(cost: Cost, *, shapes: bool, flops: bool, memory: bool) -> str:
    """A per-layer table, the memory account, the rules."""
    kept = kept_column(cost, memory)
    columns = cost_columns(shapes, flops, kept)
    lines = [""]
    if shapes or flops or kept:
        lines += [
            f"#### Per layer at {cost.describe_input()}",
            "",
            "| " + " | ".join(columns) + " |",
            "|"
            + "|".join("---" if c in ("Layer", "Input", "Output") else "--:" for c in columns)
            + "|",
        ]
    for cells, total in cost_cells(cost, shapes, flops, kept) if shapes or flops or kept else ():
        shown = [f"*{c}*" if total and c else c for c in cells]
        lines.append("| " + " | ".join(cell(c) for c in shown) + " |")
    lines.append("")
    if flops:
        lines += [f"- **FLOPs rule**: {cell(line)}" for line in rule_lines(cost)]
    if memory:
        for kind in memory_accounts(cost):
            lines += [
                "",
                f"#### {memory_title(cost, kind)}",
                "",
                "| What | Bytes | Rule |",
                "|---|--:|---|",
            ]
            lines += [f"| {a} | {cell(b)} | {cell(c)} |" for a, b, c in memory_rows(cost, kind)]
        lines.append("")
        state = state_rows(cost)
        if state:
            lines += [
                "| Kind of layer | Layers | Each | Bytes | Holds |",
                "|---|--:|--:|--:|---|",
                *(f"| {' | '.join(cell(c) for c in row)} |" for row in state),
                "",
            ]
        lines += [f"- **State**: {cell(line)}" for line in state_lines(cost)]
        lines += [f"- **Kept**: {cell(line)}" for line in kept_lines(cost)]
        lines += [f"- **Note**: {cell(line)}" for line in memory_notes(cost)]
    lines.append(f"- **Summary**: {cell(cost_summary(cost))}")
    return "\n".join(lines) + "\n"


def convention_markdown(model: Model, converted: Converted, template: Converted | None) -> str:
    """A framework's tensors with shapes, counts and formulas, and the footer."""
    from shapecalc.analysis.conventions import FRAMEWORK_NAMES

    lines = [
        f"### {title(model)}, as {FRAMEWORK_NAMES[converted.convention]} stores it",
        "",
        "| Tensor | Shape | Count | Formula | Role |",
        "|---|---|--:|---|---|",
    ]
    for _, param, twin, tied in convention_rows(converted, template):
        lines.append(
            f"| `{param.name}` | {shape_str(param.shape)} | {'tied' if tied else times(param)} | "
            f"{times(twin) if twin is not None else ''} | {cell(param.role)} |"
        )
    lines.append("")
    lines += [f"- **{a}**: {cell(b)}" for a, b in convention_footer(model, converted)]
    return "\n".join(lines) + "\n"


def port_markdown(mapping: PortMap) -> str:
    """``shapecalc port --format markdown``: the map as a table (two in turn through
    PyTorch's names), the notes as a list."""
    from shapecalc.analysis.conventions import FRAMEWORK_NAMES

    lines: list[str] = []
    for stage in mapping.stages():
        source, target = FRAMEWORK_NAMES[stage.source], FRAMEWORK_NAMES[stage.target]
        lines += [
            f"### {cell(stage.model)}: {source} to {target}",
            "",
            f"| {target} tensor | Shape | Made from the {source} tensors |",
            "|---|---|---|",
        ]
        for entry in stage.entries:
            how = entry.how if entry.pieces else entry.note
            lines.append(f"| `{entry.target}` | {shape_str(entry.shape)} | {cell(how)} |")
        lines.append("")
    lines += [f"- {cell(note)}" for note in mapping.notes]
    return "\n".join(lines) + "\n"


def sweep_markdown(table: Sweep) -> str:
    """``shapecalc sweep --format markdown``: the points as a table, the formulas below."""
    from shapecalc.report.cells import (
        formula_text,
        frontier_cells,
        sweep_cells,
        sweep_heading,
    )

    lines = [f"### {cell(sweep_heading(table))}", ""]
    header = [*(f"{a.name} ({a.letter})" for a in table.axes), *(c.title for c in table.columns)]
    if table.fit is not None:
        header += [table.fit.title(k) for k in table.fit.keys]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "--:|" * len(header))
    for point in table.points:
        lines.append("| " + " | ".join(sweep_cells(table, point)) + " |")
    lines.append("")
    lines += [f"- **{k}** = {v}, worked out at each point" for k, v in table.derived.items()]
    lines += [
        f"- **{c.title}** = {formula_text(c.formula)}"
        for c in table.columns
        if c.formula is not None
    ]
    if table.fit is not None:
        from shapecalc.analysis.sweep_fit import FIT_RULES

        lines += [f"- **{table.fit.title(k)}**: {cell(FIT_RULES[k])}" for k in table.fit.keys]
    if table.fit is not None and table.fit.frontiers:
        heads, rows = frontier_cells(table)
        lines += ["", "The fit frontier: the largest context at each batch", ""]
        lines.append("| B | " + " | ".join(cell(h) for h in heads) + " |")
        lines.append("|" + "--:|" * (len(heads) + 1))
        lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
