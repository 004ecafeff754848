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
    "echo",
    "expect",
    "field_error",
    "printable",
    "refuse_arrays",
    "require_one_of",
]


#: the longest message an error carries: values echoed in it are cut to fit
MAX_MESSAGE = 600


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

    #: which argument of a call made of several parts the error came from (for
    #: :func:`shapecalc.report.pipeline.build_report`: "cost", "convention", "explain",
    #: "verify"); None for a call of one part
    argument: str | None = None

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
        self.message = message if isinstance(message, str) else echo(message)
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
        # one line, of a readable length, whatever a caller echoed into it
        text = " ".join(text.split("\n"))
        return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"

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


def printable(text: str) -> str:
    """``text`` from a file or the command line with its control characters (and lone
    surrogates, which no terminal encodes) shown escaped."""
    if text.isprintable():  # no control character, no surrogate (category Cs)
        return text
    return "".join(
        ch if ch.isprintable() and not 0xD800 <= ord(ch) <= 0xDFFF else repr(ch)[1:-1]
        for ch in text
    )


def echo(value: Any, limit: int = 80) -> str:
    """A value as a message echoes it: as Python writes it (``'same'``, ``2.5``), cut to
    ``limit`` characters; an integer too long to read by its length (Python refuses to
    write one of over 4,300 digits), a value whose repr fails by its type."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value).bit_length() > 200:
        return f"an integer of about {int(abs(value).bit_length() * 0.30103):,} digits"
    try:
        text = repr(value)
    except Exception:
        text = f"a {type(value).__name__}"
    text = " ".join(text.split("\n"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def expect(
    value: Any, kinds: type | tuple[type, ...], *, function: str, argument: str, what: str
) -> None:
    """``value`` is one of ``kinds``, else :class:`TypeError` naming the function, the
    argument and what it expects (a bool is never taken for an int)."""
    if isinstance(value, kinds) and not (isinstance(value, bool) and bool not in _tuple(kinds)):
        return
    raise TypeError(f"{function}: {argument} must be {what}, got {type(value).__name__}")


#: the packages whose arrays and scalars are refused where a Python number goes
ARRAY_PACKAGES = ("numpy", "torch", "jax", "jaxlib", "tensorflow", "cupy", "pandas")


def _array_like(value: Any) -> bool:
    root = (type(value).__module__ or "").partition(".")[0]
    return root in ARRAY_PACKAGES or any(
        hasattr(type(value), a) for a in ("__array__", "__array_interface__", "__dlpack__")
    )


def refuse_arrays(value: Any, *, function: str, argument: str) -> None:
    """:class:`TypeError` naming the function and the argument when ``value`` (or an
    item of a tuple or list it is) is an array or an array library's scalar
    (``torch.tensor([4, 4])``, ``np.int64(3)``): compared as a number, it fails inside
    its library, or passes where torch.nn would refuse it."""
    items = value if isinstance(value, (tuple, list)) else (value,)
    for item in items:
        if _array_like(item):
            kind = f"{type(item).__module__}.{type(item).__name__}"
            raise TypeError(
                f"{function}: {argument} must be a Python number (or a tuple of them), got "
                f"{kind}; int(x) or float(x) converts a scalar"
            )


def _tuple(kinds: type | tuple[type, ...]) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


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
    refuse_arrays(value, function=layer or "shapecalc", argument=field)
    if not isinstance(value, str) or value not in options:
        rule = f"{field} must be one of {', '.join(options)}"
        raise field_error(field, value, rule, layer=layer)


def field_error(
    field: str | None,
    value: Any,
    rule: str | None,
    message: str | None = None,
    *,
    layer: str | None = None,
    fix: str | None = None,
    related: tuple[str, ...] = (),
    kind: type[ShapecalcError] = InvalidArgumentError,
) -> ShapecalcError:
    """The error for ``value`` given as ``field`` that breaks ``rule``, to raise; its
    message is ``message``, or the rule and the value (``rule, got 'value'``). ``kind``
    is the class (an :class:`InvalidArgumentError` unless told).

    Example:

        >>> raise field_error("dtype", "fp9", "dtype must be fp32 or fp16", layer="analyze")
        Traceback (most recent call last):
        ...
        shapecalc.core.errors.InvalidArgumentError: analyze: dtype must be fp32 or fp16, got 'fp9'
    """
    if message is None:
        message = f"{rule}, got {echo(value)}"
    return kind(message, layer=layer, field=field, value=value, rule=rule, fix=fix, related=related)
