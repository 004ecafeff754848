"""Readable in any terminal from 80 columns: no cell is cut, no line is wider than the
terminal, and what does not fit moves. Every architecture's example and the other commands
are rendered at several widths; every name, shape, count and formula the parameter table
was given must be whole on one line of what it printed."""

from __future__ import annotations

import json
import math
import os
import shlex
import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from rich.cells import cell_len

from shapecalc.architectures import commands, get
from shapecalc.cli import cli
from shapecalc.cli.layers import example_flags
from shapecalc.layers import LAYER_KINDS
from shapecalc.report import cells as report_cells
from shapecalc.report import rich_writer

WIDTHS = (80, 100, 120, 140, 200)
Shown = dict[str, list[str]]
ENV = {"FORCE_COLOR": None, "TTY_COMPATIBLE": None, "NO_COLOR": None}


def run(args: list[str], width: int) -> Result:
    env = {**ENV, "COLUMNS": str(width)}
    return CliRunner().invoke(cli, args, env=env, prog_name="shapecalc")


@pytest.fixture
def shown(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """The names, shapes and counts (``cells``) and the formulas the rich writer's parameter
    tables were given."""
    seen: dict[str, list[str]] = {"cells": [], "formulas": []}
    original = report_cells.table_rows

    def recording(*args: Any, **kwargs: Any) -> Iterator[tuple[list[str], bool]]:
        for cells, subtotal in original(*args, **kwargs):
            seen["cells"].extend(c for c in cells[1:4] if c)
            seen["formulas"].append(cells[4])
            yield cells, subtotal

    monkeypatch.setattr(rich_writer, "table_rows", recording)
    return seen


def check(result: Result, width: int, shown: dict[str, list[str]] | None = None) -> None:
    assert result.exit_code == 0, result.output
    out = result.stdout
    whole = []
    if shown:
        whole = shown["cells"]
        if rich_writer.FORMULA_NOTE not in out.replace("\n", " "):
            whole += [f for f in shown["formulas"] if f]
        shown["cells"], shown["formulas"] = [], []
    lines = out.split("\n")
    assert "…" not in out, "a cell is cut"
    for line in lines:
        assert cell_len(line) <= width, f"wider than {width}: {line!r}"
        assert line == line.rstrip(), f"trailing spaces when piped: {line!r}"
    flat = " ".join(line.strip() for line in lines)
    # a name wider than a line, broken after its dots (Mllama's global transformer's)
    dotted = "".join(line.strip() + ("" if line.endswith(".") else "\n") for line in lines)
    for text in whole:
        if len(text) + 4 > width and text in flat:  # wider than a line: broken between terms
            assert all(term.strip() in flat for term in text.split(" + "))
            continue
        if len(text) + 4 > width and "." in text and text in dotted:
            continue
        assert any(text in line for line in lines), f"{text!r} is not whole on a line"


def llama_config(tmp_path: Path) -> str:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    from docs_facts import LLAMA_31_8B

    path = tmp_path / "config.json"
    path.write_text(json.dumps(LLAMA_31_8B))
    return str(path)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("command", commands())
def test_every_architecture_at_every_width(command: str, width: int, shown: Shown) -> None:
    args = [command, *shlex.split(get(command).example)]
    result = run(args, width)
    out = result.stdout.replace("\n", " ")
    check(result, width, shown)
    assert rich_writer.FORMULA_NOTE not in out or width < 140, "formulas dropped at 140"


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("command", ["lstm", "gpt2", "llama", "mlp"])
def test_trees_and_costs_at_every_width(command: str, width: int, shown: Shown) -> None:
    args = [command, *shlex.split(get(command).example)]
    sized = [] if command == "mlp" else ["--seq-len", "128"]
    check(run([*args, "--all", *sized], width), width, shown)
    check(run([*args, "--format", "tree"], width), width)
    for convention in ("keras", "onnx"):
        result = run([*args, "--convention", convention], width)
        if result.exit_code == 0:
            check(result, width)


LAYERS = ["linear", "conv2d", "lstm", "multiheadattention", "embedding", "batchnorm2d"]


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("kind", LAYERS)
def test_layers_at_every_width(kind: str, width: int, shown: Shown) -> None:
    cls = next(c for name, c in LAYER_KINDS.items() if name.lower() == kind)
    check(run(["layer", kind, *shlex.split(example_flags(cls.example))], width), width, shown)


@pytest.mark.parametrize("width", WIDTHS)
def test_other_commands_at_every_width(width: int, tmp_path: Path) -> None:
    config = llama_config(tmp_path)
    example = shlex.split(get("lstm").example)
    for args in (
        ["hf", config],
        ["hf", config, "--all", "--seq-len", "4096"],
        ["compare-conventions", "lstm", *example],
        [
            "sweep",
            "gpt2",
            "--vocab",
            "50257",
            "--heads",
            "12",
            "--layers",
            "12",
            "--hidden",
            "384,768,1536",
            "--seq-len",
            "1024",
        ],
        ["sweep", "hf", config, "--seq-len", "8192,131072", "--dtype", "bf16"],
        ["layers"],
        ["port", "lstm", *example, "--from", "keras", "--to", "onnx"],
        ["solve", "lstm", "--params", "10M", "--layers", "2", "--vocab", "65"],
    ):
        check(run(args, width), width)


@pytest.mark.parametrize("width", WIDTHS)
def test_layer_kinds_keep_kinds_and_formulas_whole(width: int) -> None:
    rows = json.loads(run(["layers", "--format", "json"], width).stdout)
    result = run(["layers"], width)
    check(result, width)
    lines = result.stdout.split("\n")
    for row in rows:
        for text in (row["kind"], row["formula"]):
            assert any(text in line for line in lines), text


@pytest.mark.parametrize("width", WIDTHS)
def test_conventions_keep_names_whole(width: int) -> None:
    example = shlex.split(get("lstm").example)
    names = ["lstm_1/lstm_cell/recurrent_kernel", "lstm.l1[B]", "(1, 2048, 512) 1,048,576"]
    check(run(["compare-conventions", "lstm", *example], width), width)
    out = run(["compare-conventions", "lstm", *example], width).stdout.split("\n")
    for name in names:
        assert any(name in line for line in out), name
    keras = run(["lstm", *example, "--convention", "keras"], width).stdout.split("\n")
    for name in ("lstm_1/lstm_cell/recurrent_kernel", "(512, 2048)", "1,048,576"):
        assert any(name in line for line in keras), name


@pytest.mark.parametrize("width", WIDTHS)
def test_titles_do_not_wrap_into_a_column(
    width: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the config by a path of fixed length (relative to the test's folder), so the title's
    # length does not hang on where pytest put the folder (deeper under pytest-xdist)
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "a-model-folder-of-typical-length"
    folder.mkdir()
    config = os.path.relpath(llama_config(folder))
    result = run(["sweep", "hf", config, "--seq-len", "8192,131072"], width)
    check(result, width)
    head = result.stdout.split("┏")[0]
    assert len(head.strip().split("\n")) <= 3, head


def test_all_on_one_layer_is_one_table() -> None:
    args = [
        "layer",
        "conv2d",
        "--in-channels",
        "3",
        "--out-channels",
        "64",
        "--kernel-size",
        "7",
        "--input-shape",
        "1,3,224,224",
        "--all",
    ]
    for width in WIDTHS:
        out = run(args, width).stdout
        assert out.count("Per layer at") == 1, out


def test_plot_without_colour_tells_series_apart_and_keeps_the_legend_off_the_data() -> None:
    args = ["sweep", "gpt2", "--vocab", "50257", "--heads", "12", "--layers", "12",
            "--hidden", "384,768,1536", "--seq-len", "1024", "--show", "weights,training",
            "--plot"]  # fmt: skip
    for env in ({}, {"NO_COLOR": "1"}):
        result = CliRunner().invoke(cli, args, env={**ENV, "COLUMNS": "100", **env})
        assert result.exit_code == 0, result.output
        lines = result.stdout.split("\n")
        top = next(i for i, line in enumerate(lines) if "┌" in line)  # the chart's frame
        bottom = next(i for i in range(top, len(lines)) if "└" in lines[i])
        inside = "\n".join(lines[top : bottom + 1])
        assert "•" in inside and "+" in inside.replace("┼", "")  # one marker per series
        assert "weight bytes" not in inside.split("\n", 1)[1]  # the legend is not on the data
        assert "• weight bytes  + training memory" in lines
        assert all(line == line.rstrip() for line in lines)


def long_named_checkpoint(tmp_path: Path) -> tuple[Path, list[tuple[str, list[int]]]]:
    """A safetensors file whose tensor names are about 150 characters: dotted ones with a
    long part, one long part alone."""
    tensors = [
        ("model.layers.0." + "attention_projection_" * 6 + "q.weight", [64, 32]),
        ("model.layers.0." + "attention_projection_" * 6 + "q.bias", [64]),
        ("model.layers.1.block." + "k" * 130 + ".weight", [128, 64, 3, 3]),
        ("e" * 150, [50257, 8]),
        ("lm_head.weight", [50257, 8]),
    ]
    header: dict[str, Any] = {}
    offset = 0
    for name, shape in tensors:
        size = 2 * math.prod(shape)
        header[name] = {"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    path = tmp_path / "long.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(offset))
    return path, tensors


@pytest.mark.parametrize("width", WIDTHS)
def test_inspect_keeps_long_names_within_the_width(width: int, tmp_path: Path) -> None:
    """Names too long for a line are folded onto the next, never cut; a name that fits its
    line is whole on it, and every shape and count is whole on a line."""
    path, tensors = long_named_checkpoint(tmp_path)
    for depth in (1, 2, 3, 4, 5):
        result = run(["inspect", str(path), "--depth", str(depth)], width)
        check(result, width)
        lines = result.stdout.split("\n")
        assert len(lines) > 2
        flowed = "".join(line.lstrip("│├└─ ") for line in lines)
        for name, shape in tensors:
            parts = name.split(".", depth)
            for level, part in enumerate(parts[:depth], 1):
                assert part in flowed, f"{part!r} is cut"
                if 4 * level + len(part) <= width:
                    assert any(part in line for line in lines), f"{part!r} is broken"
            if len(parts) <= depth:  # a tensor of its own: its shape and count whole
                whole = [str(tuple(shape)), f"{math.prod(shape):,}"]
                for text in whole:
                    assert any(text in line for line in lines), f"{text!r} is not whole"


SOLVES = [
    ["lstm", "--params", "10M", "--layers", "2", "--vocab", "65"],
    ["llama", "--params", "1.2B", "--layers", "24", "--heads", "16", "--kv-heads", "4",
     "--vocab", "32000", "--multiple-of", "64"],
    ["starcoder2", "--params", "3B", "--vocab", "49152", "--layers", "30", "--heads", "24",
     "--kv-heads", "2", "--intermediate", "12288", "--no-tie-weights"],
]  # fmt: skip


@pytest.mark.parametrize("args", SOLVES, ids=lambda args: args[0])
def test_solve_keeps_its_formula_whole(args: list[str]) -> None:
    """The Total line's formula is whole on one line (on a line of its own under Total
    where it does not fit beside it), the notes and the closest model's command fit the
    width, the command continued with a backslash."""
    wide = run(["solve", *args], 400).stdout
    formula = wide.split("\nTotal  ")[1].split(" (the other sizes fixed")[0]
    command = wide.split("The closest model: ")[1].strip()
    for width in (80, 200, 50):
        result = run(["solve", *args], width)
        if width >= 80:
            check(result, width)
        lines = result.stdout.split("\n")
        assert any(formula in line for line in lines), (width, result.stdout)
        shown = result.stdout.split("The closest model:")[1]
        assert " ".join(shown.replace("\\\n", " ").split()) == command


@pytest.mark.parametrize("width", [80, 100])
def test_a_name_longer_than_the_line_breaks_after_a_dot(
    width: int, tmp_path: Path, shown: Shown
) -> None:
    """A LoRA adapter over a 4-bit layer has names longer than 80 columns
    (``...q_proj.base_layer.weight.quant_map``): broken after a dot, the rest indented,
    never inside a part."""
    args = ["hf", llama_config(tmp_path), "--lora-rank", "16", "--lora-targets", "all-linear"]
    result = run([*args, "--weights", "nf4"], width)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert all(cell_len(line) <= width for line in out.split("\n"))
    joined = out.replace(".\n    ", ".")
    long = [c for c in shown["cells"] if c.startswith("base_model.") and len(c) > width]
    assert long or width > 80  # at 80 some names are longer than the line
    for name in shown["cells"]:
        if name.startswith("base_model."):
            assert any(name in line for line in joined.split("\n")), name
