"""The PyTorch bridge: build, from_module, compare, assert_matches, --verify."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shapecalc
from shapecalc.adapters.torch_bridge import (
    MismatchError,
    assert_matches,
    build,
    compare,
    from_module,
)
from shapecalc.core.errors import InvalidArgumentError
from shapecalc.layers import LAYER_KINDS
from tests.layer_cases import CASES
from tests.strategies import lstm_lm_args
from tests.test_cli import run

torch = pytest.importorskip("torch")
nn = torch.nn


def rows(model: shapecalc.Model) -> tuple[Any, ...]:
    """Every tensor with PyTorch's name, and the ties (blocks of identical layers may be
    grouped differently on either side: layer 0 joins the block when its sizes happen to
    be equal, so blocks are compared expanded)."""
    return (model.named_parameters(), dict(model.ties), model.total)


@pytest.mark.parametrize("kind", sorted(LAYER_KINDS))
@given(data=st.data())
def test_round_trip_of_every_kind(kind: str, data: st.DataObject) -> None:
    spec = LAYER_KINDS[kind](**data.draw(CASES[kind].args))
    model = shapecalc.layer_model(spec)
    back = from_module(build(spec))
    assert rows(back) == rows(model)
    assert [(n, b.shape) for n, b in back.buffer_rows()] == [
        (n, b.shape) for n, b in model.buffer_rows()
    ]
    assert back.layers[0].spec.kind == kind  # recognised as the torch.nn layer it is
    assert not compare(spec, build(spec))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@given(data=st.data())
def test_round_trip_of_language_models(cell: str, data: st.DataObject) -> None:
    model = getattr(shapecalc, f"{cell}_lm")(**data.draw(lstm_lm_args(cell=cell)))
    module = build(model)
    assert compare(model, module).ok
    back = from_module(module)
    assert rows(back) == rows(model)
    assert back.total == model.total


def test_from_module_keeps_the_tree_unknown_modules_and_ties() -> None:
    class Custom(nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.ones(7))
            self.register_buffer("steps", torch.zeros(()))
            self.encoder = nn.TransformerEncoder(
                nn.TransformerEncoderLayer(16, 4, 32), 2, enable_nested_tensor=False
            )
            self.embed = nn.Embedding(11, 16)
            self.head = nn.Linear(16, 11)
            self.head.weight = self.embed.weight

    module = Custom()
    model = from_module(module)
    names = [(layer.name, layer.spec.kind) for layer in model.layers]
    assert names == [
        ("", "module"),
        ("encoder.layers.0", "TransformerEncoderLayer"),
        ("encoder.layers.1", "TransformerEncoderLayer"),
        ("embed", "Embedding"),
        ("head", "Linear"),
    ]
    assert model.ties == {"head.weight": "embed.weight"}
    assert model.total == sum(p.numel() for p in module.parameters())
    assert model.named_parameters() == [(n, tuple(p.shape)) for n, p in module.named_parameters()]
    assert dict(model.buffer_rows())["steps"].shape == ()
    assert "encoder.layers.1.self_attn.in_proj_weight" in dict(model.named_parameters())


def test_subclass_with_extra_tensors_is_listed_as_it_is() -> None:
    class Scaled(nn.Linear):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(3, 4)
            self.gain = nn.Parameter(torch.ones(4))

    model = from_module(Scaled())
    assert [r.name for r in model.rows()] == ["weight", "bias", "gain"]
    assert model.layers[0].spec.kind == "module"


def test_compare_lists_every_difference() -> None:
    diff = compare(shapecalc.LSTM(3, 4, num_layers=2), nn.LSTM(3, 5))
    assert not diff.ok and bool(diff)
    assert ("weight_ih_l1", (16, 4)) in diff.missing
    assert ("weight_ih_l0", (16, 3), (20, 3)) in diff.mismatched
    assert diff.expected_total == shapecalc.LSTM(3, 4, num_layers=2).total()
    text = str(diff)
    assert "missing in the module: weight_ih_l1 (16, 4)" in text
    assert "shape differs: weight_ih_l0 spec (16, 3) module (20, 3)" in text


def test_assert_matches_raises_an_assertion_with_the_diff() -> None:
    assert_matches(shapecalc.lstm_lm(65, 32, 2), build(shapecalc.lstm_lm(65, 32, 2)))
    with pytest.raises(AssertionError, match=r"not in the spec: lstm\.weight_ih_l2"):
        assert_matches(shapecalc.lstm_lm(65, 32, 2), build(shapecalc.lstm_lm(65, 32, 3)))
    with pytest.raises(MismatchError):
        assert_matches(shapecalc.Linear(3, 4), nn.Linear(3, 4, bias=False))


def test_build_is_free_on_the_meta_device() -> None:
    huge = shapecalc.lstm_lm(vocab=256_000, hidden=65_536, layers=8)
    module = build(huge)  # about 280 billion numbers, no memory taken
    assert all(p.device.type == "meta" for p in module.parameters())
    assert sum(p.numel() for p in module.parameters()) == huge.total


def test_build_refuses_symbolic_sizes() -> None:
    with pytest.raises(InvalidArgumentError, match=r"must be numbers; use model\.evaluate"):
        build(shapecalc.lstm_lm(vocab="V", hidden=8))


def test_without_torch_the_bridge_says_how_to_install() -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import shapecalc\n"
        "from shapecalc.adapters.torch_bridge import build\n"
        "try:\n"
        "    build(shapecalc.Linear(3, 4))\n"
        "except shapecalc.ShapecalcError as err:\n"
        "    print(type(err).__name__, err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("MissingDependencyError")
    assert "pip install 'shapecalc[torch]'" in out.stdout


def test_verify_flag() -> None:
    result = run(
        [
            "lstm",
            "--layers",
            "2",
            "--hidden",
            "512",
            "--vocab",
            "65",
            "--verify",
            "--format",
            "json",
        ]
    )
    assert result.exit_code == 0, result.output
    assert "Verified against torch" in result.stderr
    assert "11 parameters, names and shapes identical" in result.stderr  # 1 + 8 + 2
    layer = run(
        [
            "layer",
            "multiheadattention",
            "--embed-dim",
            "8",
            "--num-heads",
            "2",
            "--kdim",
            "4",
            "--verify",
        ]
    )
    assert layer.exit_code == 0 and "names and shapes identical" in layer.stderr
    symbolic = run(["lstm", "--hidden", "H", "--vocab", "65", "--verify"])
    assert symbolic.exit_code == 2
    assert symbolic.stdout == ""  # refused before anything is printed
    assert symbolic.stderr.strip().endswith(
        "'--verify': the real module needs every size as a number, and H is a name"
    )


def test_ties_between_nested_modules() -> None:
    class Nested(nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.enc = nn.Sequential(nn.Embedding(10, 4))
            self.dec = nn.Sequential(nn.Linear(4, 10))
            self.dec[0].weight = self.enc[0].weight

    module = Nested()
    model = from_module(module)
    assert model.ties == {"dec.0.weight": "enc.0.weight"}
    assert model.total == sum(p.numel() for p in module.parameters()) == 50


KINDS_FOR_TREES = [
    "Linear",
    "LSTM",
    "Conv2d",
    "BatchNorm1d",
    "LayerNorm",
    "Embedding",
    "MultiheadAttention",
    "GRUCell",
    "PReLU",
    "ReLU",
    "MaxPool2d",
    "AdaptiveAvgPool2d",
    "Upsample",
]


@st.composite
def module_trees(draw: st.DrawFn, depth: int = 2) -> Any:
    """A random tree of containers and known layers (meta device), sometimes with an odd
    parameter of its own, sometimes with two equal-shaped weights tied."""
    children = []
    for _ in range(draw(st.integers(1, 3))):
        if depth > 0 and draw(st.booleans()):
            children.append(draw(module_trees(depth=depth - 1)))
        else:
            kind = draw(st.sampled_from(KINDS_FOR_TREES))
            args = draw(CASES[kind].args)
            children.append(build(LAYER_KINDS[kind](**args)))
    container = nn.Sequential(*children)
    if draw(st.booleans()):
        container.extra = nn.Parameter(torch.empty(draw(st.integers(1, 5)), device="meta"))
    return container


@settings(max_examples=40, deadline=None)
@given(tree=module_trees(), tie=st.booleans())
def test_from_module_agrees_with_torch_on_any_tree(tree: Any, tie: bool) -> None:
    if tie:  # share the first two parameters of equal shape, as weight tying does
        params = list(tree.named_parameters())
        for i, (_, a) in enumerate(params):
            match = next(((n, b) for n, b in params[i + 1 :] if b.shape == a.shape), None)
            if match:
                owner, _, attribute = match[0].rpartition(".")
                setattr(tree.get_submodule(owner), attribute, a)
                break
    model = from_module(tree)
    assert model.named_parameters() == [(n, tuple(p.shape)) for n, p in tree.named_parameters()]
    assert model.named_buffers() == [(n, tuple(b.shape)) for n, b in tree.named_buffers()]
    assert model.total == sum(p.numel() for p in tree.parameters())
    assert sum(r.counted for r in model.rows()) == model.total


def test_a_buffer_registered_in_two_modules_is_listed_once() -> None:
    class Stats(nn.Module):  # type: ignore[misc]
        def __init__(self, shared: Any) -> None:
            super().__init__()
            self.register_buffer("table", shared)
            self.register_buffer("own", torch.zeros(2))

    shared = torch.zeros(5)
    module = nn.Sequential(Stats(shared), nn.Linear(2, 2), Stats(shared))
    model = from_module(module)
    assert model.named_buffers() == [(n, tuple(b.shape)) for n, b in module.named_buffers()]
    assert [n for n, _ in model.named_buffers()] == ["0.table", "0.own", "2.own"]


def word_language_model(rnn_type: str, ntoken: int, ninp: int, nhid: int, nlayers: int) -> Any:
    """The RNNModel of PyTorch's examples/word_language_model/model.py, as written there:
    encoder, rnn, decoder (dropout has no parameters)."""
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class RNNModel(nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.drop = nn.Dropout(0.5)
            self.encoder = nn.Embedding(ntoken, ninp)
            self.rnn = getattr(nn, rnn_type)(
                ninp, nhid, nlayers, dropout=0.5 if nlayers > 1 else 0.0
            )
            self.decoder = nn.Linear(nhid, ntoken)

    return RNNModel()


PREFIXES = {"embedding": "encoder", "lstm": "rnn", "gru": "rnn", "head": "decoder"}


@pytest.mark.parametrize("rnn_type", ["LSTM", "GRU"])
def test_assert_matches_takes_a_prefix_map(rnn_type: str) -> None:
    module = word_language_model(rnn_type, 33278, 200, 200, 2)
    factory = shapecalc.lstm_lm if rnn_type == "LSTM" else shapecalc.gru_lm
    spec = factory(vocab=33278, hidden=200, layers=2)
    with pytest.raises(MismatchError, match="missing"):  # every name differs
        shapecalc.assert_matches(spec, module)
    names = {k: v for k, v in PREFIXES.items() if k in ("embedding", "head", rnn_type.lower())}
    shapecalc.assert_matches(spec, module, names=names)
    wrong = factory(vocab=33278, hidden=256, layers=2)
    with pytest.raises(MismatchError, match="shape"):
        shapecalc.assert_matches(wrong, module, names=names)


def test_a_prefix_map_names_whole_parts_and_refuses_a_stray_key() -> None:
    module = word_language_model("LSTM", 10, 4, 4, 1)
    spec = shapecalc.lstm_lm(vocab=10, hidden=4, layers=1)
    with pytest.raises(InvalidArgumentError, match="names: 'lstm_' is no prefix"):
        shapecalc.compare(spec, module, names={"lstm_": "rnn"})
    with pytest.raises(TypeError, match="names must be a mapping"):
        shapecalc.compare(spec, module, names={"lstm": 3})  # type: ignore[dict-item]
    diff = shapecalc.compare(spec, module, names={"lstm": "rnn", "embedding": "encoder"})
    assert [n for n, _ in diff.missing] == ["head.weight", "head.bias"]
    assert [n for n, _ in diff.extra] == ["decoder.weight", "decoder.bias"]
