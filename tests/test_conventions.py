"""PyTorch, Keras and ONNX conventions: known values, then the real frameworks.

Keras 3 runs on the PyTorch backend (no TensorFlow); ONNX graphs come from
``torch.onnx.export``. Both need the ``conventions`` extra (``pip install -e
".[conventions]"``); without it those tests are skipped, and CI installs it.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shapecalc
from shapecalc.analysis.conventions import GATE_ORDER, convert, gate_order, params
from shapecalc.core.errors import InvalidArgumentError
from shapecalc.core.model import layer_model
from shapecalc.layers import LAYER_KINDS
from tests.test_cli import HEADLINE, run

os.environ.setdefault("KERAS_BACKEND", "torch")
FACTORIES = {"LSTM": shapecalc.lstm_lm, "GRU": shapecalc.gru_lm, "RNN": shapecalc.rnn_lm}


# -- known values ----------------------------------------------------------------------------
def test_headline_in_keras_has_one_bias_per_gate_block() -> None:
    keras = convert(shapecalc.lstm_lm(vocab=65, hidden=512, layers=2), "keras")
    assert keras.total == 4_269_121 - 2 * 2048
    assert [d.delta for d in keras.differences] == [-4096]
    assert keras.gate_orders == {"lstm": GATE_ORDER[("keras", "LSTM")]}


def test_gru_reset_after_keeps_both_biases() -> None:
    model = shapecalc.gru_lm(vocab=65, hidden=512, layers=2)
    assert convert(model, "keras").total == model.total
    assert convert(model, "keras", reset_after=False).total == model.total - 2 * 3 * 512
    biases = [p.shape for p in params(model, "keras") if p.name.endswith("bias")][:1]
    assert biases == [(2, 1536)]


def test_onnx_counts_equal_pytorch_for_recurrent_models() -> None:
    for factory in FACTORIES.values():
        model = factory(vocab=65, hidden=32, layers=3, bidirectional=True)
        onnx = convert(model, "onnx")
        assert onnx.total == model.total and not onnx.differences
        assert [p.shape for p in params(model, "onnx")][1:4] == [
            (2, onnx_gates(factory) * 32, 32),
            (2, onnx_gates(factory) * 32, 32),
            (2, 2 * onnx_gates(factory) * 32),
        ]


def onnx_gates(factory: Any) -> int:
    return {"lstm_lm": 4, "gru_lm": 3, "rnn_lm": 1}[factory.__name__]


def test_symbolic_and_many_layers() -> None:
    model = shapecalc.lstm_lm(vocab="V", hidden="H", layers="L")
    keras = convert(model, "keras")
    assert str(keras.total) == "8·L·H² + 4·L·H + 2·V·H + V"
    deep = convert(shapecalc.lstm_lm(vocab=65, hidden=64, layers=96), "keras")
    names = [p.name for p in deep.params()]
    assert len(names) == 96 * 3 + 3 and "lstm_95/lstm_cell/bias" in names


def test_batch_norm_in_keras_counts_moving_statistics() -> None:
    model = layer_model(LAYER_KINDS["BatchNorm2d"](64))
    keras = convert(model, "keras")
    assert [p.name for p in keras.params()] == [
        "batch_normalization/gamma",
        "batch_normalization/beta",
        "batch_normalization/moving_mean",
        "batch_normalization/moving_variance",
    ]
    assert keras.total == model.total + 128


@pytest.mark.parametrize(
    ("build", "convention", "match"),
    [
        (lambda: shapecalc.lstm_lm(65, 16, proj_size=8), "keras", "no projection"),
        (lambda: shapecalc.lstm_lm(65, 16, proj_size=8), "onnx", "no projection"),
        (lambda: layer_model(LAYER_KINDS["GroupNorm"](2, 4)), "keras", "no Keras convention"),
        (lambda: shapecalc.lstm_lm(65, 16), "tensorflow", "convention must be one of"),
    ],
)
def test_refusals(build: Any, convention: str, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        convert(build(), convention)


def test_two_recurrent_layers_of_a_kind_are_refused_not_misnamed() -> None:
    from shapecalc.core.model import Model

    lstm = LAYER_KINDS["LSTM"](4, 4)
    model = Model("two lstms", {"a": lstm, "b": lstm})
    assert len(convert(model, "pytorch").params()) == 8
    with pytest.raises(InvalidArgumentError, match="would both be named 'lstm/lstm_cell/bias'"):
        convert(model, "keras")


# -- the command line ----------------------------------------------------------------------
def test_cli_convention_table_and_json() -> None:
    result = run([*HEADLINE, "--convention", "keras"], 140)
    assert result.exit_code == 0, result.output
    assert "lstm_1/lstm_cell/recurrent_kernel" in result.stdout
    assert "4,096 fewer" in result.stdout
    report = json.loads(run([*HEADLINE, "--convention", "onnx", "--format", "json"]).stdout)
    section = report["convention"]
    assert section["convention"] == "onnx" and section["difference"] == 0
    assert section["tensors"][1]["name"] == "lstm.l0[W]"
    assert section["tensors"][1]["formula"] == "4*H**2"


def test_cli_explain_names_the_gate_order() -> None:
    out = run([*HEADLINE, "--convention", "onnx", "--explain"], 200).stdout
    assert "ONNX stacks the LSTM gate blocks as i, o, f, c" in out


def test_cli_compare_conventions() -> None:
    result = run(
        ["compare-conventions", "lstm", "--layers", "2", "--hidden", "512", "--vocab", "65"], 160
    )
    assert result.exit_code == 0, result.output
    for fragment in ("lstm.weight_ih_l0", "lstm/lstm_cell/kernel", "lstm.l0[W]", "-4,096"):
        assert fragment in result.stdout
    report = json.loads(
        run(
            [
                "compare-conventions",
                "gru",
                "--hidden",
                "8",
                "--vocab",
                "5",
                "--no-reset-after",
                "--format",
                "json",
            ]
        ).stdout
    )
    totals = {c["convention"]: c["total"] for c in report["conventions"]}
    assert totals["keras"] == totals["pytorch"] - 24


def test_cli_compare_conventions_refuses_what_no_framework_but_pytorch_stores() -> None:
    result = run(
        ["compare-conventions", "lstm", "--hidden", "8", "--vocab", "5", "--proj-size", "4"]
    )
    assert result.exit_code == 2 and result.stdout == ""
    assert "no Keras or ONNX convention" in result.stderr and "proj_size" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["gpt2", "--layers", "1", "--hidden", "64", "--heads", "2", "--vocab", "100"],
        ["llama", "--vocab", "320", "--hidden", "64", "--layers", "1", "--heads", "2"],
    ],
)
@pytest.mark.parametrize("group", ["compare-conventions", "port"])
def test_cli_conventions_refuse_architectures_without_one(group: str, args: list[str]) -> None:
    result = run([group, *args, *(["--to", "keras"] if group == "port" else [])])
    assert result.exit_code == 2 and result.stdout == ""
    assert f"{group} covers gru, lstm, mlp, rnn" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_port_refuses_the_same_framework_both_ways() -> None:
    result = run(
        [*["port", "lstm", "--hidden", "8", "--vocab", "5"], "--from", "keras", "--to", "keras"]
    )
    assert result.exit_code == 2 and result.stdout == ""
    assert "'--to'" in result.stderr and "both keras" in result.stderr


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--proj-size", "4", "--convention", "keras"], "'--convention'"),
        (["--convention", "caffe"], "'caffe' is not one of"),
    ],
)
def test_cli_convention_errors(args: list[str], fragment: str) -> None:
    result = run(["lstm", "--hidden", "8", "--vocab", "5", *args])
    assert result.exit_code == 2 and fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_layer_command_takes_a_convention() -> None:
    args = ["layer", "conv2d", "--in-channels", "4", "--out-channels", "8", "--kernel-size", "3"]
    result = run([*args, "--groups", "2", "--convention", "keras", "--format", "json"])
    assert json.loads(result.stdout)["convention"]["tensors"][0]["shape"] == [3, 3, 2, 8]


# -- against Keras 3 -----------------------------------------------------------------------
@st.composite
def recurrent_models(draw: st.DrawFn) -> tuple[str, dict[str, Any], bool]:
    cell = draw(st.sampled_from(["LSTM", "GRU", "RNN"]))
    args = {
        "vocab": draw(st.integers(1, 40)),
        "hidden": draw(st.integers(1, 24)),
        "layers": draw(st.integers(1, 6)),
        "bidirectional": draw(st.booleans()),
        "bias": draw(st.booleans()),
        "embed_dim": draw(st.one_of(st.none(), st.integers(1, 16))),
    }
    return cell, args, draw(st.booleans())


def keras_model(cell: str, args: dict[str, Any], reset_after: bool) -> list[Any]:
    """The same language model as Keras layers, named as Keras would name them."""
    keras = pytest.importorskip("keras")
    kind = {"LSTM": keras.layers.LSTM, "GRU": keras.layers.GRU, "RNN": keras.layers.SimpleRNN}
    base = {"LSTM": "lstm", "GRU": "gru", "RNN": "simple_rnn"}[cell]
    embed = args["embed_dim"] or args["hidden"]
    layers: list[Any] = [keras.layers.Embedding(args["vocab"], embed, name="embedding")]
    extra = {"reset_after": reset_after} if cell == "GRU" else {}
    for i in range(args["layers"]):
        number = "" if i == 0 else f"_{i}"
        inner = kind[cell](
            args["hidden"],
            use_bias=args["bias"],
            return_sequences=True,
            name=f"{base}{number}",
            **extra,
        )
        layers.append(
            keras.layers.Bidirectional(inner, name=f"bidirectional{number}")
            if args["bidirectional"]
            else inner
        )
    layers.append(keras.layers.Dense(args["vocab"], use_bias=args["bias"], name="dense"))
    return layers


@settings(deadline=None, max_examples=25)
@given(case=recurrent_models())
def test_language_models_match_keras(case: tuple[str, dict[str, Any], bool]) -> None:
    keras = pytest.importorskip("keras")
    cell, args, reset_after = case
    model = keras.Sequential(
        [keras.Input((5,), dtype="int32"), *keras_model(cell, args, reset_after)]
    )
    ours = params(FACTORIES[cell](**args), "keras", reset_after=reset_after)
    theirs = [(w.path.split("/", 1)[1], tuple(w.shape)) for w in model.weights]
    assert [(p.name, p.shape) for p in ours] == theirs
    assert convert(FACTORIES[cell](**args), "keras", reset_after=reset_after).total == (
        model.count_params()
    )


@st.composite
def keras_layers(draw: st.DrawFn) -> dict[str, Any]:
    """A layer kind and its sizes (the Keras layer is made in the test: Keras draws
    random initial weights, which a strategy must not)."""
    kinds = ["Linear", "Embedding", "Conv1d", "Conv2d", "Conv3d"]
    kinds += ["LayerNorm", "BatchNorm1d", "BatchNorm2d"]
    kind = draw(st.sampled_from(kinds))
    case = {
        "kind": kind,
        "n": draw(st.integers(1, 12)),
        "m": draw(st.integers(1, 12)),
        "bias": draw(st.booleans()),
        "affine": draw(st.booleans()),
        "groups": draw(st.integers(1, 3)),
    }
    if kind.startswith("Conv"):
        case["kernel"] = tuple(draw(st.integers(1, 3)) for _ in range(int(kind[-2])))
    return case


def both_layers(case: dict[str, Any]) -> tuple[Any, Any, tuple[int, ...]]:
    """(our spec, the Keras layer, its input shape without the batch)."""
    keras = pytest.importorskip("keras")
    kind, n, m, bias, affine = (case[k] for k in ("kind", "n", "m", "bias", "affine"))
    if kind == "Linear":
        return LAYER_KINDS[kind](n, m, bias=bias), keras.layers.Dense(m, use_bias=bias), (n,)
    if kind == "Embedding":
        return LAYER_KINDS[kind](n, m), keras.layers.Embedding(n, m), (3,)
    if kind.startswith("Conv"):
        dims, groups, k = int(kind[-2]), case["groups"], case["kernel"]
        spec = LAYER_KINDS[kind](n * groups, m * groups, k, groups=groups, bias=bias)
        layer = getattr(keras.layers, f"Conv{dims}D")(m * groups, k, groups=groups, use_bias=bias)
        return spec, layer, (*(4,) * dims, n * groups)
    if kind == "LayerNorm":
        spec = LAYER_KINDS[kind](n, elementwise_affine=affine, bias=bias)
        return spec, keras.layers.LayerNormalization(scale=affine, center=affine and bias), (3, n)
    spec = LAYER_KINDS[kind](n, affine=affine, bias=bias)
    layer = keras.layers.BatchNormalization(scale=affine, center=affine and bias)
    return spec, layer, (3, n) if kind == "BatchNorm1d" else (3, 3, n)


@settings(deadline=None, max_examples=40)
@given(case=keras_layers())
def test_layers_match_keras(case: dict[str, Any]) -> None:
    spec, layer, shape = both_layers(case)
    layer.build((None, *shape))
    ours = convert(layer_model(spec), "keras")
    theirs = [(w.path.split("/", 1)[1], tuple(w.shape), w.trainable) for w in layer.weights]
    assert [(p.name.split("/", 1)[1], p.shape, p.trainable) for p in ours.params()] == theirs
    assert ours.total == layer.count_params()


# -- against torch.onnx.export ---------------------------------------------------------------
#: the same gate under each framework's letter
SYNONYMS = {"g": "c", "n": "h"}


def _letters(order: str) -> list[str]:
    return [SYNONYMS.get(g, g) for g in order.split(" (")[0].split(", ")]


def _permutation(kind: str) -> list[int]:
    """Where ONNX's gate blocks sit in PyTorch's, from the documented orders."""
    if kind == "RNN":
        return [0]
    pytorch, onnx = _letters(gate_order("pytorch", kind)), _letters(gate_order("onnx", kind))
    return [pytorch.index(g) for g in onnx]


@settings(deadline=None, max_examples=12)
@given(
    kind=st.sampled_from(["LSTM", "GRU", "RNN"]),
    input_size=st.integers(1, 6),
    hidden=st.integers(1, 6),
    layers=st.integers(1, 3),
    bidirectional=st.booleans(),
    bias=st.booleans(),
)
def test_recurrent_layers_match_onnx_export(
    kind: str, input_size: int, hidden: int, layers: int, bidirectional: bool, bias: bool
) -> None:
    torch = pytest.importorskip("torch")
    onnx = pytest.importorskip("onnx")
    numpy_helper = onnx.numpy_helper
    spec = LAYER_KINDS[kind](input_size, hidden, layers, bias=bias, bidirectional=bidirectional)
    module = getattr(torch.nn, kind)(**spec.arguments())
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.randn(4, 2, input_size),), buffer, dynamo=False)
    graph = onnx.load_from_string(buffer.getvalue()).graph
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    nodes = [n for n in graph.node if n.op_type == kind]
    ours = {p.name: p for p in convert(layer_model(spec), "onnx").params()}
    assert len(nodes) == layers
    g = {"LSTM": 4, "GRU": 3, "RNN": 1}[kind]
    order = _permutation(kind)
    for index, node in enumerate(nodes):
        names = ["W", "R"] + (["B"] if bias else [])
        for name, tensor in zip(names, node.input[1:4], strict=False):
            assert tuple(values[tensor].shape) == ours[f"{kind.lower()}.l{index}[{name}]"].shape
        for direction in range(2 if bidirectional else 1):
            suffix = f"_l{index}" + ("_reverse" if direction else "")
            theirs = values[node.input[1]][direction]
            weight = getattr(module, f"weight_ih{suffix}").detach().numpy()
            blocks = weight.reshape(g, hidden, -1)
            expected = blocks[order].reshape(g * hidden, -1)
            assert (theirs == expected).all(), f"gate order of {kind} layer {index}"


def test_solve_in_keras_counts() -> None:
    ours = shapecalc.solve(shapecalc.lstm_lm, "10M", layers=2, vocab=65, convention="keras")
    assert ours.convention == "keras"
    keras_total = convert(shapecalc.lstm_lm(65, ours.below.size, 2), "keras").total
    assert ours.below.total == keras_total <= 10_000_000
    assert convert(shapecalc.lstm_lm(65, ours.above.size, 2), "keras").total > 10_000_000
    assert str(ours.formula) == "16·H² + 138·H + 65"  # 8·H fewer biases than PyTorch
    result = run(
        [
            "solve",
            "gru",
            "--params",
            "1M",
            "--vocab",
            "65",
            "--convention",
            "keras",
            "--no-reset-after",
            "--format",
            "json",
        ]
    )
    assert json.loads(result.stdout)["convention"] == "keras"


def test_latex_carries_the_convention() -> None:
    result = run(
        ["lstm", "--hidden", "8", "--vocab", "5", "--convention", "keras", "--format", "latex"]
    )
    assert result.exit_code == 0, result.output
    assert r"\texttt{lstm.weight\_ih\_l0}" in result.stdout  # the parameter table
    assert r"lstm/lstm\_cell/kernel" in result.stdout  # and Keras' tensors
    assert "Keras keeps one bias per gate block" in result.stdout


def test_a_repeated_block_in_the_conventions() -> None:
    from shapecalc.core.flow import residual
    from shapecalc.core.model import Model
    from shapecalc.core.tree import Block, ModuleList

    block = Block(
        "Block",
        {"norm": LAYER_KINDS["BatchNorm1d"](8), "fc": LAYER_KINDS["Linear"](8, 8)},
        flow=residual("norm", "fc"),
    )
    model = Model("m", ModuleList(block, 12))
    onnx = convert(model, "onnx")
    assert onnx.total == model.total + 12 * 2 * 8  # the running statistics, in every copy
    assert next(p.name for _, p in onnx.tensors) == "{0..11}.norm.weight"
    assert convert(model, "pytorch").total == model.total
    with pytest.raises(InvalidArgumentError, match="12 copies of a repeated block"):
        convert(model, "keras")
    listed = Model("m", ModuleList(block, 3))
    keras = convert(listed, "keras")
    assert keras.total == listed.total + 3 * 2 * 8
    assert [p.name for _, p in keras.tensors][-2:] == ["dense_2/kernel", "dense_2/bias"]
