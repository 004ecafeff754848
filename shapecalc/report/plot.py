"""Pictures: a sweep's columns as line charts, and where a model's parameters and memory
sit as bars. The charts are plain data (:class:`Chart`, :class:`Bars`) made from the
report's own numbers; two drawers take them: plotext in the terminal, matplotlib to an
SVG or PNG file (the ``plot`` extra). Neither is imported before it draws."""

from __future__ import annotations

import math
import os
import re
import shutil
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shapecalc.core.dims import known
from shapecalc.core.errors import InvalidArgumentError, MissingDependencyError, echo

if TYPE_CHECKING:
    from shapecalc.analysis.cost import Cost
    from shapecalc.analysis.sweep import Axis, Sweep
    from shapecalc.core.model import Model
    from shapecalc.report.cells import NameNode

__all__ = [
    "FILE_KINDS",
    "Bars",
    "Chart",
    "Series",
    "draw_file",
    "draw_terminal",
    "frontier_chart",
    "memory_bars",
    "parameter_bars",
    "sweep_charts",
    "terminal_width",
]

#: the file kinds --plot-file writes, by suffix
FILE_KINDS = ("svg", "png")
#: a chart's numbers span decades from this ratio on: its axis is drawn in log scale
DECADES = 30


@dataclass(frozen=True)
class Series:
    """One line of a chart: its label and its y values, one per x."""

    label: str
    ys: tuple[int | float, ...]


@dataclass(frozen=True)
class Chart:
    """One line chart: x values (a swept size), one series per value of the second swept
    size (or one), log scales where the numbers span decades, an optional budget line."""

    title: str
    x_label: str
    y_label: str
    xs: tuple[int, ...]
    series: tuple[Series, ...]
    log_x: bool = False
    log_y: bool = False
    budget: int | None = None
    #: what the budget line is (``budget 1,000,000``, ``memory of a GPU 25.8 GB``)
    budget_text: str = ""
    #: the y values' unit: count, bytes, flops or percent (for the axis labels)
    unit: str = "count"
    #: in a file too: each series its own marker in black, the legend under the axes
    plain: bool = False


@dataclass(frozen=True)
class Bars:
    """Bars: one per label (a node of the model's tree, its share of the total), or
    stacked (the memory account: one bar, its parts)."""

    title: str
    labels: tuple[str, ...]
    values: tuple[int, ...]
    unit: str
    stacked: bool = False
    #: each bar's text beside it (``1.2 M, 28.0%``)
    texts: tuple[str, ...] = field(default=())
    #: bars on a log scale: from the decade below the smallest value to the largest
    log: bool = False


def _spans_decades(values: Sequence[float]) -> bool:
    positive = [v for v in values if v > 0]
    return (
        len(positive) == len(values) and bool(positive) and max(positive) >= DECADES * min(positive)
    )


@dataclass(frozen=True)
class _Quantity:
    """What a sweep chart can draw: a column of the model, or an answer against hardware
    (its values point by point, a verdict and the answers that are none left out)."""

    key: str
    title: str
    unit: str
    values: tuple[int | float, ...]
    #: where an answer against hardware holds (`` on NVIDIA GeForce RTX 4090 24 GB``)
    on: str = ""


def _quantities(table: Sweep) -> list[_Quantity]:
    """The model's columns, then the answers against hardware a chart can draw: a number
    at every point (an answer that is none somewhere, not one position fitting, is drawn
    as 0; a speed with no bandwidth or peak given, nowhere)."""
    out = [
        _Quantity(c.key, c.title, c.unit, tuple(p.values[i] for p in table.points))
        for i, c in enumerate(table.columns)
    ]
    against = table.fit
    if against is None:
        return out
    from shapecalc.analysis.sweep_fit import FIT_COLUMNS

    for index, key in enumerate(against.keys):
        unit = FIT_COLUMNS[key][1]  # positions, sequences, gpus, rate: a chart each
        if unit == "verdict":
            continue
        answers = [p.fit[index] if p.fit is not None else None for p in table.points]
        if all(a is None for a in answers):
            continue
        values = tuple(0 if a is None else a for a in answers)
        out.append(_Quantity(key, against.title(key), unit, values, f" on {_on(against.setting)}"))
    return out


