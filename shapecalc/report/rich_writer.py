"""Reports as rich renderables, JSON text and Markdown. Builds output; never prints."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderableType
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from shapecalc.adapters.targets import Inspection
from shapecalc.analysis.conventions import FRAMEWORK_NAMES, Converted
from shapecalc.analysis.cost import Cost, LayerCost
from shapecalc.analysis.explain import explain
from shapecalc.analysis.sizing import Solution
from shapecalc.core.dims import Dim, count_str, dim_latex, dim_str, shape_str
from shapecalc.core.model import Model, Row
from shapecalc.core.spec import Param, Shape
from shapecalc.core.units import DTYPE_BYTES, human_bytes, human_count, human_flops

__all__ = [
    "ModelTable",
    "convention_markdown",
    "convention_table",
    "conventions_side_by_side",
    "cost_markdown",
    "cost_summary",
    "cost_table",
    "explanation",
    "flow_text",
    "inspection_tree",
    "latex",
    "markdown",
    "solution_table",
    "table",
]

#: the storage types the summary shows (JSON carries every one)
SUMMARY_DTYPES = ("fp32", "bf16")


def _times(param: Param) -> str:
    """A count; for a repeated block ``(L - 1) × 4·H²``: copies times one tensor's count."""
    if param.repeat == 1:
        return count_str(param.count)
    copies = dim_str(param.repeat)
    copies = f"({copies})" if " " in copies else copies
    return f"{copies} × {count_str(param.size)}"


def _count_cell(row: Row) -> str:
    return "tied" if row.tied_to else _times(row.param)


def _role(row: Row) -> str:
    if row.tied_to:
        return f"the same tensor as {row.tied_to} (counted there): {row.role}"
    return row.role


def _total_line(model: Model) -> str:
    total = model.total
    text = f"{count_str(total)} parameters"
    if isinstance(total, int):
        text += f" ({human_count(total)})"
    if model.total_formula != total:
        text += f" = {dim_str(model.total_formula)}"
    return text


def _bytes(size: int) -> str:
    """``17.1 MB (17,076,484 bytes)``."""
    return f"{human_bytes(size)} ({size:,} bytes)"


def _memory_line(model: Model) -> str:
    parts = []
    for dtype in SUMMARY_DTYPES:
        size = model.bytes(dtype)
        if isinstance(size, int):
            parts.append(f"{dtype} {_bytes(size)}")
        else:
            parts.append(f"{dtype} {DTYPE_BYTES[dtype]} bytes per parameter")
    return " · ".join(parts)


def summary_lines(model: Model) -> list[tuple[str, str]]:
    """The footer: (label, text) pairs shared by the table and Markdown outputs."""
    lines = [("Total", _total_line(model))]
    if model.trainable != model.total:
        lines.append(("Trainable", count_str(model.trainable)))
    lines.append(("Memory", _memory_line(model)))
    for tied, source in model.ties.items():
        lines.append(("Tied", f"{tied} is {source}: one tensor, counted once"))
    if model.sizes:
        lines.append(("Sizes", model.describe_sizes()))
    lines.extend(("Note", note) for note in model.notes)
    return lines


COLUMNS = ("Layer", "Parameter", "Shape", "Count", "Formula", "Role")


def _cells(model: Model) -> Iterator[tuple[list[str], bool]]:
    """Table cells in COLUMNS order, layer by layer, each layer closed by its subtotal
    (the flag is True on subtotal rows)."""
    rows = model.rows()
    groups = model.groups()
    for group in groups:
        mine = [r for r in rows if r.group == group]
        for i, row in enumerate(mine):
            yield (
                [
                    group if i == 0 else "",
                    row.name,
                    shape_str(row.shape),
                    _count_cell(row),
                    _times(row.template),
                    _role(row),
                ],
                False,
            )
        if len(groups) == 1:
            continue  # one group: the total says it
        yield (
            [
                "",
                f"{group} subtotal",
                "",
                count_str(model.subtotal(group)),
                dim_str(model.subtotal_formula(group)),
                model.describe(group),
            ],
            True,
        )


def _title(model: Model) -> str:
    return model.name + (f" ({model.describe_sizes()})" if model.sizes else "")


#: below this many columns the role goes under the parameter name instead of its own column
WIDE = 110


