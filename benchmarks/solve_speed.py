"""How long ``shapecalc.solve`` takes, against baselines measured in the same run.

    python benchmarks/solve_speed.py

For budgets from 10^3 to 10^13 parameters and each free size, prints the best time of a
solve, how many single model builds (``lstm_lm(65, 512, 2).total``, timed here) that is
worth, and, where it finishes in reasonable time, the ratio to a linear scan over sizes
(what a loop in a notebook would do).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import shapecalc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import best_of

FIXED: dict[str, dict[str, Any]] = {
    "hidden": {"layers": 2, "vocab": 65},
    "layers": {"hidden": 512, "vocab": 65},
    "vocab": {"hidden": 512, "layers": 2},
    "embed_dim": {"hidden": 512, "layers": 2, "vocab": 65},
}
#: the linear scan is run only up to this many model builds
SCAN_LIMIT = 20_000


def linear_scan(free: str, target: int, fixed: dict[str, Any]) -> int | None:
    """The largest size whose count is within target, found one size at a time."""
    size = 1
    while size <= SCAN_LIMIT:
        if shapecalc.lstm_lm(**fixed, **{free: size}).total > target:
            return size - 1
        size += 1
    return None


def row(free: str, exponent: int, build: float) -> tuple[str, float]:
    """One printed line for a free size and a budget of 10**exponent, and the solve time."""
    fixed, target, budget = FIXED[free], 10**exponent, f"1e{exponent}"
    try:
        solution = shapecalc.solve(shapecalc.lstm_lm, target, free, **fixed)
    except shapecalc.ShapecalcError:
        return f"{free:<10} {budget:>8} {'(below the smallest model)':>32}", 0.0
    seconds = best_of(lambda: shapecalc.solve(shapecalc.lstm_lm, target, free, **fixed))
    scan_text = ratio_text = "-"
    if solution.below.size <= SCAN_LIMIT // 10:
        scan = best_of(lambda: linear_scan(free, target, fixed), repeat=1)
        scan_text, ratio_text = f"{scan * 1e3:.1f} ms", f"{scan / seconds:.0f}x"
    line = (
        f"{free:<10} {budget:>8} {seconds * 1e3:>7.2f} ms "
        f"{seconds / build:>8.1f}x {scan_text:>10} {ratio_text:>11}"
    )
    return line, seconds


def main() -> None:
    build = best_of(lambda: shapecalc.lstm_lm(65, 512, 2).total, repeat=50)
    print(f"baseline: one model build, lstm_lm(65, 512, 2).total: {build * 1e6:.0f} µs\n")
    print(
        f"{'free':<10} {'budget':>8} {'solve':>10} {'= builds':>9} {'scan':>10} {'scan/solve':>11}"
    )
    worst = 0.0
    for free in FIXED:
        for exponent in range(3, 14, 2):
            line, seconds = row(free, exponent, build)
            print(line)
            worst = max(worst, seconds)
    print(f"\nslowest solve: {worst * 1e3:.2f} ms (the target is well under 50 ms)")


if __name__ == "__main__":
    main()