def sweep_charts(table: Sweep) -> list[Chart]:
    """The sweep as line charts, the first swept size along x. With one swept size, the
    quantities of one unit share a chart (weights and KV cache: where they cross); with
    more, one chart per quantity, a line per value of the second swept size, any further
    swept size held at its first value (the title says so). Against hardware, its answers
    are drawn too (memory per GPU with the GPU's memory as a line)."""
    first = table.axes[0]
    quantities = _quantities(table)
    if len(table.axes) == 1:
        # the quantities of one unit share a chart; the memory per GPU, drawn against the
        # GPU's memory, has a chart of its own
        groups: dict[str, list[_Quantity]] = {}
        for q in quantities:
            groups.setdefault("gpu" if q.key == "gpu_memory" else q.unit, []).append(q)
        charts = []
        for group in groups.values():
            series = tuple(Series(q.title, q.values) for q in group)
            titles = " and ".join(q.title for q in group)
            title = f"{titles} of the {table.model}{group[0].on}"
            charts.append(_chart(table, title, first, series, group))
        return charts
    second = table.axes[1]
    held = {a.name: a.values[0] for a in table.axes[2:]}
    names = [a.name for a in table.axes]
    where = {point.sizes: i for i, point in enumerate(table.points)}  # every combination
    charts = []
    for q in quantities:
        series = tuple(
            Series(
                f"{second.letter}={v}",
                tuple(
                    q.values[where[_sizes(names, {first.name: x, second.name: v, **held})]]
                    for x in first.values
                ),
            )
            for v in second.values
        )
        title = f"{q.title} of the {table.model}{q.on}"
        if held:
            title += " at " + ", ".join(f"{name}={v}" for name, v in held.items())
        charts.append(_chart(table, title, first, series, [q]))
    return charts


def frontier_chart(table: Sweep) -> Chart:
    """The fit frontiers of a sweep against hardware as one chart: the largest context
    against the batch, a line per swept model (each its own marker in the terminal; at
    most as many as there are markers); a batch where not one position fits at 0."""
    against = table.fit
    if against is None or not against.frontiers:
        raise InvalidArgumentError(
            "--plot draws the fit frontier of a sweep asked with --frontier",
            field="frontier",
            value=False,
            rule="--frontier with --gpu or --memory-gb",
        )
    if len(against.frontiers) > len(MARKERS):
        raise InvalidArgumentError(
            f"--plot draws at most {len(MARKERS)} frontiers, a marker each; this sweep has "
            f"{len(against.frontiers)} models: sweep fewer sizes, or drop --plot",
            field="plot",
            value=len(against.frontiers),
            rule=f"at most {len(MARKERS)} swept models",
        )
    from shapecalc.report.cells import frontier_cells

    labels, _ = frontier_cells(table)
    xs = tuple(b for b, _ in against.frontiers[0].contexts)
    series = tuple(
        Series(label, tuple(t or 0 for _, t in f.contexts))
        for label, f in zip(labels, against.frontiers, strict=True)
    )
    return Chart(
        title=f"Largest context against batch on {_on(against.setting)}",
        x_label="batch (B)",
        y_label="largest context (T)",
        xs=xs,
        series=series,
        log_x=_spans_decades(xs),
        log_y=_spans_decades([y for s in series for y in s.ys]),
        plain=True,
    )


def _on(setting: Any) -> str:
    """``2 × NVIDIA H100 SXM5 80 GB`` (and the engine): short enough for a chart's title."""
    on = setting.hardware.title
    on = f"{setting.gpus} × {on}" if setting.gpus > 1 else on
    return on + (f", {setting.engine.name}" if setting.engine is not None else "")


def _chart(
    table: Sweep, title: str, axis: Axis, series: tuple[Series, ...], drawn: list[_Quantity]
) -> Chart:
    everything = [y for s in series for y in s.ys]
    budget, text = None, ""
    if any(q.key == "params" for q in drawn) and table.budget is not None:
        budget, text = table.budget, f"budget {table.budget:,}"
    elif [q.key for q in drawn] == ["gpu_memory"] and table.fit is not None:
        budget = table.fit.setting.hardware.memory
        text = f"memory of a GPU {short(budget, 'bytes')}"
    return Chart(
        title=title,
        x_label=f"{axis.name} ({axis.letter})",
        y_label=drawn[0].title if len(drawn) == 1 else drawn[0].unit,
        xs=axis.values,
        series=series,
        log_x=_spans_decades(axis.values),
        log_y=_spans_decades(everything),
        budget=budget,
        budget_text=text,
        unit=drawn[0].unit,
    )