class ModelTable:
    """The parameter table with per-layer subtotals, then the summary footer.

    The layout follows the console width: from :data:`WIDE` columns on, one column per
    field; narrower, the role is printed under the parameter name and the layer column
    is dropped (parameter names already start with the layer's).
    """

    def __init__(self, model: Model) -> None:
        self.model = model

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> Iterator[RenderableType]:
        wide = options.max_width >= WIDE
        rows = list(_cells(self.model))
        # a fully symbolic model's counts are its formulas: one column says it
        same = all(cells[3] == cells[4] for cells, _ in rows)
        hidden = ({"Formula"} if same else set()) | (set() if wide else {"Layer", "Role"})
        if not any(self.model.groups()):
            hidden.add("Layer")  # a bare layer: its parameters have torch's bare names
        shown = [c for c in COLUMNS if c not in hidden]
        longest_name = max((len(cells[1]) for cells, _ in rows), default=10)
        grid = Table(title=_title(self.model), title_justify="left")
        for name in shown:
            if name == "Role":
                grid.add_column(name, ratio=1, min_width=20)
            elif name == "Parameter":
                grid.add_column(name, min_width=min(longest_name, 34), no_wrap=wide)
            else:
                grid.add_column(
                    "Count = formula" if name == "Count" and same else name,
                    style="bold" if name == "Layer" else None,
                    justify="right" if name == "Count" else "left",
                    no_wrap=name in ("Layer", "Shape") or (wide and name == "Count"),
                    overflow="fold",
                )
        for cells, subtotal in rows:
            styled = dict(
                zip(
                    COLUMNS,
                    (
                        Text(c, style="italic" if subtotal and i in (1, 3, 4) else "")
                        for i, c in enumerate(cells)
                    ),
                    strict=True,
                )
            )
            if subtotal:
                styled["Role"].stylize("dim")
            if not wide:
                styled["Parameter"].append("\n" + cells[5], style="dim")
            grid.add_row(*(styled[c] for c in shown), end_section=subtotal)
        yield grid
        buffers = list(self.model.buffer_rows())
        if buffers:
            state = Table(title="Buffers (saved with the model, not trained)", title_justify="left")
            for name in ("Buffer", "Shape", "Count", "Role"):
                state.add_column(name, justify="right" if name == "Count" else "left")
            for full, buf in buffers:
                state.add_row(full, shape_str(buf.shape), _times(buf), buf.role)
            yield state
        footer = Table.grid(padding=(0, 2))
        footer.add_column(style="bold", no_wrap=True)
        footer.add_column()
        for label, text in summary_lines(self.model):
            footer.add_row(label, text)
        yield footer


