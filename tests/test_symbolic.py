"""Formulas evaluated at the sizes equal the concrete counts (no torch needed)."""

from __future__ import annotations

from typing import Any

from hypothesis import given

import shapecalc
from shapecalc.dims import Expr
from tests.strategies import lstm_lm_args


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
        assert evaluate(model.layer_formula(layer.name), sizes) == model.layer_total(layer.name)


@given(args=lstm_lm_args())
def test_symbolic_model_evaluates_to_concrete_model(args: dict[str, Any]) -> None:
    concrete = shapecalc.lstm_lm(**args)
    names = {"vocab": "V", "hidden": "H", "embed_dim": "E", "proj_size": "P"}
    symbolic_args = dict(args)
    values = {}
    for arg, name in names.items():
        if args.get(arg):
            symbolic_args[arg] = name
            values[name] = args[arg]
    symbolic = shapecalc.lstm_lm(**symbolic_args)
    assert isinstance(symbolic.total, Expr)
    evaluated = symbolic.evaluate(**values)
    assert evaluated.total == concrete.total
    assert evaluated.named_parameters() == concrete.named_parameters()


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
    assert str(model.layer_formula("lstm")) == "12·H² + 4·H·E + 16·H"
    assert model.layer_formula("lstm").factored() == "4·H·(3·H + E + 4)"


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
