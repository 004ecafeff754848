"""The docs' pictures, drawn from the engine's numbers (imported by gen_docs.py).

Each picture is a chart's data (shapecalc.report.plot's Chart) and its SVG drawn by
matplotlib. The SVG carries its data in a comment, ``<!-- shapecalc-data {...} -->``;
``gen_docs.py --check`` compares that data (and a digest of the drawing code) with what
the engine says now, so the check holds on any matplotlib (whose SVG bytes differ from
version to version) and needs none.
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any

from shapecalc.analysis.sweep import sweep
from shapecalc.architectures import get
from shapecalc.report.plot import Chart, Series, render, sweep_charts

MARK = "<!-- shapecalc-data "


def lstm_share() -> Chart:
    """The 2-layer character LSTM (2 layers, 65 characters): each part's share of the parameters
    as H grows, in percent: the embedding and the head fade, the LSTM takes it all."""
    from shapecalc.report.cells import name_tree

    hidden = (16, 32, 64, 128, 256, 512, 1024, 2048)
    parts: dict[str, list[float]] = {}
    for h in hidden:
        model = get("lstm")(vocab=65, hidden=h, layers=2).model()
        for name, node in name_tree(model).children.items():
            share = 100 * int(node.count) / int(model.total)
            parts.setdefault(name, []).append(round(share, 2))
    return Chart(
        title="A 2-layer LSTM on 65 characters: each part's share of the parameters",
        x_label="hidden (H)",
        y_label="share of the parameters (%)",
        xs=hidden,
        series=tuple(Series(name, tuple(values)) for name, values in parts.items()),
        log_x=True,
        unit="percent",
    )


def kv_crossover() -> Chart:
    """A LLaMA-2-7B-sized decoder in bf16 at batch 1: the weights against the KV cache as
    the context grows; they cross near 26k tokens."""
    table = sweep(
        get("llama"),
        {"vocab": 32000, "hidden": 4096, "layers": 32, "heads": 32, "intermediate": 11008},
        {"seq_len": (1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)},
        show=("weights", "state"),
        batch=1,
        dtype="bf16",
        training="none",
    )
    (chart,) = sweep_charts(table)
    return dataclasses.replace(
        chart,
        title="LLaMA-style 7B (H=4096, L=32, bf16, batch 1): weights against the KV cache",
    )


PICTURES = {"lstm-share.svg": lstm_share, "kv-crossover.svg": kv_crossover}


def data(chart: Chart) -> str:
    """The chart's data as one line of JSON (what the check compares), with a digest of
    the drawing code, so that a change to how charts are drawn redraws them too."""
    import hashlib
    import inspect

    from shapecalc.report import plot

    drawn_by = hashlib.sha256(inspect.getsource(plot).encode()).hexdigest()[:16]
    record = {**dataclasses.asdict(chart), "drawn_by": drawn_by}
    return json.dumps(record, sort_keys=True, separators=(",", ":"))


def svg(chart: Chart) -> str:
    """The chart as SVG text with its data in a comment after the XML header."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "shapecalc"  # the same ids on every run
    import matplotlib.pyplot as pyplot

    figure = render([chart])
    out = io.StringIO()
    figure.savefig(out, format="svg", metadata={"Date": None})
    pyplot.close(figure)
    text = out.getvalue()
    head, _, body = text.partition("\n")
    return f"{head}\n{MARK}{data(chart)} -->\n{body}"


def recorded(path: Path) -> str | None:
    """The data an SVG was drawn from, or None when it has none."""
    if not path.exists():
        return None
    for line in path.read_text(encoding="utf-8").splitlines()[:3]:
        if line.startswith(MARK):
            return line[len(MARK) :].removesuffix(" -->")
    return None


def pictures(folder: Path) -> dict[Path, Any]:
    """Each picture's path and its chart."""
    return {folder / name: make() for name, make in PICTURES.items()}


SWEEP_LSTM = ["sweep", "lstm", "--layers", "2", "--vocab", "65", "--hidden", "128,256,512,1024"]
SWEEP_KV = [
    "sweep", "llama", "--vocab", "32000", "--hidden", "4096", "--layers", "32", "--heads", "32",
    "--intermediate", "11008", "--seq-len", "4096,16384,32768,131072", "--dtype", "bf16",
    "--training", "none", "--show", "weights,state",
]  # fmt: skip


def sweep_facts() -> dict[str, str]:
    """The sweeps the docs show, as the Markdown writer prints them."""
    from docs_facts import _shell, cli

    return {
        "sweep_lstm_command": _shell(["shapecalc", *SWEEP_LSTM]),
        "sweep_lstm": cli([*SWEEP_LSTM, "--format", "markdown"]),
        "sweep_kv_command": _shell(["shapecalc", *SWEEP_KV]),
        "sweep_kv": cli([*SWEEP_KV, "--format", "markdown"]),
    }
