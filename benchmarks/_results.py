"""Write one section of benchmarks/RESULTS.md (between its markers), leaving the others."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEAD = (
    "# Benchmark results\n\n"
    "Written by the scripts in `benchmarks/`, each section measured in one run on one machine.\n"
)


def best_of(function: Callable[[], object], repeat: int = 7) -> float:
    """The fastest of ``repeat`` runs, in seconds (the least disturbed by the machine)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def write_section(name: str, text: str) -> None:
    """Replace the section ``name`` of RESULTS.md with ``text`` (appended if missing)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{text.rstrip()}\n{end}"
    current = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else HEAD
    if start not in current:
        current = HEAD if not current.startswith("# Benchmark results") else current
        RESULTS.write_text(current.rstrip() + "\n\n" + block + "\n", encoding="utf-8")
        return
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    RESULTS.write_text(pattern.sub(lambda _: block, current), encoding="utf-8")
