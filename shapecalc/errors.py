"""The one error root of shapecalc and its subclasses.

Every error names where it happened (``layer``: a layer spec such as ``LSTM(...)`` or a
model factory such as ``lstm_lm``), the ``field`` (the constructor or factory argument),
the offending ``value`` and the ``rule`` it breaks, and where there is one, a ``fix``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "InvalidArgumentError",
    "MissingDependencyError",
    "ShapecalcError",
    "TieError",
]


class ShapecalcError(ValueError):
    """Root of every error shapecalc raises on bad input.

    >>> err = ShapecalcError("hidden must be >= 1", layer="lstm_lm", field="hidden",
    ...                      value=0, rule="must be >= 1")
    >>> str(err)
    'lstm_lm: hidden must be >= 1'
    >>> (err.field, err.value)
    ('hidden', 0)
    """

    def __init__(
        self,
        message: str,
        *,
        layer: str | None = None,
        field: str | None = None,
        value: Any = None,
        rule: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.message = message
        self.layer = layer
        self.field = field
        self.value = value
        self.rule = rule
        self.fix = fix
        super().__init__(self._render())

    def _render(self) -> str:
        text = f"{self.layer}: {self.message}" if self.layer else self.message
        if self.fix:
            text = f"{text}; {self.fix}"
        return text

    def for_field(self, field: str) -> ShapecalcError:
        """The same error, attributed to another argument name (a factory's own)."""
        return type(self)(
            self.message,
            layer=self.layer,
            field=field,
            value=self.value,
            rule=self.rule,
            fix=self.fix,
        )


class InvalidArgumentError(ShapecalcError):
    """An argument has the wrong type or breaks a rule of its layer or model."""


class TieError(ShapecalcError):
    """Two parameters asked to be tied (shared) cannot be: their shapes differ."""


class MissingDependencyError(ShapecalcError):
    """An optional dependency (PyTorch) is needed for this call and is not installed."""
