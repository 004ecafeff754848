"""An architecture, declared once: a frozen config dataclass and the tree it builds.

The fields of an :class:`Architecture` are its arguments, each made by :func:`size`,
:func:`flag`, :func:`choice` or :func:`number` with its letter (for sizes), default,
help text and rule. From that declaration come the command line (``shapecalc COMMAND``
with one option per field), ``solve``'s free sizes, the symbolic template whose counts are
the formulas, the JSON ``model.arguments``, the docs reference page, ``--explain``'s legend
of sizes, the torch module (through the tree) and a hypothesis strategy for tests.

    >>> from dataclasses import dataclass
    >>> from shapecalc.core.tree import Sequential
    >>> from shapecalc.layers.linear import Linear
    >>> @dataclass(frozen=True)
    ... class Probe(Architecture):
    ...     "A linear probe."
    ...     command = "probe"
    ...     features: Any = size("F", "Input features.")
    ...     classes: Any = size("C", "Classes.", 2)
    ...     def build(self) -> Built:
    ...         return Built(Sequential(Linear(self.features, self.classes)))
    >>> m = Probe(768).model()
    >>> m.total, str(m.total_formula), m.describe_sizes()
    (1538, 'C·F + C', 'F=768, C=2')
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from shapecalc.core.dims import Dim, Expr, as_size, known, symbol
from shapecalc.core.errors import InvalidArgumentError, echo, refuse_arrays
from shapecalc.core.frozen import FrozenMethods
from shapecalc.core.model import Model
from shapecalc.core.tree import Node

if TYPE_CHECKING:  # the Hugging Face mapping loads with the first architecture that has one
    from shapecalc.core.hfmap import HFType, Reference

__all__ = [
    "Architecture",
    "Argument",
    "Built",
    "Reference",
    "arguments_of",
    "choice",
    "flag",
    "indices",
    "layer_kinds",
    "number",
    "size",
    "size_list",
]

#: the key of a field's :class:`Argument` in its dataclass metadata
KEY = "shapecalc"


class _Nothing:
    """No value means "not set" (a required size, or one whose every value counts)."""

    def __repr__(self) -> str:
        return "NOTHING"


NOTHING: Any = _Nothing()


@dataclass(frozen=True)
class Argument:
    """What one field of an architecture is: a size, a flag, a choice or a number."""

    kind: str
    help: str
    #: sizes: the letter in formulas (V, H, L)
    letter: str = ""
    #: sizes: the smallest value (0 where 0 means "none", as proj_size)
    minimum: int = 1
    #: sizes: ``solve`` may solve for it (counts grow with it)
    solvable: bool = True
    #: sizes: replaced by its letter in the template (False: the formulas keep the number,
    #: as the LSTM's layer count, so that every layer keeps its own rows)
    symbolic: bool = True
    #: sizes: a size name is accepted (False: a number only, as a count of layers that
    #: the tree lists one by one, or a kernel size)
    names: bool = True
    #: sizes: the value that means "not set" (no letter, no symbol): None or 0
    unset: Any = NOTHING
    #: sizes: a rule the layers check, that it is smaller than this other size field
    #: (the docs state it, test strategies draw it so)
    below: str = ""
    #: what the default means when it is "not set" (``H`` for the embedding size)
    default_text: str = ""
    #: choices: the options
    options: tuple[str, ...] = ()
    #: numbers: the closed lower bound and the upper bound, open when ``open_high``
    low: float = -math.inf
    high: float = math.inf
    open_high: bool = False

    @property
    def rule(self) -> str:
        """The rule a value must follow, in words."""
        if self.kind == "size":
            rule = f"an integer >= {self.minimum}" + (" or a size name" if self.names else "")
            return rule + (f", smaller than {self.below}" if self.below else "")
        if self.kind == "flag":
            return "True or False"
        if self.kind == "choice":
            return "one of " + ", ".join(self.options)
        if self.kind == "indices":
            return "integers >= 0, comma-separated, each once (none by default)"
        if self.kind == "sizes":
            return "integers >= 1, comma-separated, one per stage"
        if self.kind == "kinds":
            return (
                "one kind per layer, or a pattern repeated from layer 0 (kind*N repeats a "
                "kind N times), each of " + ", ".join(self.options)
            )
        close = ")" if self.open_high else "]"
        return f"a number in [{_num(self.low)}, {_num(self.high)}{close}"


def _num(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def _field(default: Any, argument: Argument) -> Any:
    return field(default=default, metadata={KEY: argument})


def size(
    letter: str,
    help: str,
    default: Any = dataclasses.MISSING,
    *,
    minimum: int = 1,
    solvable: bool = True,
    symbolic: bool = True,
    names: bool = True,
    unset: Any = NOTHING,
    below: str = "",
    default_text: str = "",
) -> Any:
    """A size argument: an int (``>= minimum``) or a size name, with its formula letter.

    ``names=False`` takes numbers only (the tree needs the number: a count of layers
    listed one by one, a kernel size), and keeps it a number in the formulas;
    ``symbolic=False`` takes names but keeps a number as it is in the formulas. ``unset``
    is the value that means "none" (``embed_dim=None``: the hidden size; ``proj_size=0``:
    no projection); such a value gets no letter. ``below`` names a size this one must stay
    under, a rule the model's layers check (``proj_size`` under ``hidden``)."""
    return _field(
        default,
        Argument(
            "size",
            help,
            letter=letter,
            minimum=minimum,
            solvable=solvable,
            symbolic=symbolic and names,
            names=names,
            unset=unset,
            below=below,
            default_text=default_text,
        ),
    )


