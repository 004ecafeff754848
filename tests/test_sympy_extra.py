"""Calculus on formulas, and sympy as the optional extra ``shapecalc[sympy]``.

``Expr.diff`` differentiates exactly without sympy; ``shapecalc.symbols`` gives the sympy
symbols ``to_sympy()`` uses (a plain ``sympy.Symbol("H")`` is another symbol to sympy);
and without sympy installed, the calls that need it say how to install it in one line,
while the library's counts and formulas and every command work as before.
"""

from __future__ import annotations

import ast
import json
import operator
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sympy
from hypothesis import given
from hypothesis import strategies as st

import shapecalc
from shapecalc.core.dims import Expr, floor_div, symbol
from shapecalc.core.errors import InvalidArgumentError, MissingDependencyError, ShapecalcError

ROOT = Path(__file__).resolve().parent.parent
NAMES = ("L", "V", "H", "E", "P", "d_in")
NEEDS_SYMPY = "needs sympy, which is not installed: pip install 'shapecalc[sympy]'"


def as_sympy(value: Any) -> Any:
    return value.to_sympy() if isinstance(value, Expr) else sympy.Integer(value)


# -- Expr.diff: known counts -------------------------------------------------------------


def test_lstm_total_by_hidden_and_vocab() -> None:
    total = shapecalc.lstm_lm(vocab="V", hidden="H", layers=2).total
    assert str(total) == "16·H² + 2·V·H + 16·H + V"
    H, V = symbol("H"), symbol("V")
    assert total.diff("H") == 32 * H + 2 * V + 16
    assert str(total.diff("H")) == "32·H + 2·V + 16"
    assert total.diff("V") == 2 * H + 1
    assert total.diff(H) == total.diff("H")  # the size itself names it too
    assert total.diff("H", 2) == total.diff("H", "H") == 32  # a constant is an int
    assert total.diff("H", "V") == 2 and total.diff("V", 2) == 0
    assert total.diff("H", 0) == total
    assert total.diff("L") == 0  # a size the formula does not hold


def test_layers_and_gpt2_totals() -> None:
    lstm = shapecalc.lstm_lm(vocab="V", hidden="H", layers="L").total
    assert str(lstm.diff("L")) == "8·H² + 8·H"
    gpt2 = shapecalc.gpt2(vocab="V", hidden="H", layers="L", heads=12, context="C").total
    assert str(gpt2) == "12·L·H² + 13·L·H + V·H + H·C + 2·H"
    assert str(gpt2.diff("H")) == "24·L·H + 13·L + V + C + 2"
    # one more layer costs exactly d/dL: the count is linear in L
    L = symbol("L")
    assert gpt2.subs({"L": L + 1}) - gpt2 == gpt2.diff("L")


def test_slope_of_a_quadratic_count_is_its_central_difference() -> None:
    total = shapecalc.lstm_lm(vocab=65, hidden="H", layers=2).total  # 16·H² + 146·H + 65
    slope = total.diff("H")
    for at in (1, 512, 4096):
        assert total.subs({"H": at + 1}) - total.subs({"H": at - 1}) == 2 * slope.subs({"H": at})


# -- Expr.diff agrees with sympy.diff through shapecalc.symbols ----------------------------


@st.composite
def polynomials(draw: st.DrawFn, depth: int = 3) -> Any:
    if depth == 0 or draw(st.booleans()):
        leaf = st.one_of(
            st.integers(-50, 50),
            st.sampled_from(NAMES).map(symbol),
            st.tuples(st.sampled_from(NAMES), st.integers(0, 5)).map(
                lambda t: symbol(t[0]) ** t[1]
            ),
        )
        return draw(leaf)
    op = draw(st.sampled_from([operator.add, operator.sub, operator.mul]))
    return op(draw(polynomials(depth - 1)), draw(polynomials(depth - 1)))


@given(a=polynomials(), name=st.sampled_from(NAMES), times=st.integers(1, 3))
def test_diff_agrees_with_sympy(a: Any, name: str, times: int) -> None:
    if not isinstance(a, Expr):
        return
    (x,) = shapecalc.symbols(name)
    ours = a.diff(name, times)
    theirs = sympy.diff(a.to_sympy(), x, times)
    assert sympy.expand(as_sympy(ours) - theirs) == 0
    assert isinstance(ours, int) == bool(theirs.is_number)  # a constant is an int
    # sympy.diff on the Expr itself calls Expr.diff, and answers as sympy does
    assert sympy.expand(sympy.diff(a, x, times) - theirs) == 0
    assert sympy.expand(sympy.diff(a, *shapecalc.symbols(name)) - sympy.diff(a.to_sympy(), x)) == 0


def d(value: Any, name: str) -> Any:
    return value.diff(name) if isinstance(value, Expr) else 0


