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
    kept_column,
    kept_lines,
    memory_accounts,
    memory_rows,
    memory_title,
    name_tree,
    percent,
    rule_lines,
    state_lines,
    state_rows,
    summary_lines,
    table_rows,
    times,
    title,
)

if TYPE_CHECKING:  # each imported by the commands that make it: a plain table needs none
    from shapecalc.analysis.conventions import Converted
    from shapecalc.analysis.cost import Cost
    from shapecalc.analysis.explain import Section
    from shapecalc.analysis.fit import Answer
    from shapecalc.analysis.model_parallel import ModelParallel
    from shapecalc.analysis.parallel import PerGpu, PlanSweep
    from shapecalc.analysis.port import PortMap
    from shapecalc.analysis.sizing import Solution
    from shapecalc.analysis.sweep import Sweep

__all__ = [
    "ConventionTable",
    "CostTable",
    "LayerKindsTable",
    "ModelTable",
    "ModelTree",
    "conventions_side_by_side",
    "explanation",
    "fit_table",
    "port_table",
    "prose",
    "renderables",
    "shell_command",
    "solution_table",
    "sweep_table",
]

#: below this many columns the role goes under the parameter name instead of its own column
WIDE = 110


def _framework(convention: str) -> str:
    """A convention's framework as its users write it (``Keras``): the conventions module
    loaded only by what shows one, not by a plain table."""
    from shapecalc.analysis.conventions import FRAMEWORK_NAMES

    return FRAMEWORK_NAMES[convention]


# -- laying out tables that never cut a cell ------------------------------------------------
#: said under a parameter table too narrow for its formula column
FORMULA_NOTE = (
    "Formulas are left out at this width: widen the terminal, or see them with "
    "--format tree, markdown or json."
)


def _plain_width(cell: RenderableType) -> int:
    """The widest line of a cell's text."""
    text = cell.plain if isinstance(cell, Text) else str(cell)
    return max((len(line) for line in text.split("\n")), default=0)


def fitted_table(
    columns: list[tuple[str, str]],
    body: list[tuple[list[Text], bool]],
    width: int,
    *,
    wrap: str | None = None,
    whole: dict[str, list[str]] | None = None,
    least: int = 20,
    right: set[str] = frozenset(),  # type: ignore[assignment]
    bold: set[str] = frozenset(),  # type: ignore[assignment]
) -> Table | None:
    """A table whose ``columns`` (heading, key) are each as wide as their widest line, but
    the ``wrap`` column, which takes what is left (at least ``least`` characters and the
    longest of its ``whole`` strings) and wraps its text there. None when that does not fit
    in ``width``: the caller chooses a narrower layout."""
    fixed = [
        max([_plain_width(heading), *(_plain_width(cells[i]) for cells, _ in body)])
        if key != wrap
        else 0
        for i, (heading, key) in enumerate(columns)
    ]
    left = width - sum(fixed) - 3 * len(columns) - 1
    grid = Table(title_justify="left")
    for i, (heading, key) in enumerate(columns):
        justify: Any = "right" if key in right else "left"
        style = "bold" if key in bold else None
        if key == wrap:
            longest = max((len(s) for s in (whole or {}).get(key, [])), default=0)
            natural = max([_plain_width(heading), *(_plain_width(c[i]) for c, _ in body)])
            if left < max(min(least, natural), longest, len(heading)):
                return None
            grid.add_column(
                heading, width=min(natural, left), justify=justify, style=style, overflow="fold"
            )
        else:
            if left < 0:
                return None
            grid.add_column(heading, width=fixed[i], no_wrap=True, justify=justify, style=style)
    for cells, end in body:
        grid.add_row(*cells, end_section=end)
    return grid


def dotted(name: str, width: int, indent: int = 4) -> str:
    """A dotted name broken after a dot where it is longer than ``width`` (the lines after
    the first indented by ``indent``), never inside a part (``{0..31}`` is one)."""
    if len(name) <= width:
        return name
    from shapecalc.core.tree import split_name

    lines: list[str] = []
    line = ""
    for part in split_name(name):
        piece = part if not line else "." + part
        room = width - (indent if lines else 0)
        if line and len(line) + len(piece) + 1 > room:  # + 1: the dot ends the line
            lines.append(line + ".")
            line = part
        else:
            line += piece
    lines.append(line)
    return ("\n" + " " * indent).join(lines)


def kept_whole(text: str, width: int) -> str:
    """``text`` broken into lines of at most ``width`` characters, never inside a formula
    (no break beside ``+ - × =``) nor inside a short parenthesis such as a shape."""
    import re
    import textwrap

    glue = "\x00"
    kept = re.sub(r" ([+\-×=]) ", rf"{glue}\1{glue}", text)
    kept = re.sub(r"\([^()]{0,40}\)", lambda m: m.group(0).replace(" ", glue), kept)
    lines = textwrap.wrap(
        kept, width, break_long_words=False, break_on_hyphens=False, replace_whitespace=False
    )
    return "\n".join(lines).replace(glue, " ")


def _between_terms(line: str, width: int) -> list[str]:
    """A line too long for ``width`` broken between the terms of its formula (before a
    ``+`` or ``-``), the continuations indented by two; a line that fits, as it is."""
    if len(line) <= width:
        return [line]
    import re

    terms = re.split(r"(?= [+\-] )", line)
    out = [terms[0]]
    for term in terms[1:]:
        if len(out[-1]) + len(term) <= width:
            out[-1] += term
        else:
            out.append("  " + term.lstrip())
    return out


def _footer(lines: list[tuple[str, str]], width: int) -> Group:
    """Label and text, the text broken so that no formula in it is; a text with a formula
    too long for the column beside the labels goes on its own lines under its label."""
    label = max((len(name) for name, _ in lines), default=0)
    room = max(width - label - 2, 20)
    parts: list[RenderableType] = []
    footer: Table | None = None
    for name, text in lines:
        kept = kept_whole(text, room)
        if _plain_width(kept) > room and width - 2 > room:
            parts.append(Text(name, style="bold"))
            under = [
                piece
                for line in kept_whole(text, width - 2).split("\n")
                for piece in _between_terms(line, width - 2)
            ]
            parts.append(Text("  " + "\n  ".join(under)))
            footer = None
            continue
        if footer is None:
            footer = Table.grid(padding=(0, 2))
            footer.add_column(style="bold", no_wrap=True, min_width=label)
            footer.add_column()
            parts.append(footer)
        footer.add_row(name, kept)
    return Group(*parts)


