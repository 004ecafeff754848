"""Stacks whose layers differ: runs of different blocks in one ModuleList.

Dense layers before the experts, experts every second layer, sliding and full attention
taking turns: each run is stored once with its count (and step), named as torch names
it, shown as a run, and built, listed and run in index order. Names, shapes, order, the
total and a forward's shapes and FLOPs are checked against torch: the module built from
the tree and a twin written here in plain torch.
"""

from __future__ import annotations

import json
import time
import warnings
from io import StringIO
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

import shapecalc
from shapecalc.analysis.cost import analyze
from shapecalc.core.dims import symbol
from shapecalc.core.errors import InvalidArgumentError
from shapecalc.core.flow import residual
from shapecalc.core.model import Model
from shapecalc.core.tree import (
    Block,
    Child,
    Repeat,
    cycle,
    find_node,
    part_holds,
    run_indices,
    runs,
    split_name,
)
from shapecalc.layers.linear import Linear
from shapecalc.layers.norm import LayerNorm
from shapecalc.report import Report, text
from shapecalc.report.as_json import to_dict
from shapecalc.report.rich_writer import renderables

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402  (torch only when installed)
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from shapecalc.adapters.torch_bridge import build, compare, from_module  # noqa: E402
from tests.measure import kept_bytes  # noqa: E402

WIDTH = 4


# -- the kinds of block, as trees and as plain torch --------------------------------------
#: (kind, hidden, bias): "mlp" is x + fc2(fc1(ln(x))), "lin" is relu(fc(x)), "norm" is ln(x)
Kind = tuple[str, int, bool]


def tree_block(kind: Kind) -> Block:
    name, hidden, bias = kind
    if name == "mlp":
        return Block(
            "MLPBlock",
            {
                "ln": LayerNorm(WIDTH),
                "fc1": Linear(WIDTH, hidden, bias=bias),
                "fc2": Linear(hidden, WIDTH, bias=bias),
            },
            flow=residual("ln", "fc1", "fc2"),
        )
    if name == "lin":
        return Block("LinBlock", {"fc": Linear(WIDTH, WIDTH, bias=bias), "act": shapecalc.ReLU()})
    return Block("NormBlock", {"ln": LayerNorm(WIDTH, bias=bias)})


class TorchMLP(nn.Module):  # type: ignore[misc]
    def __init__(self, hidden: int, bias: bool) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(WIDTH)
        self.fc1 = nn.Linear(WIDTH, hidden, bias=bias)
        self.fc2 = nn.Linear(hidden, WIDTH, bias=bias)

    def forward(self, x: Any) -> Any:
        return x + self.fc2(self.fc1(self.ln(x)))


class TorchLin(nn.Module):  # type: ignore[misc]
    def __init__(self, bias: bool) -> None:
        super().__init__()
        self.fc = nn.Linear(WIDTH, WIDTH, bias=bias)
        self.act = nn.ReLU()

    def forward(self, x: Any) -> Any:
        return self.act(self.fc(x))


class TorchNorm(nn.Module):  # type: ignore[misc]
    def __init__(self, bias: bool) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(WIDTH, bias=bias)

    def forward(self, x: Any) -> Any:
        return self.ln(x)


def torch_block(kind: Kind) -> Any:
    name, hidden, bias = kind
    if name == "mlp":
        return TorchMLP(hidden, bias)
    return TorchLin(bias) if name == "lin" else TorchNorm(bias)


class TorchStack(nn.Module):  # type: ignore[misc]
    """What a person writes: ``self.layers = nn.ModuleList([...])`` and a loop."""

    def __init__(self, kinds: list[Kind]) -> None:
        super().__init__()
        self.layers = nn.ModuleList([torch_block(k) for k in kinds])
        self.norm = nn.LayerNorm(WIDTH)

    def forward(self, x: Any) -> Any:
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)


def stack(entries: tuple[Repeat | Child, ...]) -> Model:
    root = Block("Stack", {"layers": Block("ModuleList", entries), "norm": LayerNorm(WIDTH)})
    return Model("stack", root, input_layout=(("B", "T", WIDTH),))


KINDS = st.tuples(st.sampled_from(["mlp", "lin", "norm"]), st.integers(1, 6), st.booleans())


