"""Sizing a model for a parameter budget.

:func:`solve` finds the free size (``hidden`` by default) whose model comes closest to a
target count from below, and the next size above it. Counts grow with every size, so the
search is a bisection over whole numbers: an exponential probe for an upper bound, then
halving, about 2·log2(n) count evaluations. When the factory accepts a symbol for the free
size (every shapecalc factory does), the count is one polynomial built once and evaluated
exactly at each probe, so a solve costs well under a millisecond at any size.

    >>> import shapecalc
    >>> s = solve(shapecalc.lstm_lm, "10M", free="hidden", layers=2, vocab=65)
    >>> (s.below.size, s.below.total, s.above.size, s.above.total)
    (786, 9999557, 787, 10024871)
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation, localcontext
from functools import cached_property
from typing import Any

from shapecalc.core.declare import Architecture, arguments_of
from shapecalc.core.dims import Dim, Expr, as_size, count_noun, dim_str, symbol
from shapecalc.core.errors import InvalidArgumentError, ShapecalcError, echo, expect
from shapecalc.core.model import Model

__all__ = ["Candidate", "Solution", "parse_budget", "solve"]

#: the largest budget accepted: 10**24 parameters (beyond any model, and searches stay fast)
MAX_BUDGET = 10**24
_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9, "t": 10**12}
_BUDGET = re.compile(
    r"(?P<number>(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)"
    r"\s?(?P<suffix>[kKmMbBgGtT]?)"
)
_FORMS = "write it as 10M, 3.5e6, 1.2B, 350k or 4,269,121"


#: the exponents a budget's Decimal may take while it is checked (it is refused above 10^24)
MAX_EMAX, MIN_EMIN = 999_999_999_999_999_999, -999_999_999_999_999_999


def _cut(text: str, limit: int = 40) -> str:
    """A value echoed in a message, cut to ``limit`` characters."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clip(text: str, limit: int = 40) -> str:
    """A value echoed in a message: quoted, cut to ``limit`` characters."""
    return repr(text) if len(text) <= limit else repr(text[: limit - 1]) + "…"


def parse_budget(text: Any, *, field: str = "target") -> int:
    """A parameter count from ``10M``, ``3.5e6``, ``1.2B``, ``350k``, ``4,269,121`` or an int.

    Suffixes: k (10³), M (10⁶), B or G (10⁹), T (10¹²), any case. The value must be a
    whole number of parameters between 1 and 10²⁴.

        >>> [parse_budget(t) for t in ("10M", "3.5e6", "1.2B", "350k", "4,269,121")]
        [10000000, 3500000, 1200000000, 350000, 4269121]
    """
    if isinstance(text, bool):
        raise InvalidArgumentError(
            f"{echo(text)} is not a parameter budget; {_FORMS}",
            field=field,
            value=text,
            rule="a budget is a whole number of parameters",
        )
    if isinstance(text, int):
        value = text
    else:
        raw = str(text).strip()
        match = _BUDGET.fullmatch(raw)
        if not match:
            raise InvalidArgumentError(
                f"{_clip(str(text))} is not a parameter budget; {_FORMS}",
                field=field,
                value=text,
                rule="a budget is a number with an optional k, M, B or T suffix",
            )
        shown = _clip(raw)
        try:
            with localcontext() as context:  # exponents of any size: no Overflow
                context.Emax, context.Emin = MAX_EMAX, MIN_EMIN
                number = Decimal(match["number"].replace(",", ""))
                exact = number * _SUFFIX[match["suffix"].lower()]
        except (InvalidOperation, ArithmeticError):
            raise InvalidArgumentError(
                f"{shown} is not a parameter budget; {_FORMS}", field=field, value=shown
            ) from None
        if exact > MAX_BUDGET:
            value = MAX_BUDGET + 1
        elif exact.adjusted() < -30 or exact != exact.to_integral_value():
            said = f"{exact.normalize():f}" if exact.adjusted() >= -30 else "less than one"
            raise InvalidArgumentError(
                f"{shown} is {said[:40]} parameters, not a whole number",
                field=field,
                value=text,
                rule="a budget is a whole number of parameters",
            )
        else:
            value = int(exact)
    if not 1 <= value <= MAX_BUDGET:
        raise InvalidArgumentError(
            f"a budget must be between 1 and 10**24 parameters, got "
            f"{_cut(str(text)) if not isinstance(text, int) else echo(text)}",
            field=field,
            value=text,
            rule="1 <= budget <= 10**24",
        )
    return value


