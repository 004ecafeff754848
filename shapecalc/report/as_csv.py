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
    keys too (fits: true or false; an answer with none: empty); with --frontier a column
    per batch of the frontier, ``largest_context_b1`` ..., each row its model's (empty
    where not one position fits)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    keys = () if table.fit is None else table.fit.keys
    frontiers = () if table.fit is None else table.fit.frontiers
    batches = [b for b, _ in frontiers[0].contexts] if frontiers else []
    writer.writerow(
        [
            *(a.name for a in table.axes),
            *(c.key for c in table.columns),
            *keys,
            *(f"largest_context_b{b}" for b in batches),
        ]
    )
    for point in table.points:
        answers = [
            "" if v is None else str(v).lower() if isinstance(v, bool) else v
            for v in point.fit or ()
        ]
        sizes = dict(zip((a.name for a in table.axes), point.sizes, strict=True))
        mine = next((f for f in frontiers if all(sizes.get(k) == v for k, v in f.sizes)), None)
        contexts = [] if mine is None else ["" if t is None else t for _, t in mine.contexts]
        writer.writerow([*point.sizes, *point.values, *answers, *contexts])
    return out.getvalue()
