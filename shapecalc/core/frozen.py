"""``@frozen``: ``@dataclass(frozen=True)`` with ``__eq__``, ``__hash__`` and ``__repr__``
shared by every class instead of compiled for each one.

A dataclass decorator compiles each method it writes from source text, about a tenth of a
millisecond apiece, and a model loads dozens of layer kinds and an architecture or two. A
class decorated with :func:`frozen` and deriving from :class:`FrozenMethods` gets its
``__init__`` and frozen ``__setattr__``/``__delattr__`` from :func:`dataclasses.dataclass`
as before, and the three methods below, which do what the dataclass's own would: equal
when of the same class with equal compared fields, hashed over the fields a frozen
dataclass hashes, shown as ``Name(field=value, ...)`` (``...`` for a recursive one).
"""

from __future__ import annotations

import dataclasses
import reprlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:

    def dataclass_transform(**_: Any) -> Callable[[Any], Any]:
        return lambda function: function


__all__ = ["FrozenMethods", "frozen"]

T = TypeVar("T", bound=type)

#: per class: the names of the fields compared, hashed and shown, worked out once
_COMPARED: dict[type, tuple[str, ...] | None] = {}
_HASHED: dict[type, tuple[str, ...] | None] = {}
_SHOWN: dict[type, tuple[str, ...] | None] = {}


def _names(
    cls: type, table: dict[type, tuple[str, ...] | None], keep: Callable[[Any], bool]
) -> tuple[str, ...] | None:
    """The names of ``cls``'s fields that ``keep`` keeps; None for a class that is not a
    dataclass (which keeps object's own methods: equal to itself alone)."""
    try:
        return table[cls]
    except KeyError:
        pass
    found = None
    if dataclasses.is_dataclass(cls):
        found = tuple(f.name for f in dataclasses.fields(cls) if keep(f))
    table[cls] = found
    return found


def _compared(f: Any) -> bool:
    return bool(f.compare)


def _hashed(f: Any) -> bool:
    return bool(f.compare if f.hash is None else f.hash)


def _shown(f: Any) -> bool:
    return bool(f.repr)


class FrozenMethods:
    """The ``__eq__``, ``__hash__`` and ``__repr__`` of a frozen dataclass, for the classes
    :func:`frozen` decorates."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            names = _names(self.__class__, _COMPARED, _compared)
            if names is None:
                return True if self is other else NotImplemented
            mine = tuple(getattr(self, n) for n in names)
            return mine == tuple(getattr(other, n) for n in names)
        return NotImplemented

    def __hash__(self) -> int:
        names = _names(self.__class__, _HASHED, _hashed)
        if names is None:
            return object.__hash__(self)
        return hash(tuple(getattr(self, n) for n in names))

    @reprlib.recursive_repr()
    def __repr__(self) -> str:
        names = _names(self.__class__, _SHOWN, _shown)
        if names is None:
            return object.__repr__(self)
        shown = ", ".join(f"{n}={getattr(self, n)!r}" for n in names)
        return f"{self.__class__.__qualname__}({shown})"


@overload
def frozen(cls: T, /) -> T: ...


@overload
def frozen(*, kw_only: bool = False) -> Callable[[T], T]: ...


@dataclass_transform(frozen_default=True)
def frozen(cls: Any = None, /, *, kw_only: bool = False) -> Any:
    """``@dataclass(frozen=True)`` (``kw_only`` as it takes it) for a subclass of
    :class:`FrozenMethods`, which gives it ``__eq__``, ``__hash__`` and ``__repr__``."""

    def wrap(cls: T) -> T:
        if not issubclass(cls, FrozenMethods):
            raise TypeError(f"@frozen: {cls.__name__} must derive from FrozenMethods")
        made = dataclasses.dataclass(cls, frozen=True, eq=False, repr=False, kw_only=kw_only)
        return cast(T, made)

    return wrap if cls is None else wrap(cls)
