"""Every JSON output validates against its documented schema in docs/schema/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.layers import LAYER_KINDS
from tests.strategies import lstm_lm_args
from tests.test_cli import run
from tests.test_cli_layers import flags, shape_flags

jsonschema = pytest.importorskip("jsonschema")
SCHEMAS = Path(__file__).resolve().parent.parent / "docs" / "schema"


def validator(name: str) -> Any:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


REPORT = validator("report")


def cli_flags(args: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for key, value in args.items():
        flag = "--" + key.replace("_", "-")
        if key == "bias":
            out += [] if value else ["--no-bias"]
        elif isinstance(value, bool):
            out += [flag] if value else []
        else:
            out += [flag, str(value)]
    return out


@settings(max_examples=30)
@given(cell=st.sampled_from(["lstm", "gru", "rnn"]), data=st.data(), explain=st.booleans())
def test_model_reports_validate(cell: str, data: st.DataObject, explain: bool) -> None:
    args = data.draw(lstm_lm_args(sizes=st.integers(1, 64), cell=cell))
    result = run([cell, *cli_flags(args), "--format", "json", *(["--explain"] if explain else [])])
    assert result.exit_code == 0, result.output
    REPORT.validate(json.loads(result.stdout))


@settings(max_examples=20)
@given(
    cell=st.sampled_from(["lstm", "gru", "rnn"]),
    batch=st.sampled_from(["1", "32", "B", "N"]),
    seq_len=st.sampled_from(["1", "100", "T"]),
    dtype=st.sampled_from(["fp32", "fp16", "bf16"]),
    training=st.sampled_from(["none", "sgd", "adam", "adamw"]),
    mixed=st.booleans(),
)
def test_cost_reports_validate(
    cell: str, batch: str, seq_len: str, dtype: str, training: str, mixed: bool
) -> None:
    args = [cell, "--hidden", "16", "--vocab", "9", "--layers", "2", "--all", "--format", "json"]
    args += ["--batch", batch, "--seq-len", seq_len, "--dtype", dtype, "--training", training]
    result = run([*args, *(["--mixed-precision"] if mixed and dtype != "fp32" else [])])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    REPORT.validate(report)
    assert report["cost"]["training"] == training


@pytest.mark.parametrize("convention", ["pytorch", "keras", "onnx"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_convention_reports_validate(cell: str, convention: str) -> None:
    args = [cell, "--hidden", "H", "--vocab", "9", "--layers", "6", "--bidirectional"]
    report = run([*args, "--convention", convention, "--format", "json"])
    assert report.exit_code == 0, report.output
    REPORT.validate(json.loads(report.stdout))
    compared = run(
        ["compare-conventions", cell, "--hidden", "4", "--vocab", "3", "--format", "json"]
    )
    validator("conventions").validate(json.loads(compared.stdout))
    projected = run(
        [
            "compare-conventions",
            "lstm",
            "--hidden",
            "4",
            "--vocab",
            "3",
            "--proj-size",
            "2",
            "--format",
            "json",
        ]
    )
    assert projected.exit_code == 2  # neither Keras nor ONNX has a projection


def test_symbolic_report_validates() -> None:
    result = run(
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
            "json",
        ]
    )
    REPORT.validate(json.loads(result.stdout))


@pytest.mark.parametrize("kind", sorted(LAYER_KINDS))
def test_layer_reports_validate(kind: str) -> None:
    cls = LAYER_KINDS[kind]
    result = run(
        [
            "layer",
            kind.lower(),
            *flags(cls.example),
            *shape_flags(cls.example_input),
            "--all",
            "--format",
            "json",
        ]
    )
    REPORT.validate(json.loads(result.stdout))


def test_solve_and_inspect_reports_validate(tmp_path: Path) -> None:
    solved = run(["solve", "lstm", "--params", "10M", "--vocab", "65", "--format", "json"])
    validator("solve").validate(json.loads(solved.stdout))
    torch = pytest.importorskip("torch")
    save_file = pytest.importorskip("safetensors.torch").save_file
    path = tmp_path / "m.safetensors"
    save_file({"a.w": torch.zeros(2, 2), "b": torch.zeros(3, dtype=torch.int8)}, str(path))
    inspected = run(["inspect", str(path), "--format", "json"])
    validator("inspect").validate(json.loads(inspected.stdout))


def test_schema_rejects_a_wrong_report() -> None:
    report = json.loads(run(["lstm", "--hidden", "8", "--vocab", "5", "--format", "json"]).stdout)
    report["total"] = -1
    with pytest.raises(jsonschema.ValidationError):
        REPORT.validate(report)


@pytest.mark.parametrize("target", ["pytorch", "keras", "onnx"])
@pytest.mark.parametrize("source", ["pytorch", "keras", "onnx"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_port_maps_validate(cell: str, source: str, target: str) -> None:
    args = ["port", cell, "--hidden", "4", "--vocab", "3", "--layers", "2", "--bidirectional"]
    result = run([*args, "--from", source, "--to", target, "--format", "json"])
    if source == target:  # nothing to port: refused
        assert result.exit_code == 2 and "both" in result.stderr
        return
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    validator("port").validate(data)
    assert ("first" in data) == ("pytorch" not in (source, target))