def _buffers(model: Model, depth: int | None, width: int) -> Iterator[RenderableType]:
    """The buffers: a table, the role in a column or under the name."""
    lines = buffer_lines(model, depth)
    if not lines:
        return
    yield Text("Buffers (saved with the model, not trained)", style="table.title")
    columns = [(name, name) for name in ("Buffer", "Shape", "Count", "Role")]
    body = [([Text(c) for c in line], False) for line in lines]
    grid = fitted_table(columns, body, width, wrap="Role", right={"Count"})
    if grid is None:
        under = []
        for name, shape, count, role in lines:
            cell = Text(name)
            if role:
                cell.append("\n" + role, style="dim")
            under.append(([cell, Text(shape), Text(count)], False))
        grid = fitted_table(
            columns[:3],
            under,
            width,
            wrap="Buffer",
            whole={"Buffer": [n for n, *_ in lines]},
            right={"Count"},
        )
    if grid is not None:
        yield grid
    else:
        yield Text("\n".join("  ".join(c for c in line if c) for line in lines))


def fit_on(fit: Any) -> str:
    """``2 × NVIDIA H100 SXM5 80 GB (85.5 GB each, vllm)``: what a fit runs on, as its
    table's title and its frontier chart's say it."""
    from shapecalc.core.units import human_bytes

    hw = fit.hardware
    on = f"{fit.gpus} × {hw.title}" if fit.gpus > 1 else hw.title
    engine = f", {fit.engine.name}" if fit.engine is not None else ""
    return f"{on} ({human_bytes(hw.memory)} each{engine})"


def echo(*parts: RenderableType) -> None:
    """Print renderables on standard output, markup off for text from elsewhere."""
    console = Console(highlight=False)
    if console.is_terminal:
        for part in parts:
            console.print(part)
        return
    # piped: the same lines, without the spaces that pad them to the width
    with console.capture() as captured:
        for part in parts:
            console.print(part)
    text = "\n".join(line.rstrip() for line in captured.get().split("\n"))
    console.file.write(text)
    console.file.flush()


