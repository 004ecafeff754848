"""Sizes: a dim is an ``int`` or an :class:`Expr`, a polynomial over named sizes.

Every parameter count in shapecalc is one Python formula over dims, written once: given
ints it returns an int, given symbols it returns the formula. Counts and shapes of neural
network layers are sums and products of sizes, so an exact integer polynomial is all a
formula needs; it is small and pure Python, so concrete runs (and the formula column of a
concrete table) never import sympy. sympy is imported here only, and only when a caller
hands in a sympy object or asks for one (:meth:`Expr.to_sympy`).

    >>> H, V = symbol("H"), symbol("V")
    >>> total = 16 * H * H + 16 * H + 2 * V * H + V
    >>> print(total)
    16·H² + 2·V·H + 16·H + V
    >>> total.subs({"H": 512, "V": 65})
    4269121
    >>> total.ascii()
    '16*H**2 + 2*V*H + 16*H + V'
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Union

from shapecalc.core.errors import InvalidArgumentError, echo

__all__ = [
    "Dim",
    "Expr",
    "as_size",
    "count_str",
    "dim_ascii",
    "dim_latex",
    "dim_str",
    "exact_div",
    "floor_div",
    "is_symbolic",
    "known",
    "product",
    "same_shape",
    "same_size",
    "shape_str",
    "symbol",
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


def _monomial_key(mono: Monomial) -> tuple[int, list[int], list[tuple[str, int]]]:
    powers = dict(mono)
    degree = sum(powers.values())
    leading = [-powers.get(name, 0) for name in _TERM_ORDER]
    rest = sorted((name, -power) for name, power in mono if name not in _TERM_ORDER)
    return (-degree, leading, rest)


def _mul_monomials(a: Monomial, b: Monomial) -> Monomial:
    powers: dict[str, int] = dict(a)
    for name, power in b:
        powers[name] = powers.get(name, 0) + power
    return tuple(sorted(powers.items(), key=lambda item: _symbol_key(item[0])))


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
        self._hash = hash(frozenset(self._terms.items()))

    # -- construction -------------------------------------------------------------------
    @staticmethod
    def _make(terms: Mapping[Monomial, int]) -> Dim:
        nonzero = {mono: coef for mono, coef in terms.items() if coef != 0}
        if not nonzero:
            return 0
        if list(nonzero) == [()]:
            return nonzero[()]
        return Expr(nonzero)

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
        for mono_a, coef_a in self._terms.items():
            for mono_b, coef_b in Expr._terms_of(other).items():
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
        """Readable form: ``8·L·H² + 2·V·H``."""
        return self._render("·", _superscript, _unicode_name)

    def ascii(self) -> str:
        """Python/sympy syntax: ``8*H**2 + 2*V*H + V``."""
        return self._render("*", lambda p: f"**{p}", _ascii_name)

    def grouped(self) -> str:
        """Like ``str`` with thousands separators in the coefficients: ``34,824·B·T``."""
        return self._render("·", _superscript, _unicode_name, number=lambda n: f"{n:,}")

    def latex(self) -> str:
        """LaTeX: ``8 H^{2} + 2 V H + V``."""
        return self._render(" ", lambda p: f"^{{{p}}}", _latex_name)

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
        outer = _join_term(content, outer_factors, "·", first=True)
        return f"{outer}·({dim_str(inner)})" if outer else f"({dim_str(inner)})"

    def __repr__(self) -> str:
        return f"Expr({self.ascii()!r})"

    def _sympy_(self) -> Any:
        """Lets sympy take an Expr anywhere: ``sympy.diff(model.total, "H")``."""
        return self.to_sympy()

    def to_sympy(self) -> Any:
        """The same polynomial as a sympy expression over positive-integer symbols."""
        import sympy

        symbols: dict[str, Any] = {
            n: sympy.Symbol(n, positive=True, integer=True) for n in self.free_symbols
        }
        for mono in self._terms:
            for name, _ in mono:
                if name in _FLOORS:
                    numerator, divisor = _FLOORS[name]
                    symbols[name] = sympy.floor(numerator.to_sympy() / divisor)
        return sympy.Add(
            *(
                sympy.Mul(coef, *(symbols[n] ** p for n, p in mono))
                for mono, coef in self._terms.items()
            )
        )


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
    if all(coef % divisor == 0 for coef in terms.values()):
        return Expr._make({mono: coef // divisor for mono, coef in terms.items()})
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
        return None
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


def is_symbolic(value: Dim) -> bool:
    return isinstance(value, Expr)


def known(value: Dim) -> int | None:
    """The int value of a dim, or None when it is symbolic."""
    return value if isinstance(value, int) else None


def product(values: Iterable[Dim]) -> Dim:
    result: Dim = 1
    for value in values:
        result = result * value
    return result


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
    import sympy

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
            return as_size(int(text), owner=owner, field=field, minimum=minimum)
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
