"""``@frozen``: a frozen dataclass whose methods are shared by every class, or compiled on
first use, instead of compiled for each class when it is defined.

A dataclass decorator compiles each method it writes from source text, a few tenths of a
millisecond apiece (``__init__``, and for a frozen class ``__setattr__`` and
``__delattr__``, besides ``__eq__``, ``__hash__`` and ``__repr__``), and a command loads
dozens of classes it may never make an instance of. A class decorated with :func:`frozen`
and deriving from :class:`FrozenMethods` is a dataclass (``dataclasses.fields``,
``replace``, ``asdict`` and ``is_dataclass`` work on it) with:

- ``__eq__``, ``__hash__`` and ``__repr__`` shared, doing what a frozen dataclass's own do:
  equal when of the same class with equal compared fields, hashed over the fields a frozen
  dataclass hashes, shown as ``Name(field=value, ...)`` (``...`` for a recursive one);
- ``__setattr__`` and ``__delattr__`` shared: every assignment or deletion raises
  :class:`dataclasses.FrozenInstanceError`;
- an ``__init__`` with the dataclass's own parameters and body (defaults, default
  factories, ``init=False`` fields, keyword-only fields, ``__post_init__``), compiled the
  first time an instance is made or the class's signature is asked for.

``InitVar`` fields and ``slots`` are not supported.
"""

from __future__ import annotations

import dataclasses
import reprlib
from collections.abc import Callable
from dataclasses import MISSING
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
    """The ``__eq__``, ``__hash__``, ``__repr__``, ``__setattr__`` and ``__delattr__`` of a
    frozen dataclass, for the classes :func:`frozen` decorates."""

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

    def __setattr__(self, name: str, value: Any) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")


#: the kinds of pseudo-field a dataclass keeps beside its fields (a sentinel of its own
#: where a Python keeps them otherwise)
_INITVAR = getattr(dataclasses, "_FIELD_INITVAR", object())
_CLASSVAR = getattr(dataclasses, "_FIELD_CLASSVAR", object())


def _plan(cls: type) -> list[dataclasses.Field[Any]]:
    """The fields ``__init__`` sets, in order, checked as :func:`dataclasses.dataclass`
    checks them."""
    fields = []
    seen_default = False
    for f in cls.__dict__["__dataclass_fields__"].values():
        kind = getattr(f, "_field_type", None)
        if kind is _INITVAR:
            raise TypeError(f"@frozen: {cls.__name__}.{f.name}: InitVar is not supported")
        if kind is _CLASSVAR:
            continue
        fields.append(f)
        if f.init and not f.kw_only:
            if f.default is not MISSING or f.default_factory is not MISSING:
                seen_default = True
            elif seen_default:
                raise TypeError(f"non-default argument {f.name!r} follows default argument")
    return fields


def _compile_init(
    cls: type, fields: list[dataclasses.Field[Any]] | None = None
) -> Callable[..., None]:
    """``cls.__init__`` as :func:`dataclasses.dataclass` writes it for a frozen class
    (``fields``: its :func:`_plan`), compiled and set on the class."""
    fields = _plan(cls) if fields is None else fields
    me = "__dataclass_self__" if any(f.name == "self" for f in fields) else "self"
    scope: dict[str, Any] = {"__set": object.__setattr__, "__factory": _FACTORY}
    positional: list[str] = []
    keywords: list[str] = []
    body: list[str] = []
    for f in fields:
        default = f"__dflt_{f.name}"
        if f.default_factory is not MISSING:
            scope[default] = f.default_factory
            param = f"{f.name}=__factory"
            value = (
                f"{default}() if {f.name} is __factory else {f.name}" if f.init else f"{default}()"
            )
        elif not f.init:  # read from the class attribute that holds the default
            continue
        elif f.default is not MISSING:
            scope[default] = f.default
            param, value = f"{f.name}={default}", f.name
        else:
            param = value = f.name
        if f.init:
            (keywords if f.kw_only else positional).append(param)
        body.append(f"  __set({me}, {f.name!r}, {value})")
    if hasattr(cls, "__post_init__"):
        body.append(f"  {me}.__post_init__()")
    params = [me, *positional, *(["*", *keywords] if keywords else [])]
    source = "\n".join(
        [
            f"def __make__({', '.join(scope)}):",
            f" def __init__({', '.join(params)}):",
            *(body or ["  pass"]),
            " return __init__",
        ]
    )
    made: dict[str, Any] = {}
    exec(source, {}, made)  # the text is built above from the fields' names
    init: Callable[..., None] = made["__make__"](**scope)
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__annotations__ = {f.name: f.type for f in fields if f.init} | {"return": None}
    type.__setattr__(cls, "__init__", init)
    return init


class _HasDefaultFactory:
    def __repr__(self) -> str:
        return "<factory>"


#: the default of a parameter whose field has a default factory
_FACTORY = _HasDefaultFactory()


#: instances a class makes by the general constructor before its own is compiled: a
#: class made a few times a run never pays for compiling one (a few tenths of a
#: millisecond), one made often soon gets the faster one
COMPILE_AFTER = 16