def _sizes(names: list[str], where: dict[str, int]) -> tuple[int, ...]:
    """A point's sizes in the order of the sweep's axes."""
    return tuple(where[n] for n in names)


def parameter_bars(model: Model, depth: int) -> Bars:
    """One bar per node of the model's tree at ``depth``: its parameters and share."""
    from shapecalc.core.dims import count_str
    from shapecalc.report.cells import name_tree

    total = model.total
    if not isinstance(total, int):
        raise InvalidArgumentError(
            "--plot draws numbers: give every size a number",
            field="plot",
            value=True,
            rule="a model with numbers for its sizes",
        )
    nodes = _nodes(name_tree(model), depth)
    values = [count for _, count, _ in nodes]
    texts = tuple(
        f"tied to {tied}: counted once"
        if tied
        else f"{count_str(v)} ({100 * v / total:.1f}%)"
        if total
        else count_str(v)
        for _, v, tied in nodes
    )
    return Bars(
        f"Where the {count_str(total)} parameters of the {model.name} sit",
        tuple(name for name, _, _ in nodes),
        tuple(values),
        "parameters",
        texts=texts,
    )


def _nodes(tree: NameNode, depth: int) -> list[tuple[str, int, str | None]]:
    """(name, count, the tensor a tied one shares) of the tree's nodes at ``depth``
    (leaves above it as they are)."""
    out: list[tuple[str, int, str | None]] = []
    stack = [(child, 1) for child in reversed(tree.children.values())]
    while stack:
        node, level = stack.pop()
        if level == depth or not node.children:
            count = node.count if isinstance(node.count, int) else 0
            tied = node.row.tied_to if node.row is not None else None
            out.append((node.path or node.name, count, tied))
            continue
        stack += [(child, level + 1) for child in reversed(node.children.values())]
    return out


def memory_bars(cost: Cost) -> Bars:
    """The memory account as one stacked bar: weights, gradients, optimizer state,
    activations, KV cache (the lines a training step or an inference holds)."""
    from shapecalc.core.units import human_bytes as human

    if cost.training != "none":  # a training step: its lines, the recomputed one aside
        lines = [m for m in cost.memory if m.training and m.label != "activations, recomputed"]
    else:  # an inference: the weights, the state and the larger activation line
        lines = [m for m in cost.memory if m.inference and not m.label.startswith("activations")]
        acts = [m for m in cost.memory if m.label.startswith("activations, ")]
        if acts and all(isinstance(m.bytes, int) for m in acts):
            lines.insert(len(lines) - 1, max(acts, key=lambda m: known(m.bytes) or 0))
            lines = [m for m in lines if m.label != "inference total"]
    parts: list[tuple[str, int]] = [
        (line.label, line.bytes) for line in lines if isinstance(line.bytes, int)
    ]
    if len(parts) != len(lines):
        raise InvalidArgumentError(
            "--plot draws numbers: give --batch and --seq-len numbers",
            field="plot",
            value=True,
            rule="a memory account in numbers",
        )
    return Bars(
        f"Memory of the {cost.model.name} at {cost.describe_input()}",
        tuple(label for label, _ in parts),
        tuple(b for _, b in parts),
        "bytes",
        stacked=True,
        texts=tuple(human(b) for _, b in parts),
    )


# -- drawing ---------------------------------------------------------------------------------
def terminal_width() -> int:
    """The terminal's width, or 80 columns when there is none (a pipe, CI)."""
    return max(40, shutil.get_terminal_size(fallback=(80, 24)).columns)


def draw_terminal(charts: Sequence[Chart | Bars], width: int | None = None) -> str:
    """The charts drawn with plotext, one under the other, ``width`` columns wide."""
    import plotext as plt

    width = width or terminal_width()
    out = []
    for chart in charts:
        plt.clear_figure()
        plt.theme("clear")
        if isinstance(chart, Bars) and chart.stacked:
            out.append(stacked_text(chart, width))
            continue
        if isinstance(chart, Bars):
            out.append(bars_text(chart, width))
            continue
        else:
            # drawn without colour: each series its own marker, the legend under the chart
            for series, marker in zip(chart.series, MARKERS, strict=False):
                plt.plot(list(chart.xs), list(series.ys), marker=marker)
            if chart.budget is not None:
                plt.hline(chart.budget)
            plt.xscale("log" if chart.log_x else "linear")
            plt.yscale("log" if chart.log_y else "linear")
            if len(chart.xs) <= 12:
                plt.xticks(list(chart.xs), [f"{x:,}" for x in chart.xs])
            values = [y for s in chart.series for y in s.ys] + (
                [chart.budget] if chart.budget is not None else []
            )
            if values:
                ticks = y_ticks(min(values), max(values), chart.log_y)
                plt.yticks(ticks, [short(t, chart.unit) for t in ticks])
            plt.xlabel(chart.x_label)
            plt.plotsize(width, 20)
        # the title above the chart, wrapped to the width (plotext drops a longer one)
        title = chart.title + (f" ({chart.budget_text})" if chart.budget_text else "")
        out += [part.center(width).rstrip() for part in textwrap.wrap(title, width)]
        out.append(plt.build().rstrip("\n"))
        if len(chart.series) > 1:
            out.append(
                _legend(
                    [
                        f"{marker} {series.label}"
                        for series, marker in zip(chart.series, MARKERS, strict=False)
                    ],
                    width,
                )
            )
    # the clear theme draws no colour: its escape codes only hide the padding spaces
    text = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(out))
    return "\n".join(line.rstrip() for line in text.split("\n"))