@dataclass(frozen=True)
class Candidate:
    """One size, its exact total and (built on first use) the model it gives."""

    size: int
    total: int
    target: int
    build: Callable[[], Model] = field(repr=False, compare=False)

    @cached_property
    def model(self) -> Model:
        return self.build()

    @property
    def distance(self) -> int:
        """``total - target``: negative below the budget, positive above."""
        return self.total - self.target


@dataclass(frozen=True)
class Solution:
    """The sizes on either side of a budget: ``below.total <= target < above.total``."""

    free: str
    target: int
    multiple_of: int
    below: Candidate
    above: Candidate
    #: the total as a function of the free size (other sizes fixed), when known
    formula: Dim | None
    #: whose count the budget is in: pytorch, keras or onnx
    convention: str = "pytorch"
    #: the free size's letter in formulas (H)
    letter: str = ""

    @property
    def fixed(self) -> dict[str, Any]:
        """The factory's other arguments, as the model normalised them."""
        return {k: v for k, v in self.below.model.arguments.items() if k != self.free}

    @property
    def fixed_sizes(self) -> str:
        """``V=65, L=2``: the named sizes that stayed fixed."""
        below, above = self.below.model.sizes, self.above.model.sizes
        return ", ".join(
            f"{k}={dim_str(v)}"
            for k, v in below.items()
            if k != self.letter and above.get(k) == v  # not worked out from the free size
        )

    @property
    def closest(self) -> Candidate:
        return self.below if -self.below.distance <= self.above.distance else self.above


def solve(
    factory: Callable[..., Model],
    target: Any,
    free: str = "hidden",
    *,
    multiple_of: int = 1,
    convention: str = "pytorch",
    reset_after: bool = True,
    **fixed: Any,
) -> Solution:
    """Find the ``free`` size whose model is closest to ``target`` from below, and the next.

    ``target`` is an int or a budget string (see :func:`parse_budget`); ``multiple_of``
    restricts sizes to multiples (64 for hardware-friendly widths); ``convention``
    (pytorch, keras, onnx) is whose count the budget is in (Keras keeps one bias per gate
    block; ``reset_after`` is its GRU setting); ``fixed`` are the factory's other
    arguments, which must be concrete.
    """
    factory = _checked_factory(factory)
    total_of = _total_of(convention, reset_after)
    budget = parse_budget(target)
    if isinstance(multiple_of, bool) or not isinstance(multiple_of, int) or multiple_of < 1:
        raise InvalidArgumentError(
            f"multiple_of must be an integer >= 1, got {echo(multiple_of)}",
            field="multiple_of",
            value=multiple_of,
            rule="multiple_of must be an integer >= 1",
        )
    if free in fixed:
        raise InvalidArgumentError(
            f"{free} is the size being solved for; do not also fix it (got {echo(fixed[free])})",
            field=free,
            value=fixed[free],
            rule="the free size is not given",
        )
    _numbers_only(factory, free, fixed)
    architecture = _architecture(factory)
    needed = architecture.multiple_for(free, fixed) if architecture is not None else 1
    step = math.lcm(multiple_of, needed)
    symbolic = _symbolic_total(factory, free, fixed, total_of)
    count = _counter(factory, free, fixed, total_of, symbolic)

    def build(k: int) -> Model | None:
        try:
            made = factory(**fixed, **{free: k * step})
        except ShapecalcError as err:
            if free in (err.field, *err.related):
                return None  # too small for a rule of the model (hidden > proj_size)
            raise
        return made

    # the smallest valid multiple: validity only fails below some size
    low = 1
    if build(low) is None:
        high = 2
        while build(high) is None:
            low, high = high, high * 2
            if high * step > MAX_BUDGET:
                raise InvalidArgumentError(
                    f"no {free} gives a valid model with these sizes",
                    field=free,
                    value=None,
                    rule=f"some {free} must give a valid model",
                )
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (low, middle) if build(middle) is not None else (middle, high)
        low = high
    smallest = count(low * step)
    if smallest > budget:
        raise InvalidArgumentError(
            f"no {free} fits {count_noun(budget, 'parameter')}: the smallest model, "
            f"{free}={low * step}, has {smallest:,}",
            field="target",
            value=budget,
            rule="the budget must be at least the smallest model's count",
        )
    # exponential probe, then bisection: count(low) <= budget < count(high)
    high = low * 2
    while count(high * step) <= budget:
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        if count(middle * step) <= budget:
            low = middle
        else:
            high = middle
    letter = letter_of(factory, free)
    # the total in the free size's usual symbol (16·H² + 146·H + 65)
    formula = symbolic.subs({_FREE: symbol(letter)}) if isinstance(symbolic, Expr) else None

    def candidate(k: int) -> Candidate:
        return Candidate(
            k * step, count(k * step), budget, lambda: factory(**fixed, **{free: k * step})
        )

    return Solution(
        free=free,
        target=budget,
        multiple_of=step,
        below=candidate(low),
        above=candidate(high),
        formula=formula,
        convention=convention,
        letter=letter,
    )


