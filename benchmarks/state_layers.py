"""The inference state of a 200-layer stack whose layers differ (five sliding layers to each
global one, as Gemma 3 has them) and of a 100,000-layer one, at any sequence length,
against the same pattern over 30 layers (each of the six runs of layers five long, the
shortest analysed once rather than listed) in the same run. Runs of layers are analysed
once, so the long stacks should cost what the short one does, whatever the context.

    python benchmarks/state_layers.py

Prints the in-process time of building the model, ``analyze`` and the state by kind of
layer (``Cost.state_groups``) for each stack at 1,024 and at 10⁹ positions (best of 7),
and the ratios of the long stacks' times over the short one's; the goal is 1.5x or less.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _results import best_of, write_section

PATTERN = "sliding_attention*5,full_attention"


def stack(layers: int) -> object:
    from shapecalc.architectures.llama import llama

    return llama(
        vocab=262144,
        hidden=2560,
        layers=layers,
        heads=8,
        kv_heads=4,
        head_dim=256,
        intermediate=10240,
        sliding_window=1024,
        layer_types=PATTERN,
    )


def state(layers: int, seq_len: int) -> tuple[int, int]:
    from shapecalc.analysis.cost import analyze

    cost = analyze(stack(layers), batch=1, seq_len=seq_len, dtype="bf16", training="none")
    groups = cost.state_groups()
    return int(cost.state_bytes), len(groups)


def main() -> None:
    lines = [
        "| context | 30 layers | 200 layers | 100,000 layers | worse ratio | state of 200 |",
        "|--:|--:|--:|--:|--:|--:|",
    ]
    worst = 0.0
    for seq_len in (1024, 10**9):
        short = best_of(lambda s=seq_len: state(30, s))
        long = best_of(lambda s=seq_len: state(200, s))
        longest = best_of(lambda s=seq_len: state(100_000, s))
        held, kinds = state(200, seq_len)
        ratio = max(long, longest) / short
        worst = max(worst, ratio)
        lines.append(
            f"| {seq_len:,} | {short * 1e3:.1f} ms | {long * 1e3:.1f} ms | "
            f"{longest * 1e3:.1f} ms | {ratio:.2f}x | {held:,} bytes, {kinds} kinds |"
        )
    lines += ["", f"Worst ratio {worst:.2f}x (goal: 1.5x or less)."]
    print("\n".join(lines))
    write_section(
        "state_layers", "## The state of a 200-layer stack of two kinds\n\n" + "\n".join(lines)
    )


if __name__ == "__main__":
    main()
