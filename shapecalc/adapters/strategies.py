"""Hypothesis strategies for architectures, made from their declarations (hypothesis is
imported here only, for tests).

    >>> from hypothesis import given
    >>> from shapecalc.architectures.lstm import LSTMLanguageModel
    >>> @given(configs(LSTMLanguageModel))
    ... def test_counts_are_positive(config):
    ...     assert config.model().total > 0
    >>> test_counts_are_positive()

Every size is drawn from ``sizes`` (from its minimum up), a size declared ``below``
another is drawn under it, flags, choices and numbers from their declared values; the
architecture's :meth:`~shapecalc.core.declare.Architecture.consistent` then makes
dependent arguments agree (a tied embedding as wide as the head's input), so no example
is thrown away.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

from hypothesis import strategies as st

from shapecalc.core.declare import NOTHING, Architecture, Argument, arguments_of

__all__ = ["configs"]

A = TypeVar("A", bound=Architecture)

#: sizes by default: small, so that real torch modules of them are cheap
SIZES = st.integers(min_value=1, max_value=48)


def _number(argument: Argument) -> st.SearchStrategy[float]:
    low = 0.0 if math.isinf(argument.low) else argument.low
    high = low + 1 if math.isinf(argument.high) else argument.high
    return st.sampled_from([low, (low + high) / 2])


@st.composite
def _arguments(draw: st.DrawFn, cls: type[A], sizes: st.SearchStrategy[int]) -> A:
    fields = arguments_of(cls)
    values: dict[str, Any] = {}
    for f, argument in sorted(fields, key=lambda pair: bool(pair[1].below)):
        if argument.kind == "size":
            limit = values.get(argument.below) if argument.below else None
            if isinstance(limit, int):
                if limit <= argument.minimum:
                    value: Any = argument.unset
                else:
                    value = draw(st.integers(argument.minimum, limit - 1))
            else:
                value = max(draw(sizes), argument.minimum)
            if argument.unset is not NOTHING and draw(st.booleans()):
                value = argument.unset
            values[f.name] = value
        elif argument.kind == "flag":
            values[f.name] = draw(st.booleans())
        elif argument.kind == "choice":
            values[f.name] = draw(st.sampled_from(argument.options))
        elif argument.kind == "indices":
            values[f.name] = tuple(draw(st.lists(st.integers(0, 7), max_size=3, unique=True)))
        elif argument.kind == "kinds":  # a pattern (the architecture fits it to its layers)
            values[f.name] = tuple(draw(st.lists(st.sampled_from(argument.options), max_size=3)))
        elif argument.kind == "sizes":  # one per stage (the architecture makes lists agree)
            values[f.name] = tuple(draw(st.lists(st.integers(1, 6), min_size=1, max_size=4)))
        else:
            values[f.name] = draw(_number(argument))
    ordered = {f.name: values[f.name] for f, _ in fields}
    return cls(**cls.consistent(ordered))


def configs(cls: type[A], sizes: st.SearchStrategy[int] = SIZES) -> st.SearchStrategy[A]:
    """Valid configurations of the architecture ``cls``, every argument drawn."""
    return _arguments(cls, sizes)