@given(a=polynomials(), b=polynomials())
def test_diff_is_linear_and_follows_the_product_rule(a: Any, b: Any) -> None:
    for name in NAMES:
        assert d(a + b, name) - (d(a, name) + d(b, name)) == 0
        assert d(a * b, name) - (d(a, name) * b + a * d(b, name)) == 0
        assert d(7 * a, name) - 7 * d(a, name) == 0


def test_floors_are_constants_unless_they_hold_the_size() -> None:
    W, H = symbol("W"), symbol("H")
    out = floor_div(W - 1, 2) + 1  # a strided convolution's output width
    count = out * H * H
    assert str(count.diff("H")) == "2·H·⌊(W - 1)/2⌋ + 2·H"
    assert (
        sympy.expand(
            as_sympy(count.diff("H")) - sympy.diff(count.to_sympy(), *shapecalc.symbols("H"))
        )
        == 0
    )
    with pytest.raises(InvalidArgumentError) as err:
        count.diff("W")
    message = str(err.value)
    assert message == (
        "diff: ⌊(W - 1)/2⌋ depends on W, and a floor of a size has no polynomial derivative "
        "by that size; give W a value with subs() first"
    )
    assert count.subs({"W": 224}).diff("H") == 2 * 112 * H


BAD: list[Any] = [None, True, -1, 0, 10**30, 10**5000, float("nan"), "", "1x", "x" * 100_000]
BAD += [[], {}, object(), b"x", (1, 2), 3 * symbol("H"), symbol("H") + 1]


def label(value: Any) -> str:
    if isinstance(value, int) and value.bit_length() > 200:
        return f"<an integer of {value.bit_length()} bits>"
    return repr(value)[:20]


@pytest.mark.parametrize("bad", BAD, ids=label)
def test_diff_refuses_what_is_not_a_size_in_one_line(bad: Any) -> None:
    total = shapecalc.lstm_lm(vocab="V", hidden="H", layers=2).total
    for call in (lambda: total.diff(bad), lambda: total.diff("H", bad)):
        try:
            result = call()
        except (ShapecalcError, TypeError) as err:
            assert str(err) and "\n" not in str(err) and len(str(err)) <= 600
        else:  # a count after a size is fine: diff("H", 0) and diff("H", 10**30)
            assert isinstance(bad, int) and not isinstance(bad, bool) and bad >= 0, result


def test_diff_needs_a_size() -> None:
    with pytest.raises(TypeError, match=r"diff: name the size to differentiate by"):
        symbol("H").diff()


# -- shapecalc.symbols and the plain-Symbol pitfall ----------------------------------------


def test_symbols_are_the_ones_to_sympy_uses() -> None:
    total = shapecalc.lstm_lm(vocab="V", hidden="H", layers="L").total
    H, V, L = shapecalc.symbols("H V L")
    assert total.to_sympy().free_symbols == {H, V, L}
    assert shapecalc.symbols("H, V") == shapecalc.symbols(" H  V ") == (H, V)
    assert shapecalc.symbols("H") == (H,)  # always a tuple: sympy.diff(f, *symbols("H"))
    assert H.is_positive and H.is_integer
    assert sympy.diff(total, *shapecalc.symbols("H")) == sympy.diff(total.to_sympy(), H)
    assert sympy.diff(total.to_sympy(), H) == as_sympy(total.diff("H"))
    assert total.to_sympy().subs({H: 512, V: 65, L: 2}) == 4_269_121


def test_symbols_refuses_what_is_not_a_size_name() -> None:
    with pytest.raises(InvalidArgumentError, match=r"symbols takes one or more size names"):
        shapecalc.symbols(" , ")
    with pytest.raises(InvalidArgumentError, match=r"symbols: '2x' is not a size name"):
        shapecalc.symbols("H 2x")
    with pytest.raises(TypeError, match=r"symbols: names must be a string"):
        shapecalc.symbols(["H"])  # type: ignore[arg-type]


def test_the_plain_symbol_pitfall_is_real_refused_and_explained() -> None:
    total = shapecalc.lstm_lm(vocab="V", hidden="H", layers=2).total
    plain = sympy.Symbol("H")
    # the pitfall: sympy takes a plain Symbol for another H, and the derivative is 0
    assert sympy.diff(total.to_sympy(), plain) == 0
    assert sympy.diff(total.to_sympy(), *shapecalc.symbols("H")) != 0
    # on the Expr itself it is refused, naming the way out
    with pytest.raises(InvalidArgumentError) as err:
        sympy.diff(total, plain)
    assert "use shapecalc.symbols('H')" in str(err.value)
    # a size name is the size: sympy.diff(total, "H") is the true derivative
    assert sympy.diff(total, "H") == total.diff("H")
    # and the way is written where a reader looks for it
    docstrings = {
        "Expr.to_sympy": Expr.to_sympy.__doc__ or "",
        "Expr.diff": Expr.diff.__doc__ or "",
        "symbols": shapecalc.symbols.__doc__ or "",
    }
    for where, text in docstrings.items():
        assert 'sympy.Symbol("H")' in text and "symbols" in text, where
    page = (ROOT / "docs" / "api" / "dims.md").read_text(encoding="utf-8")
    assert 'sympy.diff(total.to_sympy(), sympy.Symbol("H"))' in page
    assert '*shapecalc.symbols("H")' in page and "shapecalc[sympy]" in page
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "pip install 'shapecalc[sympy]'" in readme and "shapecalc.symbols" in readme