def _legend(items: list[str], width: int) -> str:
    """The legend's items two spaces apart, in lines of at most ``width`` columns."""
    lines: list[str] = []
    for item in items:
        if lines and len(lines[-1]) + 2 + len(item) <= width:
            lines[-1] += "  " + item
        else:
            lines.append(item)
    return "\n".join(lines)


#: the markers of a chart's series, told apart without colour
MARKERS = ("•", "+", "x", "o", "*", "#", "%", "@")


#: the fills of a stacked bar's parts in the terminal, told apart without colour
FILLS = "█▓▒░▞▚▖"


def stacked_text(bars: Bars, width: int) -> str:
    """One stacked bar as text, ``width`` columns: each part as wide as its share, in a
    fill of its own, and a legend line per part (its fill, label, amount and share)."""
    total = sum(bars.values)
    inner = max(10, width - 2)
    cells: list[str] = []
    for index, value in enumerate(bars.values):
        cells += FILLS[index % len(FILLS)] * round(inner * value / total) if total else []
    row = "".join(cells)[:inner].ljust(inner, FILLS[(len(bars.values) - 1) % len(FILLS)])
    lines = [bars.title.center(width).rstrip(), "┌" + "─" * inner + "┐", f"│{row}│"]
    lines.append("└" + "─" * inner + "┘")
    for index, (label, value, text) in enumerate(
        zip(bars.labels, bars.values, bars.texts, strict=True)
    ):
        share = f"{100 * value / total:.1f}%" if total else "-"
        lines.append(f"  {FILLS[index % len(FILLS)] * 2} {label}: {text} ({share})")
    return "\n".join(lines)


