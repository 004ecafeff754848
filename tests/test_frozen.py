"""``@frozen`` against ``@dataclass(frozen=True)``: the same constructor, signature,
fields, equality, hash, repr and refusals, for classes of every kind of field."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
from dataclasses import InitVar, field
from typing import Any, ClassVar

import pytest

from shapecalc.core.frozen import COMPILE_AFTER, FrozenMethods, frozen


def _pair(kw_only: bool = False) -> tuple[type, type]:
    """The same class as ``@frozen`` makes it and as a frozen dataclass makes it."""

    def body(base: type) -> dict[str, Any]:
        def post_init(self: Any) -> None:
            object.__setattr__(self, "total", self.a + self.c)

        return {
            "__annotations__": {
                "a": "int",
                "b": "tuple[int, ...]",
                "c": "int",
                "d": "int",
                "e": "tuple[int, ...]",
                "f": "str",
                "k": "ClassVar[int]",
            },
            "b": field(default_factory=tuple),
            "c": 2,
            "d": field(default=5, init=False),
            "e": field(default_factory=lambda: (1, 2), init=False),
            "f": field(default="x", compare=False, repr=False),
            "k": 3,
            "__post_init__": post_init,
            "__module__": __name__,
        }

    ours = frozen(kw_only=kw_only)(type("Ours", (FrozenMethods,), body(FrozenMethods)))
    theirs = dataclasses.dataclass(frozen=True, kw_only=kw_only)(type("Ours", (), body(object)))
    return ours, theirs


@pytest.mark.parametrize("kw_only", [False, True])
def test_like_a_frozen_dataclass(kw_only: bool) -> None:
    ours, theirs = _pair(kw_only)
    # the signature, asked before any instance is made (the __init__ is not compiled yet)
    assert str(inspect.signature(ours)) == str(inspect.signature(theirs))
    assert [f.name for f in dataclasses.fields(ours)] == ["a", "b", "c", "d", "e", "f"]
    args: dict[str, Any] = {"a": 1, "b": (4,), "c": 7}
    mine, other = ours(**args), theirs(**args)
    assert repr(mine) == repr(other)
    assert dataclasses.asdict(mine) == dataclasses.asdict(other)
    assert (mine.d, mine.e, mine.total) == (other.d, other.e, other.total) == (5, (1, 2), 8)
    assert mine == ours(**args, f="y") and mine != ours(**{**args, "c": 3})
    assert hash(mine) == hash(ours(**args, f="y"))
    assert dataclasses.replace(mine, c=9).total == 10
    assert copy.copy(mine) == mine == copy.deepcopy(mine)
    for name in ("a", "z"):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(mine, name, 0)
        with pytest.raises(dataclasses.FrozenInstanceError):
            delattr(mine, name)
    with pytest.raises(TypeError, match="missing 1 required"):
        ours()
    if kw_only:
        with pytest.raises(TypeError):
            ours(1)
    else:
        assert ours(1) == ours(a=1)


CALLS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((1,), {}),
    ((1, (2,)), {}),
    ((1, (2,), 3), {}),
    ((), {"a": 1, "c": 4}),
    ((), {}),
    ((1, (2,), 3, 4), {}),
    ((1,), {"a": 2}),
    ((1,), {"z": 2}),
    ((1,), {"d": 2}),
    ((1,), {"f": "y"}),
]


@pytest.mark.parametrize("kw_only", [False, True])
def test_made_by_the_general_constructor_then_the_compiled_one(kw_only: bool) -> None:
    """The first instances are made without compiling an ``__init__``, the later ones by
    the compiled one: every call (good or refused) does what the frozen dataclass's own
    constructor does, before and after, the errors word for word."""

    def outcome(cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        try:
            made = cls(*args, **kwargs)
        except TypeError as err:
            return f"TypeError: {err}"
        return f"{made!r} {made.total}"

    ours, theirs = _pair(kw_only)
    for turn in range(COMPILE_AFTER // len(CALLS) + 2):
        for args, kwargs in CALLS:
            assert outcome(ours, args, kwargs) == outcome(theirs, args, kwargs), (turn, args)
    assert not getattr(ours.__dict__["__init__"], "lazy", False)  # compiled by now


@frozen
class Pickled(FrozenMethods):
    a: int
    b: tuple[int, ...] = ()


def test_pickled() -> None:
    made = Pickled(1, (2,))
    assert pickle.loads(pickle.dumps(made)) == made


def test_subclasses() -> None:
    @frozen
    class Base(FrozenMethods):
        a: int
        b: int = 2

    @frozen(kw_only=True)
    class Sub(Base):
        c: int

    class Plain(Base):  # not a dataclass: Base's __init__
        pass

    assert str(inspect.signature(Plain)) == "(a: 'int', b: 'int' = 2) -> None"
    assert Plain(1) == Plain(1) and repr(Plain(1, 3)) == "test_subclasses.<locals>.Plain(a=1, b=3)"
    assert Sub(1, c=3) == Sub(a=1, b=2, c=3) and Sub(1, c=3) != Base(1)
    assert str(inspect.signature(Sub)) == "(a: 'int', b: 'int' = 2, *, c: 'int') -> None"


def test_refused_as_a_dataclass_refuses() -> None:
    with pytest.raises(TypeError, match="non-default argument 'b' follows default argument"):

        @frozen
        class Late(FrozenMethods):
            a: int = 1
            b: int

    with pytest.raises(TypeError, match="InitVar"):

        @frozen
        class Later(FrozenMethods):
            a: InitVar[int]

    with pytest.raises(TypeError, match="must derive from FrozenMethods"):

        @frozen
        class Bare:
            a: int


def test_classvars_are_not_fields() -> None:
    @frozen
    class Kept(FrozenMethods):
        a: int
        k: ClassVar[int] = 3

    assert [f.name for f in dataclasses.fields(Kept)] == ["a"]
    assert Kept(1).k == 3 and str(inspect.signature(Kept)) == "(a: 'int') -> None"


def test_missing_arguments_worded_as_python_words_them() -> None:
    body = {"__annotations__": {"a": "int", "b": "int", "c": "int"}, "__module__": __name__}
    ours = frozen(type("Three", (FrozenMethods,), dict(body)))
    theirs = dataclasses.dataclass(frozen=True)(type("Three", (), dict(body)))
    for args in [(), (1,), (1, 2), (1, 2, 3, 4)]:
        with pytest.raises(TypeError) as mine:
            ours(*args)
        with pytest.raises(TypeError) as other:
            theirs(*args)
        assert str(mine.value) == str(other.value)


def test_a_class_s_own_init_stays() -> None:
    @frozen
    class Own(FrozenMethods):
        a: int

        def __init__(self, value: str) -> None:
            object.__setattr__(self, "a", int(value))

    assert Own("3").a == 3 and str(inspect.signature(Own)) == "(value: 'str') -> 'None'"
