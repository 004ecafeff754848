"""One report, every format: each carries every section asked for; --depth and the tree;
the JSON tree of a nested model; LaTeX in plain ASCII."""

from __future__ import annotations

import json

import pytest

import shapecalc
from shapecalc.core.model import Model
from shapecalc.core.tree import Block, ModuleList, Sequential
from shapecalc.report import Report, text
from shapecalc.report.as_json import to_dict
from tests.test_cli import HEADLINE, run

SMALL = ["lstm", "--layers", "2", "--hidden", "16", "--vocab", "5"]
SECTIONS = ["--all", "--explain", "--batch", "1", "--seq-len", "4"]


#: what each section looks like in each format
MARKS = {
    "table": ("lstm.weight_ih_l0", "Per layer at B=1, T=4", "Memory (adam)", "The LSTM cell"),
    "tree": ("weight_ih_l0", "Per layer at B=1, T=4", "Memory (adam)", "The LSTM cell"),
    "markdown": (
        "`lstm.weight_ih_l0`",
        "#### Per layer at B=1, T=4",
        "#### Memory (adam)",
        "#### The LSTM cell",
    ),
    "latex": (
        r"lstm.weight\_ih\_l0",
        "% Per layer at B=1, T=4",
        "% Memory (adam)",
        r"\paragraph{The LSTM cell",
    ),
    "json": ('"lstm.weight_ih_l0"', '"forward_flops"', '"training_bytes"', '"The LSTM cell'),
}


@pytest.mark.parametrize("fmt", list(MARKS))
def test_every_format_carries_every_section(fmt: str) -> None:
    result = run([*SMALL, *SECTIONS, "--format", fmt], 140)
    assert result.exit_code == 0, result.output
    for mark in MARKS[fmt]:
        assert mark in result.stdout, (fmt, mark)
    keras = run([*SMALL, "--convention", "keras", "--format", fmt], 140)
    assert "lstm/lstm_cell/kernel" in keras.stdout.replace(r"\_", "_"), fmt


def test_latex_is_ascii() -> None:
    for args in (
        [*SMALL, *SECTIONS],
        ["lstm", "--hidden", "H", "--vocab", "V", "--all", "--explain"],
        [
            "layer",
            "conv2d",
            "--in-channels",
            "3",
            "--out-channels",
            "8",
            "--kernel-size",
            "3",
            "--stride",
            "2",
            "--input-shape",
            "1,3,H,W",
            "--all",
        ],
    ):
        out = run([*args, "--format", "latex"]).stdout
        assert out and all(ord(c) < 128 for c in out), sorted({c for c in out if ord(c) > 127})


def test_depth_sums_deeper_tensors_into_their_node() -> None:
    result = run([*HEADLINE, "--depth", "1", "--format", "markdown"])
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")][1:]
    assert [r.split(" | ")[1] for r in rows] == ["`embedding`", "`lstm`", "`head`"]
    assert "4,202,496" in rows[1] and "16·H² + 16·H" in rows[1]
    full = run([*HEADLINE, "--depth", "2", "--format", "markdown"]).stdout
    assert full == run([*HEADLINE, "--format", "markdown"]).stdout
    assert run([*HEADLINE, "--depth", "0"]).exit_code == 2


def nested() -> Model:
    block = Block(
        "Block",
        {"ln": shapecalc.LayerNorm(8), "fc": shapecalc.Linear(8, 8)},
        flow=shapecalc.residual("ln", "fc"),
    )
    root = Block("Net", {"emb": shapecalc.Embedding(10, 8), "h": ModuleList(block, 6)})
    return Model("net", root, group_depth=1)


def test_tree_view_and_depth_of_a_nested_model() -> None:
    model = nested()
    report = Report(model, depth=3)
    md = text(report, "markdown")
    assert "| h | `h.{0..5}.ln` |  | 96 | 96 | LayerNorm(normalized_shape=8) |" in md
    assert "| *h subtotal* |" in md
    data = to_dict(model)
    assert data["tree"]["children"][1]["name"] == "h"
    assert data["tree"]["children"][1]["children"][0]["name"] == "h.{0..5}"
    assert data["tree"]["children"][1]["total"] == 6 * (16 + 72)
    assert "tree" not in to_dict(shapecalc.lstm_lm(65, 512, 2))


def test_tree_format_lists_nodes_with_subtotals() -> None:
    result = run([*HEADLINE, "--format", "tree", "--depth", "1"], 120)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("LSTM language model (V=65, H=512, L=2)  4,269,121")
    assert any(line.startswith("├── lstm  4,202,496 (98.4%)  = 16·H² + 16·H") for line in lines)
    assert not any("weight_ih_l0" in line for line in lines)


def test_a_sequential_report_in_json_validates_shape() -> None:
    model = Model("seq", Sequential(shapecalc.Linear(4, 8), shapecalc.Linear(8, 2)))
    data = json.loads(text(Report(model), "json"))
    assert [layer["name"] for layer in data["layers"]] == ["0", "1"]
    assert data["total"] == 4 * 8 + 8 + 8 * 2 + 2
