"""Shapes through a model, compute and memory: the library and the command line."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shapecalc
from shapecalc.analysis.cost import analyze
from shapecalc.core.dims import symbol
from shapecalc.core.errors import InvalidArgumentError, ShapeError
from shapecalc.core.model import Model, layer_model
from shapecalc.layers.conv import Conv2d
from shapecalc.layers.linear import Linear
from tests.test_cli import HEADLINE, check_golden, run

B, T = symbol("B"), symbol("T")
AT = ["--batch", "1", "--seq-len", "100"]


# -- the library ---------------------------------------------------------------------------
def test_headline_shapes_flow_batch_first() -> None:
    cost = analyze(shapecalc.lstm_lm(vocab=65, hidden=512, layers=2))
    embedding, lstm, head = cost.layers
    assert embedding.inputs == ((B, T),) and embedding.outputs == ((B, T, 512),)
    assert lstm.outputs == ((B, T, 512), (2, B, 512), (2, B, 512))
    assert head.outputs == ((B, T, 65),)


def test_time_major_bidirectional_projected_flow() -> None:
    model = shapecalc.lstm_lm(
        vocab=65, hidden=512, layers=3, bidirectional=True, proj_size=128, batch_first=False
    )
    lstm = analyze(model, batch=8, seq_len=50).layers[1]
    assert lstm.inputs == ((50, 8, 512),)
    # output (T, B, D·H_out), h_n (D·L, B, H_out), c_n (D·L, B, H)
    assert lstm.outputs == ((50, 8, 256), (6, 8, 128), (6, 8, 512))


def test_one_hot_input_is_float_vectors() -> None:
    cost = analyze(shapecalc.gru_lm(vocab=65, hidden=32, one_hot=True), batch=2, seq_len=7)
    assert cost.layers[0].inputs == ((2, 7, 65),)


def test_headline_compute() -> None:
    cost = analyze(shapecalc.lstm_lm(vocab=65, hidden=512, layers=2), batch=1, seq_len=100)
    # per token: 2 layers × 4 gates × 512 × (512 + 512) MACs, then the head 512 × 65
    assert cost.macs == 100 * (2 * 4 * 512 * 1024 + 512 * 65)
    assert cost.forward_flops == 2 * cost.macs + 100 * (2 * 21 * 512 + 65)
    assert cost.per_token(cost.forward_flops) == 8_476_737
    assert cost.backward_flops == 4 * cost.macs + (cost.forward_flops - 2 * cost.macs)


def test_symbolic_compute_is_per_token_times_b_t() -> None:
    cost = analyze(shapecalc.lstm_lm(vocab="V", hidden="H", layers=2))
    assert str(cost.forward_flops) == "32·B·T·H² + 2·B·T·V·H + 42·B·T·H + B·T·V"
    assert cost.forward_flops.subs({"B": 1, "T": 100, "H": 512, "V": 65}) == 847_673_700


def test_mixed_precision_is_16_bytes_per_parameter_with_adam() -> None:
    model = shapecalc.lstm_lm(vocab=65, hidden=512, layers=2)
    cost = analyze(model, batch=1, seq_len=100, dtype="bf16", mixed_precision=True)
    lines = {line.label: line.bytes for line in cost.memory}
    n = 4_269_121
    assert lines["weights"] == 2 * n and lines["fp32 master weights"] == 4 * n
    assert lines["gradients"] == 2 * n and lines["optimizer state"] == 8 * n
    assert cost.training_bytes - lines["activations"] == 16 * n
    fp32 = analyze(model, batch=1, seq_len=100)
    assert lines["activations"] < fp32.activation_bytes  # 2-byte activations, int64 ids


@pytest.mark.parametrize(("training", "states"), [("none", None), ("sgd", 0), ("adamw", 2)])
def test_optimizers(training: str, states: int | None) -> None:
    cost = analyze(shapecalc.lstm_lm(vocab=65, hidden=64), training=training, dtype="fp16")
    lines = {line.label: line.bytes for line in cost.memory}
    n = shapecalc.lstm_lm(vocab=65, hidden=64).total
    if states is None:
        assert "gradients" not in lines and "activations" not in lines
    else:
        assert lines["optimizer state"] == states * n * 2


def test_buffers_count_their_own_itemsize() -> None:
    from shapecalc.layers.norm import BatchNorm2d

    cost = analyze(layer_model(BatchNorm2d(64)), ((8, 64, 32, 32),), dtype="fp16")
    # running_mean and running_var at 2 bytes, num_batches_tracked an int64
    assert cost.buffer_bytes == 2 * 64 * 2 + 8


def test_strided_conv_shapes_are_symbolic_floors() -> None:
    conv = Conv2d(3, 64, 7, stride=2, padding=3)
    cost = analyze(layer_model(conv), ((B, 3, symbol("H"), symbol("W")),))
    out = cost.layers[0].outputs[0]
    assert str(out[2]) == "⌊(H - 1)/2⌋ + 1"
    assert out[2].subs({"H": 224}) == 112
    assert cost.macs.subs({"B": 1, "H": 224, "W": 224}) == 118_013_952


def test_a_chain_that_does_not_fit_names_the_layer_and_both_shapes() -> None:
    model = Model("two linears", {"up": Linear(8, 16), "down": Linear(32, 4)})
    with pytest.raises(ShapeError, match=r"layer 'down' .* \(2, 16\).* expected in_features=32"):
        analyze(model, ((2, 8),))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dtype": "fp9"}, "dtype must be one of"),
        ({"training": "lion"}, "training must be one of"),
        ({"dtype": "int8"}, "training needs dtype fp32, fp16 or bf16"),
        ({"mixed_precision": True}, "mixed precision needs dtype fp16 or bf16"),
        ({"batch": 0}, "batch must be"),
        ({"seq_len": "2x"}, "seq_len"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        analyze(shapecalc.lstm_lm(vocab=65, hidden=64), **kwargs)


def test_int8_inference_is_allowed() -> None:
    cost = analyze(shapecalc.lstm_lm(vocab=65, hidden=64), dtype="int8", training="none")
    assert cost.memory[0].bytes == shapecalc.lstm_lm(vocab=65, hidden=64).total


# -- the command line ----------------------------------------------------------------------
def test_all_golden() -> None:
    result = run([*HEADLINE, "--all", *AT])
    assert result.exit_code == 0, result.output
    check_golden("lstm_headline_all_100.txt", result.stdout)


def test_wide_flops_and_shapes_golden() -> None:
    result = run([*HEADLINE, "--shapes", "--flops"], 130)
    assert result.exit_code == 0, result.output
    check_golden("lstm_headline_flops_130.txt", result.stdout)


def test_footer_summary() -> None:
    out = run([*HEADLINE, "--flops", *AT], 200).stdout
    assert "4.27 M params · 17.1 MB fp32 · 848 MFLOPs per forward at B=1, T=100" in out


def test_json_without_the_flags_is_the_parameter_report() -> None:
    assert "cost" not in json.loads(run([*HEADLINE, "--format", "json"]).stdout)


def test_json_carries_everything_with_any_flag() -> None:
    report = json.loads(run([*HEADLINE, "--shapes", "--format", "json", *AT]).stdout)
    cost = report["cost"]
    assert cost["forward_flops"] == 847_673_700
    assert cost["forward_flops_per_token"] == 8_476_737
    assert [layer["outputs"] for layer in cost["layers"]][1] == [
        [1, 100, 512],
        [2, 1, 512],
        [2, 1, 512],
    ]
    assert {m["label"] for m in cost["memory"]} >= {"weights", "gradients", "activations"}
    symbolic = json.loads(run([*HEADLINE, "--memory", "--format", "json"]).stdout)["cost"]
    assert symbolic["forward_flops"] == "8476737*B*T"


def test_markdown_has_the_per_layer_table() -> None:
    out = run([*HEADLINE, "--all", *AT, "--format", "markdown"]).stdout
    assert "| Layer | Input | Output | MACs | FLOPs fwd | FLOPs bwd | Kept (bytes) |" in out
    assert "| lstm | (1, 100, 512) |" in out
    assert "| optimizer state | 34.2 MB (34,152,968 bytes) |" in out


def test_no_batch_first_flag() -> None:
    report = json.loads(run([*HEADLINE, "--no-batch-first", "--shapes", "--format", "json"]).stdout)
    assert report["cost"]["layers"][0]["inputs"] == [["T", "B"]]


def test_layer_command_with_input_shape() -> None:
    args = ["layer", "linear", "--in-features", "512", "--out-features", "65"]
    result = run([*args, "--input-shape", "32,100,512", "--flops", "--format", "json"])
    assert result.exit_code == 0, result.output
    cost = json.loads(result.stdout)["cost"]
    assert cost["macs"] == 32 * 100 * 512 * 65
    assert cost["forward_flops_per_token"] is None  # given shapes have no tokens


@pytest.mark.parametrize(
    ("args", "flag", "fragment"),
    [
        (["--batch", "0"], "--batch", "batch must be an integer >= 1"),
        (["--seq-len", "-3"], "--seq-len", "--seq-len must be an integer >= 1"),
        (["--dtype", "int8", "--memory"], "--dtype", "training needs dtype"),
        (["--mixed-precision", "--memory"], "--dtype", "mixed precision needs"),
        (["--training", "lion"], "--training", "'lion' is not one of"),
    ],
)
def test_bad_flags_are_one_line_exit_2(args: list[str], flag: str, fragment: str) -> None:
    result = run([*HEADLINE, "--all", *args])
    assert result.exit_code == 2
    assert result.stdout == ""
    line = result.stderr.strip()
    assert "\n" not in line and f"'{flag}'" in line and fragment in line


def test_layer_needs_an_input_for_the_sections() -> None:
    result = run(["layer", "linear", "--in-features", "3", "--out-features", "4", "--flops"])
    assert result.exit_code == 2
    assert "--input-shape" in result.stderr


def test_layer_input_that_does_not_fit() -> None:
    args = ["layer", "conv2d", "--in-channels", "3", "--out-channels", "8", "--kernel-size", "3"]
    result = run([*args, "--input-shape", "1,4,32,32", "--all"])
    assert result.exit_code == 2
    assert "'--input-shape'" in result.stderr and "(1, 4, 32, 32)" in result.stderr
    assert "in_channels=3" in result.stderr


@settings(max_examples=20, deadline=None)
@given(
    cell=st.sampled_from(["lstm", "gru", "rnn"]),
    hidden=st.integers(1, 300),
    layers=st.integers(1, 6),
    batch=st.integers(1, 64),
    seq_len=st.integers(1, 512),
    dtype=st.sampled_from(["fp32", "fp16", "bf16"]),
    training=st.sampled_from(["none", "sgd", "adam", "adamw"]),
)
def test_json_totals_are_sums_of_the_rows(
    cell: str, hidden: int, layers: int, batch: int, seq_len: int, dtype: str, training: str
) -> None:
    args = [cell, "--hidden", str(hidden), "--vocab", "50", "--layers", str(layers)]
    args += ["--batch", str(batch), "--seq-len", str(seq_len), "--dtype", dtype]
    result = run([*args, "--training", training, "--flops", "--format", "json"])
    assert result.exit_code == 0, result.output
    cost = json.loads(result.stdout)["cost"]
    rows = cost["layers"]
    assert cost["macs"] == sum(r["macs"] for r in rows)
    assert cost["forward_flops"] == sum(r["forward_flops"] for r in rows)
    assert cost["activation_bytes"] == sum(s["bytes"] for r in rows for s in r["saved"])
    if training != "none":
        assert cost["training_bytes"] == sum(
            m["bytes"]
            for m in cost["memory"]
            if m["account"] in ("both", "training") and m["label"] != "activations, recomputed"
        )