@st.composite
def patterns(draw: st.DrawFn) -> list[Kind]:
    """A per-layer list of 2 or 3 different blocks: dense first then the rest, one kind
    every k-th layer, a cycle, or any order."""
    kinds = draw(st.lists(KINDS, min_size=2, max_size=3, unique=True))
    shape = draw(st.sampled_from(["prefix", "every", "cycle", "any"]))
    n = draw(st.integers(1, 14))
    if shape == "prefix":
        k = draw(st.integers(0, n))
        return [kinds[0]] * k + [kinds[1]] * (n - k)
    if shape == "every":
        step = draw(st.integers(2, 4))
        return [kinds[1] if i % step == step - 1 else kinds[0] for i in range(n)]
    if shape == "cycle":
        return [kinds[i % len(kinds)] for i in range(n)]
    return draw(st.lists(st.sampled_from(kinds), min_size=1, max_size=14))


def covered(entries: tuple[Repeat | Child, ...]) -> list[int]:
    numbers: list[int] = []
    for e in entries:
        if isinstance(e, Child):
            numbers.append(int(e.name))
        else:
            found = e.indices()
            assert found is not None
            numbers.extend(found)
    return sorted(numbers)


# -- against torch -------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(kinds=patterns(), batch=st.integers(1, 3))
def test_runs_against_torch(kinds: list[Kind], batch: int) -> None:
    entries = runs([tree_block(k) for k in kinds])
    assert covered(entries) == list(range(len(kinds)))  # every layer once
    assert all(not isinstance(e, Repeat) or known_count(e) > 1 for e in entries)
    model = stack(entries)
    twin = TorchStack(kinds).to("meta")
    truth = [(n, tuple(p.shape)) for n, p in twin.named_parameters()]
    assert [(n, tuple(s)) for n, s in model.named_parameters()] == truth
    built = build(model, device="meta")
    assert [(n, tuple(p.shape)) for n, p in built.named_parameters()] == truth
    assert model.total == sum(p.numel() for p in twin.parameters())
    assert not compare(model, twin)
    # the forward, in index order, on the CPU
    module = build(model, device="cpu")
    cost = analyze(model, ((batch, 3, WIDTH),))
    x = torch.randn(batch, 3, WIDTH)
    with FlopCounterMode(display=False) as counter, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = module(x)
    assert tuple(out.shape) == cost.layers[-1].outputs[0] == (batch, 3, WIDTH)
    assert counter.get_total_flops() == 2 * cost.macs
    # what autograd keeps for the backward
    x = torch.randn(batch, 3, WIDTH, requires_grad=True) * 1.0
    assert kept_bytes(module, [x]) == cost.activation_bytes
    # read back from torch: the same runs
    read = from_module(TorchStack(kinds).to("meta"))
    assert read.total == model.total
    assert [n for n, _ in read.named_parameters()] == [n for n, _ in truth]


def known_count(run: Repeat) -> int:
    assert isinstance(run.count, int)
    return run.count


def test_interleaved_runs_run_in_index_order() -> None:
    """4 -> 6 then 6 -> 4, taking turns: only index order fits the shapes."""
    up, down = Linear(WIDTH, 6), Linear(6, WIDTH)
    entries = runs([up, down, up, down])
    assert [e.part() for e in entries if isinstance(e, Repeat)] == ["{0,2..2}", "{1,3..3}"]
    model = Model("m", Block("ModuleList", entries))
    cost = analyze(model, ((2, WIDTH),))
    assert [c.name for c in cost.layers] == ["0", "1", "2", "3"]
    assert [c.outputs[0] for c in cost.layers] == [(2, 6), (2, WIDTH), (2, 6), (2, WIDTH)]
    module = build(model, device="cpu")
    assert [n for n, _ in module.named_children()] == ["0", "1", "2", "3"]
    assert tuple(module(torch.randn(2, WIDTH)).shape) == (2, WIDTH)


def test_long_interleaved_runs_are_analysed_once_each() -> None:
    a, b = tree_block(("mlp", 5, True)), tree_block(("lin", 0, False))
    model = stack(runs([a, b] * 30))
    cost = analyze(model, ((2, 3, WIDTH),))
    assert {c.calls for c in cost.layers if c.name.startswith("layers.{0,2..58}")} == {30}
    assert {c.calls for c in cost.layers if c.name.startswith("layers.{1,3..59}")} == {30}
    module = build(model, device="cpu")
    with FlopCounterMode(display=False) as counter:
        module(torch.randn(2, 3, WIDTH))
    assert counter.get_total_flops() == 2 * cost.macs
    x = torch.randn(2, 3, WIDTH, requires_grad=True) * 1.0
    assert kept_bytes(module, [x]) == cost.activation_bytes


