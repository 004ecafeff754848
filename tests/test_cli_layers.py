"""``shapecalc layer KIND``, ``shapecalc layers``, ``shapecalc gru`` and ``shapecalc rnn``."""

from __future__ import annotations

import json
from typing import Any

import pytest

import shapecalc.architectures as arch
from shapecalc.layers import LAYER_KINDS
from tests.test_cli import run

KINDS = sorted(LAYER_KINDS)


def flags(arguments: dict[str, Any]) -> list[str]:
    """Command-line flags for constructor arguments."""
    out: list[str] = []
    for name, value in arguments.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            out.append(flag if value else "--no-" + name.replace("_", "-"))
        elif isinstance(value, tuple):
            out += [flag, ",".join(str(v) for v in value)]
        elif value is None:
            out += [flag, "none"]
        else:
            out += [flag, str(value)]
    return out


def shape_flags(shapes: tuple[tuple[int, ...], ...]) -> list[str]:
    return [x for s in shapes for x in ("--input-shape", ",".join(str(d) for d in s))]


@pytest.mark.parametrize("kind", KINDS)
def test_layer_command_for_every_kind(kind: str) -> None:
    cls = LAYER_KINDS[kind]
    spec = cls(**cls.example)
    result = run(
        [
            "layer",
            kind.lower(),
            *flags(cls.example),
            *shape_flags(cls.example_input),
            "--format",
            "json",
        ]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["total"] == spec.total()
    params = report["layers"][0]["params"]
    assert [(p["name"], tuple(p["shape"])) for p in params] == [
        (p.name, p.shape) for p in spec.params()
    ]
    assert [b["name"] for b in report["layers"][0]["buffers"]] == [b.name for b in spec.buffers()]
    outputs = spec.output_shapes(*cls.example_input)
    assert [tuple(s) for s in report["outputs"]] == list(outputs)
    table = run(["layer", kind.lower(), *flags(cls.example), *shape_flags(cls.example_input)], 160)
    assert table.exit_code == 0, table.output
    assert f"{spec.total():,} parameters" in table.stdout


def test_layer_command_conv2d_from_the_issue() -> None:
    result = run(
        [
            "layer",
            "conv2d",
            "--in-channels",
            "3",
            "--out-channels",
            "64",
            "--kernel-size",
            "7",
            "--stride",
            "2",
            "--padding",
            "3",
            "--input-shape",
            "1,3,224,224",
        ],
        120,
    )
    assert result.exit_code == 0, result.output
    assert "(64, 3, 7, 7)" in result.stdout and "9,472 parameters" in result.stdout
    assert "input (1, 3, 224, 224) -> output (1, 64, 112, 112)" in result.stdout
    assert "49·C_in·C_out + C_out" in result.stdout


def test_layer_kinds_are_case_insensitive_and_buffers_listed() -> None:
    result = run(["layer", "BatchNorm2d", "--num-features", "64"], 120)
    assert result.exit_code == 0, result.output
    assert "Buffers (saved with the model, not trained)" in result.stdout
    assert "running_mean" in result.stdout and "128 parameters" in result.stdout


def test_layer_symbolic_input_shape() -> None:
    result = run(
        [
            "layer",
            "lstm",
            "--input-size",
            "512",
            "--hidden-size",
            "256",
            "--num-layers",
            "2",
            "--batch-first",
            "--input-shape",
            "B,T,512",
            "--format",
            "json",
        ]
    )
    report = json.loads(result.stdout)
    assert report["outputs"] == [["B", "T", 256], [2, "B", 256], [2, "B", 256]]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (
            ["layer", "conv2d", "--in-channels", "3", "--out-channels", "64"],
            ["Missing option '--kernel-size'"],
        ),
        (
            [
                "layer",
                "conv2d",
                "--in-channels",
                "3",
                "--out-channels",
                "64",
                "--kernel-size",
                "3",
                "--groups",
                "2",
            ],
            ["'--in-channels'", "in_channels must be divisible by groups"],
        ),
        (
            [
                "layer",
                "conv2d",
                "--in-channels",
                "3",
                "--out-channels",
                "6",
                "--kernel-size",
                "3,3,3",
            ],
            ["'--kernel-size'", "a tuple of 2"],
        ),
        (
            [
                "layer",
                "conv2d",
                "--in-channels",
                "3",
                "--out-channels",
                "6",
                "--kernel-size",
                "3",
                "--stride",
                "2",
                "--padding",
                "same",
            ],
            ["'--padding'", "padding='same' is not supported for strided convolutions"],
        ),
        (
            [
                "layer",
                "linear",
                "--in-features",
                "3",
                "--out-features",
                "4",
                "--input-shape",
                "2,5",
            ],
            ["'--input-shape'", "input (2, 5) has 5 at dim 1, expected in_features=3"],
        ),
        (
            ["layer", "multiheadattention", "--embed-dim", "10", "--num-heads", "3"],
            ["'--embed-dim'", "embed_dim must be divisible by num_heads (10 % 3 = 1)"],
        ),
        (
            ["layer", "groupnorm", "--num-groups", "3", "--num-channels", "8"],
            ["'--num-channels'", "num_channels must be divisible by num_groups"],
        ),
        (
            [
                "layer",
                "embedding",
                "--num-embeddings",
                "10",
                "--embedding-dim",
                "3",
                "--padding-idx",
                "ten",
            ],
            ["'--padding-idx'", "'ten' is not an integer or 'none'"],
        ),
        (
            ["layer", "rnn", "--input-size", "3", "--hidden-size", "4", "--nonlinearity", "gelu"],
            ["'--nonlinearity'", "nonlinearity must be one of 'tanh', 'relu'"],
        ),
        (["layer", "frobnicator"], ["No such command 'frobnicator'"]),
    ],
)
def test_layer_bad_input(args: list[str], fragments: list[str]) -> None:
    result = run(args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_layers_lists_every_kind() -> None:
    result = run(["layers", "--format", "json"])
    assert result.exit_code == 0
    listed = json.loads(result.stdout)
    assert sorted(row["kind"] for row in listed) == KINDS
    linear = next(row for row in listed if row["kind"] == "Linear")
    assert linear["formula"] == "I·O + O" and linear["command"] == "shapecalc layer linear"
    table = run(["layers"], 160)
    assert table.exit_code == 0 and all(kind in table.stdout for kind in KINDS)


@pytest.mark.parametrize(
    ("cell", "factory"), [("gru", arch.gru_lm), ("rnn", arch.rnn_lm), ("lstm", arch.lstm_lm)]
)
def test_recurrent_model_commands(cell: str, factory: Any) -> None:
    result = run([cell, "--layers", "2", "--hidden", "512", "--vocab", "65", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["total"] == factory(65, 512, 2).total
    assert report["layers"][1]["name"] == cell
    explained = run([cell, "--layers", "2", "--hidden", "512", "--vocab", "65", "--explain"], 200)
    assert f"The {cell.upper()} cell (one layer, one direction, one time step)" in explained.stdout
    solved = run(
        ["solve", cell, "--params", "5M", "--vocab", "65", "--layers", "2", "--format", "json"]
    )
    assert solved.exit_code == 0, solved.output
    answer = json.loads(solved.stdout)
    assert answer["below"]["total"] <= 5_000_000 < answer["above"]["total"]
    assert factory(65, answer["below"]["size"], 2).total == answer["below"]["total"]


def test_rnn_nonlinearity_and_gru_has_no_proj_size() -> None:
    relu = run(["rnn", "--hidden", "8", "--vocab", "5", "--nonlinearity", "relu", "--explain"])
    assert "h_t = relu(W_ih x_t + b_ih + W_hh h_(t-1) + b_hh)" in relu.stdout
    result = run(["gru", "--hidden", "8", "--vocab", "5", "--proj-size", "4"])
    assert result.exit_code == 2 and "No such option" in result.stderr
