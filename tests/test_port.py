"""Porting weights: the map of ``shapecalc.analysis.port`` carried out on real weights.

PyTorch to Keras 3 (PyTorch backend) and back: the ported model computes the same
outputs on the same input. PyTorch to ONNX: the ported tensors are the initializers that
both of ``torch.onnx.export``'s exporters write, value for value; ONNX back to PyTorch
gives PyTorch's tensors exactly. Needs the ``conventions`` extra (CI installs it).
"""

from __future__ import annotations

import io
import json
import logging
import os
import warnings
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shapecalc
from shapecalc.analysis.conventions import convert, rows
from shapecalc.analysis.port import port
from shapecalc.core.errors import InvalidArgumentError
from tests.test_cli import run
from tests.test_conventions import FACTORIES, keras_model, recurrent_models

os.environ.setdefault("KERAS_BACKEND", "torch")
np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")


def torch_model(cell: str, args: dict[str, Any], seed: int) -> tuple[Any, Any]:
    """Our model and its torch build with random weights (not the initial ones, which
    keep biases at zero or equal)."""
    model = FACTORIES[cell](**args)
    net = shapecalc.build(model, device="cpu").eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.rand(p.shape, generator=generator) - 0.5)
    return model, net


def torch_out(net: Any, tokens: Any) -> Any:
    with torch.no_grad():
        out = net(torch.tensor(tokens))
    return (out[0] if isinstance(out, tuple) else out).numpy()


def keras_net(cell: str, args: dict[str, Any], steps: int) -> Any:
    keras = pytest.importorskip("keras")
    inputs = keras.Input((steps,), dtype="int32")
    return keras.Sequential([inputs, *keras_model(cell, args, True)])


def keras_weights(net: Any) -> dict[str, Any]:
    """Keras' weights by path, the model's own name left off (``lstm/lstm_cell/kernel``)."""
    keras = pytest.importorskip("keras")
    return {w.path.split("/", 1)[1]: keras.ops.convert_to_numpy(w) for w in net.weights}


@settings(deadline=None, max_examples=15)
@given(case=recurrent_models(), seed=st.integers(0, 2**16))
def test_pytorch_weights_ported_to_keras_compute_the_same(
    case: tuple[str, dict[str, Any], bool], seed: int
) -> None:
    keras = pytest.importorskip("keras")
    cell, args, _ = case
    model, net = torch_model(cell, args, seed)
    tokens = np.random.default_rng(seed).integers(0, args["vocab"], (2, 5))
    ported = port(model, "pytorch", "keras").apply(net.state_dict())
    target = keras_net(cell, args, 5)
    assert sorted(ported) == sorted(keras_weights(target))
    for w in target.weights:
        w.assign(ported[w.path.split("/", 1)[1]])
    ours = keras.ops.convert_to_numpy(target(tokens))
    np.testing.assert_allclose(ours, torch_out(net, tokens), atol=1e-5, rtol=0)


@settings(deadline=None, max_examples=15)
@given(case=recurrent_models(), seed=st.integers(0, 2**16))
def test_keras_weights_ported_to_pytorch_compute_the_same(
    case: tuple[str, dict[str, Any], bool], seed: int
) -> None:
    keras = pytest.importorskip("keras")
    cell, args, _ = case
    source = keras_net(cell, args, 5)
    rng = np.random.default_rng(seed)
    for w in source.weights:  # random biases too: Keras starts them at zero
        w.assign(rng.uniform(-0.5, 0.5, tuple(w.shape)).astype("float32"))
    tokens = rng.integers(0, args["vocab"], (2, 5))
    model = FACTORIES[cell](**args)
    ported = port(model, "keras", "pytorch").apply(keras_weights(source))
    net = shapecalc.build(model, device="cpu").eval()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in ported.items()}, strict=True)
    theirs = keras.ops.convert_to_numpy(source(tokens))
    np.testing.assert_allclose(torch_out(net, tokens), theirs, atol=1e-5, rtol=0)


# -- ONNX: both exporters --------------------------------------------------------------------
def export(net: Any, tokens: Any, dynamo: bool, tmp_path: Any) -> Any:
    return export_inputs(net, torch.tensor(tokens), dynamo, tmp_path)


