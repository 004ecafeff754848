"""How long ``shapecalc fit`` takes to answer, against the model's own table measured in
the same run.

    python benchmarks/fit.py

For Llama-3.1-8B's sizes (and Llama-2-70B's): the wall time of ``shapecalc llama ...``
(the parameter table: the baseline) and of ``shapecalc fit llama ... --gpu h100`` (every
answer: the account, the largest context, the most sequences, the fewest GPUs, every
weights format, the speed bounds), best of 9 fresh processes taken in turn, and their
ratio; the target is 1.2x or less. Then the same in process: the model built once, each
answer timed apart (best of 7).
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
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
MODELS = {
    "Llama-3.1-8B": "llama --vocab 128256 --hidden 4096 --layers 32 --heads 32 --kv-heads 8 "
    "--intermediate 14336",
    "Llama-2-70B": "llama --vocab 32000 --hidden 8192 --layers 80 --heads 64 --kv-heads 8 "
    "--intermediate 28672",
}


def best(commands: list[list[str]], runs: int = 9) -> list[float]:
    """The fastest of ``runs`` fresh processes of each command, taken in turn."""
    fastest = [float("inf")] * len(commands)
    for _ in range(runs):
        for i, command in enumerate(commands):
            start = time.perf_counter()
            subprocess.run(command, stdout=subprocess.DEVNULL, env=ENV, check=False)
            fastest[i] = min(fastest[i], time.perf_counter() - start)
    return fastest


def in_process(words: list[str]) -> list[tuple[str, float]]:
    from shapecalc.analysis.fit import COMMON_FORMATS, Fit, answer
    from shapecalc.analysis.hardware import accelerator
    from shapecalc.architectures import get

    values = dict(zip(words[1::2], words[2::2], strict=True))
    sizes = {k[2:].replace("-", "_"): int(v) for k, v in values.items()}
    cls = get(words[0])

    def fresh() -> Fit:
        return Fit(cls(**sizes).model(), accelerator("h100"), dtype="bf16", seq_len=8192)

    return [
        ("the model built and its table's rows", best_of(lambda: cls(**sizes).model().rows())),
        ("the account", best_of(lambda: fresh().account())),
        ("the largest context", best_of(lambda: fresh().largest_context())),
        ("the most sequences", best_of(lambda: fresh().most_sequences())),
        ("the fewest GPUs", best_of(lambda: fresh().fewest_gpus())),
        ("the common weights formats", best_of(lambda: fresh().quantizations(COMMON_FORMATS))),
        ("every weights format (--formats)", best_of(lambda: fresh().quantizations())),
        ("every answer (answer())", best_of(lambda: answer(fresh()))),
    ]


def main() -> None:
    base = [PYTHON, "-m", "shapecalc"]
    lines = [
        "Best of 9 fresh processes, the commands in turn; `fit ... --gpu h100` at the default "
        "B=1, T=4,096, bf16.",
        "",
        "| model | `shapecalc MODEL` (table, baseline) | `shapecalc fit MODEL --gpu h100` "
        "| / baseline |",
        "|---|--:|--:|--:|",
    ]
    worst = 0.0
    for name, args in MODELS.items():
        words = args.split()
        table, fit = best([[*base, *words], [*base, "fit", *words, "--gpu", "h100"]])
        worst = max(worst, fit / table)
        lines.append(f"| {name} | {table * 1e3:.0f} ms | {fit * 1e3:.0f} ms | {fit / table:.2f}x |")
    lines += ["", f"Largest ratio: {worst:.2f}x (target: 1.2x or less).", ""]
    lines += ["In process, Llama-3.1-8B on an H100 at T=8,192 (best of 7):", ""]
    for what, seconds in in_process(MODELS["Llama-3.1-8B"].split()):
        lines.append(f"- {what}: {seconds * 1e3:.2f} ms")
    text = "## `shapecalc fit` (`python benchmarks/fit.py`)\n\n" + "\n".join(lines)
    print(text)
    write_section("fit", text)


if __name__ == "__main__":
    main()