def flag(help: str, default: bool = False) -> Any:
    """A True/False argument (``--name/--no-name`` on the command line)."""
    return _field(default, Argument("flag", help))


def choice(options: tuple[str, ...], help: str, default: str) -> Any:
    """One of ``options``."""
    return _field(default, Argument("choice", help, options=options))


def indices(help: str) -> Any:
    """A set of layer numbers (Qwen-MoE's dense ``mlp_only_layers``): integers >= 0, each
    once, given as a list or tuple, or as text ``"0,1,2"``; held sorted; none by default
    (None or an empty list, but not an empty text, which is a list left blank)."""
    return _field((), Argument("indices", help))


def size_list(help: str, default: tuple[int, ...]) -> Any:
    """Sizes, one per stage (ConvNeXt's and ResNet's ``depths`` and ``hidden_sizes``):
    integers >= 1, given as a list or tuple, or as text ``"3,3,9,3"``; numbers only (the
    tree lists each stage), at least one. Held as a tuple."""
    return _field(default, Argument("sizes", help))


def layer_kinds(options: tuple[str, ...], help: str) -> Any:
    """The kind of each layer (``layer_types``: sliding or full attention, linear
    attention, ...): a list or tuple of ``options``, or text ``"a,b,b"`` where ``b*5`` is
    ``b`` five times; one per layer, or a pattern shorter than the layers that repeats
    from layer 0 (the architecture checks the length against its layers). Empty by
    default: the architecture's own rule."""
    return _field((), Argument("kinds", help, options=options))


def number(
    help: str,
    default: float,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    open_high: bool = False,
) -> Any:
    """A real number within ``[low, high]`` (``[low, high)`` when ``open_high``)."""
    return _field(default, Argument("number", help, low=low, high=high, open_high=open_high))


@dataclass(frozen=True)
class Built:
    """What an architecture's :meth:`Architecture.build` returns: its tree and what the
    model needs beside it."""

    root: Node
    #: tied parameter full name -> the full name of the parameter it shares
    ties: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    #: the input shapes by size name, "B" and "T" for batch and sequence (see Model)
    input_layout: tuple[tuple[str | int, ...], ...] = ()
    group_depth: int = 1
    #: the model's name when it depends on the arguments (the title otherwise)
    name: str = ""
    #: the leaf that maps vectors back to tokens (``lm_head``), if any: with the embedding
    #: tables, what "non-embedding" counts leave out
    head: str = ""
    #: name prefixes of the real class's tensors the model does not count yet -> what they
    #: are (see :attr:`Model.uncounted`)
    uncounted: Mapping[str, str] = field(default_factory=dict)