def test_the_formulas_page_runs_and_its_comments_are_true() -> None:
    page = (ROOT / "docs" / "api" / "dims.md").read_text(encoding="utf-8")
    namespace: dict[str, Any] = {}
    checked = 0
    for block in re.findall(r"```python\n(.*?)```", page, re.S):
        for line in block.splitlines():
            code, _, comment = line.partition("  # ")
            if not code.strip():
                continue
            if "=" in code.split("(")[0] or code.startswith("import"):
                exec(code, namespace)
                continue
            assert repr(eval(code, namespace)) == comment.strip(), code
            checked += 1
    assert checked >= 5


# -- sympy, an optional extra --------------------------------------------------------------


def without_sympy(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a Python where ``import sympy`` fails, as in a plain install."""
    probe = "import sys\nsys.modules['sympy'] = None\n" + code
    return subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False, cwd=ROOT
    )


def test_library_without_sympy() -> None:
    code = """
import shapecalc
from shapecalc.core.errors import MissingDependencyError, ShapecalcError
assert issubclass(MissingDependencyError, ShapecalcError)
total = shapecalc.lstm_lm(vocab="V", hidden="H", layers=2).total
assert str(total) == "16·H² + 2·V·H + 16·H + V"
assert str(total.diff("H")) == "32·H + 2·V + 16"
assert total.subs({"H": 512, "V": 65}) == 4269121
assert shapecalc.lstm_lm(vocab=65, hidden=512, layers=2).total == 4269121
for call in (total.to_sympy, lambda: shapecalc.symbols("H")):
    try:
        call()
    except MissingDependencyError as err:
        print(err)
    else:
        raise SystemExit("no error")
"""
    done = without_sympy(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"to_sympy() {NEEDS_SYMPY}",
        f"symbols() {NEEDS_SYMPY}",
    ]


CLI_COMMANDS = [
    "lstm --layers 2 --hidden 512 --vocab 65 --format json",
    "lstm --layers L --hidden H --vocab V --all --explain",
    "lstm --layers L --hidden H --vocab V --all --format latex",
    "lstm --layers L --hidden H --vocab V --format tree",
    "gpt2 --layers L --hidden H --heads 12 --vocab V --context C --all --format markdown",
    "llama --layers L --hidden H --heads 32 --vocab V --all --format json",
    "mlp --inputs D --hidden H --layers 2 --outputs 10 --all",
    "solve lstm --params 10M --layers 2 --vocab 65",
    "solve lstm --params 10M --for layers --hidden 512 --vocab 65 --format json",
    "layer conv2d --in-channels 3 --out-channels 64 --kernel-size 7 --stride 2 "
    "--input-shape B,3,W,W --all",
    "layers",
    "compare-conventions lstm --layers L --hidden H --vocab V --format json",
]


@pytest.mark.parametrize("command", CLI_COMMANDS)
def test_commands_without_sympy(command: str) -> None:
    code = (
        f"from shapecalc.cli import main\nsys.argv = ['shapecalc', *{command.split()!r}]\nmain()\n"
    )
    done = without_sympy(code)
    assert done.returncode == 0, done.stderr
    assert not done.stderr
    if "--format json" in command:
        json.loads(done.stdout)


def test_sympy_is_imported_in_one_place_only() -> None:
    """Every use of sympy goes through core/dims.py's _sympy(), which names the extra."""
    package = ROOT / "shapecalc"
    imports: list[str] = []
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            if any(n == "sympy" or n.startswith("sympy.") for n in names):
                imports.append(f"{path.relative_to(package).as_posix()}:{node.lineno}")
    dims = (package / "core" / "dims.py").read_text(encoding="utf-8")
    line = dims.splitlines().index("        import sympy") + 1
    assert imports == [f"core/dims.py:{line}"]
    assert "def _sympy(what: str)" in dims


def test_sympy_is_an_extra_not_a_dependency() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert not any(d.startswith("sympy") for d in project["dependencies"])
    extras = project["optional-dependencies"]
    assert "sympy>=1.12" in extras["sympy"] and "sympy>=1.12" in extras["test"]


def test_missing_sympy_error_is_a_shapecalc_error() -> None:
    assert issubclass(MissingDependencyError, ShapecalcError)
