"""Parameters and the layer-spec base class.

A layer spec is a frozen dataclass whose fields are the ``torch.nn`` constructor's own
argument names and defaults, so ``getattr(torch.nn, spec.kind)(**spec.arguments())``
builds the real module. Its :meth:`LayerSpec.params` yields PyTorch's exact parameter
names, in PyTorch's order, with the exact ``param.shape``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, NoReturn

from shapecalc.core.dims import Dim, Expr, as_size, dim_str, exact_div, int_text, known, product
from shapecalc.core.errors import ShapeError, field_error, refuse_arrays
from shapecalc.core.frozen import FrozenMethods
from shapecalc.core.storage import STORAGE

__all__ = [
    "REGISTERED",
    "STATE_KINDS",
    "STORED_BYTES",
    "LayerSpec",
    "Param",
    "Shape",
    "Stored",
    "Work",
    "expand",
    "register",
    "shown",
]


#: bytes per number of the dtypes a tensor may keep whatever the weights' dtype (the
#: dtypes stored in blocks are in :data:`~shapecalc.core.storage.STORAGE` only)
STORED_BYTES: dict[str, int] = {name: s.block_bytes for name, s in STORAGE.items() if s.block == 1}


@dataclass(frozen=True)
class Param:
    """One tensor of a layer: its PyTorch name, its exact shape and what it does.

    Example:

        >>> p = Param("weight", (512, 65), "token embedding table")
        >>> p.count
        33280
    """

    name: str
    shape: tuple[Dim, ...]
    role: str
    trainable: bool = True
    #: how many tensors of this name pattern and shape there are: 1, or a block repeated
    #: by a symbolic layer count (``weight_ih_l{1..L-1}`` stands for L - 1 tensors)
    repeat: Dim = 1
    #: for a block of numbered layers (``weight_ih_l{1..95}``): the layer indices it holds
    layers: range | None = None
    #: the dtype the tensor is stored in whatever the weights' dtype, as torch names it
    #: (MXFP4's packed blocks and scales: ``uint8``); empty: the weights' dtype
    dtype: str = ""

    @property
    def itemsize(self) -> int | None:
        """Bytes per number of a tensor with a dtype of its own; None: the weights' (or a
        dtype stored in blocks, whose bytes :meth:`nbytes` gives)."""
        return STORAGE[self.dtype].itemsize if self.dtype else None

    def nbytes(self, itemsize: int) -> Dim:
        """Bytes of the tensor (or of the repeated tensors): ``itemsize`` per number, or
        its own dtype's (a block dtype's bytes per block, row by row)."""
        if not self.dtype:
            return self.count * itemsize
        storage = STORAGE[self.dtype]
        if storage.block == 1 or not self.shape:
            return self.repeat * storage.nbytes(product(self.shape))
        rows = product(self.shape[:-1])
        return self.repeat * rows * storage.nbytes(self.shape[-1])

    def at(self, index: int) -> Param:
        """The one tensor of a block for layer ``index`` (``weight_ih_l7``); every
        ``{1..95}`` in the name takes the index (``bidirectional_7/forward_lstm_7``)."""
        name = re.sub(r"\{[^{}]*\}", str(index), self.name)
        return dataclasses.replace(self, name=name, repeat=1, layers=None)

    @property
    def count(self) -> Dim:
        """How many numbers the tensor (or the repeated tensors) hold."""
        return self.repeat * product(self.shape)

    def substitute(self, values: Mapping[str, Dim]) -> Param:
        """The same tensor with named sizes in its shape and repeat replaced."""
        return dataclasses.replace(
            self,
            shape=tuple(_subs(d, values) for d in self.shape),
            repeat=_subs(self.repeat, values),
        )

    @property
    def size(self) -> Dim:
        """The count of one tensor: the product of its shape."""
        return product(self.shape)


def expand(params: Iterable[Param]) -> Iterator[Param]:
    """Blocks of layers back to single tensors in PyTorch's order: layer by layer, and
    within a layer the block's tensors in turn (``weight_ih_l1``, ``weight_hh_l1``, ...,
    ``weight_ih_l2``, ...)."""
    run: list[Param] = []
    for param in [*params, None]:
        if run and (param is None or param.layers != run[0].layers):
            numbers = run[0].layers
            assert numbers is not None
            for index in numbers:
                yield from (p.at(index) for p in run)
            run = []
        if param is None:
            break
        if param.layers is None:
            yield param
        else:
            run.append(param)


Shape = tuple[Dim, ...]


@dataclass(frozen=True)
class Stored:
    """A tensor a layer keeps: for the backward pass, or as state between calls."""

    name: str
    shape: Shape
    #: bytes per number; None means the activation dtype (fp32, or fp16/bf16 under mixed
    #: precision). Token indices and bag bookkeeping are int64 (8).
    itemsize: int | None = None
    #: how many tensors of this shape (one per time step, per layer, ...)
    copies: Dim = 1
    #: when the tensor is one the call receives or returns, which: ``"input"`` (the first
    #: input), ``"input1"``, ``"input2"``, ... or ``"output"`` (the first output). A model
    #: counts such a tensor once however many layers keep it (a ReLU's output is the next
    #: Linear's input); None is a tensor of the layer's own.
    of: str | None = None
    #: one tensor for the whole forward, whichever layers keep it (counted once)
    shared: bool = False
    #: the ``of`` tensor cast to a dtype of ``itemsize`` bytes (peft casts an adapted
    #: layer's input to its float32 adapters): the ``of`` tensor itself when the
    #: activations are of that size already (counted once with whoever else keeps it),
    #: else a copy of this layer's own; ``itemsize`` bytes a number either way
    cast: bool = False
    #: of a cast tensor in a model's account, which of the two this entry counts:
    #: ``"same"`` (the ``of`` tensor, kept as such only when the activations are of
    #: ``itemsize`` bytes) or ``"copy"`` (only when they are not); "" otherwise
    when: str = ""
    #: state that grows with the context, a token's worth per position (a KV cache; an
    #: RNN's h and c do not): ``positions`` is the size in ``shape`` that counts them
    per_position: bool = False
    #: inference state: the positions of ``positions`` it keeps at most (a sliding
    #: window's cache: transformers keeps the last window − 1), None for all of them
    window: int | None = None
    #: inference state: the positions the shape counts (the keys' length S), a size of
    #: ``shape``; needed with ``window`` and to give the bytes per token
    positions: Dim | None = None
    #: inference state: the kind of layer that keeps it, one of :data:`STATE_KINDS`
    #: ("full attention", "sliding attention", "state space", ...); the account of the
    #: inference state groups layers by it
    kind: str = ""
    #: inference state kept by one convention only (latent attention: the compressed
    #: ``"latent"`` transformers 5 and the serving engines keep, or every head's keys and
    #: values, ``"heads"``); None for every convention
    convention: str | None = None

    @property
    def count(self) -> Dim:
        return self.copies * product(self.shape)

    def nbytes(self, activation_itemsize: int) -> Dim:
        if self.when and (activation_itemsize == self.itemsize) != (self.when == "same"):
            return 0  # the other entry of a cast tensor counts it (see :attr:`when`)
        return self.count * (activation_itemsize if self.itemsize is None else self.itemsize)

    @property
    def kept(self) -> Dim:
        """The numbers kept as inference state: :attr:`count`, with the positions capped
        at :attr:`window` where the positions are a number past it. With a symbolic
        length the cap cannot be written as a polynomial: the count is then the one past
        the window (the context longer than the window, the case that matters), and
        :attr:`capped` says so."""
        if self.window is None or self.positions is None:
            return self.count
        per = exact_div(self.count, self.positions)
        if per is None:
            return self.count
        n = known(self.positions)
        if n is not None and n <= self.window:
            return self.count
        return per * self.window

    @property
    def capped(self) -> bool:
        """True when :attr:`kept` took the window instead of the positions: a number of
        positions past it, or a symbolic one (then kept assumes the context is longer)."""
        if self.window is None or self.positions is None:
            return False
        n = known(self.positions)
        return n is None or n > self.window

    def kept_bytes(self, itemsize: int) -> Dim:
        """Bytes of :attr:`kept` at ``itemsize`` (this tensor's own where it has one)."""
        return self.kept * (itemsize if self.itemsize is None else self.itemsize)


#: the kinds of layer an inference state belongs to, in the order the account lists them
STATE_KINDS = (
    "full attention",
    "sliding attention",
    "latent attention",
    "cross attention",
    "linear attention",
    "state space",
    "recurrent",
)


@dataclass(frozen=True)
class Work:
    """What one forward call of a layer costs for given input shapes.

    ``macs`` counts the multiply-accumulates of the matrix products exactly (a product of
    (M, K) by (K, N) is M·K·N); ``other`` estimates the elementwise FLOPs (bias adds, gate
    nonlinearities, normalisation, softmax) by the rule in ``other_rule``, one FLOP per
    add, multiply, divide, comparison, exp, sigmoid or tanh of one number.
    """

    outputs: tuple[Shape, ...]
    macs: Dim = 0
    other: Dim = 0
    other_rule: str = ""
    #: the tensors autograd keeps for the backward pass (parameters excluded)
    saved: tuple[Stored, ...] = ()
    #: state an inference loop carries from one call to the next (h and c; a KV cache)
    state: tuple[Stored, ...] = ()
    #: the first output is the first input's storage, changed in place (``inplace=True``)
    #: or viewed in another shape
    inplace: bool = False
    #: which input that storage is (a step that picks one of its inputs)
    aliases: int = 0
    #: every output is a part of the first input, sharing its storage (a split)
    views: bool = False
    #: the outputs are tensors the module holds (a parameter used as a step of its flow),
    #: not activations: keeping them keeps no memory of the forward's
    own: bool = False
    #: every output after the first is the input at its place, passed on as it is
    passes_rest: bool = False
    #: at inference, the tensors live inside one call at its fullest moments, besides its
    #: inputs (its outputs not made yet): each moment a tuple (a mixture's experts hold
    #: every visit's token and its gate and up projections at once)
    moments: tuple[tuple[Stored, ...], ...] = ()
    #: False: the work is on tensors that need no gradient (Mllama's aspect-ratio mask,
    #: made from an input mask): no backward
    grad: bool = True

    @property
    def matmul_flops(self) -> Dim:
        """2 FLOPs (a multiply and an add) per multiply-accumulate."""
        return 2 * self.macs

    @property
    def forward_flops(self) -> Dim:
        return self.matmul_flops + self.other

    @property
    def backward_flops(self) -> Dim:
        """2× the forward matmul FLOPs (one product for the input's gradient, one for the
        weight's), plus the elementwise work once more; none without a gradient."""
        return 2 * self.matmul_flops + self.other if self.grad else 0

    def kept_bytes(self, activation_itemsize: int) -> Dim:
        """Bytes of the tensors kept for backward, activations at ``activation_itemsize``."""
        return sum((s.nbytes(activation_itemsize) for s in self.saved), start=0)


#: every layer kind registered so far, by its torch.nn class name; the complete registry,
#: which loads every family first, is :data:`shapecalc.layers.LAYER_KINDS`
REGISTERED: dict[str, type[LayerSpec]] = {}


def register(cls: type[LayerSpec]) -> type[LayerSpec]:
    """Class decorator: add a layer spec to the registry under its ``kind``."""
    REGISTERED[cls.kind] = cls
    return cls


#: per layer kind: (its True/False fields, all its fields), for the checks every spec shares
_FLAGS: dict[type, tuple[tuple[str, ...], tuple[str, ...]]] = {}


class LayerSpec(FrozenMethods):
    """Base of every layer spec (subclasses are frozen dataclasses, made by
    :func:`~shapecalc.core.frozen.frozen`)."""

    kind: ClassVar[str]
    #: the docs page the kind is listed on (recurrent, linear, embedding, conv, norm, ...)
    family: ClassVar[str] = "other"
    #: one line for ``shapecalc layers``
    summary: ClassVar[str] = ""
    #: concrete arguments of a typical use, for the docs and ``shapecalc layers``
    example: ClassVar[dict[str, Any]] = {}
    #: the same with sizes as symbols, for the reference formulas
    formula_args: ClassVar[dict[str, Any]] = {}
    #: input shapes of the worked example
    example_input: ClassVar[tuple[tuple[Any, ...], ...]] = ()
    #: letters for sizes in formulas beyond those of formula_args (LSTM's proj_size: P)
    letters: ClassVar[dict[str, str]] = {}
    #: fields that are sizes (ints >= minimum, or symbols), with their minimum
    size_fields: ClassVar[dict[str, int]] = {}
    #: fields that must be real bools (torch refuses ints for these)
    bool_fields: ClassVar[tuple[str, ...]] = ()
    #: names of forward's outputs when there are several (``output``, ``h_n``, ``c_n``)
    output_names: ClassVar[tuple[str, ...]] = ()
    #: a chain passes every output on, not only the first (a split into q, k and v)
    passes_all: ClassVar[bool] = False
    #: held as a block's own tensors (its child ``""``), the spec is a step of the
    #: block's flow, named ``""`` there: its forward reads the block's tensors (gpt-oss's
    #: sinks, Mamba-2's scan, a bias added to the input); the torch build runs it with
    #: the block's module
    own_step: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every spec's own ``__post_init__`` ends with the checks every spec shares
        (:meth:`_check_kinds`), so no kind can forget them."""
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("__post_init__")
        if own is None or getattr(own, "_shared_checks", False):
            return

        def post_init(self: LayerSpec) -> None:
            self._check_arrays()
            own(self)
            self._check_kinds()

        post_init._shared_checks = True  # type: ignore[attr-defined]
        post_init.__doc__ = own.__doc__
        cls.__post_init__ = post_init  # type: ignore[method-assign]

    def __post_init__(self) -> None:
        self._check_arrays()
        self._check_kinds()

    def _check_arrays(self) -> None:
        """No field holds an array or an array library's scalar (checked before any rule
        compares it as a number)."""
        if dataclasses.is_dataclass(self):
            for f in dataclasses.fields(self):
                refuse_arrays(getattr(self, f.name), function=type(self).__name__, argument=f.name)

    def _check_kinds(self) -> None:
        """A field whose default is True or False takes True or False only (torch's
        ``inplace``, ``bias``); a real number is finite (no nan, no inf)."""
        flags = _FLAGS.get(type(self))
        if flags is None:  # the fields whose default is True or False, once per kind
            fields: tuple[dataclasses.Field[Any], ...] = (
                dataclasses.fields(self) if dataclasses.is_dataclass(self) else ()
            )
            flags = _FLAGS[type(self)] = (
                tuple(f.name for f in fields if isinstance(f.default, bool)),
                tuple(f.name for f in fields),
            )
        for name in flags[0]:
            value = getattr(self, name)
            if not isinstance(value, bool):
                self._fail(name, value, f"{name} must be True or False", f"got {shown(value)}")
        for name in flags[1]:
            value = getattr(self, name)
            if isinstance(value, float) and not math.isfinite(value):
                self._fail(name, value, f"{name} must be a finite number", f"got {value}")

    # -- construction checks, run by subclasses' __post_init__ ---------------------------
    def _check_fields(self) -> None:
        for name in self.bool_fields:
            value = getattr(self, name)
            if not isinstance(value, bool):
                self._fail(name, value, f"{name} must be True or False", f"got {shown(value)}")
        for name, minimum in self.size_fields.items():
            self._check_size_field(name, minimum)

    def _check_size_field(self, name: str, minimum: int) -> None:
        """Normalise a size argument in place: an int >= minimum, or a symbol."""
        value = as_size(getattr(self, name), owner=self.label(name), field=name, minimum=minimum)
        object.__setattr__(self, name, value)

    def _check_choice(self, field: str, options: tuple[str, ...]) -> None:
        value = getattr(self, field)
        if value not in options:
            listed = ", ".join(repr(o) for o in options)
            self._fail(field, value, f"{field} must be one of {listed}", f"got {shown(value)}")

    def _check_number(
        self,
        field: str,
        low: float | None = None,
        high: float | None = None,
        *,
        optional: bool = False,
    ) -> None:
        """A real number (not a bool) within [low, high]; None too when ``optional``."""
        value = getattr(self, field)
        if value is None and optional:
            return
        bounds = f" in [{low}, {high}]" if low is not None and high is not None else ""
        rule = f"{field} must be a number{bounds}" + (" or None" if optional else "")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self._fail(field, value, rule, f"got {shown(value)}")
        if (low is not None and value < low) or (high is not None and value > high):
            self._fail(field, value, rule, f"got {shown(value)}")

    def _fail_shape(self, message: str, value: Any) -> NoReturn:
        raise field_error("input", value, message, message, layer=str(self), kind=ShapeError)

    def _fail(self, field: str, value: Any, rule: str, detail: str, *others: str) -> NoReturn:
        layer = self.label(field, *others)
        raise field_error(field, value, rule, f"{rule} ({detail})", layer=layer, related=others)

    def label(self, *fields: str) -> str:
        """``LSTM(hidden_size=512, proj_size=600)``: the kind with the named fields."""
        shown = [f for f in self.arguments() if f in fields]
        args = ", ".join(f"{f}={_fmt(getattr(self, f))}" for f in shown)
        return f"{self.kind}({args})"

    # -- what a spec is -----------------------------------------------------------------
    def arguments(self) -> dict[str, Any]:
        """The constructor arguments, by torch.nn's names, in declaration order."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    def changed_arguments(self) -> dict[str, Any]:
        """The arguments that differ from torch.nn's defaults."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.default is dataclasses.MISSING or value != f.default:
                out[f.name] = value
        return out

    def __str__(self) -> str:
        return (
            f"{self.kind}("
            + ", ".join(f"{k}={_fmt(v)}" for k, v in self.changed_arguments().items())
            + ")"
        )

    def params(self) -> Iterator[Param]:
        """Parameters with PyTorch's exact names, order and shapes."""
        raise NotImplementedError

    def buffers(self) -> Iterator[Param]:
        """Buffers (state that is not trained, such as running statistics)."""
        return iter(())

    def stateless(self) -> bool:
        """No parameters and no buffers (an activation, a pooling, a dropout)."""
        return next(self.params(), None) is None and next(self.buffers(), None) is None

    def matmul_flops(self, *inputs: Shape) -> Dim:
        """FLOPs of the forward's matrix products for inputs of these shapes, counted as
        PyTorch's ``FlopCounterMode`` counts them: 2·M·N·K per product, biases and
        elementwise work excluded. Kinds without matrix products return 0."""
        return self.work(*inputs).matmul_flops

    def work(self, *inputs: Shape) -> Work:
        """Output shapes, compute, the tensors kept for backward and the inference state
        of one forward call on inputs of these shapes. The base: no compute, and the
        first input kept (what most layers need for their gradients)."""
        outputs = self.output_shapes(*inputs)
        return Work(outputs, saved=(Stored("input", inputs[0], of="input"),))

    def deferred_rules(self) -> list[str]:
        """Rules that symbolic sizes leave open (``P < H``, ``E divisible by heads``): they
        are checked when the sizes get values; until then they are reported here."""
        return []

    def _deferred(self, *pairs: tuple[bool, str]) -> list[str]:
        return [f"{rule}; checked when evaluated" for open_, rule in pairs if open_]

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        """The shapes ``forward`` returns for inputs of these shapes, as PyTorch computes
        them; a shape that does not fit raises :class:`ShapeError` naming both."""
        raise NotImplementedError(f"{self.kind} does not compute output shapes")

    def total(self) -> Dim:
        return sum((p.count for p in self.params()), start=0)

    #: the layer chooses, per token, which of its own tensors it uses (the routed experts
    #: of a mixture): its :meth:`active` count is smaller than its total
    routed: ClassVar[bool] = False

    def active(self) -> Dim:
        """Parameters one token's forward uses: all of them, unless the layer chooses
        among its own (a mixture's routed experts: the top k of E)."""
        return self.total()

    def symbolic(self) -> bool:
        return any(isinstance(v, Expr) for v in self.arguments().values())

    def substitute(self, values: dict[str, Dim]) -> LayerSpec:
        """The same spec with named sizes replaced (symbols evaluated)."""
        changes = {k: v.subs(values) for k, v in self.arguments().items() if isinstance(v, Expr)}
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def shown(value: Any) -> str:
    """A value as an error message echoes it: a size name as written (``K``), anything
    else as Python writes it (``'same'``, ``2.5``)."""
    if isinstance(value, Expr):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return int_text(value)
    if isinstance(value, tuple) and len(value) <= 8:
        text = "(" + ", ".join(shown(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    else:
        try:
            text = repr(value)
        except Exception:  # a value whose repr fails: its type says enough
            text = f"a {type(value).__name__}"
    return text if len(text) <= 80 else text[:79] + "…"


def _fmt(value: Any) -> str:
    if isinstance(value, Expr):
        return dim_str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return int_text(value)
    try:
        text = str(value)
    except Exception:  # a value whose str fails: its type says enough
        text = f"a {type(value).__name__}"
    text = " ".join(text.split("\n"))
    return text if len(text) <= 40 else text[:39] + "…"


def _subs(value: Dim, values: Mapping[str, Dim]) -> Dim:
    return value.subs(values) if isinstance(value, Expr) else value


def less_than(a: Dim, b: Dim) -> bool | None:
    """``a < b`` when both are known ints, else None (checked once evaluated)."""
    ka, kb = known(a), known(b)
    if ka is None or kb is None:
        return None
    return ka < kb