def export_inputs(net: Any, inputs: Any, dynamo: bool, tmp_path: Any) -> Any:
    """The ONNX graph one of torch.onnx.export's exporters writes for ``net``."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if dynamo:
                path = tmp_path / "model.onnx"
                torch.onnx.export(net, (inputs,), str(path), dynamo=True)
                return onnx.load(str(path)).graph
            buffer = io.BytesIO()
            torch.onnx.export(net, (inputs,), buffer, dynamo=False)
            return onnx.load_from_string(buffer.getvalue()).graph
    finally:
        logging.disable(logging.NOTSET)


def initializers(graph: Any) -> dict[str, Any]:
    from onnx import numpy_helper

    return {i.name: numpy_helper.to_array(i) for i in graph.initializer}


def operator_inputs(graph: Any, model: Any) -> dict[str, str]:
    """Our ONNX name -> the initializer the graph feeds that slot (W, R, B of each
    recurrent operator in turn, the head's MatMul weight), read from the graph's nodes."""
    cell = next(layer for layer in model.layers if layer.spec.kind in FACTORIES)
    slots: dict[str, str] = {}
    nodes = [n for n in graph.node if n.op_type == cell.spec.kind]
    for index, node in enumerate(nodes):
        for slot, name in zip("WRB", node.input[1:4], strict=False):
            if name:
                slots[f"{cell.name}.l{index}[{slot}]"] = name
    (matmul,) = [n for n in graph.node if n.op_type == "MatMul"]
    slots["head.weight.T"] = matmul.input[1]
    return slots


@pytest.mark.parametrize("dynamo", [False, True], ids=["legacy", "dynamo"])
@settings(deadline=None, max_examples=6)
@given(case=recurrent_models(), seed=st.integers(0, 2**16))
def test_ported_onnx_tensors_are_the_exporters_initializers(
    dynamo: bool, case: tuple[str, dict[str, Any], bool], seed: int, tmp_path_factory: Any
) -> None:
    cell, args, _ = case
    model, net = torch_model(cell, args, seed)
    tokens = np.random.default_rng(seed).integers(0, args["vocab"], (2, 5))
    graph = export(net, tokens, dynamo, tmp_path_factory.mktemp("onnx"))
    stored = initializers(graph)
    ported = port(model, "pytorch", "onnx").apply(net.state_dict())
    if dynamo and cell == "RNN":  # unrolled: no RNN operator; see the convention's text
        assert not [n for n in graph.node if n.op_type == "RNN"]
        values = list(stored.values())
        for name, tensor in net.state_dict().items():
            if name.startswith("rnn.bias"):
                assert np.array_equal(stored[name], tensor.numpy()), name
            elif name.startswith("rnn.weight"):
                transposed = tensor.numpy().T
                assert any(np.array_equal(v, transposed) for v in values), name
        return
    slots = operator_inputs(graph, model)
    for name, tensor in ported.items():
        stored_name = slots.get(name, name)  # names kept: embedding.weight, head.bias
        assert stored_name in stored, f"{name} not written as {stored_name}"
        assert np.array_equal(stored[stored_name], tensor), name
    # and nothing else that holds weights: what is left is shapes (int64) and the zero
    # initial state, whose shape is (directions · layers, batch, hidden)
    left = {k: v for k, v in stored.items() if k not in set(slots.values()) | set(ported)}
    assert all(v.dtype.kind == "i" or not v.any() for v in left.values()), sorted(left)
    # back to PyTorch: exactly the tensors exported
    back = port(model, "onnx", "pytorch").apply({k: stored[slots.get(k, k)] for k in ported})
    for name, tensor in net.state_dict().items():
        assert np.array_equal(back[name], tensor.numpy()), name


@settings(deadline=None, max_examples=10)
@given(
    sizes=st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 4), st.integers(1, 9)),
    activation=st.sampled_from(["relu", "tanh", "sigmoid"]),
    bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_an_mlp_ported_to_keras_and_onnx(
    sizes: tuple[int, int, int, int], activation: str, bias: bool, seed: int, tmp_path_factory: Any
) -> None:
    keras = pytest.importorskip("keras")
    inputs, hidden, layers, outputs = sizes
    model = shapecalc.mlp(
        inputs=inputs,
        hidden=hidden,
        layers=layers,
        outputs=outputs,
        activation=activation,
        bias=bias,
    )
    net = shapecalc.build(model, device="cpu").eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.rand(p.shape, generator=generator) - 0.5)
    x = np.random.default_rng(seed).uniform(-1, 1, (3, inputs)).astype("float32")
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    dense = [
        keras.layers.Dense(
            hidden, activation=activation, use_bias=bias, name=f"dense_{i}" if i else "dense"
        )
        for i in range(layers)
    ]
    dense.append(keras.layers.Dense(outputs, use_bias=bias, name=f"dense_{layers}"))
    target = keras.Sequential([keras.Input((inputs,)), *dense])
    ported = port(model, "pytorch", "keras").apply(net.state_dict())
    assert sorted(ported) == sorted(keras_weights(target))
    for w in target.weights:
        w.assign(ported[w.path.split("/", 1)[1]])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(target(x)), expected, atol=1e-5)
    converted = convert(model, "onnx")
    for dynamo in (False, True):  # a 2-D input: Gemm, every tensor under its own name
        graph = export_inputs(net, torch.from_numpy(x), dynamo, tmp_path_factory.mktemp("mlp"))
        stored = initializers(graph)
        values = list(stored.values())
        for name, tensor in port(model, "pytorch", "onnx").apply(net.state_dict()).items():
            if dynamo or bias:
                assert np.array_equal(stored[name], tensor), name
            else:  # the legacy exporter's MatMul: the weight transposed, as the text says
                said = converted.stored_as[[p.name for _, p in converted.tensors].index(name)]
                assert "legacy exporter (dynamo=False) writes it transposed" in said
                assert any(np.array_equal(v, tensor.T) for v in values), name


# -- the map itself --------------------------------------------------------------------------
def test_the_headline_map_to_keras() -> None:
    model = shapecalc.lstm_lm(vocab=65, hidden=512, layers=2)
    mapping = port(model, "pytorch", "keras")
    kernel = mapping.entry("lstm_1/lstm_cell/kernel")
    assert kernel.shape == (512, 2048) and kernel.how == "lstm.weight_ih_l1 (transposed)"
    bias = mapping.entry("lstm/lstm_cell/bias")
    assert bias.sources == ["lstm.bias_ih_l0", "lstm.bias_hh_l0"]
    assert bias.how == "lstm.bias_ih_l0 + lstm.bias_hh_l0"
    back = port(model, "keras", "pytorch")
    assert back.entry("lstm.bias_hh_l0").pieces == ()
    assert "ported whole into lstm.bias_ih_l0" in back.entry("lstm.bias_hh_l0").note
    assert [e.target for e in back.entries] == [n for n, _ in model.named_parameters()]


def test_gru_gate_blocks_are_reordered_both_ways() -> None:
    model = shapecalc.gru_lm(vocab=5, hidden=2, layers=1)
    forward = port(model, "pytorch", "keras")
    assert forward.entry("gru/gru_cell/kernel").how == (
        "gru.weight_ih_l0 (gate blocks: r, z, n -> z, r, h) (transposed)"
    )
    weights = {name: np.arange(np.prod(s)).reshape(s) for name, s in forward.inputs.items()}
    keras = forward.apply(weights)
    # Keras' bias: row 0 the input side, row 1 the recurrent side, gates z, r, h
    assert keras["gru/gru_cell/bias"].tolist() == [[2, 3, 0, 1, 4, 5], [2, 3, 0, 1, 4, 5]]
    again = port(model, "keras", "pytorch").apply(keras)
    for name, value in weights.items():
        assert np.array_equal(again[name], value), name


def test_keras_to_onnx_goes_through_pytorch() -> None:
    model = shapecalc.lstm_lm(vocab=7, hidden=3, layers=2, bidirectional=True)
    to_keras = port(model, "pytorch", "keras")
    rng = np.random.default_rng(0)
    weights = {name: rng.normal(size=shape) for name, shape in to_keras.inputs.items()}
    onnx = port(model, "keras", "onnx").apply(to_keras.apply(weights))
    direct = port(model, "pytorch", "onnx").apply(weights)
    assert sorted(onnx) == sorted(direct)
    for name in ("embedding.weight", "lstm.l1[W]", "lstm.l0[R]", "head.weight.T"):
        np.testing.assert_allclose(onnx[name], direct[name])
    # one bias in Keras: ONNX gets the sum on the input side and zeros on the other
    summed = direct["lstm.l0[B]"][:, :12] + direct["lstm.l0[B]"][:, 12:]
    np.testing.assert_allclose(onnx["lstm.l0[B]"][:, :12], summed)
    assert not onnx["lstm.l0[B]"][:, 12:].any()


def test_many_layers_expand_to_every_layer() -> None:
    model = shapecalc.lstm_lm(vocab=5, hidden=4, layers=96)
    for target in ("keras", "onnx"):
        mapping = port(model, "pytorch", target)
        assert len(mapping.entries) == 96 * 3 + 3
        assert len(port(model, target, "pytorch").entries) == 96 * 4 + 3
    assert port(model, "pytorch", "keras").entry("lstm_95/lstm_cell/bias").sources == [
        "lstm.bias_ih_l95",
        "lstm.bias_hh_l95",
    ]


def test_a_tied_head_is_read_from_its_twin() -> None:
    model = shapecalc.lstm_lm(vocab=9, hidden=4, layers=1, tie_weights=True)
    mapping = port(model, "pytorch", "onnx")
    weights = dict(model.named_parameters())
    arrays = {name: np.ones(tuple(shape)) for name, shape in weights.items()}
    assert "head.weight" not in arrays  # named_parameters() lists a shared tensor once
    out = mapping.apply({**arrays, "head.weight": arrays["embedding.weight"]})
    assert out["head.weight.T"].shape == (4, 9)


def ones(model: Any) -> dict[str, Any]:
    return {name: np.ones(shape) for name, shape in port(model, "pytorch", "keras").inputs.items()}


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: port(shapecalc.lstm_lm("V", 8), "pytorch", "keras"), "needs a number"),
        (lambda: port(shapecalc.lstm_lm(5, 8), "pytorch", "tf"), "target must be one of"),
        (
            lambda: port(shapecalc.gru_lm(5, 8), "pytorch", "keras", reset_after=False),
            "reset_after=True to port a GRU",
        ),
        (
            lambda: port(shapecalc.lstm_lm(5, 4), "pytorch", "keras").apply({}),
            "weights: no 'embedding.weight'",
        ),
        (
            lambda: port(shapecalc.lstm_lm(5, 4), "pytorch", "keras").apply(
                {**ones(shapecalc.lstm_lm(5, 4)), "embedding.weight": np.ones((5, 3))}
            ),
            r"embedding.weight has shape \(5, 3\), .* needs \(5, 4\)",
        ),
        (
            lambda: port(shapecalc.lstm_lm(5, 4), "keras", "pytorch").apply({"x": 1}),
            "'x' is not a Keras tensor",
        ),
    ],
)
def test_refusals(call: Any, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        call()


def test_rows_pair_corresponding_tensors() -> None:
    model = shapecalc.lstm_lm(vocab=65, hidden=512, layers=2)
    converted = [convert(model, c) for c in ("pytorch", "keras", "onnx")]
    table = [
        tuple(
            None if i is None else c.tensors[i][1].name for c, i in zip(converted, r, strict=True)
        )
        for r in rows(converted)
    ]
    assert table[1:5] == [
        ("lstm.weight_ih_l0", "lstm/lstm_cell/kernel", "lstm.l0[W]"),
        ("lstm.weight_hh_l0", "lstm/lstm_cell/recurrent_kernel", "lstm.l0[R]"),
        ("lstm.bias_ih_l0", "lstm/lstm_cell/bias", "lstm.l0[B]"),
        ("lstm.bias_hh_l0", None, None),
    ]
    assert table[-2] == ("head.weight", "dense/kernel", "head.weight.T")


def test_cli_port_and_compare() -> None:
    result = run(["port", "lstm", "--layers", "2", "--hidden", "512", "--vocab", "65",
                  "--from", "pytorch", "--to", "keras", "--format", "json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    bias = next(e for e in data["tensors"] if e["target"] == "lstm/lstm_cell/bias")
    assert bias["from"] == ["lstm.bias_ih_l0", "lstm.bias_hh_l0"]
    assert bias["how"] == "lstm.bias_ih_l0 + lstm.bias_hh_l0"
    table = run(["port", "gru", "--hidden", "8", "--vocab", "5", "--to", "onnx"])
    assert table.exit_code == 0, table.output
    assert "gru.l0[B]" in table.stdout and "linear_before_reset=1" in table.stdout
    compared = run(["compare-conventions", "lstm", "--layers", "2", "--hidden", "512",
                    "--vocab", "65", "--format", "json"])  # fmt: skip
    rows_json = json.loads(compared.stdout)["rows"]
    assert rows_json[4] == {"pytorch": "lstm.bias_hh_l0", "keras": None, "onnx": None}
    keras = json.loads(compared.stdout)["conventions"][1]
    assert keras["tensors"][3]["from"] == ["lstm.bias_ih_l0", "lstm.bias_hh_l0"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--hidden", "8", "--vocab", "5", "--to", "caffe"], "'--to'"),
        (["--hidden", "H", "--vocab", "5", "--to", "keras"], "needs a number"),
        (["--hidden", "8", "--vocab", "5", "--to", "keras", "--no-reset-after"], "reset_after"),
    ],
)
def test_cli_port_errors(args: list[str], fragment: str) -> None:
    command = "gru" if "--no-reset-after" in args else "lstm"
    result = run(["port", command, *args])
    assert result.exit_code == 2
    assert fragment in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("command", ["gpt2", "llama", "bert", "gpt-neox"])
def test_a_transformer_port_says_what_is_covered(command: str) -> None:
    result = run(["port", command, "--hidden", "8", "--to", "onnx"])
    assert result.exit_code == 2
    assert "port covers gru, lstm, mlp, rnn" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("dynamo", [False, True], ids=["legacy", "dynamo"])
@pytest.mark.parametrize(
    ("kind", "arguments", "shape"),
    [
        ("Conv2d", (3, 8, 3), (2, 3, 8, 8)),
        ("BatchNorm1d", (8,), (4, 8)),
        ("LayerNorm", (8,), (4, 8)),
        ("Embedding", (10, 4), None),
    ],
)
def test_layers_the_exporters_keep_under_their_names(
    dynamo: bool, kind: str, arguments: tuple[int, ...], shape: Any, tmp_path: Any
) -> None:
    """What the ONNX convention says of a layer alone: each tensor (batch-norm running
    statistics included) an initializer under PyTorch's name, values unchanged."""
    from shapecalc.core.model import layer_model
    from shapecalc.layers import LAYER_KINDS

    spec = LAYER_KINDS[kind](*arguments)
    module = getattr(torch.nn, kind)(*arguments).eval()
    with torch.no_grad():  # values apart, so no two initializers are merged as equal
        for tensor in [*module.parameters(), *module.buffers()]:
            if tensor.dtype.is_floating_point:
                tensor.copy_(torch.rand(tensor.shape) + 0.5)
    inputs = torch.randint(0, 10, (2, 3)) if shape is None else torch.randn(shape)
    stored = initializers(export_inputs(module, inputs, dynamo, tmp_path))
    converted = convert(layer_model(spec), "onnx")
    state = {k: v.numpy() for k, v in module.state_dict().items()}
    for (_, param), said in zip(converted.tensors, converted.stored_as, strict=True):
        assert said == "the same name in both exporters"
        assert np.array_equal(stored[param.name], state[param.name]), param.name
    assert converted.total == sum(v.size for v in stored.values())


def test_the_library_refuses_a_port_to_the_same_framework() -> None:
    import shapecalc as sc

    model = sc.lstm_lm(vocab=65, hidden=8, layers=1)
    for framework in ("pytorch", "keras", "onnx"):
        with pytest.raises(sc.InvalidArgumentError, match="another framework"):
            sc.port(model, framework, framework)
