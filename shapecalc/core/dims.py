"""Sizes: a dim is an ``int`` or an :class:`Expr`, a polynomial over named sizes.

Every parameter count in shapecalc is one Python formula over dims, written once: given
ints it returns an int, given symbols it returns the formula. Counts and shapes of neural
network layers are sums and products of sizes, so an exact integer polynomial is all a
formula needs; it is small and pure Python, so concrete runs (and the formula column of a
concrete table) never import sympy. sympy is an optional extra (``pip install
'shapecalc[sympy]'``), imported here only, and only when a caller hands in a sympy object
or asks for one (:meth:`Expr.to_sympy`, :func:`symbols`); without it those calls raise
:class:`~shapecalc.core.errors.MissingDependencyError` naming the extra.

    >>> H, V = symbol("H"), symbol("V")
    >>> total = 16 * H * H + 16 * H + 2 * V * H + V
    >>> print(total)
    16·H² + 2·V·H + 16·H + V
    >>> total.subs({"H": 512, "V": 65})
    4269121
    >>> total.ascii()
    '16*H**2 + 2*V*H + 16*H + V'
    >>> print(total.diff("H"))
    32·H + 2·V + 16

The sizes of :meth:`Expr.to_sympy` are sympy symbols *with assumptions* (positive
integers), so a plain ``sympy.Symbol("H")``, or the string ``"H"``, is another symbol to
sympy: ``sympy.diff(total.to_sympy(), sympy.Symbol("H"))`` is silently 0. Take the
symbols from :func:`symbols` instead: ``sympy.diff(total, *shapecalc.symbols("H"))``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Union, overload

from shapecalc.core.errors import InvalidArgumentError, MissingDependencyError, echo

__all__ = [
    "Dim",
    "Expr",
    "as_size",
    "at_least",
    "compiled",
    "count_noun",
    "count_str",
    "dim_ascii",
    "dim_latex",
    "dim_str",
    "exact_div",
    "floor_div",
    "is_symbolic",
    "known",
    "parse_int",
    "product",
    "same_shape",
    "same_size",
    "shape_str",
    "symbol",
    "symbols",
]

Monomial = tuple[tuple[str, int], ...]
Dim = Union[int, "Expr"]

#: factors print in this order inside a term (2·V·H, 4·H·E, 8·L·H²); others follow by name
_PREFERRED = ("L", "D", "B", "T", "V", "H", "P", "E")
#: terms sort by degree, then by the powers of these sizes (16·H² + 2·V·H + 16·H + V)
_TERM_ORDER = ("L", "D", "B", "T", "H", "P", "E", "V")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}\Z")
_SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def _symbol_key(name: str) -> tuple[int, str]:
    if name in _PREFERRED:
        return (_PREFERRED.index(name), name)
    return (len(_PREFERRED), name)


def _name_key(name: str) -> tuple[str, int, int]:
    """A size name in sort order; a floor's by its base, then its constant as a number
    (``⌊(L + 2)/49⌋`` before ``⌊(L + 29)/49⌋``), then its divisor."""
    floor = _FLOORS.get(name)
    if floor is None:
        return (name, 0, 0)
    value, divisor = floor
    constant = value._terms.get((), 0)
    base = value - constant
    return (f"floor[{base.ascii() if isinstance(base, Expr) else base}", constant, divisor)


_Key = tuple[int, list[int], list[tuple[tuple[str, int, int], int]]]


def _monomial_key(mono: Monomial) -> _Key:
    found = _KEYS.get(mono)
    if found is None:  # a model's formulas sort the same few monomials again and again
        found = _KEYS[mono] = _monomial_key_of(mono)
    return found


def _monomial_key_of(mono: Monomial) -> _Key:
    powers = dict(mono)
    degree = sum(powers.values())
    leading = [-powers.get(name, 0) for name in _TERM_ORDER]
    rest = sorted((_name_key(name), -power) for name, power in mono if name not in _TERM_ORDER)
    return (-degree, leading, rest)


def _hermite(terms: dict[Monomial, int]) -> dict[Monomial, int]:
    """Floors that sum to their base, by Hermite's identity: for an integer x,
    ``⌊x/d⌋ + ⌊(x + 1)/d⌋ + ... + ⌊(x + d - 1)/d⌋ = x``. Terms ``c·m·⌊(x + r)/d⌋`` (the
    same m, x and d) whose r cover d consecutive values become ``c·m·(x + r0)``, with the
    smallest of their coefficients c; what is left over of the others stays. (qwen-moe's
    layers in runs P apart: what every layer has, counted over all P runs, is L times.)"""
    groups: dict[tuple[Monomial, tuple[tuple[Monomial, int], ...], int], dict[int, Monomial]] = {}
    for mono, coef in terms.items():
        if coef <= 0:
            continue
        floors = [(name, power) for name, power in mono if name in _FLOORS]
        if len(floors) != 1 or floors[0][1] != 1:
            continue
        value, divisor = _FLOORS[floors[0][0]]
        constant = value._terms.get((), 0)
        base = tuple(sorted((m, c) for m, c in value._terms.items() if m))
        rest = tuple(item for item in mono if item != floors[0])
        groups.setdefault((rest, base, divisor), {})[constant] = mono
    out: dict[Monomial, int] | None = None
    for (factor, linear, divisor), by_constant in groups.items():
        if len(by_constant) < divisor:
            continue
        for start in sorted(by_constant):
            window = [by_constant.get(start + r) for r in range(divisor)]
            if out is None:
                out = dict(terms)
            if any(m is None or out.get(m, 0) <= 0 for m in window):
                continue
            least = min(out[m] for m in window if m is not None)
            for m in window:
                if m is not None:
                    out[m] -= least
            x: dict[Monomial, int] = dict(linear)
            x[()] = x.get((), 0) + start
            for mono, coef in x.items():
                product = _mul_monomials(factor, mono)
                out[product] = out.get(product, 0) + least * coef
    return terms if out is None else out


def _mul_monomials(a: Monomial, b: Monomial) -> Monomial:
    found = _PRODUCTS.get((a, b))
    if found is None:  # the same few products, made by every layer of a model
        found = _PRODUCTS[a, b] = _mul_monomials_of(a, b)
    return found


#: memos of the two functions above (monomials are few: products of a model's sizes)
_KEYS: dict[Monomial, _Key] = {}
_PRODUCTS: dict[tuple[Monomial, Monomial], Monomial] = {}


def _mul_monomials_of(a: Monomial, b: Monomial) -> Monomial:
    powers: dict[str, int] = dict(a)
    for name, power in b:
        powers[name] = powers.get(name, 0) + power
    return tuple(sorted(powers.items(), key=lambda item: _symbol_key(item[0])))


_new = object.__new__


class Expr:
    """An exact polynomial with integer coefficients over positive-integer sizes.

    Instances are immutable and never constant: arithmetic that cancels every symbol
    returns a plain ``int``, so concrete work stays in ints.
    """

    __slots__ = ("_hash", "_terms")

    _terms: dict[Monomial, int]
    _hash: int

    def __init__(self, terms: Mapping[Monomial, int]) -> None:
        if not isinstance(terms, Mapping):
            raise TypeError(
                f"Expr: terms must be a mapping of monomials to coefficients (made by "
                f"shapecalc.symbol('H') and arithmetic), got {type(terms).__name__}"
            )
        self._terms = {mono: coef for mono, coef in terms.items() if coef != 0}

    # -- construction -------------------------------------------------------------------
    @staticmethod
    def _make(terms: Mapping[Monomial, int]) -> Dim:
        nonzero = {mono: coef for mono, coef in terms.items() if coef != 0}
        if not nonzero:
            return 0
        if len(nonzero) == 1 and () in nonzero:
            return nonzero[()]
        made = _new(Expr)  # Expr(nonzero) without checking and filtering it again
        made._terms = nonzero
        return made

    @staticmethod
    def _terms_of(value: Dim) -> dict[Monomial, int]:
        if isinstance(value, Expr):
            return value._terms
        return {(): value} if value else {}

    # -- arithmetic ---------------------------------------------------------------------
    def __add__(self, other: Dim) -> Dim:
        if not isinstance(other, (int, Expr)):
            return NotImplemented
        terms = dict(self._terms)
        for mono, coef in Expr._terms_of(other).items():
            terms[mono] = terms.get(mono, 0) + coef
        if _FLOORS and any(name in _FLOORS for mono in terms for name, _ in mono):
            terms = _hermite(terms)
        return Expr._make(terms)

    __radd__ = __add__

    def __neg__(self) -> Dim:
        return Expr._make({mono: -coef for mono, coef in self._terms.items()})

    def __sub__(self, other: Dim) -> Dim:
        if not isinstance(other, (int, Expr)):
            return NotImplemented
        return self + (-other)

    def __rsub__(self, other: Dim) -> Dim:
        if not isinstance(other, (int, Expr)):
            return NotImplemented
        return other + (-self)

    def __mul__(self, other: Dim) -> Dim:
        if not isinstance(other, (int, Expr)):
            return NotImplemented
        terms: dict[Monomial, int] = {}
        theirs = Expr._terms_of(other).items()
        for mono_a, coef_a in self._terms.items():
            for mono_b, coef_b in theirs:
                mono = _mul_monomials(mono_a, mono_b)
                terms[mono] = terms.get(mono, 0) + coef_a * coef_b
        return Expr._make(terms)

    __rmul__ = __mul__

    def __pow__(self, exponent: int) -> Dim:
        if not isinstance(exponent, int) or isinstance(exponent, bool) or exponent < 0:
            return NotImplemented
        if exponent > MAX_POWER:
            rule = f"a size's power is at most {MAX_POWER}"
            raise InvalidArgumentError(
                f"{rule}, got {int_text(exponent)}", field="exponent", value=exponent, rule=rule
            )
        result: Dim = 1
        for _ in range(exponent):
            result = result * self
        return result

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Expr):
            return self._terms == other._terms
        return False  # an Expr is never constant, so never equal to an int

    def __hash__(self) -> int:
        try:
            return self._hash
        except AttributeError:  # worked out when first asked for: most are never hashed
            self._hash = hash(frozenset(self._terms.items()))
            return self._hash

    # -- inspection ---------------------------------------------------------------------
    @property
    def free_symbols(self) -> frozenset[str]:
        """The names of the sizes this expression depends on (inside a floor too)."""
        names: set[str] = set()
        for mono in self._terms:
            for name, _ in mono:
                floor = _FLOORS.get(name)
                names.update(floor[0].free_symbols if floor else (name,))
        return frozenset(names)

    def subs(self, values: Mapping[str, Dim]) -> Dim:
        """Replace named sizes by ints or expressions; an int when nothing symbolic is left.

        Example:

            >>> (4 * symbol("H") * symbol("E")).subs({"H": 512})
            Expr('2048*E')
        """
        if not isinstance(values, Mapping):
            raise TypeError(
                f"subs: values must be a mapping of size names to values, got "
                f"{type(values).__name__}"
            )
        total: Dim = 0
        for mono, coef in self._terms.items():
            term: Dim = coef
            for name, power in mono:
                floor = _FLOORS.get(name)
                base: Dim = (
                    floor_div(floor[0].subs(values), floor[1])
                    if floor
                    else values.get(name, Expr({((name, 1),): 1}))
                )
                term = term * base**power
            total = total + term
        return total

    def python(self) -> str:
        """The expression as Python source over its size names, exact in ints (a floor
        term is ``//``): what :func:`compiled` evaluates.

            >>> print((2 * symbol("V") * symbol("H") + symbol("H") ** 2).python())
            H**2 + 2*V*H
        """
        pieces = []
        for mono, coef in self.sorted_terms():
            factors = [str(coef)] if coef != 1 or not mono else []
            for name, power in mono:
                floor = _FLOORS.get(name)
                base = f"(({floor[0].python()})//{floor[1]})" if floor else name
                factors.append(base if power == 1 else f"{base}**{power}")
            pieces.append("*".join(factors))
        return " + ".join(pieces).replace("+ -", "- ")

    def sorted_terms(self) -> list[tuple[Monomial, int]]:
        return sorted(self._terms.items(), key=lambda item: _monomial_key(item[0]))

    # -- printing -----------------------------------------------------------------------
    def _render(
        self,
        sep: str,
        power: Callable[[int], str],
        name: Callable[[str], str],
        number: Callable[[int], str] = str,
    ) -> str:
        pieces: list[str] = []
        for mono, coef in self.sorted_terms():
            factors = [name(n) + (power(p) if p != 1 else "") for n, p in mono]
            pieces.append(_join_term(coef, factors, sep, first=not pieces, number=number))
        return "".join(pieces)

    def __str__(self) -> str:
        """Readable form, thousands separators in the coefficients as in counts:
        ``8·L·H² + 2·V·H``, ``1,120,833·H``."""
        key = (0, *self._terms.items())
        found = _RENDERED.get(key)
        if found is None:
            found = self._render("·", _superscript, _unicode_name, number=_grouped)
            _remember(key, found)
        return found

    def ascii(self) -> str:
        """Python/sympy syntax: ``8*H**2 + 2*V*H + V``."""
        key = (1, *self._terms.items())
        found = _RENDERED.get(key)
        if found is None:
            found = self._render("*", _ascii_power, _ascii_name)
            _remember(key, found)
        return found

    def grouped(self) -> str:
        """The same as ``str``: thousands separators in the coefficients, ``34,824·B·T``."""
        return str(self)

    def latex(self) -> str:
        """LaTeX: ``8 H^{2} + 2 V H + V``."""
        return self._render(" ", lambda p: f"^{{{p}}}", _latex_name, number=_latex_grouped)

    def factored(self) -> str:
        """Pull the common factor out: ``4·H·(E + H + 2)``; plain ``str`` when there is none."""
        terms = self._terms
        if len(terms) < 2:
            return str(self)
        content = math.gcd(*terms.values())
        if all(coef < 0 for coef in terms.values()):
            content = -content
        common: dict[str, int] = {}
        monos = list(terms)
        for name, power in monos[0]:
            lowest = min(dict(mono).get(name, 0) for mono in monos)
            if lowest:
                common[name] = min(power, lowest)
        if content == 1 and not common:
            return str(self)
        divided = {
            tuple((n, p - common.get(n, 0)) for n, p in mono if p - common.get(n, 0)): coef
            // content
            for mono, coef in terms.items()
        }
        inner = Expr._make(divided)
        outer_factors = [
            n + (_superscript(p) if p != 1 else "")
            for n, p in sorted(common.items(), key=lambda item: _symbol_key(item[0]))
        ]
        outer = _join_term(content, outer_factors, "·", first=True, number=_grouped)
        return f"{outer}·({dim_str(inner)})" if outer else f"({dim_str(inner)})"

    def __repr__(self) -> str:
        return f"Expr({self.ascii()!r})"

    @overload
    def diff(self, name: str | Expr, /, *names: str | Expr | int) -> Dim: ...

    @overload
    def diff(self, *args: Any, **options: Any) -> Any: ...

    def diff(self, *args: Any, **options: Any) -> Any:
        """The exact derivative by a size, by the power rule: no sympy needed.

        Each name is a size name (``"H"``) or the size itself (``symbol("H")``);
        ``diff("H", "V")`` differentiates by H, then by V, and ``diff("H", 2)`` twice by H,
        as sympy's ``diff`` does. Like all arithmetic on sizes, a constant result is an
        ``int``. A floor term such as ``⌊(W - 1)/2⌋`` is a constant to the derivative
        when it does not hold the size, and refused (a step function has no polynomial
        derivative) when it does.

            >>> H, V = symbol("H"), symbol("V")
            >>> total = 16 * H**2 + 2 * V * H + 16 * H + V
            >>> print(total.diff("H"))
            32·H + 2·V + 16
            >>> total.diff(V), total.diff("H", 2), total.diff("L")
            (Expr('2*H + 1'), 32, 0)

        ``sympy.diff(total, ...)`` calls this method. Given sympy symbols (or counts, or
        sympy's options) it answers as sympy does for ``total.to_sympy()``, a sympy
        expression; a plain ``sympy.Symbol("H")`` in place of the size H, which sympy would
        silently differentiate to 0, is refused naming :func:`symbols`.
        """
        if not args:
            raise TypeError("diff: name the size to differentiate by, such as diff('H')")
        if options or any(type(arg).__module__.startswith("sympy") for arg in args):
            return self._sympy_diff(args, options)
        steps: list[list[Any]] = []  # [size, how many times]
        counted = True  # no count before the first size, nor two counts in a row
        for arg in args:
            if isinstance(arg, int) and not isinstance(arg, bool):
                if counted or arg < 0:
                    rule = "a count of derivatives is an int >= 0 right after a size"
                    raise InvalidArgumentError(
                        f"diff: {rule} (diff('H', 2)), got {int_text(arg)}",
                        field="name",
                        value=arg,
                        rule=rule,
                    )
                steps[-1][1], counted = arg, True
            else:
                steps.append([_size_name(arg, function="diff"), 1])
                counted = False
        result: Dim = self
        for size, count in steps:
            for _ in range(count):
                if not isinstance(result, Expr):
                    return 0
                result = result._diff(size)
        return result

    def _diff(self, size: str) -> Dim:
        terms: dict[Monomial, int] = {}
        for mono, coef in self._terms.items():
            for other, _ in mono:
                floor = _FLOORS.get(other)
                if floor is not None and size in floor[0].free_symbols:
                    rule = "a floor of a size has no polynomial derivative by that size"
                    raise InvalidArgumentError(
                        f"diff: {_unicode_name(other)} depends on {size}, and {rule}; "
                        f"give {size} a value with subs() first",
                        field="name",
                        value=size,
                        rule=rule,
                    )
            power = dict(mono).get(size, 0)
            if power:
                key = tuple((n, p - 1 if n == size else p) for n, p in mono if n != size or p > 1)
                terms[key] = terms.get(key, 0) + coef * power
        return Expr._make(terms)

    def _sympy_diff(self, args: tuple[Any, ...], options: dict[str, Any]) -> Any:
        """``sympy.diff(self.to_sympy(), *args, **options)``, with size names taken as
        the sizes, and a plain sympy Symbol named as a size refused."""
        sympy = _sympy("diff() by sympy symbols")
        own = {name: _sympy_symbol(sympy, name) for name in self.free_symbols}
        variables: list[Any] = []
        for arg in args:
            if isinstance(arg, Expr):
                arg = _sympy_symbol(sympy, _size_name(arg, function="diff"))
            elif isinstance(arg, str) and arg in own:
                arg = own[arg]
            elif getattr(arg, "is_Symbol", False) and str(arg) in own and arg != own[str(arg)]:
                rule = "differentiate by the sizes' own symbols, from shapecalc.symbols()"
                raise InvalidArgumentError(
                    f"diff: Symbol({str(arg)!r}) is not the size {arg} (sympy's {arg} with "
                    f"positive=True, integer=True), so sympy would differentiate by it to 0; "
                    f"use shapecalc.symbols({str(arg)!r})",
                    field="name",
                    value=str(arg),
                    rule=rule,
                )
            variables.append(arg)
        return sympy.diff(self.to_sympy(), *variables, **options)

    def _sympy_(self) -> Any:
        """Lets sympy take an Expr anywhere: ``sympy.diff(model.total, *symbols("H"))``.

        Differentiate, solve or substitute with the symbols of :func:`symbols`: a plain
        ``sympy.Symbol("H")`` (or the string ``"H"``) lacks the positive-integer
        assumptions of the sizes here, so sympy takes it for another symbol and
        ``sympy.diff(model.total, "H")`` is silently 0.
        """
        return self.to_sympy()

    def to_sympy(self) -> Any:
        """The same polynomial as a sympy expression over positive-integer symbols.

        Needs sympy (``pip install 'shapecalc[sympy]'``). Its sizes are sympy symbols
        with ``positive=True, integer=True``, the ones :func:`symbols` returns; a plain
        ``sympy.Symbol("H")`` is a different symbol to sympy, so differentiating by it
        gives 0. :meth:`diff` differentiates without sympy.

            >>> import sympy
            >>> total = (16 * symbol("H") ** 2 + 2 * symbol("V") * symbol("H")).to_sympy()
            >>> sympy.diff(total, sympy.Symbol("H"))  # a plain Symbol: another H, silently 0
            0
            >>> H, = symbols("H")  # the H of total
            >>> sympy.diff(total, H)
            32*H + 2*V
        """
        sympy = _sympy("to_sympy()")
        return self._as_sympy(sympy)

    def _as_sympy(self, sympy: Any) -> Any:
        values: dict[str, Any] = {n: _sympy_symbol(sympy, n) for n in self.free_symbols}
        for mono in self._terms:
            for name, _ in mono:
                if name in _FLOORS:
                    numerator, divisor = _FLOORS[name]
                    values[name] = sympy.floor(numerator._as_sympy(sympy) / divisor)
        return sympy.Add(
            *(
                sympy.Mul(coef, *(values[n] ** p for n, p in mono))
                for mono, coef in self._terms.items()
            )
        )


#: how to get sympy, the optional dependency of to_sympy(), symbols() and sympy input
SYMPY_EXTRA = "pip install 'shapecalc[sympy]'"


def _sympy(what: str) -> Any:
    """The sympy module, or :class:`MissingDependencyError` naming ``what`` needs it."""
    try:
        import sympy
    except ImportError:
        raise MissingDependencyError(
            f"{what} needs sympy, which is not installed: {SYMPY_EXTRA}",
            field="sympy",
            rule="sympy must be installed",
        ) from None
    return sympy


def _sympy_symbol(sympy: Any, name: str) -> Any:
    """The one sympy symbol a size is: a positive integer."""
    return sympy.Symbol(name, positive=True, integer=True)


def _size_name(value: Any, *, function: str) -> str:
    """A size's name from a name, a single-symbol :class:`Expr` or a sympy Symbol."""
    if isinstance(value, Expr):
        if len(value._terms) == 1:
            ((mono, coef),) = value._terms.items()
            if coef == 1 and len(mono) == 1 and mono[0][1] == 1 and mono[0][0] not in _FLOORS:
                return mono[0][0]
        rule = "a size to differentiate by is a single size such as H"
        raise InvalidArgumentError(
            f"{function}: {rule}, got {echo(str(value))}",
            field="name",
            value=value,
            rule=rule,
        )
    if type(value).__module__.startswith("sympy") and getattr(value, "is_Symbol", False):
        value = str(value)
    if not isinstance(value, str):
        raise TypeError(
            f"{function}: name must be a size name such as 'H', got {type(value).__name__}"
        )
    if not _NAME.match(value):
        rule = "a size name is a letter followed by letters, digits or _"
        raise InvalidArgumentError(
            f"{function}: {echo(value)} is not a size name ({rule})",
            field="name",
            value=value,
            rule=rule,
        )
    return value


def _join_term(
    coef: int, factors: list[str], sep: str, *, first: bool, number: Callable[[int], str] = str
) -> str:
    if not factors:
        body = number(abs(coef))
    elif abs(coef) == 1:
        body = sep.join(factors)
    else:
        body = sep.join([number(abs(coef)), *factors])
    if first:
        return ("-" if coef < 0 else "") + body
    return (" - " if coef < 0 else " + ") + body


#: the text of expressions already written, by form and terms: a model's formulas write
#: the same few again and again (every layer's, its description's, its subtotals)
_RENDERED: dict[tuple[Any, ...], str] = {}
#: the most kept (a sweep may write many); then it starts again
MAX_RENDERED = 4096


def _remember(key: tuple[Any, ...], text: str) -> None:
    if len(_RENDERED) >= MAX_RENDERED:
        _RENDERED.clear()
    _RENDERED[key] = text


def _ascii_power(power: int) -> str:
    return f"**{power}"


def _superscript(power: int) -> str:
    return str(power).translate(_SUPERSCRIPT)


def _latex_name(name: str) -> str:
    floor = _FLOORS.get(name)
    if floor:
        return rf"\left\lfloor \frac{{{dim_latex(floor[0])}}}{{{floor[1]}}} \right\rfloor"
    head, _, tail = name.partition("_")
    return f"{head}_{{{tail}}}" if tail else name


def _unicode_name(name: str) -> str:
    floor = _FLOORS.get(name)
    return f"⌊({dim_str(floor[0])})/{floor[1]}⌋" if floor else name


def _ascii_name(name: str) -> str:
    floor = _FLOORS.get(name)
    return f"floor(({dim_ascii(floor[0])})/{floor[1]})" if floor else name


#: the floors of symbolic quotients made by :func:`floor_div`, by their internal name
_FLOORS: dict[str, tuple[Expr, int]] = {}


def count_noun(count: Dim, noun: str) -> str:
    """``1 parameter``, ``4,269,121 parameters``, ``16·H² + V parameters``: a count with
    its noun, singular for 1.

        >>> count_noun(1, "parameter"), count_noun(4269121, "parameter")
        ('1 parameter', '4,269,121 parameters')
    """
    return f"{count_str(count)} {noun}{'' if count == 1 else 's'}"


def compiled(values: Mapping[str, Dim], names: tuple[str, ...]) -> Callable[..., tuple[int, ...]]:
    """One Python function that evaluates every dim of ``values`` at once from the sizes
    ``names`` (positional, in that order) and returns their ints in the same order:
    a sweep evaluates thousands of points with one call each, not a tree walk.

        >>> f = compiled({"total": 2 * symbol("V") * symbol("H")}, ("V", "H"))
        >>> f(65, 512)
        (66560,)
    """
    free: set[str] = set()
    for value in values.values():
        if isinstance(value, Expr):
            free |= value.free_symbols
    missing = sorted(free - set(names))
    if missing:
        raise ValueError(f"compiled: no value for the size {missing[0]}")
    for name in names:
        if not _NAME.match(name):
            raise ValueError(f"compiled: {echo(name)} is not a size name")
    body = ", ".join(
        f"({value.python()})" if isinstance(value, Expr) else str(int(value))
        for value in values.values()
    )
    source = f"def _point({', '.join(names)}):\n    return ({body}{',' if values else ''})\n"
    scope: dict[str, Any] = {}
    exec(compile(source, "<shapecalc formula>", "exec"), scope)  # our own polynomial text
    function: Callable[..., tuple[int, ...]] = scope["_point"]
    return function


def floor_div(value: Dim, divisor: int) -> Dim:
    """``value // divisor`` for a size: exact for ints, and for an expression whose
    coefficients all divide; otherwise a floor term ``⌊(W - 1)/2⌋`` that evaluates
    exactly once its sizes have values (as PyTorch's strided convolution does).

        >>> W = symbol("W")
        >>> print(floor_div(W - 1, 2) + 1)
        ⌊(W - 1)/2⌋ + 1
        >>> (floor_div(W - 1, 2) + 1).subs({"W": 224})
        112
        >>> print(floor_div(4 * W + 8, 4))
        W + 2
        >>> print(floor_div(2 * W - 1, 2) + 1)  # for an integer W
        W
        >>> print(floor_div(floor_div(W - 1, 2) + 1 - 1, 2))  # a floor of a floor is one
        ⌊(W - 1)/4⌋
    """
    if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < 1:
        raise ValueError(f"floor_div needs a positive int divisor, got {echo(divisor)}")
    if isinstance(value, int):
        return value // divisor
    if divisor == 1:
        return value
    terms = value._terms
    if all(coef % divisor == 0 for mono, coef in terms.items() if mono):
        # ⌊(k·x + c)/k⌋ = x + ⌊c/k⌋ for integers: Whisper's stride-2 stem, 2·P frames to P
        whole = Expr._make({mono: coef // divisor for mono, coef in terms.items() if mono})
        return whole + terms.get((), 0) // divisor
    inner = _floor_plus_constant(value)
    if inner is not None:  # ⌊(⌊x/a⌋ + c)/b⌋ = ⌊(x + a·c)/(a·b)⌋ for integers
        (x, a), c = inner
        return floor_div(x + a * c, a * divisor)
    name = f"floor[{value.ascii()}]/{divisor}"
    _FLOORS.setdefault(name, (value, divisor))
    return Expr({((name, 1),): 1})


def _floor_plus_constant(value: Expr) -> tuple[tuple[Expr, int], int] | None:
    """``(x, a), c`` when ``value`` is ``⌊x/a⌋ + c`` with an int c, else None."""
    monomials = [mono for mono in value._terms if mono]
    if len(monomials) != 1 or value._terms[monomials[0]] != 1 or len(monomials[0]) != 1:
        return None
    ((name, power),) = monomials[0]
    if power != 1 or name not in _FLOORS:
        return None
    return _FLOORS[name], value._terms.get((), 0)


def exact_div(value: Dim, divisor: Dim) -> Dim | None:
    """``value / divisor`` when it divides exactly (an int, or a polynomial by a single
    term such as ``B·T``); None when it does not.

        >>> B, T, H = symbol("B"), symbol("T"), symbol("H")
        >>> print(exact_div(8 * B * T * H**2 + 4 * B * T * H, B * T))
        8·H² + 4·H
        >>> exact_div(7, 2) is None
        True
    """
    if divisor == 0:
        return None
    if isinstance(divisor, int):  # a constant: the monomial with no sizes
        d_mono: Monomial = ()
        d_coef = divisor
    elif len(divisor._terms) == 1:
        ((d_mono, d_coef),) = divisor._terms.items()
    else:
        return _divide(Expr._terms_of(value), divisor._terms)
    result: dict[Monomial, int] = {}
    for mono, coef in Expr._terms_of(value).items():
        powers = dict(mono)
        for name, power in d_mono:
            if powers.get(name, 0) < power:
                return None
            powers[name] -= power
        if coef % d_coef:
            return None
        key = tuple(
            sorted(((n, p) for n, p in powers.items() if p), key=lambda i: _symbol_key(i[0]))
        )
        result[key] = result.get(key, 0) + coef // d_coef
    return Expr._make(result)


def _divide(value: Mapping[Monomial, int], divisor: Mapping[Monomial, int]) -> Dim | None:
    """``value / divisor`` for a divisor of several terms (the ``L - 1`` blocks after a
    dense first one), by long division in graded lexicographic order: None when a
    remainder is left or a coefficient does not divide."""
    names = sorted({n for mono in (*value, *divisor) for n, _ in mono}, key=_symbol_key)

    def order(mono: Monomial) -> tuple[int, list[int]]:
        powers = dict(mono)
        return (sum(powers.values()), [powers.get(n, 0) for n in names])

    lead, lead_coef = max(divisor.items(), key=lambda item: order(item[0]))
    left = {mono: coef for mono, coef in value.items() if coef}
    quotient: dict[Monomial, int] = {}
    for _ in range(10_000):  # each step removes the leading term: bounded by the terms
        if not left:
            return Expr._make(quotient)
        mono, coef = max(left.items(), key=lambda item: order(item[0]))
        powers = dict(mono)
        for name, power in lead:
            if powers.get(name, 0) < power:
                return None
            powers[name] -= power
        if coef % lead_coef:
            return None
        step = tuple(
            sorted(((n, p) for n, p in powers.items() if p), key=lambda i: _symbol_key(i[0]))
        )
        times = coef // lead_coef
        quotient[step] = quotient.get(step, 0) + times
        for d_mono, d_coef in divisor.items():
            product_mono = _mul_monomials(step, d_mono)
            left[product_mono] = left.get(product_mono, 0) - times * d_coef
            if not left[product_mono]:
                del left[product_mono]
    return None


def symbol(name: str) -> Expr:
    """A named positive-integer size such as ``H``."""
    if not _NAME.match(name):
        raise InvalidArgumentError(
            f"{echo(name)} is not a size name (a letter, then up to 31 letters, digits or _)",
            field="symbol",
            value=name,
            rule="a size name is a letter followed by letters, digits or _",
        )
    return Expr({((name, 1),): 1})


def symbols(names: str) -> tuple[Any, ...]:
    """The sympy symbols of sizes, as :meth:`Expr.to_sympy` writes them: always a tuple.

    Names are separated by spaces or commas. Use these, not ``sympy.Symbol("H")``, to
    differentiate, solve or substitute in a formula with sympy: a plain Symbol has no
    assumptions, the sizes are positive integers, and sympy holds the two for different
    symbols (a derivative by the plain one is silently 0). Needs sympy (``pip install
    'shapecalc[sympy]'``).

        >>> import sympy, shapecalc
        >>> total = shapecalc.lstm_lm(vocab="V", hidden="H", layers=2).total
        >>> H, V = symbols("H V")
        >>> sympy.diff(total, H)
        32*H + 2*V + 16
        >>> sympy.diff(total, *symbols("V"))
        2*H + 1
    """
    if not isinstance(names, str):
        raise TypeError(
            f"symbols: names must be a string of size names such as 'H V', got "
            f"{type(names).__name__}"
        )
    found = [name for name in re.split(r"[\s,]+", names) if name]
    if not found:
        rule = "symbols takes one or more size names, separated by spaces or commas"
        raise InvalidArgumentError(
            f"{rule}, got {echo(names)}", field="names", value=names, rule=rule
        )
    for name in found:
        _size_name(name, function="symbols")
    sympy = _sympy("symbols()")
    return tuple(_sympy_symbol(sympy, name) for name in found)


def is_symbolic(value: Dim) -> bool:
    return isinstance(value, Expr)


def at_least(a: Dim, b: Dim) -> bool:
    """Whether ``a >= b`` for every value of the sizes, each a size of at least 1 (a
    floor of them at least 0): every term of ``b - a`` is covered by terms of ``a - b``
    that are multiples of it (``B·T`` covers ``B`` and 1). False when it may not hold,
    or when this test cannot tell (``T² >= 4·T`` holds from T = 4 only).

    Example:

        >>> T, B = symbol("T"), symbol("B")
        >>> at_least(2 * B * T + B, B * T), at_least(B * T, 3 * B), at_least(T * T, 4 * T)
        (True, False, False)
        >>> at_least(4 * B * T, 3 * B * T + B)
        True
    """
    diff = a - b
    if isinstance(diff, int):
        return diff >= 0
    terms = Expr._terms_of(diff)
    spare = {mono: coef for mono, coef in terms.items() if coef > 0}
    for mono, coef in sorted(terms.items(), key=lambda item: -len(item[0])):
        need = -coef
        if need <= 0:
            continue
        powers = dict(mono)
        for other in sorted(spare, key=len):
            has = dict(other)
            if any(has.get(name, 0) < power for name, power in powers.items()):
                continue
            extra = [n for n, p in other if p > powers.get(n, 0)]
            if any(n.startswith("floor[") for n in extra):
                continue  # a floor may be 0
            used = min(need, spare[other])
            spare[other] -= used
            need -= used
            if not need:
                break
        if need:
            return False
    return True


def known(value: Dim) -> int | None:
    """The int value of a dim, or None when it is symbolic."""
    return value if isinstance(value, int) else None


def product(values: Iterable[Dim]) -> Dim:
    result: Dim = 1
    for value in values:
        result = result * value
    return result


def _grouped(number: int) -> str:
    """``1,120,833``: thousands separators, as counts are written."""
    return f"{number:,}"


def _latex_grouped(number: int) -> str:
    """``1{,}120{,}833``: the separators as LaTeX spaces them in math mode."""
    return _grouped(number).replace(",", "{,}")


def dim_str(value: Dim) -> str:
    """Readable form: ``512`` or ``4·H·E``."""
    return str(value)


def count_str(value: Dim) -> str:
    """A count for people: ``4,269,121``, or the formula when symbolic."""
    return f"{value:,}" if isinstance(value, int) else dim_str(value)


def same_size(a: Dim, b: Dim) -> bool:
    """Equal, or not known to differ (a symbol may take the other's value)."""
    return a == b or isinstance(a, Expr) or isinstance(b, Expr)


def same_shape(a: Iterable[Dim], b: Iterable[Dim]) -> bool:
    """The same rank and every size :func:`same_size`."""
    a, b = tuple(a), tuple(b)
    return len(a) == len(b) and all(same_size(x, y) for x, y in zip(a, b, strict=True))


def dim_ascii(value: Dim) -> str:
    return value.ascii() if isinstance(value, Expr) else str(value)


def dim_latex(value: Dim) -> str:
    return value.latex() if isinstance(value, Expr) else str(value)


def shape_str(shape: Iterable[Dim]) -> str:
    """``(2048, 512)``, ``(4·H, E)``; a one-dimensional shape keeps its comma: ``(2048,)``."""
    items = [dim_str(d) for d in shape]
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def _from_sympy(value: Any, *, owner: str, field: str) -> Dim:
    sympy = _sympy(f"{owner}: reading {field} from a sympy expression")

    expr = sympy.sympify(value)
    try:
        poly = sympy.Poly(expr, *sorted(expr.free_symbols, key=str))
    except sympy.PolynomialError:
        poly = None
    if poly is None or not all(c.is_Integer for c in poly.coeffs()):
        raise InvalidArgumentError(
            f"{field}={value} is not a polynomial with integer coefficients",
            layer=owner,
            field=field,
            value=value,
            rule="a symbolic size is a polynomial in named sizes with integer coefficients",
        )
    result: Dim = 0
    for powers, coef in poly.terms():
        term: Dim = int(coef)
        for gen, power in zip(poly.gens, powers, strict=True):
            term = term * symbol(str(gen)) ** power if power else term
        result = result + term
    return result


#: the largest size: what a torch dimension (int64) holds
LARGEST = 2**63 - 1
#: the highest power of a size an expression takes (counts are polynomials of low degree)
MAX_POWER = 64


def int_text(value: int) -> str:
    """An integer for a message: itself, or its length when it is too long to read (or
    past Python's limit on turning integers into text)."""
    if abs(value).bit_length() <= 200:
        return str(value)
    return f"an integer of about {int(abs(value).bit_length() * 0.30103):,} digits"


#: the most significant digits :func:`parse_int` reads (2^63 - 1 has 19)
MAX_DIGITS = 40


def parse_int(text: str) -> int | None:
    """Digits with an optional sign as an int, leading zeros dropped (so thousands of them
    do not meet Python's 4,300-digit limit on ``int()``); None past :data:`MAX_DIGITS`
    significant digits, a number no size reaches.

        >>> parse_int("-" + "0" * 5000 + "42")
        -42
        >>> parse_int("9" * 5000) is None
        True
    """
    text = text.strip()
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-").lstrip("0") or "0"
    if len(digits) > MAX_DIGITS:
        return None
    return sign * int(digits)


def as_size(value: Any, *, owner: str, field: str, minimum: int = 1) -> Dim:
    """Check and normalise one size argument.

    Accepts an ``int`` (``>= minimum``), a size name (``"H"``), an :class:`Expr`, or a
    sympy expression. Anything else raises :class:`InvalidArgumentError` naming the
    owner, the field, the value and the rule.

        >>> as_size(512, owner="LSTM", field="hidden_size")
        512
        >>> as_size("H", owner="LSTM", field="hidden_size")
        Expr('H')
        >>> as_size(0, owner="LSTM", field="hidden_size")
        Traceback (most recent call last):
        ...
        shapecalc.core.errors.InvalidArgumentError: LSTM: hidden_size must be an integer >= 1, got 0
    """
    rule = f"{field} must be an integer >= {minimum}"
    if isinstance(value, int) and not isinstance(value, bool) and value > LARGEST:
        rule = f"{field} must be an integer from {minimum} to 2^63 - 1 (a torch dimension)"
        raise InvalidArgumentError(
            f"{rule}, got {int_text(value)}", layer=owner, field=field, value=value, rule=rule
        )
    if isinstance(value, bool):
        raise InvalidArgumentError(
            f"{rule}, got the bool {value}", layer=owner, field=field, value=value, rule=rule
        )
    if isinstance(value, int):
        if value < minimum:
            raise InvalidArgumentError(
                f"{rule}, got {value}", layer=owner, field=field, value=value, rule=rule
            )
        return value
    if isinstance(value, Expr):
        return value
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[+-]?[0-9]+", text):
            digits = len(text.lstrip("+-").lstrip("0"))
            if digits > len(str(LARGEST)):  # past any size, and past int()'s limit too
                rule = f"{field} must be an integer from {minimum} to 2^63 - 1 (a torch dimension)"
                sign = "a negative" if text.startswith("-") else "a"
                raise InvalidArgumentError(
                    f"{rule}, got {sign} number of {digits:,} digits",
                    layer=owner,
                    field=field,
                    value=text[:40],
                    rule=rule,
                )
            number = parse_int(text)
            assert number is not None  # fewer digits than 2^63 - 1 has
            return as_size(number, owner=owner, field=field, minimum=minimum)
        if _NAME.match(text):
            return symbol(text)
        shown = repr(value) if len(value) <= 60 else repr(value[:57]) + "…"
        raise InvalidArgumentError(
            f"{rule} or a size name such as H, got {shown}",
            layer=owner,
            field=field,
            value=value,
            rule=rule,
        )
    if type(value).__module__.startswith("sympy"):
        return _from_sympy(value, owner=owner, field=field)
    raise InvalidArgumentError(
        f"{rule}, got {echo(value)} ({type(value).__name__})",
        layer=owner,
        field=field,
        value=value,
        rule=rule,
    )
