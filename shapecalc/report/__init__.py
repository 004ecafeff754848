"""Reports: one :class:`Report` value, built once, written by one writer per format.

A report holds what was asked for: the model, its cost (shapes, compute, memory), its
tensors in another framework's convention, the ``--explain`` sections, a layer's input and
output shapes, the comparison with the real module. :func:`build_report` makes it (the
command line calls it too); :func:`text` writes it as JSON, Markdown or LaTeX, and the
rich writer (``report.rich_writer``, the only module that imports rich) draws it as a
table or a tree.
Every format carries every section the report holds.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shapecalc.core.model import Model
from shapecalc.core.spec import Shape

if TYPE_CHECKING:
    from shapecalc.adapters.torch_bridge import Diff
    from shapecalc.analysis.conventions import Converted
    from shapecalc.analysis.cost import Cost
    from shapecalc.analysis.explain import Section
    from shapecalc.analysis.model_parallel import ModelParallel
    from shapecalc.analysis.parallel import PerGpu

__all__ = ["FORMATS", "Report", "Verification", "build_report", "text"]

#: every format a model report is written in; table and tree are drawn by rich
FORMATS = ("table", "tree", "json", "markdown", "latex")
#: the text formats and the module writing each
_WRITERS = {"json": "as_json", "markdown": "markdown", "latex": "latex"}


@dataclass(frozen=True)
class Verification:
    """What ``verify`` compared the model with (``where``, and a ``note`` on why it is not
    the library's own class when it is not) and what differs (``diff``)."""

    where: str
    note: str
    diff: Diff

    @property
    def ok(self) -> bool:
        return self.diff.ok

    def __str__(self) -> str:
        if self.ok:
            return f"Verified against {self.where}{self.note}: {self.diff}"
        return f"differs from {self.where}: {self.diff}"


@dataclass(frozen=True)
class Report:
    """Everything one command shows about one model."""

    model: Model
    #: shapes, compute and memory, when asked for (JSON carries all of it)
    cost: Cost | None = None
    #: which parts of the cost the text formats show: (shapes, flops, memory)
    sections: tuple[bool, bool, bool] = (False, False, False)
    #: the model in another framework's convention, and its symbolic twin there
    convention: tuple[Converted, Converted | None] | None = None
    #: the ``--explain`` sections; empty when not asked for
    explanation: tuple[Section, ...] = ()
    #: one layer's (input shapes, output shapes), from ``--input-shape``
    flow: tuple[tuple[Shape, ...], tuple[Shape, ...]] | None = None
    #: names longer than this many parts are summed into their node (None: every tensor)
    depth: int | None = None
    #: the comparison with the real module, when asked for (the writers leave it out)
    verification: Verification | None = None
    #: the comparison with a state dict file (``against``; the writers leave it out)
    against: Verification | None = None
    #: the memory of one GPU of a data-parallel run (``parallel``), when asked for
    per_gpu: PerGpu | None = None
    #: one GPU of a tensor-, pipeline-, context- or expert-parallel run (``parallel``)
    model_parallel: ModelParallel | None = None

    @property
    def shown(self) -> dict[str, bool]:
        """The cost sections to show, by name (none without a cost)."""
        on = self.cost is not None
        return dict(
            zip(("shapes", "flops", "memory"), (on and s for s in self.sections), strict=True)
        )

    @property
    def convention_name(self) -> str:
        return self.convention[0].convention if self.convention else "pytorch"


def text(report: Report, fmt: str, *, width: int = 100) -> str:
    """The report in one of :data:`FORMATS`: JSON, Markdown or LaTeX text, or the table or
    the tree the command line draws, as plain text ``width`` columns wide (with a final
    newline).

        >>> from shapecalc import Linear, layer_model
        >>> table = text(Report(layer_model(Linear(4, 2))), "table", width=80)
        >>> "weight" in table and max(len(line) for line in table.splitlines()) <= 80
        True
    """
    if not isinstance(report, Report):
        raise TypeError(f"text: report must be a Report, got {type(report).__name__}")
    if fmt not in FORMATS:
        from shapecalc.core.errors import InvalidArgumentError, echo

        listed = ", ".join(FORMATS)
        raise InvalidArgumentError(
            f"text: fmt must be one of {listed}, got {echo(fmt)}",
            field="fmt",
            value=fmt,
            rule=f"one of {listed}",
        )
    if isinstance(width, bool) or not isinstance(width, int) or width < 40:
        from shapecalc.core.errors import InvalidArgumentError, echo

        raise InvalidArgumentError(
            f"text: width must be an integer >= 40, got {echo(width)}",
            field="width",
            value=width,
            rule="an integer >= 40",
        )
    if fmt in ("table", "tree"):
        drawn: Any = importlib.import_module("shapecalc.report.rich_writer")
        table: str = drawn.plain_text(report, fmt, width)
        return table
    writer: Any = importlib.import_module(f"shapecalc.report.{_WRITERS[fmt]}")
    result: str = writer.write(report)
    return result


# the pipeline builds a Report, so it is imported once Report is defined
from shapecalc.report.pipeline import build_report  # noqa: E402