def plain_text(report: Report, fmt: str, width: int) -> str:
    """The report drawn as ``fmt`` (table or tree) on a console ``width`` columns wide,
    as plain text: no colour, no markup, lines without trailing spaces."""
    console = Console(width=width, color_system=None, highlight=False, force_terminal=False)
    with console.capture() as captured:
        for part in renderables(report, fmt):
            console.print(part)
    return "\n".join(line.rstrip() for line in captured.get().rstrip("\n").split("\n")) + "\n"


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
                whole = column in ("Kind", "Parameters")  # names and formulas never broken
                table.add_column(
                    column,
                    no_wrap=whole,
                    ratio=None if whole else _RATIOS.get(column),
                    overflow="fold",
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
    if report.per_gpu is not None:
        yield ""
        yield PerGpuTable(report.per_gpu)
    if report.model_parallel is not None:
        yield ""
        yield ModelParallelTable(report.model_parallel)
    if report.explanation:
        yield ""
        yield explanation(report.explanation)


class ModelTable:
    """The parameter table with per-layer subtotals, then the summary footer.

    The layout follows the console width, and no cell is ever cut: the widest layout whose
    names, shapes, counts and formulas fit whole is chosen. From widest to narrowest: a
    column per field; the layer column dropped (parameter names start with it); the role
    under the parameter's name; the formula column dropped (a note says where to see the
    formulas); one column, each tensor's numbers under its name.
    """

    def __init__(self, model: Model, depth: int | None = None) -> None:
        self.model, self.depth = model, depth

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> Iterator[RenderableType]:
        width = options.max_width
        rows = list(table_rows(self.model, self.depth))
        # a fully symbolic model's counts are its formulas: one column says it
        same = all(cells[3] == cells[4] for cells, _ in rows)
        layers = any(cells[0] for cells, _ in rows)  # not a bare layer or summed nodes
        yield Text(printable(title(self.model)), style="table.title")
        wanted = [c for c in COLUMNS if not (c == "Formula" and same)]
        narrow = [c for c in wanted if c not in ("Layer", "Role")]
        bare = [c for c in narrow if c not in ("Shape", "Formula")]
        formulas = "Formula" in narrow  # else the counts are the formulas
        # (columns, formula under the count, shape under the name)
        layouts: list[tuple[list[str], bool, bool]] = [
            ([c for c in wanted if c != "Layer"], False, False),
            (narrow, False, False),
            ([c for c in narrow if c != "Formula"], formulas, False),
            (bare, formulas, True),
            ([c for c in narrow if c != "Formula"], False, False),
        ]
        if layers and width >= WIDE:
            layouts.insert(0, (wanted, False, False))
        moved = self._moved(rows, same, width, layouts) if formulas else None
        if moved is not None:  # long subtotal formulas below the table, the rest in it
            table, below = moved
            yield table
            for name, formula in below:  # the name, then the formula broken between terms
                lines = kept_whole(f"= {formula}", max(width - 2, 20)).replace("\n", "\n  ")
                yield Text(f"{name}\n  {lines}", style="italic")
        else:
            for shown, under, shape in layouts:
                grid = self._grid(shown, rows, same, width, under, shape)
                if grid is not None:
                    yield grid
                    if formulas and "Formula" not in shown and not under:
                        yield Text(FORMULA_NOTE, style="dim")
                    break
            else:
                yield self._compact(rows, same, width)
        yield from _buffers(self.model, self.depth, width)
        yield _footer(summary_lines(self.model), width)

    def _moved(
        self,
        rows: list[tuple[list[str], bool]],
        same: bool,
        width: int,
        layouts: list[tuple[list[str], bool, bool]],
    ) -> tuple[Table, list[tuple[str, str]]] | None:
        """A table that keeps its formulas when the longest subtotal formulas (a stack of
        layers of many kinds: DeepSeek's) are written below it instead, longest first, as
        the footer writes formulas (broken between terms only); None when every formula
        fits in the table already, or none fits even so."""
        keeps = [layout for layout in layouts if "Formula" in layout[0] or layout[1]]
        if any(self._grid(s, rows, same, width, u, h) is not None for s, u, h in keeps):
            return None
        order = sorted(
            (i for i, (cells, subtotal) in enumerate(rows) if subtotal and cells[4]),
            key=lambda i: -len(rows[i][0][4]),
        )
        trimmed = [(list(cells), subtotal) for cells, subtotal in rows]
        below: list[tuple[str, str]] = []
        for i in order:
            cells = trimmed[i][0]
            below.append((cells[1], cells[4]))
            cells[4] = "below"
            for shown, under, shape in keeps:
                grid = self._grid(shown, trimmed, same, width, under, shape)
                if grid is not None:
                    return grid, below
        return None

    def _grid(
        self,
        shown: list[str],
        rows: list[tuple[list[str], bool]],
        same: bool,
        width: int,
        formula_under: bool,
        shape_under: bool,
    ) -> Table | None:
        under = "Role" not in shown  # the role goes under the parameter's name
        heading = "Count = formula" if same else "Count\n= formula" if formula_under else "Count"
        names = {"Count": heading, "Parameter": "Parameter, shape" if shape_under else "Parameter"}
        columns = [(names.get(name, name), name) for name in shown]
        body = []
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
            if shape_under and cells[2]:
                styled["Parameter"].append("\n" + cells[2])
            if under and cells[5]:
                styled["Parameter"].append("\n" + cells[5], style="dim")
            if formula_under and cells[4]:
                styled["Count"].append("\n= " + cells[4], style="italic")
            body.append(([styled[c] for c in shown], subtotal))
        return fitted_table(
            columns,
            body,
            width,
            wrap="Role" if not under else "Parameter",
            whole={"Parameter": [c for cells, _ in rows for c in cells[1:3]]} if under else {},
            right={"Count"},
            bold={"Layer"},
        )

    def _compact(self, rows: list[tuple[list[str], bool]], same: bool, width: int) -> Text:
        """A block of lines per tensor: its name; its shape, count and formula (the formula
        on a line of its own when they do not fit on one); its role, indented."""
        lines = Text()
        for n, (cells, subtotal) in enumerate(rows):
            if n:
                lines.append("\n")
            lines.append(dotted(cells[1], width), style="italic" if subtotal else "")
            numbers = "  ".join(c for c in (cells[2], cells[3]) if c)
            formula = f"= {cells[4]}" if not same and cells[4] else ""
            if numbers:
                lines.append("\n  " + numbers)
            if formula:
                together = numbers and len(numbers) + len(formula) + 4 <= width
                lines.append("  " + formula if together else "\n  " + formula, style="italic")
            if cells[5]:
                role = kept_whole(cells[5], width - 2).replace("\n", "\n  ")
                lines.append("\n  " + role, style="dim")
        return lines


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
        width = options.max_width
        tree = Tree(_packed([(title(model), "bold"), (count_str(total), "")], width))
        self._add(tree, root, 1, total, width)
        yield tree
        yield _footer(summary_lines(model), width)

    def _add(self, parent: Tree, node: NameNode, level: int, total: Any, width: int) -> None:
        for child in node.children.values():
            branch = parent.add(self._label(child, total, width - 4 * level))
            if child.children and (self.depth is None or level < self.depth):
                self._add(branch, child, level + 1, total, width)

    def _label(self, node: NameNode, total: Any, width: int) -> Text:
        row = node.row
        parts: list[tuple[str, str]] = [(node.name, "" if row is not None else "bold")]
        share = ""
        if isinstance(total, int) and total and isinstance(node.count, int):
            share = f" ({100 * node.count / total:.1f}%)"
        if row is not None:
            parts.append((shape_str(row.shape), ""))
            if row.tied_to:
                parts.append((f"tied to {row.tied_to}, counted there", "dim"))
                return _packed(parts, width)
            parts.append((times(row.param) + share, ""))
        else:
            parts.append((count_str(node.count) + share, ""))
        if node.formula != node.count:
            parts.append((f"= {dim_str(node.formula)}", "italic"))
        what = self.model.describe(node.path) if row is None else ""
        if what:
            parts.append((what, "dim"))
        return _packed(parts, width)


def _packed(parts: list[tuple[str, str]], width: int) -> Text:
    """Pieces of text two spaces apart, a piece moved whole to the next line when it does
    not fit (and broken only where it is longer than a line, never inside a formula)."""
    text, used = Text(), 0
    for i, (piece, style) in enumerate(parts):
        for j, line in enumerate(kept_whole(piece, max(width, 20)).split("\n")):
            if i and j == 0 and used + 2 + len(line) <= width:
                text.append("  ")
                used += 2
            elif i or j:
                text.append("\n")
                used = 0
            text.append(line, style=style)
            used += len(line)
    return text


class CostTable:
    """Per-layer shapes, FLOPs and kept bytes; the memory account; the rules; a footer."""

    def __init__(self, cost: Cost, *, shapes: bool, flops: bool, memory: bool) -> None:
        self.cost, self.shapes, self.flops, self.memory = cost, shapes, flops, memory

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> Iterator[RenderableType]:
        cost, width = self.cost, options.max_width
        kept = kept_column(cost, self.memory)
        if not (self.shapes or self.flops or kept):  # inference memory: no per-layer column
            yield from self._notes(width)
            return
        title = f"Per layer at {cost.describe_input()}" + (f", {cost.dtype}" if kept else "")
        numbers = self.flops or kept
        rows = list(cost_cells(cost, self.shapes, self.flops, kept))
        names = cost_columns(self.shapes, self.flops, kept)
        grid = self._grid(names, rows, width)
        if grid is None and len(cost.layers) == 1:  # one layer: a row per number
            grid = fitted_table(
                [("", "What"), (rows[0][0][0], "Value")],
                [
                    ([Text(n), Text(_shape_lines(c))], False)
                    for n, c in zip(names[1:], rows[0][0][1:], strict=True)
                ],
                width,
                wrap="What",
                least=0,
            )
        if grid is not None:
            yield Text(title, style="table.title")
            yield grid
        else:
            parts = [names[1:3], names[3:]] if self.shapes and numbers else [names[1:]]
            for part in (p for p in parts if p):
                yield Text(title + (": shapes" if "Input" in part else ""), style="table.title")
                yield from self._chunks(part, names, rows, width)
        yield from self._notes(width)

    def _chunks(
        self, part: list[str], names: list[str], rows: list[tuple[list[str], bool]], width: int
    ) -> Iterator[RenderableType]:
        """The columns ``part``, each table with the layer column and as many of them as
        fit; a block of lines per layer when not even one does."""
        at = [names.index(n) for n in part]
        tables: list[Table] = []
        start = 0
        while start < len(at) and len(tables) < 2:
            for end in range(len(at), start, -1):
                picked = [0, *at[start:end]]
                grid = self._grid(
                    [names[i] for i in picked],
                    [([c[i] for i in picked], t) for c, t in rows],
                    width,
                )
                if grid is not None:
                    tables.append(grid)
                    start = end
                    break
            else:
                break
        if start == len(at):
            yield from tables
            return
        # a block of lines per layer: its name, then its numbers, each whole
        lines = Text()
        for cells, total in rows:
            lines.append(cells[0] + "\n", style="italic" if total else "")
            pairs = [f"{names[i]} {cells[i]}".replace("\n", ", ") for i in at if cells[i]]
            line = ""
            for pair in pairs:
                if line and len(line) + 2 + len(pair) > width:
                    lines.append(line + "\n")
                    line = ""
                line = f"{line}  {pair}" if line else f"  {pair}"
            lines.append(line + "\n")
        lines.rstrip()
        yield lines

    def _grid(
        self, names: list[str], rows: list[tuple[list[str], bool]], width: int
    ) -> Table | None:
        whole = [piece for cells, _ in rows for piece in cells[0].split(" (")]
        body = [
            (
                [
                    Text(_shape_lines(c) if "(" in c and i else c, style="italic" if total else "")
                    for i, c in enumerate(cells)
                ],
                False,
            )
            for cells, total in rows
        ]
        right = {n for n in names if n not in ("Layer", "Input", "Output")}
        return fitted_table(
            [(n, n) for n in names],
            body,
            width,
            wrap="Layer",
            whole={"Layer": whole},
            least=0,
            right=right,
        )

    def _notes(self, width: int) -> Iterator[RenderableType]:
        cost = self.cost
        notes: list[tuple[str, str]] = []
        if self.flops:
            notes += [("FLOPs rule", line) for line in rule_lines(cost)]
            per = cost.per_token(cost.forward_flops)
            if per is not None and cost.seq_len is not None:
                notes.append(("Per token", f"{amount(per)} FLOPs forward"))
        if self.memory:
            for kind in memory_accounts(cost):
                yield Text(memory_title(cost, kind), style="table.title")
                yield _account_table(memory_rows(cost, kind), width)
            yield from _state_table(cost, width)
            notes += [("State", line) for line in state_lines(cost)]
            notes += [("Kept", line) for line in kept_lines(cost)]
            from shapecalc.report.markdown import memory_notes

            notes += [("Note", line) for line in memory_notes(cost)]
        notes.append(("Summary", cost_summary(cost)))
        yield _footer(notes, width)


def plan_sweep_table(table: PlanSweep) -> RenderableType:
    """``shapecalc sweep ... --dp 1,2,4``: a row per plan, the bytes of each column."""
    return _PlanSweep(table)


class _PlanSweep:
    def __init__(self, table: PlanSweep) -> None:
        self.table = table

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> Iterator[RenderableType]:
        from shapecalc.core.units import human_bytes
        from shapecalc.report.cells import amount, plan_sweep_rows

        header, rows = plan_sweep_rows(self.table)
        axes = len(self.table.axes)

        def cell(i: int, c: Any) -> Text:
            if i < axes:
                return Text(str(c))
            return Text(human_bytes(c) if isinstance(c, int) else amount(c))

        body = [([cell(i, c) for i, c in enumerate(row)], False) for row in rows]
        yield Text("Memory per GPU over the plans", style="table.title")
        found = fitted_table(
            [(h, h) for h in header], body, options.max_width, right=set(header[axes:])
        )
        yield found if found is not None else Text("\n".join(", ".join(map(str, r)) for r in rows))


class PerGpuTable:
    """The per-GPU account of a data-parallel run under its title."""

    def __init__(self, per_gpu: PerGpu) -> None:
        self.per_gpu = per_gpu

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> Iterator[RenderableType]:
        from shapecalc.report.cells import per_gpu_rows

        yield Text(self.per_gpu.title, style="table.title")
        yield _account_table(per_gpu_rows(self.per_gpu), options.max_width)


class ModelParallelTable:
    """With --shapes, one GPU of a model-parallel run: the most loaded rank's tensors,
    each with its shape on the rank, what it is a piece of and how it is split."""

    def __init__(self, split: ModelParallel) -> None:
        self.split = split

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> Iterator[RenderableType]:
        from shapecalc.report.cells import model_parallel_rows

        yield Text(self.split.title, style="table.title")
        yield _account_table(
            model_parallel_rows(self.split), options.max_width, ("Tensor", "Count", "Per rank")
        )


def _names_kept(rule: str, room: int) -> str:
    """``rule`` with each module name longer than ``room`` broken after a dot, never
    inside a part nor a ``{0..31}`` range (rich would fold it anywhere)."""
    if room < 12:
        return rule
    return " ".join(dotted(w, room, 0) if len(w) > room else w for w in rule.split(" "))


def _account_table(
    rows: list[tuple[str, str, str]],
    width: int,
    names: tuple[str, str, str] = ("What", "Bytes", "Rule"),
) -> RenderableType:
    """One memory account: what, bytes and rule side by side, or the rule under what it
    is for when the three do not fit (``names``: the columns' headers)."""
    columns = [(name, key) for name, key in zip(names, ("What", "Bytes", "Rule"), strict=True)]
    widest = [max([len(names[i]), *(len(r[i]) for r in rows)]) for i in (0, 1)]
    room = width - widest[0] - widest[1] - 10  # the Rule column's, as fitted_table gives it
    body = [
        ([Text(what), Text(size), Text(_names_kept(rule, room))], False)
        for what, size, rule in rows
    ]
    account = fitted_table(columns, body, width, wrap="Rule", right={"Bytes"})
    if account is None:  # the rule under what it is for
        under = []
        room = width - widest[1] - 7
        for what, size, rule in rows:
            cell = Text(what)
            cell.append("\n" + _names_kept(rule, room), style="dim")
            under.append(([cell, Text(size)], False))
        account = fitted_table(
            columns[:2],
            under,
            width,
            wrap="What",
            whole={"What": [r[0] for r in rows]},
            right={"Bytes"},
        )
    return account if account is not None else Text("\n".join("  ".join(r) for r in rows))


def _state_table(cost: Cost, width: int) -> Iterator[RenderableType]:
    """The inference state by kind of layer; what a layer holds under its kind when the
    columns do not fit side by side."""
    rows = state_rows(cost)
    if not rows:
        return
    yield Text("Inference state by kind of layer", style="table.title")
    names = ("Kind", "Layers", "Each", "Bytes", "Holds")
    right = {"Layers", "Each", "Bytes"}
    body = [([Text(c) for c in row], False) for row in rows]
    table = fitted_table([(n, n) for n in names], body, width, wrap="Holds", right=right)
    if table is None:
        under = []
        for kind, layers, each, total, held in rows:
            cell = Text(kind)
            cell.append("\n" + held, style="dim")
            under.append(([cell, Text(layers), Text(each), Text(total)], False))
        table = fitted_table(
            [(n, n) for n in names[:4]],
            under,
            width,
            wrap="Kind",
            whole={"Kind": [r[0] for r in rows]},
            right=right,
        )
    if table is None:  # long formulas: everything under the kind, the bytes beside it
        stacked = []
        for kind, layers, each, total, held in rows:
            cell = Text(kind)
            cell.append(f"\n{layers} layers, {each} bytes each\n{held}", style="dim")
            stacked.append(([cell, Text(total)], False))
        table = fitted_table(
            [("Kind", "Kind"), ("Bytes", "Bytes")], stacked, width, wrap="Kind", right={"Bytes"}
        )
    yield table if table is not None else Text("\n".join("  ".join(r) for r in rows))


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
        width = options.max_width
        framework = _framework(self.converted.convention)
        yield Text(printable(f"{title(self.model)}, as {framework} stores it"), style="table.title")
        rows: list[tuple[bool, list[str]]] = []  # (a new layer starts, cells)
        previous = None
        for layer, param, twin, tied in convention_rows(self.converted, self.template):
            formula = times(twin) if twin is not None else ""
            role = f"the same tensor as {tied} (counted there)" if tied else param.role
            count = "tied" if tied else times(param)
            rows.append(
                (
                    previous is not None and layer != previous,
                    [param.name, shape_str(param.shape), count, formula, role],
                )
            )
            previous = layer
        formulas = any(cells[3] for _, cells in rows)
        names = ["Tensor", "Shape", "Count", "Formula", "Role"]
        grid = None
        # (role under the name, formula under the count, formula shown)
        for under, below, shown in (
            (False, False, True),
            (True, False, True),
            (True, True, True),
            (True, False, False),
        ):
            keep = [0, 1, 2] + ([3] if shown and not below else []) + ([] if under else [4])
            body = []
            for n, (_new, cells) in enumerate(rows):
                texts = [Text(c) for c in cells]
                if under and cells[4]:
                    texts[0].append("\n" + cells[4], style="dim")
                if below and cells[3]:
                    texts[2].append("\n= " + cells[3], style="italic")
                ends = n + 1 < len(rows) and rows[n + 1][0]
                body.append(([texts[i] for i in keep], ends))
            grid = fitted_table(
                [(names[i], names[i]) for i in keep],
                body,
                width,
                wrap="Tensor" if under else "Role",
                whole={"Tensor": [c[0] for _, c in rows]} if under else {},
                right={"Count"},
            )
            if grid is not None:
                yield grid
                if formulas and not shown:
                    yield Text(FORMULA_NOTE, style="dim")
                break
        if grid is None:
            lines = Text()
            for _, (name, shape, count, formula, role) in rows:
                lines.append(name + "\n")
                lines.append(f"  {shape}  {count}" + (f"  = {formula}" if formula else "") + "\n")
                if role:
                    lines.append(f"  {role}\n", style="dim")
            lines.rstrip()
            yield lines
        yield _footer(convention_footer(self.model, self.converted), width)


def conventions_side_by_side(model: Model, converted: list[Converted]) -> RenderableType:
    """``shapecalc compare-conventions``: one row per PyTorch tensor, each framework's
    corresponding tensor beside it (name, shape and count, and what it is made of), a
    blank where a framework has none; then one line per framework: total, gate order,
    difference from PyTorch and why. Names and shape-and-count lines are never broken:
    too narrow for the frameworks side by side, each tensor row becomes a block of lines."""
    return _SideBySide(model, converted)


class _SideBySide:
    def __init__(self, model: Model, converted: list[Converted]) -> None:
        self.model, self.converted = model, converted

    def _cells(self) -> tuple[list[str], list[list[tuple[str, str, str]]]]:
        from shapecalc.analysis.conventions import describe_pieces, rows

        converted = self.converted

        def cell(c: Converted, i: int | None) -> tuple[str, str, str]:
            if i is None:
                return ("", "", "")
            p = c.tensors[i][1]
            numbers = f"{shape_str(p.shape)} {'tied' if p.name in c.ties else times(p)}"
            if not c.pieces or c.convention == "pytorch" or c.sources(i) == [p.name]:
                return (p.name, numbers, "")
            return (p.name, numbers, f"= {describe_pieces(c.pieces[i], short=True)}")

        table = rows(converted)
        layers = [
            next(c.tensors[i][0] for c, i in zip(converted, row, strict=True) if i is not None)
            for row in table
        ]
        return layers, [[cell(c, i) for c, i in zip(converted, row, strict=True)] for row in table]

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> Iterator[RenderableType]:
        width = options.max_width
        model, converted = self.model, self.converted
        yield Text(
            printable(f"{title(model)} in {count_noun(len(converted), 'framework')}"),
            style="table.title",
        )
        layers, cells = self._cells()
        frameworks = [_framework(c.convention) for c in converted]
        least = [
            max(
                [
                    len(name),
                    *(len(cs[k][0]) + 2 for cs in cells for _ in [0] if cs[k][1]),
                    *(max(len(cs[k][0]), len(cs[k][1]) + 2) for cs in cells),
                ]
            )
            for k, name in enumerate(frameworks)
        ]
        natural = [
            max([least[k], *(len(cs[k][2]) + 2 for cs in cells)]) for k in range(len(frameworks))
        ]
        longest_layer = max([5, *(len(layer) for layer in layers)])
        grid = None
        for with_layer in (True, False):
            fixed = longest_layer + 3 if with_layer else 0
            room = width - fixed - 3 * len(frameworks) - 1
            if room < sum(least):
                continue
            extra = room - sum(least)
            wanted = [n - m for n, m in zip(natural, least, strict=True)]
            widths = [
                m + (w if sum(wanted) <= extra else extra * w // max(sum(wanted), 1))
                for m, w in zip(least, wanted, strict=True)
            ]
            grid = Table()
            if with_layer:
                grid.add_column("Layer", style="bold", no_wrap=True, width=longest_layer)
            for name, w in zip(frameworks, widths, strict=True):
                grid.add_column(name, width=w, overflow="fold")
            for n, row in enumerate(cells):
                first = n == 0 or layers[n - 1] != layers[n]
                last = n == len(cells) - 1 or layers[n + 1] != layers[n]
                texts = [
                    "\n".join(
                        x
                        for x in (name, f"  {numbers}" if numbers else "", how and f"  {how}")
                        if x
                    )
                    for name, numbers, how in row
                ]
                lead = [layers[n] if first else ""] if with_layer else []
                grid.add_row(*lead, *texts, end_section=last)
            break
        if grid is not None:
            yield grid
        else:  # a block of lines per tensor
            lines = Text()
            for n, row in enumerate(cells):
                if n == 0 or layers[n - 1] != layers[n]:
                    lines.append(layers[n] + "\n", style="bold")
                for framework, (name, numbers, how) in zip(frameworks, row, strict=True):
                    if name:
                        text = kept_whole(
                            f"{framework}: {name} {numbers} {how}".rstrip(), width - 2
                        )
                        lines.append("  " + text.replace("\n", "\n    ") + "\n")
            lines.rstrip()
            yield lines
        yield from self._totals(width)

    def _totals(self, width: int) -> Iterator[RenderableType]:
        from shapecalc.analysis.conventions import describe

        model = self.model
        yield Text("Totals", style="table.title")
        rows = []
        for c in self.converted:
            delta = c.total - model.total
            rows.append(
                [
                    _framework(c.convention),
                    count_str(c.total),
                    ""
                    if c.convention == "pytorch"
                    else ("+" if isinstance(delta, int) and delta > 0 else "") + amount(delta),
                    "; ".join(c.gate_orders.values()) or "-",
                    "; ".join(describe(c, model.total)) if c.convention != "pytorch" else "",
                ]
            )
        names = ("Framework", "Total", "vs PyTorch", "Gate order", "Why")
        right = {"Total", "vs PyTorch"}
        body = [([Text(c) for c in row], False) for row in rows]
        grid = fitted_table([(n, n) for n in names], body, width, wrap="Why", right=right)
        if grid is None:  # the gate order and why under the framework
            under = []
            for row in rows:
                cell = Text(row[0])
                cell.append(f"\ngate order {row[3]}", style="dim")
                if row[4]:
                    cell.append("\n" + row[4], style="dim")
                under.append(([cell, Text(row[1]), Text(row[2])], False))
            grid = fitted_table(
                [(n, n) for n in names[:3]],
                under,
                width,
                wrap="Framework",
                whole={"Framework": [r[0] for r in rows]},
                right=right,
            )
        if grid is not None:
            yield grid
        else:
            for row in rows:
                yield Text(kept_whole("  ".join(c for c in row if c), width))


def solution_table(solution: Solution) -> RenderableType:
    """``shapecalc solve``: the sizes either side of the budget, and the formula (whole on
    the Total line, or on a line of its own under it when it does not fit there)."""
    return _Solution(solution)


class _Solution:
    def __init__(self, solution: Solution) -> None:
        self.solution = solution

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> Iterator[RenderableType]:
        solution = self.solution
        sizes = solution.fixed_sizes
        step = f", multiples of {solution.multiple_of}" if solution.multiple_of > 1 else ""
        counted = (
            f", counted as {_framework(solution.convention)} stores them"
            if solution.convention != "pytorch"
            else ""
        )
        yield Text(
            f"{solution.free} for a budget of {count_noun(solution.target, 'parameter')} "
            f"({sizes}{step}{counted})",
            style="table.title",
        )
        grid = Table()
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
        yield grid
        if solution.formula is not None:
            formula = solution.formula
            others = sorted(getattr(formula, "free_symbols", set()) - {solution.letter})
            note = "the other sizes fixed" + (
                f"; {', '.join(others)} worked out from {solution.letter} at each size"
                if others
                else ""
            )
            yield _footer([("Total", f"{dim_str(formula)} ({note})")], options.max_width)


def prose(text: str) -> RenderableType:
    """A sentence broken at the console's width, never inside a formula or a parenthesis
    such as a shape."""
    return _Prose(text)


class _Prose:
    def __init__(self, text: str) -> None:
        self.text = text

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> Iterator[RenderableType]:
        yield Text(kept_whole(self.text, options.max_width))


def shell_command(lead: str, words: list[str]) -> RenderableType:
    """``lead`` and a command to copy: on one line where it fits, else the command on lines
    of its own under ``lead``, continued with a backslash (``words`` kept whole: a flag and
    its value are one word)."""
    return _ShellCommand(lead, words)


class _ShellCommand:
    def __init__(self, lead: str, words: list[str]) -> None:
        self.lead, self.words = lead, words

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> Iterator[RenderableType]:
        width, command = options.max_width, " ".join(self.words)
        if len(self.lead) + 1 + len(command) <= width:
            yield Text(f"{self.lead} {command}")
            return
        lines, line = [], "  "
        for word in self.words:
            if line.strip() and len(line) + 1 + len(word) + 2 > width:
                lines.append(line + " \\")
                line = "    "
            line += word if not line.strip() else " " + word
        yield Text("\n".join([self.lead, *lines, line]))


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
    return _Port(mapping)


class _Port:
    def __init__(self, mapping: PortMap) -> None:
        self.mapping = mapping

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> Iterator[RenderableType]:
        width, mapping = options.max_width, self.mapping
        for stage in mapping.stages():
            source, target = _framework(stage.source), _framework(stage.target)
            yield Text(printable(f"{stage.model}: {source} to {target}"), style="table.title")
            rows = [
                (printable(e.target), shape_str(e.shape), printable(e.how if e.pieces else e.note))
                for e in stage.entries
            ]
            columns = [(f"{target} tensor", "target"), ("Shape", "shape")]
            made = (f"Made from the {source} tensors", "how")
            body = [([Text(a), Text(b), Text(c)], False) for a, b, c in rows]
            grid = fitted_table([*columns, made], body, width, wrap="how")
            if grid is None:  # what it is made from under the tensor
                under = []
                for name, shape, how in rows:
                    cell = Text(name)
                    cell.append("\n" + how, style="dim")
                    under.append(([cell, Text(shape)], False))
                grid = fitted_table(
                    columns, under, width, wrap="target", whole={"target": [r[0] for r in rows]}
                )
            yield grid if grid is not None else Text("\n".join("  ".join(r) for r in rows))
        yield from (Text(kept_whole(f"Note  {line}", width)) for line in mapping.notes)
        yield Text(
            f"Apply  shapecalc.port(model, {mapping.source!r}, {mapping.target!r})"
            ".apply(weights): a dict of name -> array"
        )


def sweep_table(table: Sweep) -> RenderableType:
    """``shapecalc sweep``: a row per point (the swept sizes, then the columns), and the
    formula of each column in the sizes that vary. The heading is a line of its own; the
    columns that do not fit beside each other go to a second table, the swept sizes
    repeated."""
    return _Sweep(table)


class _Sweep:
    def __init__(self, table: Sweep) -> None:
        self.table = table

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> Iterator[RenderableType]:
        yield from self.parts(options.max_width)

    def parts(self, width: int) -> Iterator[RenderableType]:
        from shapecalc.report.cells import (
            fit_headings,
            fit_legend,
            formula_text,
            frontier_cells,
            sweep_cells,
            sweep_heading,
        )

        table = self.table
        yield Text(printable(sweep_heading(table)), style="table.title")
        axes = [(a.letter, f"a{i}") for i, a in enumerate(table.axes)]
        columns = [(c.short, f"c{i}") for i, c in enumerate(table.columns)]
        columns += [(h, f"f{i}") for i, h in enumerate(fit_headings(table))]
        cells = [[Text(c) for c in sweep_cells(table, point)] for point in table.points]
        yield from _side_by_side(axes, columns, cells, width)
        legend = [f"{a.letter} = {a.name}" for a in table.axes]
        legend += [f"{k} = {v}, worked out at each point" for k, v in table.derived.items()]
        yield Text(kept_whole(", ".join(legend), width))
        for column in table.columns:
            if column.formula is not None:
                yield Text(kept_whole(f"{column.title} = {formula_text(column.formula)}", width))
        if any(column.formula is None for column in table.columns):
            yield Text("(no formula: each point is worked out from its numbers)")
        for line in fit_legend(table):
            yield Text(kept_whole(line, width))
        if table.fit is not None and table.fit.frontiers:
            heads, rows = frontier_cells(table)
            yield Text("The fit frontier: the largest context at each batch", style="table.title")
            yield from _side_by_side(
                [("B", "b")],
                [(h, f"s{i}") for i, h in enumerate(heads)],
                [[Text(c) for c in row] for row in rows],
                width,
            )


def _side_by_side(
    axes: list[tuple[str, str]],
    columns: list[tuple[str, str]],
    cells: list[list[Text]],
    width: int,
) -> Iterator[RenderableType]:
    """Tables of the ``axes`` columns and as many of ``columns`` as fit beside them in
    ``width``; the rest in further tables, the axes repeated; a line per row when not
    even one column fits."""
    keys = {key for _, key in axes + columns}
    n, start = len(axes), 0
    while True:
        for end in range(len(columns), start - 1, -1):
            picked = list(range(n)) + list(range(n + start, n + end))
            grid = (
                fitted_table(
                    [(axes + columns)[i] for i in picked],
                    [([row[i] for i in picked], False) for row in cells],
                    width,
                    right=keys,
                )
                if end > start or not columns
                else None
            )
            if grid is not None:
                yield grid
                start = end
                break
        else:  # not even one column fits beside the sizes: a line per point
            for row in cells:
                heads = [h for h, _ in axes + columns]
                yield Text("  ".join(f"{h} {c.plain}" for h, c in zip(heads, row, strict=True)))
            break
        if start >= len(columns):
            break


# -- shapecalc fit -------------------------------------------------------------------------
#: the widest ``shapecalc fit``'s tables are drawn, whatever the terminal's width
FIT_WIDTH = 100


def fit_table(answer: Answer) -> RenderableType:
    """``shapecalc fit``'s table."""
    return _FitTable(answer)


def _fit_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} tokens/s"


class _FitTable:
    """``shapecalc fit``: one GPU's account, each line's rule under it, the answers and
    the speed bounds."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> Iterator[RenderableType]:
        from shapecalc.core.units import human_bytes

        a = self.answer
        fit = a.fit
        account = a.account
        verdict = "fits" if a.fits else "does not fit"
        yield Text(
            f"{fit.model.name} on {fit_on(fit)}: {verdict} at "
            f"B={fit.batch}, T={fit.seq_len:,}, {fit.dtype}",
            style="table.title",
        )
        # at most FIT_WIDTH columns: the rules fold, the bytes stay beside their labels
        table = Table(show_edge=True, width=min(options.max_width, FIT_WIDTH))
        table.add_column("per GPU", ratio=1, overflow="fold")
        table.add_column("bytes", justify="right", no_wrap=True)
        table.add_column("", justify="right", no_wrap=True)
        for line in account.lines:
            label = Text(
                line.label
                + (" (host memory)" if line.host else "" if line.counted else " (not held at once)")
            )
            label.append("\n" + line.rule, style="dim")
            table.add_row(label, f"{line.bytes:,}", human_bytes(line.bytes))
        table.add_row(Text("total", style="bold"), f"{account.total:,}", human_bytes(account.total))
        table.add_row("memory", f"{account.memory:,}", human_bytes(account.memory))
        table.add_row(
            "free" if account.free >= 0 else "short by",
            f"{abs(account.free):,}",
            human_bytes(abs(account.free)),
        )
        yield table
        answers = Table(show_header=False, show_edge=True, width=min(options.max_width, FIT_WIDTH))
        answers.add_column("", no_wrap=True)
        answers.add_column("", ratio=1, overflow="fold")
        limit = fit.context
        largest = a.largest_context
        context = (
            "not one position"
            if largest is None
            else f"{largest:,}"
            + (" (the model's whole context)" if limit is not None and largest == limit else "")
        )
        answers.add_row(f"largest context at B={fit.batch}", context)
        answers.add_row(
            f"most sequences at T={fit.seq_len:,}",
            "not one" if a.most_sequences is None else f"{a.most_sequences:,}",
        )
        gpus = (
            f"none up to 64 at B={fit.batch}, T={fit.seq_len:,}"
            if a.fewest_gpus is None
            else f"{a.fewest_gpus}" + (" (tensor parallel)" if a.fewest_gpus > 1 else "")
        )
        answers.add_row("fewest GPUs", gpus)
        if a.quantizations:
            fitting = [q for q in a.quantizations if q.fits]
            text = ", ".join(
                f"{q.name} {human_bytes(q.bytes)}" + ("" if q.fits else " (no)")
                for q in a.quantizations
                if q.bytes is not None
            )
            if a.fits and fit.model.quantization is None:
                best = f"; the model fits as it is ({fit.dtype}), unquantized"
            elif fitting:
                # the most bytes; on a tie the first declared, the plain mix (q8_0 before
                # mxfp4_moe, which differs only for a mixture's experts)
                least = max(fitting, key=lambda q: q.bytes or 0)
                best = f"; the least quantized that fits: {least.name}"
            else:
                best = "; none fits"
            kept = [q.name for q in a.quantizations if q.experts_kept and q.bytes is not None]
            if kept:  # why a 4-bit format can weigh more than fp8 on a mixture
                best += (
                    f"; {', '.join(kept)} leave the fused experts at {fit.dtype} (their "
                    "quantizer converts nn.Linear only)"
                )
            if not a.all_formats:
                best += " (of the common formats; --formats prices every one)"
            answers.add_row("weights formats", text + best)
        if a.engine_log:
            log = a.engine_log
            refusal = _vllm_refusal(log, fit.seq_len)
            answers.add_row(
                "vLLM would log",
                refusal
                or f"GPU KV cache size: {int(log['kv_cache_tokens']):,} tokens; Maximum "
                f"concurrency for {fit.seq_len:,} tokens per request: "
                f"{log['max_concurrency']:.2f}x ({int(log['num_blocks']):,} blocks)",
            )
        speed = a.speed
        if speed is not None:
            answers.add_row(
                "decode, at most",
                f"{_fit_rate(speed.decode_tokens_per_s)}: {speed.rule_decode}, "
                f"{human_bytes(speed.decode_bytes)} a step",
            )
            answers.add_row(
                "prefill, at most",
                f"{_fit_rate(speed.prefill_tokens_per_s)}: {speed.rule_prefill}"
                + ("" if speed.peak else f" (no {speed.compute_dtype} peak for this part)"),
            )
        yield answers
        if a.frontier:
            frontier = Table(title="The fit frontier")
            frontier.add_column("batch", justify="right")
            frontier.add_column("largest context", justify="right")
            for b, t in a.frontier:
                frontier.add_row(f"{b:,}", "-" if t is None else f"{t:,}")
            yield frontier


def _vllm_refusal(log: dict[str, float | int], max_model_len: int) -> str:
    """vLLM's error when the KV cache cannot hold one request of max_model_len
    (``check_enough_kv_cache_memory``, vLLM 0.11 ``vllm/v1/core/kv_cache_utils.py:678``);
    empty when it starts."""
    available = int(log.get("kv_cache_memory", 1))
    needed = int(log.get("kv_cache_needed", 0))
    gib = 2**30
    if available <= 0:
        return (
            "no start: ValueError: No available memory for the cache blocks (the KV "
            f"cache's share is {available / gib:.2f} GiB)"
        )
    if needed > available:
        return (
            "no start: ValueError: To serve at least one request with the models's max "
            f"seq len ({max_model_len}), ({needed / gib:.2f} GiB KV cache is needed, which "
            f"is larger than the available KV cache memory ({available / gib:.2f} GiB)"
        )
    return ""
