"""CSV: a sweep's points, one row each, for a spreadsheet or pandas."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shapecalc.analysis.sweep import Sweep

__all__ = ["sweep_csv"]


def sweep_csv(table: Sweep) -> str:
    """``shapecalc sweep --format csv``: a header of the swept sizes' names and the
    columns' keys, then one row of integers per point; against hardware the answers'
    keys too (fits: true or false; an answer with none: empty)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    keys = () if table.fit is None else table.fit.keys
    writer.writerow([*(a.name for a in table.axes), *(c.key for c in table.columns), *keys])
    for point in table.points:
        answers = [
            "" if v is None else str(v).lower() if isinstance(v, bool) else v
            for v in point.fit or ()
        ]
        writer.writerow([*point.sizes, *point.values, *answers])
    return out.getvalue()
