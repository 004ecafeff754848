"""Formulas evaluated at the sizes equal the concrete counts (no torch needed)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

import shapecalc
from shapecalc.core.dims import Expr, symbol
from shapecalc.core.errors import ShapecalcError
from shapecalc.layers import LAYER_KINDS
from tests.layer_cases import CASES
from tests.strategies import lstm_lm_args
from tests.test_cli import run


def evaluate(value: Any, sizes: dict[str, Any]) -> Any:
    return value.subs(sizes) if isinstance(value, Expr) else value


@given(args=lstm_lm_args())
def test_every_formula_evaluates_to_its_count(args: dict[str, Any]) -> None:
    model = shapecalc.lstm_lm(**args)
    sizes = dict(model.sizes)
    for row in model.rows():
        assert evaluate(row.formula, sizes) == row.count, row.name
        assert tuple(evaluate(d, sizes) for d in row.formula_shape) == row.shape, row.name
    assert evaluate(model.total_formula, sizes) == model.total
    for layer in model.layers:
        assert evaluate(model.subtotal_formula(layer.name), sizes) == model.subtotal(layer.name)


NAMES = {"vocab": "V", "hidden": "H", "layers": "L", "embed_dim": "E", "proj_size": "P"}


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@given(data=st.data(), which=st.sets(st.sampled_from(sorted(NAMES))))
def test_symbolic_model_evaluates_to_concrete_model(
    cell: str, data: st.DataObject, which: set[str]
) -> None:
    """Any subset of the sizes made symbolic (the layer count too), every model command
    and option combination: the symbolic total evaluated at the sizes is the concrete one."""
    args = data.draw(lstm_lm_args(cell=cell))
    factory = getattr(shapecalc, f"{cell}_lm")
    concrete = factory(**args)
    symbolic_args = dict(args)
    values = {}
    for arg in which:
        if args.get(arg):
            symbolic_args[arg] = NAMES[arg]
            values[NAMES[arg]] = args[arg]
    symbolic = factory(**symbolic_args)
    assert evaluate(symbolic.total, values) == concrete.total
    for row in symbolic.rows():  # every row's formula is its count's own formula
        assert evaluate(row.count, values) == evaluate(
            row.formula, {**dict(concrete.sizes), **values}
        )
    evaluated = symbolic.evaluate(**values) if values else symbolic
    assert evaluated.total == concrete.total
    assert evaluated.named_parameters() == concrete.named_parameters()


def test_symbolic_layer_count_multiplies_the_block() -> None:
    model = shapecalc.lstm_lm(vocab="V", hidden="H", layers="L")
    assert str(model.total) == "8·L·H² + 8·L·H + 2·V·H + V"
    names = [r.name for r in model.rows()]
    assert "lstm.weight_ih_l{0..L-1}" in names
    assert not any(n.endswith("_l0") for n in names)  # layer 0 is like the others here
    ih = next(r for r in model.rows() if r.name == "lstm.weight_ih_l{0..L-1}")
    assert ih.param.repeat == symbol("L") and ih.shape == (4 * symbol("H"), symbol("H"))


@pytest.mark.parametrize(
    ("kwargs", "first_input"),
    [({"one_hot": True}, "V"), ({"embed_dim": "E"}, "E"), ({"bidirectional": True}, "H")],
)
def test_layer_zero_apart_when_its_input_differs(kwargs: dict[str, Any], first_input: str) -> None:
    model = shapecalc.lstm_lm(vocab="V", hidden="H", layers="L", **kwargs)
    rows = {r.name: r for r in model.rows()}
    assert str(rows["lstm.weight_ih_l0"].shape[1]) == first_input
    rest = rows["lstm.weight_ih_l{1..L-1}"]
    assert str(rest.param.repeat) == "L - 1"


def test_mixed_concrete_and_symbolic_sizes() -> None:
    model = shapecalc.lstm_lm(vocab=65, hidden="H", layers=2)
    assert str(model.total) == "16·H² + 146·H + 65"
    assert str(model.total_formula) == "16·H² + 2·V·H + 16·H + V"
    assert model.describe_sizes() == "V=65, H, L=2"
    assert model.evaluate(H=512).total == 4_269_121


def test_symbolic_layers_with_equal_concrete_sizes_follow_the_template() -> None:
    # E = H = 512 merges layer 0 into the block here, but the template keeps E apart
    model = shapecalc.lstm_lm(vocab=65, hidden=512, layers="L", embed_dim=512)
    names = [r.name for r in model.rows()]
    assert "lstm.weight_ih_l0" in names and "lstm.weight_ih_l{1..L-1}" in names
    assert sum((r.counted for r in model.rows()), start=0) == model.total
    assert model.evaluate(L=2).total == shapecalc.lstm_lm(65, 512, 2, embed_dim=512).total


def test_total_is_usable_by_sympy() -> None:
    import sympy

    model = shapecalc.lstm_lm(vocab="V", hidden="H", layers="L")
    (h,) = shapecalc.symbols("H")  # the H of the formula: a positive integer to sympy
    assert h == sympy.Symbol("H", positive=True, integer=True)
    assert sympy.diff(model.total, h) == sympy.sympify(model.total).diff(h) != 0
    assert sympy.diff(model.total, h) == model.total.diff("H").to_sympy()
    assert sympy.sympify(model.total).subs(
        {s: 2 for s in sympy.sympify(model.total).free_symbols}
    ) == model.total.subs({"V": 2, "H": 2, "L": 2})
    assert sympy.latex(model.total.to_sympy())


def test_headline_formulas() -> None:
    model = shapecalc.lstm_lm(vocab=65, hidden=512, layers=2)
    formulas = {r.name: str(r.formula) for r in model.rows()}
    assert formulas["embedding.weight"] == "V·H"
    assert formulas["lstm.weight_ih_l0"] == "4·H²"
    assert formulas["lstm.bias_hh_l1"] == "4·H"
    assert formulas["head.bias"] == "V"
    assert str(model.total_formula) == "16·H² + 2·V·H + 16·H + V"


def test_embed_dim_gets_its_own_symbol() -> None:
    model = shapecalc.lstm_lm(vocab=65, hidden=512, layers=2, embed_dim=300)
    formulas = {r.name: str(r.formula) for r in model.rows()}
    assert formulas["embedding.weight"] == "V·E"
    assert formulas["lstm.weight_ih_l0"] == "4·H·E"
    assert formulas["lstm.weight_ih_l1"] == "4·H²"
    assert str(model.subtotal_formula("lstm")) == "12·H² + 4·H·E + 16·H"
    assert model.subtotal_formula("lstm").factored() == "4·H·(3·H + E + 4)"


def test_proj_and_bidirectional_formulas() -> None:
    model = shapecalc.lstm_lm(65, 512, 2, proj_size=128, bidirectional=True)
    formulas = {r.name: str(r.formula) for r in model.rows()}
    assert formulas["lstm.weight_hh_l0_reverse"] == "4·H·P"
    assert formulas["lstm.weight_ih_l1"] == "8·H·P"
    assert formulas["lstm.weight_hr_l1_reverse"] == "H·P"
    assert formulas["head.weight"] == "2·V·P"
    shapes = {r.name: r.formula_shape for r in model.rows()}
    assert [str(d) for d in shapes["lstm.weight_hr_l0"]] == ["P", "H"]


def test_tied_template_uses_the_head_input_size() -> None:
    model = shapecalc.lstm_lm(
        65, 512, 2, proj_size=256, embed_dim=512, bidirectional=True, tie_weights=True
    )
    assert model.total == model.total_formula.subs(dict(model.sizes))
    assert (
        str(next(r.formula_shape for r in model.rows() if r.name == "embedding.weight")[1]) == "2·P"
    )


def test_library_accepts_names_strings_and_sympy_symbols() -> None:
    import sympy

    by_name = shapecalc.lstm_lm(vocab="V", hidden="H", layers=2)
    by_sympy = shapecalc.lstm_lm(vocab=sympy.Symbol("V"), hidden=sympy.Symbol("H"), layers=2)
    assert by_name.total == by_sympy.total
    assert str(by_name.total) == "16·H² + 2·V·H + 16·H + V"
    assert by_name.evaluate(H=512, V=65).total == 4_269_121
    assert sympy.expand(
        by_name.total.to_sympy() - (16 * sympy.Symbol("H", positive=True, integer=True) ** 2)
    ).free_symbols


SHAPE_ONLY = sorted(
    k for k, c in LAYER_KINDS.items() if c.family in ("activation", "pooling") and k != "PReLU"
)


@pytest.mark.parametrize("kind", SHAPE_ONLY)
@given(data=st.data())
def test_symbolic_inputs_evaluate_to_the_concrete_work(kind: str, data: st.DataObject) -> None:
    """Every input size a symbol: the output shapes evaluated at the sizes are the concrete
    ones; so are the FLOPs and the bytes kept, where they do not depend on a size's value
    beyond a formula (adaptive windows overlap by a gcd; averaging to 1 keeps nothing)."""
    case = CASES[kind]
    spec = LAYER_KINDS[kind](**data.draw(case.args, label="args"))
    (shape,) = data.draw(case.inputs(spec), label="inputs")
    try:
        concrete = spec.work(shape)
    except ShapecalcError:
        return
    names = [f"D{i}" for i in range(len(shape))]
    values = dict(zip(names, shape, strict=True))
    try:
        symbolic = spec.work(tuple(symbol(n) for n in names))
    except ShapecalcError:
        # a ceil_mode remainder, a scale rounded in floating point, a rank only a mean
        # over ones takes: the output needs the sizes as numbers
        event("symbolic sizes refused")
        return
    outputs = [tuple(evaluate(d, values) for d in s) for s in symbolic.outputs]
    assert outputs == list(concrete.outputs)
    if not kind.startswith("Adaptive") and getattr(spec, "mode", "") != "area":
        assert evaluate(symbolic.other, values) == concrete.other
        assert evaluate(symbolic.kept_bytes(4), values) == concrete.kept_bytes(4)


DEEPSEEK = "deepseek --vocab 102400 --hidden 2048 --layers 27 --heads 16 --intermediate 10944 "
DEEPSEEK += "--moe-intermediate 1408 --shared-experts 2 --dense-layers 1 --no-correction-bias"


@pytest.mark.parametrize(
    ("words", "flag"),
    [
        # the reported case: k=E beside E=64, an Active formula in E while E is 64
        (f"{DEEPSEEK} --experts 64 --experts-per-token E", "--experts-per-token"),
        (f"{DEEPSEEK} --experts X --experts-per-token E", "--experts-per-token"),
        ("llama --vocab 100 --hidden 64 --heads H --layers 2", "--heads"),
        ("llama --vocab 100 --hidden X --heads H --layers 2", "--heads"),
        ("llama --vocab 100 --hidden 64 --heads 4 --layers 2 --intermediate D", "--intermediate"),
        ("gpt2 --vocab V --hidden 64 --heads 4 --layers 2 --context H", "--context"),
        ("lstm --vocab 65 --hidden 32 --layers 2 --embed-dim V", "--embed-dim"),
    ],
)
def test_a_letter_of_another_size_is_refused(words: str, flag: str) -> None:
    """A size given as another size's letter while that size is a number or another letter
    is refused in one line naming the flag, in every architecture (declare.py)."""
    result = run(words.split())
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"Error: Invalid value for '{flag}':"), line
    assert "a size's letter stands for that size only" in line


@pytest.mark.parametrize(
    "words",
    [
        "llama --vocab 100 --hidden H --heads H --layers 2",
        "llama --vocab V --hidden H --heads A --layers L --intermediate I",
        f"{DEEPSEEK} --experts E --experts-per-token k",
        f"{DEEPSEEK} --experts E --experts-per-token 6",
        "lstm --vocab 65 --hidden H --layers 2 --embed-dim H",
    ],
)
def test_letters_that_agree_still_work(words: str) -> None:
    result = run(words.split())
    assert result.exit_code == 0, result.output