def table(model: Model) -> RenderableType:
    """The parameter table of ``model`` (see :class:`ModelTable`)."""
    return ModelTable(model)


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown(model: Model, *, explanation: bool = False, convention: str = "pytorch") -> str:
    """A GitHub-flavoured Markdown table and summary, ready to paste; ``explanation``
    appends the ``--explain`` sections (equations as an indented code block)."""
    lines = [
        f"### {_title(model)}",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|---|---|---|--:|---|---|",
    ]
    for cells, subtotal in _cells(model):
        if subtotal:
            cells = [f"*{c}*" if c and i < 5 else c for i, c in enumerate(cells)]
        elif cells[1]:
            cells[1] = f"`{cells[1]}`"
        lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    buffers = list(model.buffer_rows())
    if buffers:
        lines += ["", "Buffers (saved with the model, not trained):", ""]
        lines += [f"- `{full}` {shape_str(b.shape)}: {_md_cell(b.role)}" for full, b in buffers]
    lines.append("")
    for label, text in summary_lines(model):
        lines.append(f"- **{label}**: {_md_cell(text)}")
    if explanation:
        for section in explain(model, convention):
            lines.extend(["", f"#### {section.title}", ""])
            for line in section.lines:
                # equations keep their layout as an indented code block; prose is a list
                lines.append(f"    {line}" if line.startswith("  ") else f"- {line}")
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def _tex(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _tex_count(param: Param) -> str:
    """A count in math mode: ``(L - 1) \times 4 H^{2}``, or ``33{,}280``."""

    def one(value: Dim) -> str:
        return f"{value:,}".replace(",", "{,}") if isinstance(value, int) else dim_latex(value)

    if param.repeat == 1:
        return one(param.count)
    copies = one(param.repeat)
    copies = f"({copies})" if " " in copies else copies
    return f"{copies} \\times {one(param.size)}"


def latex(model: Model) -> str:
    """A booktabs LaTeX table: parameter, shape, count and formula, with layer subtotals.

    Needs ``\\usepackage{booktabs}`` in the preamble."""
    lines = [
        f"% {_title(model)}: generated by shapecalc",
        r"\begin{tabular}{llrl}",
        r"\toprule",
        r"Parameter & Shape & Count & Formula \\",
        r"\midrule",
    ]
    rows = model.rows()
    for group in model.groups():
        for row in (r for r in rows if r.group == group):
            shape = ", ".join(dim_latex(d) for d in row.shape)
            shape = f"({shape},)" if len(row.shape) == 1 else f"({shape})"
            count = "tied" if row.tied_to else f"${_tex_count(row.param)}$"
            lines.append(
                f"\\texttt{{{_tex(row.name)}}} & ${shape}$ & {count} & "
                f"${_tex_count(row.template)}$ \\\\"
            )
        total = Param("", (model.subtotal(group),), "")
        formula = Param("", (model.subtotal_formula(group),), "")
        lines.append(
            f"\\multicolumn{{2}}{{l}}{{\\textit{{{_tex(group)} subtotal}}}} & "
            f"${_tex_count(total)}$ & ${_tex_count(formula)}$ \\\\"
        )
        lines.append(r"\midrule")
    lines[-1] = r"\midrule"
    total = Param("", (model.total,), "")
    formula = Param("", (model.total_formula,), "")
    lines += [
        f"\\multicolumn{{2}}{{l}}{{\\textbf{{Total}}}} & ${_tex_count(total)}$ & "
        f"${_tex_count(formula)}$ \\\\",
        r"\bottomrule",
        r"\end{tabular}",
    ]
    return "\n".join(lines) + "\n"


def _percent(distance: int, target: int) -> str:
    share = 100 * distance / target
    return f"{share:+.2g}%" if abs(share) < 1 else f"{share:+.1f}%"


def solution_table(solution: Solution) -> RenderableType:
    """``shapecalc solve``: the sizes either side of the budget, and the formula."""
    sizes = solution.fixed_sizes
    step = f", multiples of {solution.multiple_of}" if solution.multiple_of > 1 else ""
    counted = (
        f", counted as {FRAMEWORK_NAMES[solution.convention]} stores them"
        if solution.convention != "pytorch"
        else ""
    )
    grid = Table(
        title=f"{solution.free} for a budget of {solution.target:,} parameters "
        f"({sizes}{step}{counted})",
        title_justify="left",
    )
    grid.add_column("")
    grid.add_column(solution.free, justify="right")
    grid.add_column("parameters", justify="right")
    grid.add_column("vs. budget", justify="right")
    for label, candidate in (("below", solution.below), ("above", solution.above)):
        mark = " (closest)" if candidate is solution.closest else ""
        grid.add_row(
            label + mark,
            f"{candidate.size:,}",
            f"{candidate.total:,}",
            f"{candidate.distance:+,} ({_percent(candidate.distance, solution.target)})",
        )
    footer = Table.grid(padding=(0, 2))
    footer.add_column(style="bold", no_wrap=True)
    footer.add_column()
    if solution.formula is not None:
        footer.add_row("Total", f"{dim_str(solution.formula)} (the other sizes fixed)")
    return Group(grid, footer)


def flow_text(inputs: tuple[Shape, ...], outputs: tuple[Shape, ...]) -> str:
    """``input (32, 512) -> output (32, 65)``."""
    return (
        f"input {', '.join(shape_str(s) for s in inputs)} -> "
        f"output {', '.join(shape_str(s) for s in outputs)}"
    )


def inspection_tree(inspection: Inspection, depth: int) -> RenderableType:
    """``shapecalc inspect``: the tensors as a tree of dotted names, subtotals on every
    node, cut at ``depth`` levels (deeper tensors are summed into their node)."""
    tree_data: dict[str, Any] = {"count": 0, "children": {}, "entry": None}
    for entry in inspection.entries:
        node = tree_data
        counted = 0 if entry.tied_to else entry.count
        node["count"] += counted
        for part in entry.name.split("."):
            node = node["children"].setdefault(part, {"count": 0, "children": {}, "entry": None})
            node["count"] += counted
        node["entry"] = entry
    total = inspection.total
    title = f"[bold]{inspection.target}[/bold]  {total:,} parameters ({human_count(total)})"
    if inspection.checkpoint is not None:
        nbytes = inspection.checkpoint.nbytes
        by_dtype = ", ".join(
            f"{d} {human_bytes(b)}" for d, b in inspection.checkpoint.bytes_by_dtype().items()
        )
        title += f" · {human_bytes(nbytes)} ({by_dtype})"
    root = Tree(title)

    def label(name: str, node: dict[str, Any]) -> str:
        entry = node["entry"]
        share = f" ({100 * node['count'] / total:.1f}%)" if total else ""
        if entry is not None and not node["children"]:
            text = f"{name}  {shape_str(entry.shape)}  "
            if entry.tied_to:
                return text + f"[dim]tied to {entry.tied_to}, counted there[/dim]"
            text += f"{entry.count:,}{share}"
            if entry.dtype:
                text += f"  [dim]{entry.dtype}[/dim]"
            return text
        kind = (
            next((e.kind for e in _entries_under(node) if e.kind), None)
            if node["children"]
            else None
        )
        return f"[bold]{name}[/bold]  {node['count']:,}{share}" + (
            f"  [dim]{kind}[/dim]" if kind and _one_kind(node) else ""
        )

    def add(parent: Tree, node: dict[str, Any], level: int) -> None:
        for name, child in node["children"].items():
            branch = parent.add(label(name, child))
            if level < depth:
                add(branch, child, level + 1)

    add(root, tree_data, 1)
    return root


def _entries_under(node: dict[str, Any]) -> Iterator[Any]:
    if node["entry"] is not None:
        yield node["entry"]
    for child in node["children"].values():
        yield from _entries_under(child)


def _one_kind(node: dict[str, Any]) -> bool:
    return len({e.kind for e in _entries_under(node)}) == 1


def explanation(model: Model, convention: str = "pytorch") -> RenderableType:
    """``--explain``: titled sections of plain text (gate order in ``convention``)."""
    parts: list[RenderableType] = []
    for section in explain(model, convention):
        parts.append(Text(section.title, style="bold underline"))
        for line in section.lines:
            parts.append(Text(line))
        parts.append(Text(""))
    return Group(*parts)


# -- shapes, compute and memory ------------------------------------------------------------
def _amount(value: Dim) -> str:
    """``847,673,700`` or ``8,476,737·B·T``."""
    return count_str(value) if isinstance(value, int) else value.grouped()


def _outputs_cell(layer: LayerCost) -> str:
    shapes = layer.outputs
    names = layer.spec.output_names
    if len(shapes) == 1 or len(names) < len(shapes):
        return ", ".join(shape_str(s) for s in shapes)
    return ", ".join(f"{n} {shape_str(s)}" for n, s in zip(names, shapes, strict=False))


def _cost_columns(shapes: bool, flops: bool, memory: bool) -> list[str]:
    columns = ["Layer"]
    if shapes:
        columns += ["Input", "Output"]
    if flops:
        columns += ["MACs", "FLOPs fwd", "FLOPs bwd"]
    if memory:
        columns.append("Kept (bytes)")
    return columns


def _cost_cells(
    cost: Cost, shapes: bool, flops: bool, memory: bool
) -> Iterator[tuple[list[str], bool]]:
    """Per-layer cells, then the total row (flag True)."""
    for layer in cost.layers:
        cells = [layer.name or layer.spec.kind]
        if shapes:
            cells += [", ".join(shape_str(s) for s in layer.inputs), _outputs_cell(layer)]
        if flops:
            cells += [
                _amount(layer.macs),
                _amount(layer.forward_flops),
                _amount(layer.backward_flops),
            ]
        if memory:
            cells.append(_amount(cost.kept_bytes(layer)))
        yield cells, False
    if len(cost.layers) > 1 and (flops or memory):
        total = ["total"]
        if shapes:
            total += ["", ""]
        if flops:
            total += [_amount(cost.macs), _amount(cost.forward_flops), _amount(cost.backward_flops)]
        if memory:
            total.append(_amount(cost.activation_bytes))
        yield total, True


def _flops_phrase(cost: Cost) -> str:
    """``848 MFLOPs per forward at B=1, T=100`` or, symbolic, per token."""
    forward = cost.forward_flops
    if isinstance(forward, int):
        return f"{human_flops(forward)} per forward at {cost.describe_input()}"
    per = cost.per_token(forward)
    if isinstance(per, int):
        unit = "token" if cost.seq_len is not None else "sample"
        return f"{human_flops(per)} per {unit} per forward ({_amount(forward)} in all)"
    return f"{_amount(forward)} FLOPs per forward at {cost.describe_input()}"


def cost_summary(cost: Cost) -> str:
    """The one-line footer: ``4.27 M params · 17.1 MB fp32 · 848 MFLOPs per forward at
    B=1, T=100``."""
    total = cost.model.total
    parts = [f"{human_count(total) if isinstance(total, int) else _amount(total)} params"]
    size = cost.model.bytes(cost.dtype)
    parts.append(
        f"{human_bytes(size)} {cost.dtype}"
        if isinstance(size, int)
        else f"{_amount(size)} bytes {cost.dtype}"
    )
    parts.append(_flops_phrase(cost))
    return " · ".join(parts)


def _memory_rows(cost: Cost) -> list[tuple[str, str, str]]:
    def amount(value: Dim) -> str:
        return _bytes(value) if isinstance(value, int) else _amount(value)

    rows = [(line.label, amount(line.bytes), line.rule) for line in cost.memory]
    if cost.training != "none":
        rule = f"{cost.training}, everything above but the state"
        rows.append(("training total", amount(cost.training_bytes), rule))
    return rows


def _kept_lines(cost: Cost) -> Iterator[str]:
    for layer in cost.layers:
        if layer.work.saved:
            items = "; ".join(
                f"{s.name} {shape_str(s.shape)}"
                + (f" × {dim_str(s.copies)}" if s.copies != 1 else "")
                + (f" (int{8 * s.itemsize})" if s.itemsize else "")
                for s in layer.work.saved
            )
            yield f"{layer.name or layer.spec.kind}: {items}"


def _rule_lines(cost: Cost) -> Iterator[str]:
    yield (
        "FLOPs = 2 × MACs of the matrix products (exact) + elementwise work (estimated, "
        "1 per add, multiply, exp, sigmoid, tanh); backward = 2 × the forward matmul "
        "FLOPs + the elementwise work once more"
    )
    for layer in cost.layers:
        if layer.work.other_rule:
            yield f"{layer.name or layer.spec.kind}: {layer.work.other_rule}"


class CostTable:
    """Per-layer shapes, FLOPs and kept bytes; the memory account; the rules; a footer."""

    def __init__(self, cost: Cost, *, shapes: bool, flops: bool, memory: bool) -> None:
        self.cost, self.shapes, self.flops, self.memory = cost, shapes, flops, memory

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> Iterator[RenderableType]:
        cost = self.cost
        title = f"Per layer at {cost.describe_input()}" + (f", {cost.dtype}" if self.memory else "")
        numbers = self.flops or self.memory
        if self.shapes and numbers and options.max_width < WIDE:
            # narrow: the shapes get a table of their own, then the numbers
            yield self._grid(title + ": shapes", True, False, False)
            yield self._grid(title, False, self.flops, self.memory)
        else:
            yield self._grid(title, self.shapes, self.flops, self.memory)
        yield from self._notes()

    def _grid(self, title: str, shapes: bool, flops: bool, memory: bool) -> Table:
        grid = Table(title=title, title_justify="left")
        rows = list(_cost_cells(self.cost, shapes, flops, memory))
        for i, name in enumerate(_cost_columns(shapes, flops, memory)):
            if name in ("Input", "Output"):
                widest = max(
                    (len(line) for cells, _ in rows for line in _shape_lines(cells[i]).split("\n")),
                    default=5,
                )
                grid.add_column(name, min_width=widest, overflow="fold")
            else:
                numeric = name != "Layer"
                grid.add_column(name, justify="right" if numeric else "left", no_wrap=True)
        for cells, total in rows:
            shown = [_shape_lines(c) if "(" in c else c for c in cells]
            grid.add_row(*shown, style="italic" if total else None)
        return grid

    def _notes(self) -> Iterator[RenderableType]:
        cost = self.cost
        notes = Table.grid(padding=(0, 2))
        notes.add_column(style="bold", no_wrap=True)
        notes.add_column()
        if self.flops:
            for line in _rule_lines(cost):
                notes.add_row("FLOPs rule", line)
            per = cost.per_token(cost.forward_flops)
            if per is not None and cost.seq_len is not None:
                notes.add_row("Per token", f"{_amount(per)} FLOPs forward")
        if self.memory:
            account = Table(title=f"Memory ({cost.training})", title_justify="left")
            for name in ("What", "Bytes", "Rule"):
                account.add_column(name, justify="right" if name == "Bytes" else "left")
            for row in _memory_rows(cost):
                account.add_row(*row)
            yield account
            for line in _kept_lines(cost):
                notes.add_row("Kept", line)
        notes.add_row("Summary", cost_summary(cost))
        yield notes


def _shape_lines(text: str) -> str:
    """One shape per line: ``output (B, T, 512)`` / ``h_n (2, B, 512)``."""
    return text.replace("), ", ")\n")


def cost_table(cost: Cost, *, shapes: bool, flops: bool, memory: bool) -> RenderableType:
    """The ``--shapes``/``--flops``/``--memory`` tables of ``cost`` (see :class:`CostTable`)."""
    return CostTable(cost, shapes=shapes, flops=flops, memory=memory)


def cost_markdown(cost: Cost, *, shapes: bool, flops: bool, memory: bool) -> str:
    """The same as Markdown: a per-layer table, the memory account, the rules."""
    columns = _cost_columns(shapes, flops, memory)
    lines = [
        "",
        f"#### Per layer at {cost.describe_input()}",
        "",
        "| " + " | ".join(columns) + " |",
        "|"
        + "|".join("---" if c in ("Layer", "Input", "Output") else "--:" for c in columns)
        + "|",
    ]
    for cells, total in _cost_cells(cost, shapes, flops, memory):
        shown = [f"*{c}*" if total and c else c for c in cells]
        lines.append("| " + " | ".join(_md_cell(c) for c in shown) + " |")
    lines.append("")
    if flops:
        lines += [f"- **FLOPs rule**: {_md_cell(line)}" for line in _rule_lines(cost)]
    if memory:
        lines += [
            "",
            f"#### Memory ({cost.training})",
            "",
            "| What | Bytes | Rule |",
            "|---|--:|---|",
        ]
        lines += [f"| {a} | {_md_cell(b)} | {_md_cell(c)} |" for a, b, c in _memory_rows(cost)]
        lines.append("")
        lines += [f"- **Kept**: {_md_cell(line)}" for line in _kept_lines(cost)]
    lines.append(f"- **Summary**: {_md_cell(cost_summary(cost))}")
    return "\n".join(lines) + "\n"


# -- framework conventions -----------------------------------------------------------------


def _convention_rows(
    converted: Converted, template: Converted | None
) -> Iterator[tuple[str, Param, Param | None, str | None]]:
    """(model layer, tensor, its symbolic twin or None, tied to) in order."""
    twins = converted.twins(template)
    for (layer, param), twin in zip(converted.tensors, twins, strict=True):
        yield layer, param, twin, converted.ties.get(param.name)


def _convention_footer(model: Model, converted: Converted) -> list[tuple[str, str]]:
    name = FRAMEWORK_NAMES[converted.convention]
    lines = [("Total", f"{count_str(converted.total)} numbers stored in {name}'s convention")]
    if converted.convention != "pytorch":
        delta = converted.total - model.total
        sign = "+" if isinstance(delta, int) and delta > 0 else ""
        change = "the same" if delta == 0 else f"{sign}{_amount(delta)} in {name}"
        lines.append(("PyTorch", f"{count_str(model.total)} ({change})"))
    from shapecalc.analysis.conventions import describe

    lines += [("Why", line) for line in describe(converted, model.total)]
    lines += [("Gate order", f"{layer}: {order}") for layer, order in converted.gate_orders.items()]
    lines += [("Tied", f"{t} is {s}: one tensor, counted once") for t, s in converted.ties.items()]
    return lines


class ConventionTable:
    """``--convention keras|onnx``: the framework's tensors with shapes, counts and
    formulas, then the total, the difference from PyTorch and why, and the gate order.
    Narrower than :data:`WIDE` columns, the role goes under the tensor's name."""

    def __init__(self, model: Model, converted: Converted, template: Converted | None) -> None:
        self.model, self.converted, self.template = model, converted, template

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> Iterator[RenderableType]:
        wide = options.max_width >= WIDE
        framework = FRAMEWORK_NAMES[self.converted.convention]
        grid = Table(title=f"{_title(self.model)}, as {framework} stores it", title_justify="left")
        grid.add_column("Tensor", no_wrap=wide, ratio=None if wide else 1)
        grid.add_column("Shape", no_wrap=True)
        grid.add_column("Count", justify="right", no_wrap=True)
        grid.add_column("Formula")
        if wide:
            grid.add_column("Role", ratio=1)
        previous = None
        for layer, param, twin, tied in _convention_rows(self.converted, self.template):
            if previous is not None and layer != previous:
                grid.add_section()
            previous = layer
            formula = _times(twin) if twin is not None else ""
            role = f"the same tensor as {tied} (counted there)" if tied else param.role
            count = "tied" if tied else _times(param)
            if wide:
                grid.add_row(param.name, shape_str(param.shape), count, formula, role)
            else:
                name = Text(param.name)
                name.append("\n" + role, style="dim")
                grid.add_row(name, shape_str(param.shape), count, formula)
        yield grid
        footer = Table.grid(padding=(0, 2))
        footer.add_column(style="bold", no_wrap=True)
        footer.add_column()
        for label, text in _convention_footer(self.model, self.converted):
            footer.add_row(label, text)
        yield footer


def convention_table(
    model: Model, converted: Converted, template: Converted | None = None
) -> RenderableType:
    """The :class:`ConventionTable` of ``converted``."""
    return ConventionTable(model, converted, template)


def convention_markdown(model: Model, converted: Converted, template: Converted | None) -> str:
    lines = [
        f"### {_title(model)}, as {FRAMEWORK_NAMES[converted.convention]} stores it",
        "",
        "| Tensor | Shape | Count | Formula | Role |",
        "|---|---|--:|---|---|",
    ]
    for _, param, twin, tied in _convention_rows(converted, template):
        lines.append(
            f"| `{param.name}` | {shape_str(param.shape)} | {'tied' if tied else _times(param)} | "
            f"{_times(twin) if twin is not None else ''} | {_md_cell(param.role)} |"
        )
    lines.append("")
    lines += [f"- **{a}**: {_md_cell(b)}" for a, b in _convention_footer(model, converted)]
    return "\n".join(lines) + "\n"


def conventions_side_by_side(model: Model, converted: list[Converted]) -> RenderableType:
    """``shapecalc compare-conventions``: per layer, each framework's tensors in its own
    column (name, then shape and count), then one line per framework: total, gate order,
    difference from PyTorch and why."""
    grid = Table(title=f"{_title(model)} in {len(converted)} frameworks", title_justify="left")
    grid.add_column("Layer", style="bold", no_wrap=True)
    for c in converted:
        grid.add_column(FRAMEWORK_NAMES[c.convention], ratio=1, overflow="fold")
    for layer in model.layers:
        columns = [
            [
                f"{p.name}\n  {shape_str(p.shape)} {'tied' if p.name in c.ties else _times(p)}"
                for name, p in c.tensors
                if name == layer.name
            ]
            for c in converted
        ]
        height = max((len(col) for col in columns), default=0)
        for i in range(height):
            cells = [col[i] if i < len(col) else "" for col in columns]
            grid.add_row(layer.name if i == 0 else "", *cells, end_section=i == height - 1)
    summary = Table(title="Totals", title_justify="left")
    for column in ("Framework", "Total", "vs PyTorch", "Gate order", "Why"):
        summary.add_column(column, justify="right" if column in ("Total", "vs PyTorch") else "left")
    from shapecalc.analysis.conventions import describe

    for c in converted:
        delta = c.total - model.total
        orders = "; ".join(c.gate_orders.values()) or "-"
        why = "; ".join(describe(c, model.total)) if c.convention != "pytorch" else ""
        summary.add_row(
            FRAMEWORK_NAMES[c.convention],
            count_str(c.total),
            ""
            if c.convention == "pytorch"
            else ("+" if isinstance(delta, int) and delta > 0 else "") + _amount(delta),
            orders,
            why,
        )
    return Group(grid, summary)