# -- the fewest runs --------------------------------------------------------------------------
def test_runs_finds_the_fewest() -> None:
    dense, moe, other = Linear(2, 2), Linear(2, 3), Linear(3, 2)

    def parts(nodes: list[Any]) -> list[str]:
        return [e.part() if isinstance(e, Repeat) else e.name for e in runs(nodes)]

    assert parts([dense] * 3 + [moe] * 58) == ["{0..2}", "{3..60}"]
    assert parts([dense, moe] * 30) == ["{0,2..58}", "{1,3..59}"]
    assert parts([dense, moe] * 30 + [dense]) == ["{0,2..60}", "{1,3..59}"]
    assert parts([dense] * 3 + [moe, dense] * 2 + [moe]) == ["{0..2}", "{3,5..7}", "{4,6..6}"]
    assert parts([dense, dense, moe] * 4) == ["{0,3..9}", "{1,4..10}", "{2,5..11}"]
    assert parts([dense, moe, other]) == ["0", "1", "2"]
    assert parts([dense]) == ["0"]
    assert parts([]) == []
    assert [e.name for e in runs([dense, moe], start=5) if isinstance(e, Child)] == ["5", "6"]


def test_a_run_of_one_is_named_plainly() -> None:
    run = Repeat(Linear(2, 2), 1, start=7, step=3)
    assert run.part() == "7" and list(run.indices() or ()) == [7]
    block = Block("ModuleList", (Repeat(Linear(2, 2), 1),))
    model = Model("m", Block("Net", {"layers": block}))
    assert [r.name for r in model.rows()] == ["layers.0.weight", "layers.0.bias"]
    assert find_node(model.root, ("layers", "0")) == run.node


def test_names_and_parts() -> None:
    assert split_name("layers.{1,3..59}.mlp.weight") == ("layers", "{1,3..59}", "mlp", "weight")
    assert run_indices("{1,3..59}") == range(1, 60, 2)
    assert run_indices("{3..60}") == range(3, 61)
    assert run_indices("{1,3..4}") is None and run_indices("mlp") is None
    assert part_holds("{1,3..L-1}", 5) and not part_holds("{1,3..L-1}", 4)
    assert Repeat(Linear(2, 2), "L", start=1, step=2).part() == "{1,3..2·L-1}"


def test_overlapping_runs_are_refused() -> None:
    a, b = Linear(2, 2), Linear(2, 3)
    Block("ModuleList", (Repeat(a, 3, 0, 2), Repeat(b, 3, 1, 2)))  # taking turns: fine
    with pytest.raises(InvalidArgumentError, match="overlap"):
        Block("ModuleList", (Repeat(a, 3, 0, 2), Repeat(b, 3, 4, 2)))
    with pytest.raises(InvalidArgumentError, match="overlap"):
        Block("ModuleList", (Repeat(a, 5, 0, 3), Repeat(b, 4, 1, 2)))  # both hold 3
    Block("ModuleList", (Repeat(a, 3, 0, 4), Repeat(b, 4, 1, 2)))  # 0, 4, 8 and 1, 3, 5, 7
    with pytest.raises(InvalidArgumentError, match="also in run"):
        Block("ModuleList", (Repeat(a, 3, 0, 2), ("4", b)))
    with pytest.raises(InvalidArgumentError, match="overlap"):
        Block("ModuleList", (Repeat(a, "L", 0, 2), Repeat(b, 2, 10**12, 2)))
    with pytest.raises(InvalidArgumentError, match="step must be an integer >= 1"):
        Repeat(a, 3, step=0)


# -- symbols and sizes ------------------------------------------------------------------------
def test_dense_first_then_experts_with_a_symbolic_count() -> None:
    dense, moe = tree_block(("mlp", 6, True)), tree_block(("mlp", 2, False))
    layers = symbol("L")
    model = stack((*runs([dense] * 3), *cycle([moe], layers - 3, start=3)))
    concrete = stack(runs([dense] * 3 + [moe] * 58))
    assert model.evaluate(L=61).total == concrete.total
    assert model.evaluate(L=61).named_parameters() == concrete.named_parameters()
    assert "layers.{3..L-1}.fc1.weight" in [r.name for r in model.rows()]