A = TypeVar("A", bound="Architecture")


def arguments_of(cls: type[Architecture]) -> list[tuple[dataclasses.Field[Any], Argument]]:
    """The declared fields of an architecture with their :class:`Argument`, in order."""
    found = _ARGUMENTS.get(cls)
    if found is None:  # worked out once per class: a sweep makes thousands of configs
        found = _ARGUMENTS[cls] = tuple(
            (f, f.metadata[KEY])
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            if KEY in f.metadata
        )
    return list(found)


_ARGUMENTS: dict[type, tuple[tuple[dataclasses.Field[Any], Argument], ...]] = {}
_SIZES: dict[type, tuple[tuple[str, str, Any], ...]] = {}


def _size_fields(cls: type[Architecture]) -> tuple[tuple[str, str, Any], ...]:
    """(name, letter, unset value) of the class's sizes in :attr:`size_order`, once."""
    found = _SIZES.get(cls)
    if found is None:
        declared = {f.name: a for f, a in arguments_of(cls) if a.kind == "size"}
        order = [name for name in cls.size_order or declared if name in declared]
        found = _SIZES[cls] = tuple(
            (name, declared[name].letter, declared[name].unset) for name in order
        )
    return found


class Architecture(FrozenMethods):
    """Base of every architecture: subclasses are frozen dataclasses whose fields are made
    with :func:`size`, :func:`flag`, :func:`choice` and :func:`number`, and which define
    :meth:`build`. Instances check their arguments when made (:meth:`check` adds rules
    between them)."""

    #: the command (``shapecalc lstm``), also the module's name in ``architectures/``
    command: ClassVar[str]
    #: the library function and the JSON ``model.kind`` (``lstm_lm``); the command if empty
    function: ClassVar[str] = ""
    #: the model's name in titles
    title: ClassVar[str] = ""
    #: the arguments of a typical model on the command line (docs, tests and ``--help``)
    example: ClassVar[str] = ""
    #: a parameter budget the example's sizes can meet, for ``solve``'s help example
    budget: ClassVar[str] = "10M"
    #: the order of the sizes in titles (``V=65, H=512, L=2``); the field order if empty
    size_order: ClassVar[tuple[str, ...]] = ()
    #: the inputs have a sequence length (T): the command takes ``--seq-len``
    sequence: ClassVar[bool] = True
    #: what ``--explain`` explains, for its help
    explains: ClassVar[str] = "Explain the sizes, the matrices and where the total comes from."
    #: options beyond the fields that the architecture's layers call for: "reset-after"
    #: (Keras' GRU bias) for a model with a GRU
    extra_options: ClassVar[tuple[str, ...]] = ()
    #: the Hugging Face model types this architecture builds (:mod:`shapecalc.core.hfmap`),
    #: in the order ``--verify`` tries them
    hf: ClassVar[tuple[HFType, ...]] = ()

    def __post_init__(self) -> None:
        for f, argument in arguments_of(type(self)):
            value = getattr(self, f.name)
            refuse_arrays(value, function=self.owner(), argument=f.name)
            object.__setattr__(self, f.name, self._normalise(f.name, argument, value))
        self._check_letters()
        self.check()

    def varied(self: A, changes: dict[str, Any]) -> A:
        """The same configuration with some arguments changed, each already normalised by
        a configuration made with it (a sweep makes one per value, then varies): the
        rules between arguments (:meth:`check`) run again, the per-argument ones do not."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.__dict__.update(changes)
        new._check_letters()
        new.check()
        return new

    # -- checks -------------------------------------------------------------------------
    @classmethod
    def owner(cls) -> str:
        """The name errors start with: the library function (``lstm_lm``)."""
        return cls.function or cls.command

    def _fail(self, field: str, value: Any, rule: str, detail: str) -> None:
        raise InvalidArgumentError(
            f"{rule}, {detail}", layer=self.owner(), field=field, value=value, rule=rule
        )

    def _check_letters(self) -> None:
        """A size given in letters uses another size's letter only when that size is the
        same letter: ``--experts 64 --experts-per-token E`` would print k=E beside E=64,
        and formulas in E where E is 64. (``--hidden H --heads H``: heads is the hidden
        size, the same H.)"""
        sizes = [(f.name, a) for f, a in arguments_of(type(self)) if a.kind == "size"]
        owners = {a.letter: name for name, a in sizes}
        for name, _ in sizes:
            value = getattr(self, name)
            if not isinstance(value, Expr):
                continue
            for letter in sorted(value.free_symbols):
                other = owners.get(letter)
                if other is None or other == name:
                    continue
                given = getattr(self, other)
                if isinstance(given, Expr) and str(given) == letter:
                    continue
                held = "not given" if given is None else str(given)
                self._fail(
                    name,
                    str(value),
                    "a size's letter stands for that size only",
                    f"{name} {value} uses {letter}, the letter of {other}, which is {held}: "
                    f"give {name} a number or a letter of its own",
                )

    def _normalise(self, name: str, argument: Argument, value: Any) -> Any:
        if argument.kind == "size":
            if value is None and argument.unset is None:
                return None
            size = as_size(value, owner=self.owner(), field=name, minimum=argument.minimum)
            if isinstance(size, Expr) and not argument.names:
                rule = f"{name} must be {argument.rule}"
                self._fail(name, value, rule, f"got the name {size} (the tree needs the number)")
            return size
        if argument.kind == "flag":
            if not isinstance(value, bool):
                self._fail(name, value, f"{name} must be True or False", f"got {echo(value)}")
            return value
        if argument.kind == "choice":
            if value not in argument.options:
                listed = ", ".join(repr(o) for o in argument.options)
                self._fail(name, value, f"{name} must be one of {listed}", f"got {echo(value)}")
            return value
        if argument.kind == "indices":
            return self._indices(name, argument, value)
        if argument.kind == "kinds":
            return self._kinds(name, argument, value)
        if argument.kind == "sizes":
            return self._size_list(name, argument, value)
        rule = f"{name} must be {argument.rule}"
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not argument.low <= value <= argument.high
            or (argument.open_high and value == argument.high)
        ):
            self._fail(name, value, rule, f"got {echo(value)}" + self.explain_number(name, value))
        return float(value) if isinstance(value, int) else value

    def _kinds(self, name: str, argument: Argument, value: Any) -> tuple[str, ...]:
        """Layer kinds: a list or tuple of the options, or their text ``"a,b*5"``; None
        or an empty list: the architecture's rule."""
        rule = f"{name} must be {argument.rule}"
        if value is None:
            return ()
        items: list[Any] = []
        if isinstance(value, str):
            if not value.strip():
                self._fail(name, value, rule, "got an empty list (leave it out for the default)")
            for part in (p.strip() for p in value.split(",")):
                kind, star, times = part.partition("*")
                times = times.strip()
                if star and not (times.isascii() and times.isdigit() and 0 < len(times) < 7):
                    self._fail(name, value, rule, f"got {echo(part)}: N in kind*N is a count")
                count = int(times) if star else 1
                if count < 1:
                    self._fail(name, value, rule, f"got {echo(part)}: N in kind*N is 1 or more")
                items.extend([kind.strip()] * count)
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            self._fail(name, value, rule, f"got {echo(value)}")
        for item in items:
            if item not in argument.options:
                self._fail(name, value, rule, f"got the kind {echo(item)}")
        return tuple(items)

    def _size_list(self, name: str, argument: Argument, value: Any) -> tuple[int, ...]:
        """Sizes, one per stage: a list or tuple of integers >= 1, or their text
        ``"3,3,9,3"``; at least one."""
        rule = f"{name} must be {argument.rule}"
        items: Any = value
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",")]
            if not all(p.isascii() and p.isdigit() and len(p) < 19 for p in parts):
                self._fail(name, value, rule, f"got {echo(value)}")
            items = [int(p) for p in parts]
        if (
            not isinstance(items, (list, tuple))
            or not items
            or not all(
                isinstance(i, int) and not isinstance(i, bool) and 1 <= i < 2**63 for i in items
            )
        ):
            self._fail(name, value, rule, f"got {echo(value)}")
        return tuple(items)

    def kinds_of(self, name: str, layers: int) -> tuple[str, ...] | None:
        """The kind of each of ``layers`` layers from the kinds argument ``name``: as
        given when one per layer, a shorter pattern repeated; None when not given (the
        architecture's own rule). More kinds than layers is refused."""
        given: tuple[str, ...] = getattr(self, name)
        if not given:
            return None
        if len(given) > layers:
            self._fail(
                name,
                ",".join(given),
                f"{name} gives one kind per layer, or a shorter pattern",
                f"got {len(given)} kinds for {layers} layers",
            )
        return tuple(given[i % len(given)] for i in range(layers))

    def _indices(self, name: str, argument: Argument, value: Any) -> tuple[int, ...]:
        """Layer numbers: a list or tuple of integers >= 0, or their text ``"0,1,2"``, each
        once (a number twice is a typo: refused); None: none. Held sorted."""
        rule = f"{name} must be {argument.rule}"
        if value is None:
            return ()
        items: Any = value
        if isinstance(value, str):
            if not value.strip():
                self._fail(name, value, rule, "got an empty list (leave it out for none)")
            parts = [p.strip() for p in value.split(",")]
            if not all(p.isascii() and p.isdigit() and len(p) < 19 for p in parts):
                self._fail(name, value, rule, f"got {echo(value)}")
            items = [int(p) for p in parts]
        if not isinstance(items, (list, tuple)) or not all(
            isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 2**63 for i in items
        ):
            self._fail(name, value, rule, f"got {echo(value)}")
        twice = sorted({i for i in items if items.count(i) > 1})
        if twice:
            self._fail(name, value, rule, f"got {twice[0]} twice")
        return tuple(sorted(items))

    def explain_number(self, name: str, value: Any) -> str:
        """Words to add to a refused number (`` (1 would zero every activation)``)."""
        return ""

    def check(self) -> None:
        """Rules between arguments; raise :class:`InvalidArgumentError` naming the field."""

    def explanation(self, model: Model) -> list[tuple[str, list[str]]]:
        """Sections of ``--explain`` the architecture writes about its model (a title and
        its lines), after the legend of sizes; none by default."""
        return []

    def reference(self) -> Reference | None:
        """The class of another library that builds this configuration (a ``transformers``
        model), for ``--verify``: by default the first of :attr:`hf` that can say every
        argument; None when there is none."""
        if not self.hf:
            return None
        from shapecalc.core.hfmap import reference_of

        return reference_of(self)

    def hf_values(self) -> dict[str, Any]:
        """The arguments as a config writes them: an unset size as the value it stands
        for (a LLaMA's kv_heads None is its heads); layer kinds one per layer (a pattern
        repeated); the arguments themselves by default."""
        out = self.arguments()
        layers = known(out.get("layers", 0)) if "layers" in out else None
        for f, argument in arguments_of(type(self)):
            if argument.kind == "kinds" and out[f.name] and layers is not None:
                out[f.name] = list(self.kinds_of(f.name, layers) or ())
        return out

    @classmethod
    def multiple_for(cls, free: str, arguments: dict[str, Any]) -> int:
        """What the size ``free`` must be a multiple of, the other arguments given (the
        hidden size of a transformer: of its heads); ``solve`` steps by it."""
        return 1

    @classmethod
    def consistent(cls, arguments: dict[str, Any]) -> dict[str, Any]:
        """Arguments drawn one by one (by a test strategy), changed so that those that
        depend on each other agree; the default changes nothing."""
        return arguments

    # -- what it is -----------------------------------------------------------------------
    def arguments(self) -> dict[str, Any]:
        """The arguments by name, in declaration order (the JSON ``model.arguments``)."""
        return {f.name: getattr(self, f.name) for f, _ in arguments_of(type(self))}

    def sizes(self) -> dict[str, Dim]:
        """The named sizes that are set, by letter, in :attr:`size_order`."""
        out: dict[str, Dim] = {}
        for name, letter, unset in _size_fields(type(self)):
            value = getattr(self, name)
            if value is not None and value != unset:
                out[letter] = value
        return out

    def build(self) -> Built:
        """The model's tree (and its ties, notes and input layout)."""
        raise NotImplementedError

    def template(self: A) -> A:
        """The same architecture with every size that is set replaced by its letter (a
        size declared ``symbolic=False`` keeps its number, and a size of 0, which means
        none (experts 0: no mixture, that a letter would build)): its counts are the
        formulas."""
        changes: dict[str, Any] = {}
        for f, argument in arguments_of(type(self)):
            value = getattr(self, f.name)
            if argument.kind != "size" or not argument.symbolic or isinstance(value, Expr):
                continue
            if value is None or value == argument.unset or value == 0:
                continue
            changes[f.name] = symbol(argument.letter)
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def _build(self) -> Built:
        """:meth:`build`, with a size name the tree cannot take refused as the argument's
        error, not as a crash inside the builder."""
        try:
            return self.build()
        except (TypeError, ValueError, ArithmeticError) as err:
            if isinstance(err, InvalidArgumentError):
                raise
            named = [k for k, v in self.arguments().items() if isinstance(v, Expr)]
            if not named:
                raise
            raise InvalidArgumentError(
                f"{', '.join(named)} cannot be a size name for this architecture, which needs "
                f"the number to build its layers ({type(err).__name__}: {err})",
                layer=self.owner(),
                field=named[0],
                value=str(self.arguments()[named[0]]),
                rule="sizes the layers need as numbers are numbers",
            ) from None

    def _template_model(self) -> Model | None:
        """The model with its sizes as letters, or None when the layers need numbers that
        the letters replace (then the formulas are the counts)."""
        try:
            return self.template()._build_model()
        except (InvalidArgumentError, TypeError, ValueError, ArithmeticError):
            return None

    def model(self) -> Model:
        """The model this configuration describes."""
        built = self._build()
        return Model(
            name=built.name or self.title or type(self).__name__,
            root=built.root,
            ties=built.ties,
            sizes=self.sizes(),
            make_template=self._template_model,
            factory=type(self).create,
            arguments=self.arguments(),
            notes=built.notes,
            input_layout=built.input_layout,
            kind=self.owner(),
            group_depth=built.group_depth,
            config=self,
            head=built.head,
            uncounted=built.uncounted,
        )

    def _build_model(self) -> Model:
        """The model without a template of its own (the template's model)."""
        built = self._build()
        return Model(
            name=built.name or self.title,
            root=built.root,
            ties=built.ties,
            sizes=self.sizes(),
            input_layout=built.input_layout,
            group_depth=built.group_depth,
            head=built.head,
        )

    @classmethod
    def create(cls, *args: Any, **kwargs: Any) -> Model:
        """``cls(...).model()``: the architecture's library function (``lstm_lm``)."""
        return cls(*args, **kwargs).model()

    @classmethod
    def function_for(cls) -> Callable[..., Model]:
        """The library function, named as :attr:`function` says, taking the fields as its
        arguments (``shapecalc.lstm_lm(vocab=65, hidden=512, layers=2)``); its signature
        is the class's (``inspect.signature`` follows ``__wrapped__``)."""

        def make(*args: Any, **kwargs: Any) -> Model:
            return cls(*args, **kwargs).model()

        make.__name__ = make.__qualname__ = cls.owner()
        make.__doc__ = cls.__doc__
        make.__module__ = cls.__module__
        make.__wrapped__ = cls  # type: ignore[attr-defined]
        make.architecture = cls  # type: ignore[attr-defined]
        return make


def __getattr__(name: str) -> Any:
    """``Reference``, from :mod:`shapecalc.core.hfmap`, on first use (the recurrent models
    and the MLP never load the Hugging Face mapping)."""
    if name == "Reference":
        from shapecalc.core.hfmap import Reference

        return Reference
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
