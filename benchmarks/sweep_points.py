"""A sweep of 10,000 points against one of 100: each point is the formulas evaluated, so
the large sweep should cost less than twice the small one, printing aside.

    python benchmarks/sweep_points.py

Prints, from one run on this machine: the wall time of ``shapecalc sweep lstm`` over a
10 × 10 and a 100 × 100 grid of hidden sizes and layers (best of 15 fresh processes each,
taken in turn, CSV to a pipe that is thrown away), the same for a LLaMA-style decoder
(every point's config checked by its rules: head counts, rotary widths), the time the
10,000 rows take to print (the JSON report, rendered but not written), and the
in-process time of ``shapecalc.analysis.sweep.sweep`` alone. The ratios are the large
sweep's time over the small one's, measured in the same run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import best_of, write_section

PYTHON = sys.executable
SHAPECALC = str(Path(PYTHON).with_name("shapecalc"))
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
LSTM = ["sweep", "lstm", "--vocab", "65"]
LLAMA = ["sweep", "llama", "--vocab", "32000", "--heads", "8", "--seq-len", "2048"]
GRIDS = {
    "lstm": ([*LSTM, "--hidden", "1..10", "--layers", "1..10"],
             [*LSTM, "--hidden", "1..100", "--layers", "1..100"]),
    "llama": ([*LLAMA, "--hidden", "16..160:16", "--layers", "1..10"],
              [*LLAMA, "--hidden", "16..1600:16", "--layers", "1..100"]),
}  # fmt: skip


def wall(commands: list[list[str]], runs: int = 15) -> list[float]:
    """The fastest of ``runs`` fresh processes of each command, taken in turn."""
    fastest = [float("inf")] * len(commands)
    for _ in range(runs):
        for i, command in enumerate(commands):
            start = time.perf_counter()
            subprocess.run(
                [SHAPECALC, *command, "--format", "csv"],
                check=True,
                stdout=subprocess.DEVNULL,
                env=ENV,
            )
            fastest[i] = min(fastest[i], time.perf_counter() - start)
    return fastest


def main() -> None:
    from shapecalc.analysis.sweep import sweep
    from shapecalc.architectures import get
    from shapecalc.report.as_csv import sweep_csv

    lines = ["| sweep | 100 points | 10,000 points | ratio |", "|---|--:|--:|--:|"]
    for name, (small, large) in GRIDS.items():
        a, b = wall([small, large])
        lines.append(f"| `shapecalc {name}` (CSV, process) | {a:.3f} s | {b:.3f} s | {b / a:.2f} |")
    lstm = get("lstm")
    small_grid = {"hidden": "1..10", "layers": "1..10"}
    large_grid = {"hidden": "1..100", "layers": "1..100"}
    a = best_of(lambda: sweep(lstm, {"vocab": 65}, small_grid))
    b = best_of(lambda: sweep(lstm, {"vocab": 65}, large_grid))
    lines.append(
        f"| `sweep()` in process, LSTM | {a * 1e3:.1f} ms | {b * 1e3:.1f} ms | {b / a:.1f} |"
    )
    table = sweep(lstm, {"vocab": 65}, large_grid)
    printing = best_of(lambda: sweep_csv(table))
    per_point = (b - a) / 9900
    lines += [
        "",
        f"Printing the 10,000 rows as CSV takes {printing * 1e3:.1f} ms. A process pays its "
        "start and imports once; each point then costs its config's rules (the LLaMA's "
        "head, rotary and group checks the most) and one call of the compiled formulas: "
        f"{per_point * 1e6:.1f} µs a point for the LSTM in process.",
    ]
    text = "\n".join(lines)
    print(text)
    write_section("sweep", "## Sweeps: 10,000 points against 100\n\n" + text)


if __name__ == "__main__":
    main()