@pytest.mark.parametrize("count", [2, 3, 7, 60, 61])
def test_a_symbolic_cycle_evaluates_to_the_concrete_count(count: int) -> None:
    a, b, c = (tree_block(k) for k in (("mlp", 6, True), ("lin", 0, True), ("norm", 0, False)))
    pattern = [a, b, c] if count > 2 else [a, b]
    model = stack(cycle(pattern, "L"))
    concrete = stack(runs([pattern[i % len(pattern)] for i in range(count)]))
    assert model.evaluate(L=count).total == concrete.total
    assert [n for n, _ in model.evaluate(L=count).named_parameters()] == [
        n for n, _ in concrete.named_parameters()
    ]


def test_a_trillion_layers_count_at_once() -> None:
    a, b = tree_block(("mlp", 6, True)), tree_block(("lin", 0, True))
    start = time.perf_counter()
    model = stack(cycle([a, b], 10**12))
    per = Model("a", a).total + Model("b", b).total
    assert model.total == 10**12 // 2 * per + 2 * WIDTH
    assert len(model.rows()) == 6 + 2 + 2
    analyze(model, ((2, 3, WIDTH),))
    assert time.perf_counter() - start < 5  # a guard against a walk of every layer


# -- what the writers show ----------------------------------------------------------------------
def rich_text(report: Report, fmt: str) -> str:
    console = Console(width=200, file=StringIO(), color_system=None)
    console.print(*renderables(report, fmt))
    assert isinstance(console.file, StringIO)
    return console.file.getvalue()


def test_table_json_and_tree_show_runs() -> None:
    dense, moe = tree_block(("mlp", 6, True)), tree_block(("mlp", 2, False))
    model = stack(runs([dense] * 3 + [moe] * 58))
    names = [r.name for r in model.rows()]
    # runs of different blocks in a long stack are shown as runs, however short
    assert "layers.{0..2}.fc1.weight" in names and "layers.{3..60}.fc1.weight" in names
    assert not any(".2.fc1" in n for n in names)
    few = stack(runs([dense] * 2 + [moe] * 2))  # a short stack is listed layer by layer
    assert next(r.name for r in few.rows()).startswith("layers.0.")
    assert model.named_parameters()[0][0].startswith("layers.0.")  # as torch lists them
    longer = stack(runs([dense] * 6 + [moe] * 55))
    shown = rich_text(Report(longer), "table")
    assert "layers.{0..5}" in shown and "layers.{6..60}" in shown
    alternating = stack(runs([dense, moe] * 30))
    table = rich_text(Report(alternating), "table")
    assert "layers.{0,2..58}" in table and "layers.{1,3..59}" in table
    tree = rich_text(Report(alternating), "tree")
    assert "{0,2..58}" in tree and "{1,3..59}" in tree
    assert "layers.{1,3..59}.fc1.weight" in json.dumps(to_dict(alternating))
    md = text(Report(alternating), "markdown")
    assert "`layers.{1,3..59}.fc1.weight`" in md
    assert model.subtotal("layers") == model.total - 2 * WIDTH
    assert model.layer("layers.5.fc1").name == "layers.{3..60}.fc1"
    assert alternating.layer("layers.5.fc1").name == "layers.{1,3..59}.fc1"
    assert alternating.describe("layers.{1,3..59}") == "30 × MLPBlock"


def test_a_child_of_a_run_has_its_share() -> None:
    dense, moe = tree_block(("mlp", 6, True)), tree_block(("mlp", 2, False))
    model = stack(runs([dense, moe] * 30))
    per_moe = Model("moe", moe).total
    assert model.subtotal("layers.5") == per_moe == model.subtotal("layers.{1,3..59}") // 30
    assert model.subtotal("layers.4.fc1") == Model("d", dense).subtotal("fc1")
    assert model.subtotal("layers.61") == 0


def test_the_template_has_the_same_runs() -> None:
    """A concrete stack's formula column comes from a symbolic twin of the same runs."""
    dense, moe = tree_block(("mlp", 6, True)), tree_block(("mlp", 2, False))
    template = stack(cycle([dense, moe], "L"))
    root = stack(runs([dense, moe] * 30)).root
    model = Model("m", root, make_template=lambda: template, input_layout=template.input_layout)
    rows = {r.name: r for r in model.rows()}
    row = rows["layers.{1,3..59}.fc1.weight"]
    assert row.count == 30 * 2 * WIDTH
    assert str(row.template.count) == "8·⌊(L)/2⌋"
    assert template.evaluate(L=60).total == model.total
    assert str(model.total_formula) == str(template.total)