def _total_of(convention: str, reset_after: bool) -> Callable[[Model], Dim]:
    """How a budget counts a model: PyTorch's total, or another framework's."""
    expect(convention, str, function="solve", argument="convention", what="a framework's name")
    if convention == "pytorch":
        return lambda model: model.total
    from shapecalc.analysis.conventions import convert

    return lambda model: convert(model, convention, reset_after=reset_after).total


_FREE = "n_free"


def _architecture(factory: Callable[..., Model]) -> type[Architecture] | None:
    """The architecture a factory makes (its library function or its ``create``)."""
    found = getattr(factory, "architecture", None) or getattr(factory, "__self__", None)
    return found if isinstance(found, type) and issubclass(found, Architecture) else None


def _numbers_only(factory: Callable[..., Model], free: str, fixed: dict[str, Any]) -> None:
    """Refuse a size name among the fixed sizes, naming its argument: a budget is met by
    numbers."""
    architecture = _architecture(factory)
    if architecture is None:
        return
    for f, argument in arguments_of(architecture):
        value = fixed.get(f.name)
        if argument.kind != "size" or value is None:
            continue
        size = as_size(value, owner="solve", field=f.name, minimum=argument.minimum)
        if isinstance(size, Expr):
            raise InvalidArgumentError(
                f"{f.name} must be a number to solve for {free}, got the name {size}",
                field=f.name,
                value=value,
                rule="the sizes other than the free one are numbers",
            )


def letter_of(factory: Callable[..., Model], free: str) -> str:
    """The letter of the size ``free`` in formulas, as the factory's architecture declares
    it (``hidden``: H); the argument's own name for other factories."""
    architecture = _architecture(factory)
    if architecture is not None:
        for f, argument in arguments_of(architecture):
            if f.name == free and argument.letter:
                return argument.letter
    return free


def _checked_factory(factory: Any) -> Callable[..., Model]:
    """``factory``, which must make shapecalc Models: else :class:`TypeError` naming it."""
    if not callable(factory):
        raise TypeError(f"solve: factory must be callable, got {type(factory).__name__}")

    def made(**arguments: Any) -> Model:
        model = factory(**arguments)
        if not isinstance(model, Model):
            raise TypeError(
                f"solve: factory must return a shapecalc Model, got {type(model).__name__}"
            )
        return model

    for name in ("architecture", "__self__"):  # what solve reads of an architecture's function
        if hasattr(factory, name):
            setattr(made, name, getattr(factory, name))
    return made


def _symbolic_total(
    factory: Callable[..., Model],
    free: str,
    fixed: dict[str, Any],
    total_of: Callable[[Model], Dim],
) -> Dim | None:
    """The total with the free size a symbol, built once; None when the factory needs it
    as a number."""
    try:
        model = factory(**fixed, **{free: symbol(_FREE)})
        total = total_of(model)
    except (ShapecalcError, TypeError):
        return None
    # sizes the model works out for itself (BERT's token types: 2) are numbers here
    worked_out = {k: v for k, v in model.sizes.items() if isinstance(v, int)}
    return total.subs(worked_out) if isinstance(total, Expr) and worked_out else total


def _counter(
    factory: Callable[..., Model],
    free: str,
    fixed: dict[str, Any],
    total_of: Callable[[Model], Dim],
    total: Dim | None,
) -> Callable[[int], int]:
    """count(n): the total at free size n, from the polynomial ``total`` when it is one in
    the free size alone, else by building the model."""
    if isinstance(total, Expr) and total.free_symbols == {_FREE}:
        poly = total

        def from_polynomial(n: int) -> int:
            value = poly.subs({_FREE: n})
            assert isinstance(value, int)
            return value

        return from_polynomial

    def by_building(n: int) -> int:
        value = total_of(factory(**fixed, **{free: n}))
        if not isinstance(value, int):
            raise InvalidArgumentError(
                "solve needs every other size to be a number", field=free, value=value
            )
        return value

    return by_building
