"""The command line through click's CliRunner: goldens, exact JSON, exit codes, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from rich.console import Console

import shapecalc
from shapecalc.cli import cli
from shapecalc.report import rich_writer as render

GOLDEN = Path(__file__).parent / "golden"
HEADLINE = ["lstm", "--layers", "2", "--hidden", "512", "--vocab", "65"]
#: a deterministic terminal: fixed width, no colour forced from outside
ENV = {"COLUMNS": "100", "FORCE_COLOR": None, "TTY_COMPATIBLE": None, "NO_COLOR": None}


def run(args: list[str], width: int = 100) -> Result:
    return CliRunner().invoke(cli, args, env={**ENV, "COLUMNS": str(width)}, prog_name="shapecalc")


def check_golden(name: str, text: str) -> None:
    """Compare with tests/golden/NAME; SHAPECALC_UPDATE_GOLDEN=1 rewrites the file instead."""
    path = GOLDEN / name
    if os.environ.get("SHAPECALC_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from the golden copy"


@pytest.mark.parametrize("width", [100, 120])
def test_headline_table_golden(width: int) -> None:
    result = run(HEADLINE, width)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    check_golden(f"lstm_headline_{width}.txt", result.stdout)


def test_render_on_fixed_console_matches_cli() -> None:
    console = Console(width=100, file=StringIO(), color_system=None)
    console.print(render.ModelTable(shapecalc.lstm_lm(vocab=65, hidden=512, layers=2)))
    assert isinstance(console.file, StringIO)
    # piped, the CLI drops the spaces that pad lines to the width
    drawn = "\n".join(line.rstrip() for line in console.file.getvalue().split("\n"))
    assert drawn == run(HEADLINE).stdout


def test_headline_table_content() -> None:
    out = run(HEADLINE, 200).stdout  # wide enough that no cell wraps
    for expected in [
        "lstm.weight_ih_l0",
        "(2048, 512)",
        "1,048,576",
        "4·H²",
        "input-to-hidden weights of gates i, f, g, o stacked: 4 × (512 × 512)",
        "4,269,121 parameters (4.27 M) = 16·H² + 2·V·H + 16·H + V",
        "fp32 17.1 MB (17,076,484 bytes)",
        "bf16 8.54 MB (8,538,242 bytes)",
    ]:
        assert expected in out, expected


def test_markdown_golden() -> None:
    result = run([*HEADLINE, "--format", "markdown"])
    assert result.exit_code == 0
    check_golden("lstm_headline.md", result.stdout)


def test_explain_golden() -> None:
    result = run([*HEADLINE, "--explain"], 120)
    assert result.exit_code == 0
    check_golden("lstm_headline_explain_120.txt", result.stdout)
    out = " ".join(result.stdout.split())
    for expected in [
        'What "hidden 512" means',
        "length of the LSTM's hidden state h_t and of its cell state c_t",
        "own 512 × d_in input matrix",
        "lstm.weight_ih_l0 = [W_ii; W_if; W_ig; W_io] stacked in gate order i, f, g, o: "
        "(2048, 512) = (4·H, d_in)",
        "two bias vectors per gate",
        "Keras stores its kernel as (d_in, 4·H)",
        "total: 4,269,121 = 16·H² + 2·V·H + 16·H + V",
    ]:
        assert expected in out, expected


def test_explain_names_layer_input_sizes_that_differ() -> None:
    out = " ".join(run([*HEADLINE, "--one-hot", "--explain"], 120).stdout.split())
    assert "d_in is 65 for layer 0 (the one-hot vector of a token, V)" in out
    assert "lstm.weight_ih_l1 is (2048, 512) (different from layer 0's)" in out
    assert "layer 0: d_in = 65 -> 1,185,792 = 4·H² + 4·V·H + 8·H parameters" in out


def test_json_headline() -> None:
    result = run([*HEADLINE, "--format", "json"])
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["total"] == 4_269_121
    assert report["total_formula"] == "16*H**2 + 2*V*H + 16*H + V"
    assert report["trainable"] == 4_269_121
    assert report["bytes"]["fp32"] == 17_076_484
    assert report["bytes"]["bf16"] == 8_538_242
    assert [layer["name"] for layer in report["layers"]] == ["embedding", "lstm", "head"]
    assert (
        sum(
            p["count"]
            for layer in report["layers"]
            for p in layer["params"]
            if p["tied_to"] is None
        )
        == report["total"]
    )
    check_golden("lstm_headline.json", result.stdout)


def test_json_exact_small_model() -> None:
    result = run(["lstm", "--vocab", "3", "--hidden", "2", "--format", "json"])
    assert result.exit_code == 0
    gates = "gates i, f, g, o"

    def p(
        name: str, shape: list[Any], shape_formula: list[str], count: int, formula: str, role: str
    ) -> dict[str, Any]:
        return {
            "name": name,
            "shape": shape,
            "shape_formula": shape_formula,
            "count": count,
            "repeat": 1,
            "formula": formula,
            "role": role,
            "trainable": True,
            "tied_to": None,
        }

    expected = {
        "schema": "shapecalc.report/1",
        "model": {
            "kind": "lstm_lm",
            "name": "LSTM language model",
            "arguments": {
                "vocab": 3,
                "hidden": 2,
                "layers": 1,
                "embed_dim": None,
                "one_hot": False,
                "bias": True,
                "bidirectional": False,
                "proj_size": 0,
                "tie_weights": False,
                "dropout": 0.0,
                "batch_first": True,
            },
            "sizes": {"V": 3, "H": 2, "L": 1},
        },
        "layers": [
            {
                "name": "embedding",
                "kind": "Embedding",
                "spec": "Embedding(num_embeddings=3, embedding_dim=2)",
                "description": "token embedding: each of 3 tokens -> a 2-vector",
                "arguments": {
                    "num_embeddings": 3,
                    "embedding_dim": 2,
                    "padding_idx": None,
                    "max_norm": None,
                    "norm_type": 2.0,
                    "scale_grad_by_freq": False,
                    "sparse": False,
                },
                "total": 6,
                "total_formula": "V*H",
                "params": [
                    p(
                        "embedding.weight",
                        [3, 2],
                        ["V", "H"],
                        6,
                        "V*H",
                        "lookup table: one 2-vector for each of 3 tokens",
                    )
                ],
                "buffers": [],
            },
            {
                "name": "lstm",
                "kind": "LSTM",
                "spec": "LSTM(input_size=2, hidden_size=2, batch_first=True)",
                "description": "1-layer LSTM, hidden size 2",
                "arguments": {
                    "input_size": 2,
                    "hidden_size": 2,
                    "num_layers": 1,
                    "bias": True,
                    "batch_first": True,
                    "dropout": 0.0,
                    "bidirectional": False,
                    "proj_size": 0,
                },
                "total": 48,
                "total_formula": "8*H**2 + 8*H",
                "params": [
                    p(
                        "lstm.weight_ih_l0",
                        [8, 2],
                        ["4*H", "H"],
                        16,
                        "4*H**2",
                        f"input-to-hidden weights of {gates} stacked: 4 × (2 × 2)",
                    ),
                    p(
                        "lstm.weight_hh_l0",
                        [8, 2],
                        ["4*H", "H"],
                        16,
                        "4*H**2",
                        f"hidden-to-hidden (recurrent) weights of {gates} stacked: 4 × (2 × 2)",
                    ),
                    p(
                        "lstm.bias_ih_l0",
                        [8],
                        ["4*H"],
                        8,
                        "4*H",
                        f"input-side biases of {gates}: 4 × 2",
                    ),
                    p(
                        "lstm.bias_hh_l0",
                        [8],
                        ["4*H"],
                        8,
                        "4*H",
                        f"hidden-side biases of {gates}: 4 × 2 (PyTorch's second bias; "
                        "Keras has one)",
                    ),
                ],
                "buffers": [],
            },
            {
                "name": "head",
                "kind": "Linear",
                "spec": "Linear(in_features=2, out_features=3)",
                "description": "output head: h_t (2) -> 3 scores",
                "arguments": {"in_features": 2, "out_features": 3, "bias": True},
                "total": 9,
                "total_formula": "V*H + V",
                "params": [
                    p(
                        "head.weight",
                        [3, 2],
                        ["V", "H"],
                        6,
                        "V*H",
                        "weights of y = x·Wᵀ + b, 2 in -> 3 out, stored (out, in)",
                    ),
                    p("head.bias", [3], ["V"], 3, "V", "bias b: one per output, 3"),
                ],
                "buffers": [],
            },
        ],
        "ties": {},
        "total": 63,
        "total_formula": "8*H**2 + 2*V*H + 8*H + V",
        "trainable": 63,
        "active": 63,
        "active_formula": "8*H**2 + 2*V*H + 8*H + V",
        "embedding": 6,
        "head": 9,
        "bytes": {"fp32": 252, "fp16": 126, "bf16": 126, "int8": 63, "fp8": 63},
        "notes": [],
    }
    assert json.loads(result.stdout) == expected
    flagged = run(["lstm", "--vocab", "3", "--hidden", "2", "--flops", "--format", "json"])
    cost = json.loads(flagged.stdout)["cost"]
    # per token: LSTM 4·2·(2 + 2) MACs, head 2·3; elementwise LSTM (13 + 8)·2, head 3
    assert (cost["macs"], cost["forward_flops"]) == ("38*B*T", "121*B*T")
    # ids 8 bytes; LSTM input 2 + gates 8 + c, tanh c, h 6 floats; head input 2 floats
    assert cost["activation_bytes"] == "80*B*T"


def test_json_tied_and_explained() -> None:
    result = run([*HEADLINE, "--tie-weights", "--format", "json", "--explain"])
    report = json.loads(result.stdout)
    assert report["ties"] == {"head.weight": "embedding.weight"}
    head = report["layers"][2]["params"][0]
    assert head["tied_to"] == "embedding.weight" and head["count"] == 33_280
    assert report["total"] == 4_269_121 - 33_280
    assert report["explanation"][0]["title"] == 'What "hidden 512" means'


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--hidden", "0"], ["'--hidden'", "hidden must be an integer >= 1, got 0"]),
        (["--hidden", "-5"], ["'--hidden'", "got -5"]),
        (["--hidden", "5.5"], ["'--hidden'", "got '5.5'"]),
        (["--vocab", "0"], ["'--vocab'", "vocab must be an integer >= 1"]),
        (["--layers", "0"], ["'--layers'", "layers must be an integer >= 1, got 0"]),
        (["--embed-dim", "-1"], ["'--embed-dim'", "embed_dim must be an integer >= 1"]),
        (
            ["--proj-size", "512"],
            [
                "'--proj-size'",
                "LSTM(hidden_size=512, proj_size=512)",
                "proj_size must be smaller than hidden_size (512 >= 512)",
            ],
        ),
        (["--proj-size", "-1"], ["'--proj-size'", "proj_size must be an integer >= 0"]),
        (["--dropout", "1"], ["'--dropout'", "dropout must be a number in [0, 1), got 1.0"]),
        (["--dropout", "-0.1"], ["'--dropout'", "in [0, 1)"]),
        (["--dropout", "nan"], ["'--dropout'", "got nan"]),
        (["--dropout", "lots"], ["'--dropout'", "'lots' is not a valid float"]),
        (
            ["--tie-weights", "--bidirectional"],
            [
                "'--tie-weights'",
                "the head weight (65, 1024) cannot share the embedding weight (65, 512)",
                "set embed_dim to 1024 (2 directions × hidden)",
            ],
        ),
        (["--tie-weights", "--proj-size", "128"], ["'--tie-weights'", "(proj_size)"]),
        (["--tie-weights", "--one-hot"], ["'--tie-weights'", "one_hot has none"]),
        (["--one-hot", "--embed-dim", "64"], ["'--embed-dim'", "no embedding layer"]),
        (["--format", "xml"], ["'--format'", "'xml' is not one of"]),
        (["--frobnicate"], ["No such option", "--frobnicate"]),
        (["--layers", "2.5"], ["'--layers'", "layers must be an integer >= 1 or a size name"]),
    ],
)
def test_bad_input_is_one_line_exit_2(args: list[str], fragments: list[str]) -> None:
    base = {"--layers": "2", "--hidden": "512", "--vocab": "65"}
    for flag in [a for a in args if a in base]:
        del base[flag]
    result = run(["lstm", *[x for kv in base.items() for x in kv], *args])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in result.output


def test_missing_required_flag() -> None:
    result = run(["lstm", "--vocab", "65"])
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: Missing option '--hidden' (example: shapecalc lstm --layers 2 --hidden 512 "
        "--vocab 65).\n"
    )


def test_unknown_command_and_help() -> None:
    result = run(["lsmt"])
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: No such command 'lsmt'")
    assert len(result.stderr.splitlines()) == 1
    for args in ([], ["--help"], ["lstm", "--help"]):
        result = run(args)
        assert result.exit_code == 0
        assert "Usage: shapecalc" in result.stdout


def test_python_dash_m_runs_the_headline() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "shapecalc", *HEADLINE, "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["total"] == 4_269_121


def test_python_dash_m_error_exit_status() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "shapecalc", "lstm", "--hidden", "0", "--vocab", "65"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_latex_golden() -> None:
    result = run([*HEADLINE, "--format", "latex"])
    assert result.exit_code == 0
    check_golden("lstm_headline.tex", result.stdout)
    assert r"\texttt{lstm.weight\_ih\_l0} & $(2048, 512)$ & $1{,}048{,}576$ & $4 H^{2}$ \\" in (
        result.stdout
    )
    assert r"$16 H^{2} + 2 V H + 16 H + V$" in result.stdout


def test_symbolic_command_prints_formulas() -> None:
    result = run(["lstm", "--layers", "L", "--hidden", "H", "--vocab", "V"], 160)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "LSTM language model (V, H, L)" in out
    assert "lstm.weight_ih_l{0..L-1}" in out
    assert "L × 4·H²" in out
    assert "8·L·H² + 8·L·H + 2·V·H + V parameters" in out
    report = json.loads(
        run(["lstm", "--layers", "L", "--hidden", "H", "--vocab", "V", "--format", "json"]).stdout
    )
    assert report["total"] == "8*L*H**2 + 8*L*H + 2*V*H + V"
    assert report["layers"][1]["params"][0]["shape"] == ["4*H", "H"]
    latex = run(
        [
            "lstm",
            "--layers",
            "L",
            "--hidden",
            "H",
            "--vocab",
            "V",
            "--embed-dim",
            "E",
            "--format",
            "latex",
        ]
    ).stdout
    assert r"$(L - 1) \times 4 H^{2}$" in latex


def test_mixed_symbolic_command() -> None:
    result = run(["lstm", "--hidden", "H", "--vocab", "65", "--layers", "2", "--format", "json"])
    report = json.loads(result.stdout)
    assert report["total"] == "16*H**2 + 146*H + 65"
    assert report["total_formula"] == "16*H**2 + 2*V*H + 16*H + V"
    assert report["model"]["sizes"] == {"V": 65, "H": "H", "L": 2}
