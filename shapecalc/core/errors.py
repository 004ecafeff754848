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
    "ShapeError",
    "ShapecalcError",
    "TieError",
    "require_one_of",
]


class ShapecalcError(ValueError):
    """Root of every error shapecalc raises on bad input.

    Example:

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
        related: tuple[str, ...] = (),
    ) -> None:
        self.message = message
        self.layer = layer
        self.field = field
        self.value = value
        self.rule = rule
        self.fix = fix
        #: other arguments the broken rule involves (hidden_size for proj_size < hidden_size)
        self.related = related
        super().__init__(self._render())

    def _render(self) -> str:
        text = f"{self.layer}: {self.message}" if self.layer else self.message
        if self.fix:
            text = f"{text}; {self.fix}"
        return text

    def renamed(self, names: dict[str, str]) -> ShapecalcError:
        """The same error with argument names translated (a layer's to its factory's)."""
        return type(self)(
            self.message,
            layer=self.layer,
            field=names.get(self.field or "", self.field),
            value=self.value,
            rule=self.rule,
            fix=self.fix,
            related=tuple(names.get(f, f) for f in self.related),
        )


class InvalidArgumentError(ShapecalcError):
    """An argument has the wrong type or breaks a rule of its layer or model."""


class TieError(ShapecalcError):
    """Two parameters asked to be tied (shared) cannot be: their shapes differ."""


class ShapeError(ShapecalcError):
    """An input shape does not fit a layer (wrong feature size, wrong rank)."""


class MissingDependencyError(ShapecalcError):
    """An optional dependency (PyTorch) is needed for this call and is not installed."""


def require_one_of(
    field: str, value: Any, options: tuple[str, ...], *, layer: str | None = None
) -> None:
    """Refuse ``value`` unless it is one of ``options``, naming the field and the choices.

    Example:

        >>> try:
        ...     require_one_of("dtype", "fp9", ("fp32", "fp16"), layer="analyze")
        ... except InvalidArgumentError as err:
        ...     print(err)
        analyze: dtype must be one of fp32, fp16, got 'fp9'
    """
    if value not in options:
        rule = f"{field} must be one of {', '.join(options)}"
        raise InvalidArgumentError(
            f"{rule}, got {value!r}", layer=layer, field=field, value=value, rule=rule
        )
