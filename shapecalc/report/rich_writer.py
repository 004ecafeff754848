"""Reports drawn with rich: the parameter table, the tree of modules, the cost and memory
tables, the explanation; solve's table, inspect's tree and the conventions side by side.
This is the only module that imports rich. It builds renderables; it never prints."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rich.console import Console, ConsoleOptions, Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from shapecalc.analysis.conventions import FRAMEWORK_NAMES, Converted
from shapecalc.analysis.cost import Cost
from shapecalc.analysis.explain import Section
from shapecalc.analysis.sizing import Solution
from shapecalc.core.dims import count_noun, count_str, dim_str, shape_str
from shapecalc.core.errors import printable
from shapecalc.core.model import Model
from shapecalc.report import Report
from shapecalc.report.cells import (
    COLUMNS,
    NameNode,
    amount,
    buffer_lines,
    convention_footer,
    convention_rows,
    cost_cells,
    cost_columns,
    cost_summary,
    flow_text,
    kept_lines,
    memory_rows,
    name_tree,
    percent,
    rule_lines,
    summary_lines,
    table_rows,
    times,
    title,
)
from shapecalc.report.markdown import memory_notes

if TYPE_CHECKING:  # the port map and the sweep are imported by the commands that make them
    from shapecalc.analysis.port import PortMap
    from shapecalc.analysis.sweep import Sweep

__all__ = [
    "ConventionTable",
    "CostTable",
    "LayerKindsTable",
    "ModelTable",
    "ModelTree",
    "conventions_side_by_side",
    "explanation",
    "port_table",
    "renderables",
    "solution_table",
    "sweep_table",
]

#: below this many columns the role goes under the parameter name instead of its own column
WIDE = 110


def echo(*parts: RenderableType) -> None:
    """Print renderables on standard output, markup off for text from elsewhere."""
    console = Console(highlight=False)
    for part in parts:
        console.print(part)


class LayerKindsTable:
    """``shapecalc layers``: every kind, its family, its count formula, the arguments the
    formula is for (structural ones as names where the engine counts with them: a kernel
    of K, L layers; else the number) and what it is.

    From :data:`WIDE_KINDS` columns on, one column each; narrower, the families are sections
    instead of a column, what the kind is goes under its name and the arguments under the
    formula, so that no cell wraps one word per line.
    """

    def __init__(self, rows: list[dict[str, str]]) -> None:
        self.rows = rows

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> Iterator[RenderableType]:
        rows = self.rows
        table = Table(title=count_noun(len(rows), "layer kind"), title_justify="left", expand=True)
        if options.max_width >= WIDE_KINDS:
            for column in ("Kind", "Family", "Parameters", "For", "What it is"):
                table.add_column(
                    column, no_wrap=column == "Kind", ratio=_RATIOS.get(column), overflow="fold"
                )
            for row in rows:
                table.add_row(
                    row["kind"], row["family"], row["formula"], row["formula_of"], row["summary"]
                )
            yield table
            return
        longest = max((len(row["kind"]) for row in rows), default=4)
        table.add_column("Kind", min_width=longest, ratio=2, overflow="fold")
        table.add_column("Parameters, for", ratio=3, overflow="fold")
        for i, row in enumerate(rows):
            kind = Text(row["kind"], style="bold")
            kind.append(f"  {row['family']}\n{row['summary']}", style="dim")
            formula = Text(row["formula"])
            formula.append("\n" + row["formula_of"], style="dim")
            last = i + 1 == len(rows) or rows[i + 1]["family"] != row["family"]
            table.add_row(kind, formula, end_section=last)
        yield table


#: from this many columns on, the layer kinds table has a column for each field
WIDE_KINDS = 140
#: the share of the width each wrapping column of the wide layer-kinds table takes
_RATIOS = {"Parameters": 2, "For": 4, "What it is": 3}


def refusals(refused: list[tuple[str, str]]) -> RenderableType:
    """The conventions that cannot store a model, each with why."""
    lines = Text()
    for i, (convention, why) in enumerate(refused):
        lines.append(("\n" if i else "") + convention, style="bold")
        lines.append(f"  cannot store this model: {why}")
    return lines


def renderables(report: Report, fmt: str = "table") -> Iterator[RenderableType]:
    """The report as ``fmt`` (``table`` or ``tree``): the parameters (or the convention's
    tensors), the shapes, the cost sections and the explanation, in that order."""
    model = report.model
    if fmt == "tree":
        yield ModelTree(model, report.depth)
        if report.convention:
            yield ""
            yield ConventionTable(model, *report.convention)
    elif report.convention:
        yield ConventionTable(model, *report.convention)
    else:
        yield ModelTable(model, report.depth)
    if report.flow:
        yield f"[bold]Shapes[/bold]  {escape(flow_text(*report.flow))}"
    shown = report.shown
    if any(shown.values()):
        assert report.cost is not None
        yield ""
        yield CostTable(report.cost, **shown)
    if report.explanation:
        yield ""
        yield explanation(report.explanation)


class ModelTable:
    """The parameter table with per-layer subtotals, then the summary footer.

    The layout follows the console width: from :data:`WIDE` columns on, one column per
    field; narrower, the role is printed under the parameter name and the layer column
    is dropped (parameter names already start with the layer's).
    """

    def __init__(self, model: Model, depth: int | None = None) -> None:
        self.model, self.depth = model, depth

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> Iterator[RenderableType]:
        wide = options.max_width >= WIDE
        rows = list(table_rows(self.model, self.depth))
        # a fully symbolic model's counts are its formulas: one column says it
        same = all(cells[3] == cells[4] for cells, _ in rows)
        hidden = ({"Formula"} if same else set()) | (set() if wide else {"Layer", "Role"})
        if not any(cells[0] for cells, _ in rows):
            hidden.add("Layer")  # a bare layer, or nodes summed at the groups' depth
        shown = [c for c in COLUMNS if c not in hidden]
        longest_name = max((len(cells[1]) for cells, _ in rows), default=10)
        grid = Table(title=escape(printable(title(self.model))), title_justify="left")
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
        buffers = buffer_lines(self.model, self.depth)
        if buffers:
            state = Table(title="Buffers (saved with the model, not trained)", title_justify="left")
            for name in ("Buffer", "Shape", "Count", "Role"):
                state.add_column(name, justify="right" if name == "Count" else "left")
            for line in buffers:
                state.add_row(*line)
            yield state
        footer = Table.grid(padding=(0, 2))
        footer.add_column(style="bold", no_wrap=True)
        footer.add_column()
        for label, text in summary_lines(self.model):
            footer.add_row(label, text)
        yield footer


class ModelTree:
    """The model as a tree of its modules, each with its count, share of the total, formula
    and what it is; parameters with their shape at the leaves. Cut at ``depth`` levels
    (deeper tensors summed into their node); the summary footer below."""

    def __init__(self, model: Model, depth: int | None = None) -> None:
        self.model, self.depth = model, depth

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> Iterator[RenderableType]:
        model = self.model
        root = name_tree(model)
        total = model.total
        head = Text(title(model), style="bold")
        head.append(f"  {count_str(total)}")
        tree = Tree(head)
        self._add(tree, root, 1, total)
        yield tree
        footer = Table.grid(padding=(0, 2))
        footer.add_column(style="bold", no_wrap=True)
        footer.add_column()
        for label, text in summary_lines(model):
            footer.add_row(label, text)
        yield footer

    def _add(self, parent: Tree, node: NameNode, level: int, total: Any) -> None:
        for child in node.children.values():
            branch = parent.add(self._label(child, total))
            if child.children and (self.depth is None or level < self.depth):
                self._add(branch, child, level + 1, total)

    def _label(self, node: NameNode, total: Any) -> Text:
        row = node.row
        label = Text(node.name, style="" if row is not None else "bold")
        if row is not None:
            label.append(f"  {shape_str(row.shape)}")
            if row.tied_to:
                label.append(f"  tied to {row.tied_to}, counted there", style="dim")
                return label
            label.append(f"  {times(row.param)}")
        else:
            label.append(f"  {count_str(node.count)}")
        if isinstance(total, int) and total and isinstance(node.count, int):
            label.append(f" ({100 * node.count / total:.1f}%)")
        if node.formula != node.count:
            label.append(f"  = {dim_str(node.formula)}", style="italic")
        what = self.model.describe(node.path) if row is None else ""
        if what:
            label.append(f"  {what}", style="dim")
        return label


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
        rows = list(cost_cells(self.cost, shapes, flops, memory))
        for i, name in enumerate(cost_columns(shapes, flops, memory)):
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
            for line in rule_lines(cost):
                notes.add_row("FLOPs rule", line)
            per = cost.per_token(cost.forward_flops)
            if per is not None and cost.seq_len is not None:
                notes.add_row("Per token", f"{amount(per)} FLOPs forward")
        if self.memory:
            account = Table(title=f"Memory ({cost.training})", title_justify="left")
            for name in ("What", "Bytes", "Rule"):
                account.add_column(name, justify="right" if name == "Bytes" else "left")
            for row in memory_rows(cost):
                account.add_row(*row)
            yield account
            for line in kept_lines(cost):
                notes.add_row("Kept", line)
            for line in memory_notes(cost):
                notes.add_row("Note", line)
        notes.add_row("Summary", cost_summary(cost))
        yield notes


def _shape_lines(text: str) -> str:
    """One shape per line: ``output (B, T, 512)`` / ``h_n (2, B, 512)``."""
    return text.replace("), ", ")\n")


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
        grid = Table(
            title=escape(f"{printable(title(self.model))}, as {framework} stores it"),
            title_justify="left",
        )
        grid.add_column("Tensor", no_wrap=wide, ratio=None if wide else 1)
        grid.add_column("Shape", no_wrap=True)
        grid.add_column("Count", justify="right", no_wrap=True)
        grid.add_column("Formula")
        if wide:
            grid.add_column("Role", ratio=1)
        previous = None
        for layer, param, twin, tied in convention_rows(self.converted, self.template):
            if previous is not None and layer != previous:
                grid.add_section()
            previous = layer
            formula = times(twin) if twin is not None else ""
            role = f"the same tensor as {tied} (counted there)" if tied else param.role
            count = "tied" if tied else times(param)
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
        for label, text in convention_footer(self.model, self.converted):
            footer.add_row(label, text)
        yield footer


def conventions_side_by_side(model: Model, converted: list[Converted]) -> RenderableType:
    """``shapecalc compare-conventions``: one row per PyTorch tensor, each framework's
    corresponding tensor beside it (name, shape and count, and what it is made of), a
    blank where a framework has none; then one line per framework: total, gate order,
    difference from PyTorch and why."""
    from shapecalc.analysis.conventions import describe_pieces, rows

    grid = Table(
        title=escape(f"{printable(title(model))} in {count_noun(len(converted), 'framework')}"),
        title_justify="left",
    )
    grid.add_column("Layer", style="bold", no_wrap=True)
    for c in converted:
        grid.add_column(FRAMEWORK_NAMES[c.convention], ratio=1, overflow="fold")

    def cell(c: Converted, i: int | None) -> str:
        if i is None:
            return ""
        p = c.tensors[i][1]
        text = f"{p.name}\n  {shape_str(p.shape)} {'tied' if p.name in c.ties else times(p)}"
        if not c.pieces or c.convention == "pytorch" or c.sources(i) == [p.name]:
            return text
        return text + f"\n  = {describe_pieces(c.pieces[i], short=True)}"

    table = rows(converted)
    layers = [
        next(c.tensors[i][0] for c, i in zip(converted, row, strict=True) if i is not None)
        for row in table
    ]
    for n, row in enumerate(table):
        first = n == 0 or layers[n - 1] != layers[n]
        last = n == len(table) - 1 or layers[n + 1] != layers[n]
        cells = [cell(c, i) for c, i in zip(converted, row, strict=True)]
        grid.add_row(layers[n] if first else "", *cells, end_section=last)
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
            else ("+" if isinstance(delta, int) and delta > 0 else "") + amount(delta),
            orders,
            why,
        )
    return Group(grid, summary)


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
        title=f"{solution.free} for a budget of {count_noun(solution.target, 'parameter')} "
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
            f"{candidate.distance:+,} ({percent(candidate.distance, solution.target)})",
        )
    footer = Table.grid(padding=(0, 2))
    footer.add_column(style="bold", no_wrap=True)
    footer.add_column()
    if solution.formula is not None:
        formula = solution.formula
        others = sorted(getattr(formula, "free_symbols", set()) - {solution.letter})
        note = "the other sizes fixed" + (
            f"; {', '.join(others)} worked out from {solution.letter} at each size"
            if others
            else ""
        )
        footer.add_row("Total", f"{dim_str(formula)} ({note})")
    return Group(grid, footer)


def explanation(sections: tuple[Section, ...]) -> RenderableType:
    """``--explain``: titled sections of plain text."""
    parts: list[RenderableType] = []
    for section in sections:
        parts.append(Text(section.title, style="bold underline"))
        for line in section.lines:
            parts.append(Text(line))
        parts.append(Text(""))
    return Group(*parts)


def port_table(mapping: PortMap) -> RenderableType:
    """``shapecalc port``: every target tensor, its shape, and what it is made of; the
    notes (gate orders, the layer options the weights assume) below. Keras to ONNX and
    back: the two maps in turn, through PyTorch's names."""
    parts: list[RenderableType] = []
    for stage in mapping.stages():
        source, target = FRAMEWORK_NAMES[stage.source], FRAMEWORK_NAMES[stage.target]
        grid = Table(
            title=escape(f"{printable(stage.model)}: {source} to {target}"),
            title_justify="left",
        )
        grid.add_column(f"{target} tensor", overflow="fold")
        grid.add_column("Shape", no_wrap=True)
        grid.add_column(f"Made from the {source} tensors", ratio=1, overflow="fold")
        for entry in stage.entries:
            how = entry.how if entry.pieces else entry.note
            grid.add_row(escape(entry.target), shape_str(entry.shape), escape(how))
        parts.append(grid)
    parts += [Text(f"Note  {line}") for line in mapping.notes]
    parts.append(
        Text(
            f"Apply  shapecalc.port(model, {mapping.source!r}, {mapping.target!r})"
            ".apply(weights): a dict of name -> array"
        )
    )
    return Group(*parts)


def sweep_table(table: Sweep) -> RenderableType:
    """``shapecalc sweep``: a row per point (the swept sizes, then the columns), and the
    formula of each column in the sizes that vary."""
    from shapecalc.report.cells import formula_text, sweep_cells, sweep_heading

    grid = Table(title=escape(printable(sweep_heading(table))), title_justify="left")
    for axis in table.axes:
        grid.add_column(f"{axis.letter}", justify="right", no_wrap=True)
    for column in table.columns:
        grid.add_column(column.short, justify="right", no_wrap=True)
    for point in table.points:
        grid.add_row(*sweep_cells(table, point))
    legend = [f"{a.letter} = {a.name}" for a in table.axes]
    legend += [f"{k} = {v}, worked out at each point" for k, v in table.derived.items()]
    formulas = [Text(", ".join(legend))]
    formulas += [
        Text(f"{column.title} = {formula_text(column.formula)}")
        for column in table.columns
        if column.formula is not None
    ]
    if any(column.formula is None for column in table.columns):
        formulas.append(Text("(no formula: the layers need the swept sizes as numbers)"))
    return Group(grid, *formulas)
