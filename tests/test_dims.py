"""Expr, the exact polynomial behind every formula: arithmetic, printing, sympy agreement."""

from __future__ import annotations

import operator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shapecalc.core.dims import Expr, as_size, dim_str, shape_str, symbol
from shapecalc.core.errors import InvalidArgumentError

NAMES = ("L", "V", "H", "E", "P", "d_in")


@st.composite
def polynomials(draw: st.DrawFn, depth: int = 3) -> Any:
    if depth == 0 or draw(st.booleans()):
        return draw(st.one_of(st.integers(-50, 50), st.sampled_from(NAMES).map(symbol)))
    op = draw(st.sampled_from([operator.add, operator.sub, operator.mul]))
    return op(draw(polynomials(depth - 1)), draw(polynomials(depth - 1)))


VALUES = st.fixed_dictionaries({n: st.integers(1, 10**6) for n in NAMES})


def value(x: Any, values: dict[str, int]) -> Any:
    return x.subs(values) if isinstance(x, Expr) else x


@given(a=polynomials(), b=polynomials(), values=VALUES)
def test_arithmetic_commutes_with_evaluation(a: Any, b: Any, values: dict[str, int]) -> None:
    for op in (operator.add, operator.sub, operator.mul):
        assert value(op(a, b), values) == op(value(a, values), value(b, values))


@given(a=polynomials(), values=VALUES)
def test_sympy_agrees(a: Any, values: dict[str, int]) -> None:
    if not isinstance(a, Expr):
        return
    sym = a.to_sympy()
    assert sym.subs({s: values[s.name] for s in sym.free_symbols}) == a.subs(values)
    assert as_size(sym, owner="t", field="f", minimum=-(10**9)) == a or a.subs(values) < -(10**9)


@given(a=polynomials())
def test_constant_results_are_ints(a: Any) -> None:
    zero = a - a
    assert zero == 0 and isinstance(zero, int)


def test_printing() -> None:
    L, V, H, E = (symbol(n) for n in "LVHE")
    assert str(8 * L * H * H + 8 * L * H + 2 * V * H + V) == "8·L·H² + 8·L·H + 2·V·H + V"
    assert (8 * L * H * H + 2 * V * H + V).ascii() == "8*L*H**2 + 2*V*H + V"
    assert (4 * H * E).latex() == "4 H E"
    assert (H * H - 1).latex() == "H^{2} - 1"
    assert symbol("d_in").latex() == "d_{in}"
    assert (4 * H * E + 4 * H * H + 8 * H).factored() == "4·H·(H + E + 2)"
    assert shape_str((2048,)) == "(2048,)"
    assert shape_str((4 * H, E)) == "(4·H, E)"
    assert dim_str(512) == "512"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(512, 512), ("512", 512), (" 7 ", 7), ("H", symbol("H")), ("d_model", symbol("d_model"))],
)
def test_as_size_accepts(value: Any, expected: Any) -> None:
    assert as_size(value, owner="x", field="hidden") == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "hidden must be an integer >= 1, got 0"),
        (-3, "got -3"),
        ("-3", "got -3"),
        (True, "got the bool True"),
        (5.0, r"got 5.0 \(float\)"),
        ("5.5", "or a size name such as H, got '5.5'"),
        ("", "got ''"),
        ("1e3", "got '1e3'"),
        ("H H", "got 'H H'"),
        ("٥", "got '٥'"),
        (None, r"got None \(NoneType\)"),
    ],
)
def test_as_size_refuses(value: Any, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message) as info:
        as_size(value, owner="lstm_lm", field="hidden")
    assert info.value.field == "hidden"
    assert info.value.layer == "lstm_lm"


def test_sympy_non_polynomial_refused() -> None:
    import sympy

    with pytest.raises(InvalidArgumentError, match="not a polynomial with integer coefficients"):
        as_size(sympy.Symbol("H") / 2, owner="x", field="hidden")


@given(
    x=st.integers(1, 10**6),
    k=st.integers(-5, 5),
    a=st.integers(1, 9),
    c=st.integers(-5, 5),
    b=st.integers(1, 9),
)
def test_a_floor_of_a_floor_is_one_floor_and_exact(x: int, k: int, a: int, c: int, b: int) -> None:
    from shapecalc.core.dims import floor_div

    X = symbol("X")
    nested = floor_div(floor_div(X + k, a) + c, b)
    value = nested.subs({"X": x}) if isinstance(nested, Expr) else nested
    assert value == ((x + k) // a + c) // b
    assert str(nested).count("⌊") <= 1


def test_floors_that_sum_to_their_base() -> None:
    """Hermite's identity: ⌊(L + 1)/2⌋ + ⌊L/2⌋ = L, and so on for any divisor; what is
    left over of unequal coefficients stays, and the sum is exact at every L."""
    from shapecalc.core.dims import floor_div

    L = symbol("L")
    assert floor_div(L + 1, 2) + floor_div(L, 2) == L
    assert floor_div(L + 2, 3) + floor_div(L, 3) + floor_div(L + 1, 3) == L
    assert floor_div(L + 3, 2) + floor_div(L + 2, 2) == L + 2
    mixed = 3 * floor_div(L + 1, 2) + 2 * floor_div(L, 2) + 5
    assert str(mixed) == "2·L + ⌊(L + 1)/2⌋ + 5"
    for n in range(1, 30):
        assert mixed.subs({"L": n}) == 3 * ((n + 1) // 2) + 2 * (n // 2) + 5


def test_floors_sort_by_their_constant_as_a_number() -> None:
    from shapecalc.core.dims import floor_div

    L = symbol("L")
    text = str(floor_div(L + 29, 49) + floor_div(L + 2, 49) + floor_div(L + 3, 49))
    assert text == "⌊(L + 2)/49⌋ + ⌊(L + 3)/49⌋ + ⌊(L + 29)/49⌋"
