"""Model trees: nested names, runs of repeated blocks, ties anywhere, declared data flow.

Counts and names are checked without torch; shapes, FLOPs and the tensors kept for
backward are checked against the real module that ``build`` makes from the same tree
(its forward follows the declared flow), with torch's own FlopCounterMode and
saved_tensors_hooks.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shapecalc
from shapecalc.analysis.cost import analyze
from shapecalc.core.dims import symbol
from shapecalc.core.errors import InvalidArgumentError, ShapeError, TieError
from shapecalc.core.flow import OPAQUE, chain, multiply, parallel, residual, summed
from shapecalc.core.model import Model
from shapecalc.core.tree import (
    Block,
    Leaf,
    ModuleList,
    Repeat,
    Sequential,
    find_param,
    split_name,
)
from shapecalc.layers.linear import Dropout, Linear
from shapecalc.layers.norm import LayerNorm


def mlp_block(width: int, hidden: int) -> Block:
    """A pre-norm residual MLP block: x + fc2(drop(fc1(ln(x))))."""
    return Block(
        "MLPBlock",
        {"ln": LayerNorm(width), "fc1": Linear(width, hidden), "fc2": Linear(hidden, width)},
        flow=residual("ln", "fc1", "fc2"),
    )


def stack(width: int = 8, hidden: int = 16, layers: Any = 3, vocab: int = 11) -> Model:
    root = Block(
        "Net",
        {
            "wte": shapecalc.Embedding(vocab, width),
            "h": ModuleList(mlp_block(width, hidden), layers),
            "ln_f": LayerNorm(width),
            "head": Linear(width, vocab, bias=False),
        },
    )
    return Model("net", root, ties={"head.weight": "wte.weight"}, input_layout=(("B", "T"),))


# -- names and counts ----------------------------------------------------------------------
def test_names_expand_as_named_parameters() -> None:
    names = [n for n, _ in stack(layers=2).named_parameters()]
    assert names[:3] == ["wte.weight", "h.0.ln.weight", "h.0.ln.bias"]
    assert "h.1.fc2.bias" in names and "head.weight" not in names  # tied: listed once
    assert names[-2:] == ["ln_f.weight", "ln_f.bias"]


def test_a_long_run_is_one_row_per_tensor_with_its_range() -> None:
    model = stack(layers=96)
    rows = {r.name: r for r in model.rows()}
    row = rows["h.{0..95}.fc1.weight"]
    assert row.param.repeat == 96 and row.count == 96 * 16 * 8
    assert len(rows) == 1 + 6 + 2 + 1  # wte, the block's six tensors, ln_f, head
    assert len(model.named_parameters()) == 1 + 6 * 96 + 2


def test_a_thousand_blocks_cost_what_two_do() -> None:
    start = time.perf_counter()
    small = stack(layers=2)
    assert small.total and len(small.rows()) == 16
    big = stack(layers=1000)
    per_block = 2 * 8 + 8 * 16 + 16 + 16 * 8 + 8
    assert big.total == 11 * 8 + 1000 * per_block + 2 * 8
    assert len(big.rows()) == 10
    assert time.perf_counter() - start < 5  # a guard against walking every block, not a timing


def test_symbolic_repeat_count_gives_the_formula_in_l() -> None:
    model = stack(layers="L")
    per_block = 2 * 8 + 8 * 16 + 16 + 16 * 8 + 8
    assert str(model.total) == f"{per_block}·L + {11 * 8 + 2 * 8}"
    assert model.evaluate(L=7).total == stack(layers=7).total
    assert [r.name for r in model.rows()][1] == "h.{0..L-1}.ln.weight"


def test_subtotals_per_group_and_node() -> None:
    model = stack(layers=3)
    assert model.groups() == ["wte", "h", "ln_f", "head"]
    assert model.subtotal("h") == 3 * model.subtotal("h.0")
    assert model.subtotal("head") == 0  # tied: counted at wte
    assert model.describe("h") == "ModuleList"
    assert model.describe("h.0.fc1") == "Linear(in_features=8, out_features=16)"
    assert sum(model.subtotal(g) for g in model.groups()) == model.total


def test_group_depth_closes_groups_deeper() -> None:
    root = Block("Outer", {"body": Block("Body", {"a": Linear(2, 3), "b": Linear(3, 4)})})
    assert Model("x", root).groups() == ["body"]
    assert Model("x", root, group_depth=2).groups() == ["body.a", "body.b"]


def test_sequential_numbers_children_and_merges_equal_neighbours() -> None:
    seq = Sequential(Linear(4, 8), Linear(8, 8), Linear(8, 8), Linear(8, 8), Linear(8, 2))
    names = [n for n, _ in Model("s", seq).named_parameters()]
    assert names == [f"{i}.{p}" for i in range(5) for p in ("weight", "bias")]
    assert isinstance(seq.children[1], Repeat) and seq.children[1].part() == "{1..3}"


def test_split_name_keeps_ranges_whole() -> None:
    assert split_name("a.h.{0..L-1}.lstm.weight_ih_l{1..95}") == (
        "a",
        "h",
        "{0..L-1}",
        "lstm",
        "weight_ih_l{1..95}",
    )


# -- ties anywhere -------------------------------------------------------------------------
def test_ties_inside_a_long_run_list_that_run_child_by_child() -> None:
    root = Block(
        "Net",
        {
            "emb": shapecalc.Embedding(8, 8),
            "h": ModuleList(Linear(8, 8, bias=False), 6),
        },
    )
    model = Model("t", root, ties={"h.4.weight": "emb.weight"})
    rows = {r.name: r for r in model.rows()}
    assert rows["h.4.weight"].tied_to == "emb.weight"
    assert model.total == 64 + 5 * 64
    assert find_param(root, "h.5.weight") is not None and find_param(root, "h.6.weight") is None


@pytest.mark.parametrize(
    ("ties", "match"),
    [
        ({"head.weight": "nope.weight"}, "the model has no parameter nope.weight"),
        ({"h.0.fc1.weight": "wte.weight"}, "shared parameters need the same shape"),
    ],
)
def test_bad_ties_are_refused(ties: dict[str, str], match: str) -> None:
    with pytest.raises(TieError, match=match):
        Model("net", stack().root, ties=ties)


# -- declarations are checked ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Block("B", {"a": Linear(2, 2)}, flow=chain("a", "b")), "uses 'b', which is not"),
        (lambda: Block("B", [("a.b", Linear(2, 2))]), "holds '.'"),
        (lambda: Block("B", [("a", Linear(2, 2)), ("a", Linear(2, 2))]), "two children"),
        (lambda: Block("B", [("1", Linear(2, 2)), Repeat(Linear(2, 2), 3)]), "also in run"),
        (lambda: Block("B", {"a": Linear(2, 2)}, flow=chain("a", Linear(2, 2))), "needs a name"),
        (lambda: Repeat(Linear(2, 2), 0), "count must be an integer >= 1"),
        (lambda: Block("B", [object()]), "a child is given as"),
    ],
)
def test_bad_declarations_are_one_line_errors(make: Any, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        make()


def test_a_child_fed_the_wrong_size_names_both_layers_and_sizes() -> None:
    root = Block("Net", {"up": Linear(8, 16), "down": Linear(32, 4)})
    with pytest.raises(ShapeError) as err:
        analyze(Model("two", root), ((2, 8),))
    message = str(err.value)
    assert "layer 'down'" in message and "the output of 'up'" in message
    assert "(2, 16)" in message and "expected in_features=32" in message
    assert "\n" not in message


def test_a_repeated_block_must_keep_its_shape() -> None:
    model = Model("m", ModuleList(Linear(8, 4), 6))
    with pytest.raises(ShapeError, match=r"returns \(2, 4\) where it takes \(2, 8\)"):
        analyze(model, ((2, 8),))


def test_an_opaque_flow_says_so() -> None:
    model = Model("m", Block("FromTorch", {"a": Linear(2, 2)}, flow=OPAQUE))
    with pytest.raises(ShapeError, match="not known to shapecalc"):
        analyze(model, ((1, 2),))


# -- shapes and compute through the flow -------------------------------------------------------
def test_symbolic_batch_and_sequence_through_residual_blocks() -> None:
    cost = analyze(stack(layers="L"))
    B, T, L = symbol("B"), symbol("T"), symbol("L")
    assert cost.layers[-1].outputs == ((B, T, 11),)
    fc1 = next(c for c in cost.layers if c.name == "h.{0..L-1}.fc1")
    assert fc1.calls == L and fc1.macs == L * B * T * 8 * 16
    adds = [c for c in cost.layers if c.spec.kind == "add"]
    assert [c.name for c in adds] == ["h.{0..L-1} (add)"]
    assert adds[0].forward_flops == L * B * T * 8


def test_summed_branches_products_and_parallel() -> None:
    root = Block(
        "Gated",
        {"gate": Linear(4, 6), "up": Linear(4, 6), "down": Linear(6, 4), "a": Linear(4, 2)},
        flow=chain(residual(multiply("gate", "up"), "down"), parallel("a", "a"), summed("a")),
    )
    with pytest.raises(ShapeError, match=r"Linear\(in_features=4, out_features=2\) cannot take"):
        analyze(Model("g", root), ((3, 4),))  # a takes one input, parallel gives it two
    root = Block(
        "Gated",
        {"gate": Linear(4, 6), "up": Linear(4, 6), "down": Linear(6, 4)},
        flow=residual(multiply("gate", "up"), "down"),
    )
    cost = analyze(Model("g", root), ((3, 4),))
    assert [(c.name, c.spec.kind) for c in cost.layers] == [
        ("gate", "Linear"),
        ("up", "Linear"),
        ("multiply", "multiply"),
        ("down", "Linear"),
        ("add", "add"),
    ]
    assert cost.layers[-1].outputs == ((3, 4),)


@pytest.mark.parametrize("combine", [summed, multiply, parallel])
def test_a_combination_needs_a_branch(combine: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="at least one branch"):
        combine()


# -- against torch ------------------------------------------------------------------------------
torch = pytest.importorskip("torch")
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from shapecalc.adapters.torch_bridge import build  # noqa: E402
from tests.measure import kept_bytes  # noqa: E402

#: activations that keep their input, their output, or (in place) the input's storage
ACTIVATIONS = st.sampled_from(
    [
        shapecalc.GELU(),
        shapecalc.ReLU(),
        shapecalc.ReLU(inplace=True),
        shapecalc.Sigmoid(),
        shapecalc.Tanh(),
        shapecalc.SiLU(),
        shapecalc.LeakyReLU(inplace=True),
    ]
)


@st.composite
def trees(draw: st.DrawFn, width: int, depth: int = 2) -> Any:
    """A random block of Linear, LayerNorm, activation and Dropout leaves, residual blocks,
    gated products and runs of repeated blocks (listed and as one row)."""
    choice = draw(st.integers(0, 6 if depth else 3))
    if choice == 0:
        hidden = draw(st.integers(1, 6))
        act = draw(ACTIVATIONS)
        return Sequential(Linear(width, hidden), act, Linear(hidden, width))
    if choice == 1:
        return Sequential(LayerNorm(width), Dropout(draw(st.sampled_from([0.0, 0.5]))))
    if choice == 2:  # ends with a layer that keeps its output: the next repeat's input
        return Sequential(Linear(width, width), draw(ACTIVATIONS))
    if choice == 3:  # changes its input in place: a repeat of it is one tensor throughout
        return Sequential(shapecalc.ReLU(inplace=True))
    if choice == 4:
        body = draw(trees(width, depth - 1))
        return Block("Res", {"norm": LayerNorm(width), "body": body}, flow=residual("norm", "body"))
    if choice == 5:
        hidden = draw(st.integers(1, 6))
        return Block(
            "Gated",
            {
                "gate": Linear(width, hidden),
                "up": Linear(width, hidden),
                "down": Linear(hidden, width),
            },
            flow=chain(multiply("gate", "up"), "down"),
        )
    inner = draw(trees(width, depth - 1))
    return ModuleList(inner, draw(st.sampled_from([1, 2, 5, 6])))


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_trees_against_torch(data: st.DataObject) -> None:
    width = data.draw(st.integers(1, 6))
    parts = data.draw(st.lists(trees(width), min_size=1, max_size=3))
    model = Model("random", Sequential(*parts))
    batch = data.draw(st.integers(1, 3))
    module = build(model, device="cpu")
    assert [(n, tuple(p.shape)) for n, p in module.named_parameters()] == [
        (n, tuple(s)) for n, s in model.named_parameters()
    ]
    assert sum(p.numel() for p in module.parameters()) == model.total
    cost = analyze(model, ((batch, width),))
    # an input computed from a leaf, as inside a network (a leaf cannot be changed in place)
    x = torch.randn(batch, width, requires_grad=True) * 1.0
    with FlopCounterMode(display=False) as counter, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = module(x)
    assert tuple(out.shape) == cost.layers[-1].outputs[0]
    assert counter.get_total_flops() == 2 * cost.macs
    assert kept_bytes(module, [x]) == cost.activation_bytes


@pytest.mark.parametrize(
    "element",
    [
        Sequential(Linear(4, 4), shapecalc.ReLU()),  # keeps its input and its output
        Sequential(Linear(4, 4), shapecalc.ReLU(inplace=True)),
        Sequential(shapecalc.Sigmoid(), Linear(4, 4)),  # keeps its input twice
        Sequential(shapecalc.ReLU(inplace=True)),  # one tensor throughout
        Sequential(Linear(4, 4), shapecalc.GELU()),  # keeps its input only
        Sequential(shapecalc.GELU(), shapecalc.Tanh()),  # keeps its output only at the end
    ],
    ids=["in-out", "in-out-inplace", "in-twice", "inplace-through", "in", "out"],
)
@pytest.mark.parametrize("count", [2, 6, 11])
def test_tensors_between_repeats_are_counted_once(element: Block, count: int) -> None:
    model = Model("m", Sequential(Linear(4, 4), ModuleList(element, count), Linear(4, 4)))
    cost = analyze(model, ((3, 4),))
    x = torch.randn(3, 4, requires_grad=True) * 1.0
    assert kept_bytes(build(model, device="cpu"), [x]) == cost.activation_bytes


def test_a_long_run_counted_once_equals_the_run_listed() -> None:
    model = Model("m", ModuleList(mlp_block(4, 6), 6))
    once = analyze(model, ((2, 3, 4),))
    assert [c.calls for c in once.layers] == [6] * 4
    x = torch.randn(2, 3, 4, requires_grad=True) * 1.0
    real = kept_bytes(build(model, device="cpu"), [x])
    assert real == once.activation_bytes


def test_build_refuses_a_symbolic_run() -> None:
    with pytest.raises(InvalidArgumentError, match="symbolic count"):
        build(stack(layers="L"))


def test_leaf_of_a_model_and_bare_layer() -> None:
    assert Model("one", Leaf(Linear(3, 2))).named_parameters() == [
        ("weight", (2, 3)),
        ("bias", (2,)),
    ]


@given(st.text(alphabet="ab.{}_,0-", max_size=24))
def test_split_name_without_braces_is_the_pattern_s(name: str) -> None:
    """The fast path for names with no braces finds what the pattern finds."""
    from shapecalc.core.tree import _PART, split_name

    assert split_name(name) == tuple(_PART.findall(name))