def bars_text(bars: Bars, width: int) -> str:
    """Bars as text, ``width`` columns: a row per label, the bar as long as its value
    against the largest, its amount and share after it."""
    label_width = min(max((len(label) for label in bars.labels), default=0), width // 3)
    text_width = max((len(text) for text in bars.texts), default=0)
    room = max(4, width - label_width - text_width - 4)
    top = max(bars.values, default=0)
    lines = [part.center(width).rstrip() for part in textwrap.wrap(bars.title, width)]
    positive = [v for v in bars.values if v > 0]
    floor = 10 ** (len(str(int(min(positive)))) - 1) / 10 if positive else 1.0
    for label, value, text in zip(bars.labels, bars.values, bars.texts, strict=True):
        if bars.log:
            span = math.log(top / floor) if top > floor else 0.0
            length = round(room * math.log(value / floor) / span) if value > 0 and span else 0
        else:
            length = round(room * value / top) if top else 0
        if value and not length:
            length = 1  # a part that exists shows
        name = label if len(label) <= label_width else label[: label_width - 1] + "…"
        lines.append(f"{name.rjust(label_width)} │{'█' * length}{' ' * (room - length)} {text}")
    return "\n".join(line.rstrip() for line in lines)


def y_ticks(low: float, high: float, log: bool) -> list[float]:
    """Where to label the y axis: powers of ten between ``low`` and ``high`` on a log
    scale (with the ends), five even steps on a linear one."""
    if high <= low:
        return [low]
    if log and low > 0:
        power = 10 ** (len(str(int(low))) - 1)
        ticks = [low]
        while power * 10 < high:
            power *= 10
            if power > low:
                ticks.append(power)
        return [*ticks, high]
    return [low + (high - low) * i // 4 for i in range(5)]


def short(value: float, unit: str) -> str:
    """An axis label: ``4.27 M``, ``17.1 MB``, ``8.48 MFLOPs``, ``25%``."""
    from shapecalc.core.units import human_bytes, human_count, human_flops

    if unit == "percent":
        return f"{value:g}%"
    value = int(value)
    if unit == "bytes":
        return human_bytes(value)
    if unit == "flops":
        return human_flops(value)
    return human_count(value)


def check_file(path: str) -> str:
    """The kind of picture ``path`` asks for (svg or png), matplotlib there to draw it;
    else one line saying what is wrong."""
    kind = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if kind not in FILE_KINDS:
        raise InvalidArgumentError(
            f"--plot-file must end in .svg or .png, got {echo(path)}",
            field="plot_file",
            value=path,
            rule="a file name ending in .svg or .png",
        )
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InvalidArgumentError(
            f"cannot write {echo(path)}: there is no folder {echo(folder)}",
            field="plot_file",
            value=path,
            rule="a file in a folder that exists",
        )
    if os.path.exists(path) and not os.path.isfile(path):
        # a FIFO would block the write forever, a device or folder is no picture: refused
        # before anything is drawn
        raise InvalidArgumentError(
            f"cannot write {echo(path)}: it exists and is not a regular file (a folder, a "
            "pipe or a device); name a new file or one to overwrite",
            field="plot_file",
            value=path,
            rule="a regular file, or a new one",
        )
    try:
        import matplotlib
    except ImportError:
        raise MissingDependencyError(
            "--plot-file needs matplotlib, which is not installed: pip install 'shapecalc[plot]'",
            field="plot_file",
            value=path,
            rule="matplotlib installed",
        ) from None
    matplotlib.use("Agg")
    return kind


def draw_file(charts: Sequence[Chart | Bars], path: str) -> None:
    """The charts drawn with matplotlib into ``path`` (.svg or .png), one under another."""
    kind = check_file(path)
    figure = render(charts)
    import matplotlib.pyplot as pyplot

    try:
        figure.savefig(path, format=kind, metadata={"Date": None} if kind == "svg" else None)
    except OSError as err:
        raise InvalidArgumentError(
            f"cannot write {echo(path)}: {err.strerror or err}",
            field="plot_file",
            value=path,
            rule="a file that can be written",
        ) from None
    finally:
        pyplot.close(figure)


def render(charts: Sequence[Chart | Bars]) -> Any:
    """A matplotlib figure of the charts (for :func:`draw_file` and the docs)."""
    import matplotlib.pyplot as pyplot

    figure, axes = pyplot.subplots(len(charts), 1, figsize=(8, 3.6 * len(charts)), squeeze=False)
    for ax, chart in zip(axes[:, 0], charts, strict=True):
        if isinstance(chart, Bars):
            if chart.stacked:
                left = 0
                for label, value in zip(chart.labels, chart.values, strict=True):
                    ax.barh([0], [value], left=left, label=label)
                    left += value
                ax.set_yticks([])
                ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=3, fontsize=8)
                ax.set_xlabel(chart.unit)
            else:
                ax.barh(list(chart.labels)[::-1], list(chart.values)[::-1])
                ax.set_xlabel(chart.unit)
            ax.set_title(chart.title, fontsize=10)
            continue
        for i, series in enumerate(chart.series):
            if chart.plain:
                marker = "os^vD*xP"[i % 8]
                ax.plot(chart.xs, series.ys, marker=marker, color="black", label=series.label)
            else:
                ax.plot(chart.xs, series.ys, marker="o", label=series.label)
        if chart.budget is not None:
            ax.axhline(chart.budget, linestyle="--", color="gray", label=chart.budget_text)
        if chart.log_x:
            ax.set_xscale("log", base=2)
        if chart.log_y:
            ax.set_yscale("log")
        if len(chart.xs) <= 12:
            ax.set_xticks(list(chart.xs), [f"{x:,}" for x in chart.xs])
            ax.minorticks_off()
        from matplotlib.ticker import FuncFormatter

        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _, unit=chart.unit: short(y, unit)))
        ax.set_xlabel(chart.x_label)
        ax.set_ylabel(chart.y_label)
        ax.set_title(chart.title, fontsize=10)
        if chart.plain:
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=4, fontsize=8)
        elif len(chart.series) > 1 or chart.budget is not None:
            ax.legend(fontsize=8)
        ax.grid(True, alpha=0.3)
    figure.tight_layout()
    return figure
