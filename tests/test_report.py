"""One report, every format: each carries every section asked for; --depth and the tree;
the JSON tree of a nested model; LaTeX in plain ASCII."""

from __future__ import annotations

import json
from typing import Any

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
    "table": (
        "lstm.weight_ih_l0",
        "Per layer at B=1, T=4",
        "Memory in training (adam, fp32)",
        "The LSTM cell",
    ),
    "tree": (
        "weight_ih_l0",
        "Per layer at B=1, T=4",
        "Memory in training (adam, fp32)",
        "The LSTM cell",
    ),
    "markdown": (
        "`lstm.weight_ih_l0`",
        "#### Per layer at B=1, T=4",
        "#### Memory in training (adam, fp32)",
        "#### The LSTM cell",
    ),
    "latex": (
        r"lstm.weight\_ih\_l0",
        "% Per layer at B=1, T=4",
        "% Memory in training (adam, fp32)",
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


def test_onnx_with_every_cost_section_analyses_the_model_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The cost, and the ONNX convention of the model and of its template (a Linear fed
    3-D inputs is a MatMul), share one analysis."""
    import shapecalc.analysis.cost as cost_module

    calls = []
    analyze = cost_module.analyze

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return analyze(*args, **kwargs)

    monkeypatch.setattr(cost_module, "analyze", counted)
    result = run([*SMALL, "--convention", "onnx", "--all", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert len(calls) == 1
    assert "head.weight.T" in result.stdout  # the ranks reached the convention


def test_verify_checks_and_builds_once(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    import shapecalc.adapters.torch_bridge as bridge
    import shapecalc.report.pipeline as pipeline

    counts = {"check": 0, "build": 0}
    check, build = pipeline.check_buildable, bridge.build

    def counted_check(model: Model) -> None:
        counts["check"] += 1
        check(model)

    def counted_build(*args: Any, **kwargs: Any) -> Any:
        counts["build"] += 1
        return build(*args, **kwargs)

    monkeypatch.setattr(pipeline, "check_buildable", counted_check)
    monkeypatch.setattr(bridge, "build", counted_build)
    result = run([*SMALL, "--verify", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert "Verified against torch" in result.stderr
    assert counts == {"check": 1, "build": 1}


@pytest.mark.parametrize(
    ("args", "parts"),
    [
        (
            [*SMALL, *SECTIONS, "--convention", "onnx", "--depth", "1"],
            {
                "shapes": True,
                "flops": True,
                "memory": True,
                "explain": True,
                "batch": 1,
                "seq_len": 4,
                "convention": "onnx",
                "depth": 1,
            },
        ),
        (
            [*SMALL, "--memory", "--dtype", "bf16", "--training", "none", "--convention", "keras"],
            {"memory": True, "dtype": "bf16", "training": "none", "convention": "keras"},
        ),
    ],
)
def test_the_library_call_gives_the_report_the_command_prints(
    args: list[str], parts: dict[str, Any]
) -> None:
    model = shapecalc.lstm_lm(vocab=5, hidden=16, layers=2)
    report = shapecalc.build_report(model, **parts)
    printed = run([*args, "--format", "json"])
    assert printed.exit_code == 0, printed.output
    assert text(report, "json") == printed.stdout
    assert json.loads(printed.stdout)["convention"]["convention"] == parts["convention"]


def test_the_library_call_gives_a_layer_report_with_its_shapes() -> None:
    from shapecalc.core.model import layer_model
    from shapecalc.layers.linear import Linear

    report = shapecalc.build_report(
        layer_model(Linear(3, 4)), inputs=((2, 5, 3),), outputs=((2, 5, 4),), convention="onnx"
    )
    printed = run(
        [
            "layer",
            "linear",
            "--in-features",
            "3",
            "--out-features",
            "4",
            "--input-shape",
            "2,5,3",
            "--convention",
            "onnx",
            "--format",
            "json",
        ]
    )
    assert printed.exit_code == 0, printed.output
    assert text(report, "json") == printed.stdout


def test_the_library_call_names_the_part_an_error_came_from() -> None:
    model = shapecalc.lstm_lm(vocab=5, hidden=16, layers=2, proj_size=4)
    with pytest.raises(shapecalc.InvalidArgumentError) as caught:
        shapecalc.build_report(model, convention="keras")
    assert caught.value.argument == "convention"
    with pytest.raises(shapecalc.ShapecalcError) as symbolic:
        shapecalc.build_report(shapecalc.lstm_lm(vocab=5, hidden="H"), verify=True)
    assert symbolic.value.argument == "verify"
    assert "needs every size as a number, and H is a name" in str(symbolic.value)