def _lazy_init(cls: type, fields: list[dataclasses.Field[Any]]) -> Callable[..., None]:
    """An ``__init__`` that sets ``fields`` (the class's :func:`_plan`) by
    :func:`_set_fields` for the first :data:`COMPILE_AFTER` instances, then compiles the
    class's own and hands over to it."""
    made = [0]

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init = cls.__dict__["__init__"]
        if init is __init__:
            made[0] += 1
            if made[0] <= COMPILE_AFTER:
                _set_fields(cls, fields, self, args, kwargs)
                return
            init = _compile_init(cls, fields)
        init(self, *args, **kwargs)

    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    __init__.lazy = True  # type: ignore[attr-defined]
    return __init__


def _set_fields(
    cls: type,
    fields: list[dataclasses.Field[Any]],
    obj: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    """What the compiled ``__init__`` does, by reading the fields: the arguments bound as
    its parameters bind them (refused with the errors Python gives a call), each field
    set in order, from its argument, default or default factory, then
    ``__post_init__``."""
    where = f"{cls.__qualname__}.__init__()"
    init = [f for f in fields if f.init]
    positional = [f.name for f in init if not f.kw_only]
    given = dict(zip(positional, args, strict=False))  # the surplus is refused below
    names = {f.name for f in init}
    for key, value in kwargs.items():  # Python's order: the keywords, then the counts
        if key not in names:
            raise TypeError(f"{where} got an unexpected keyword argument {key!r}")
        if key in given:
            raise TypeError(f"{where} got multiple values for argument {key!r}")
        given[key] = value
    if len(args) > len(positional):
        raise TypeError(_too_many(where, init, len(args), given))
    for keyword in (False, True):
        missing = [
            repr(f.name)
            for f in init
            if f.kw_only == keyword
            and f.name not in given
            and f.default is MISSING
            and f.default_factory is MISSING
        ]
        if missing:
            said = (
                " and ".join(missing)
                if len(missing) < 3
                else ", ".join(missing[:-1]) + ", and " + missing[-1]
            )
            kind = "keyword-only" if keyword else "positional"
            plural = "s" if len(missing) > 1 else ""
            raise TypeError(
                f"{where} missing {len(missing)} required {kind} argument{plural}: {said}"
            )
    for f in fields:
        if f.init and f.name in given:
            value = given[f.name]
        elif f.default_factory is not MISSING:
            value = f.default_factory()
        elif f.init:
            value = f.default
        else:  # read from the class attribute that holds the default
            continue
        object.__setattr__(obj, f.name, value)
    if hasattr(cls, "__post_init__"):
        obj.__post_init__()


def _too_many(
    where: str, init: list[dataclasses.Field[Any]], count: int, given: dict[str, Any]
) -> str:
    """CPython's too_many_positional, ``self`` counted."""
    positional = [f for f in init if not f.kw_only]
    takes = len(positional) + 1
    defaults = sum(
        1 for f in positional if f.default is not MISSING or f.default_factory is not MISSING
    )
    sig = f"from {takes - defaults} to {takes}" if defaults else str(takes)
    plural = "s" if defaults or takes != 1 else ""
    keywords = sum(1 for f in init if f.kw_only and f.name in given)
    count += 1
    extra = (
        f" positional argument{'s' if count != 1 else ''} (and {keywords} keyword-only "
        f"argument{'s' if keywords != 1 else ''})"
        if keywords
        else ""
    )
    verb = "was" if count == 1 and not keywords else "were"
    return f"{where} takes {sig} positional argument{plural} but {count}{extra} {verb} given"


class _Signature:
    """A class's ``__signature__`` (absent on instances): None, which sends ``inspect`` on
    to ``__init__``, compiled first if it is not yet."""

    def __get__(self, obj: Any, owner: type) -> None:
        if obj is not None:
            raise AttributeError("__signature__")
        for cls in owner.__mro__:
            init = cls.__dict__.get("__init__")
            if init is not None:
                if getattr(init, "lazy", False):
                    _compile_init(cls)
                break
        return None


@overload
def frozen(cls: T, /) -> T: ...


@overload
def frozen(*, kw_only: bool = False) -> Callable[[T], T]: ...


@dataclass_transform(frozen_default=True)
def frozen(cls: Any = None, /, *, kw_only: bool = False) -> Any:
    """A frozen dataclass (``kw_only`` as :func:`dataclasses.dataclass` takes it) for a
    subclass of :class:`FrozenMethods`, which gives it its methods."""

    def wrap(cls: T) -> T:
        if not issubclass(cls, FrozenMethods):
            raise TypeError(f"@frozen: {cls.__name__} must derive from FrozenMethods")
        made = dataclasses.dataclass(
            cls, init=False, repr=False, eq=False, frozen=False, kw_only=kw_only
        )
        fields = _plan(made)  # checked now, as a dataclass checks its fields
        if "__init__" not in made.__dict__:  # a class's own __init__ stays, as a dataclass's
            type.__setattr__(made, "__init__", _lazy_init(made, fields))
            type.__setattr__(made, "__signature__", _Signature())
        return cast(T, made)

    return wrap if cls is None else wrap(cls)
