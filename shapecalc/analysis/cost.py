"""What a model costs to run and to train: shapes through it, compute, and memory.

:func:`analyze` follows the layers in order, each taking the previous layer's first
output (an LSTM's ``output``, not ``h_n``), from the model's input shapes for a batch B
and a sequence length T (ints or symbols). For each layer it keeps the input and output
shapes and the layer's :class:`~shapecalc.core.spec.Work`: multiply-accumulates, FLOPs, the
tensors autograd keeps for backward and the state an inference loop carries.

The rules, written once here and in the docs:

- **FLOPs** = 2 × MACs of the matrix products (exact, as ``FlopCounterMode`` counts them)
  + the elementwise work (an estimate: one FLOP per add, multiply, exp, sigmoid, ...).
- **Backward** = 2 × the forward matmul FLOPs (the input's gradient and the weight's) + the
  elementwise work once more. PyTorch skips the input's gradient where nothing needs it
  (the model's own input, a zero initial state), so it may do a little less.
- **Training memory**: weights, gradients (one per trainable parameter), optimizer state
  (Adam/AdamW: 2 per trainable parameter; plain SGD: none), all at ``dtype``; under mixed
  precision the weights and gradients are half precision and an fp32 master copy and the
  optimizer state are fp32 (2 + 2 + 4 + 8 = 16 bytes per parameter with Adam).
- **Activations**: the tensors kept for backward in training mode, at the activation dtype
  (fp32, or 2 bytes under mixed precision); token ids are int64.

Example:

    >>> import shapecalc
    >>> cost = analyze(shapecalc.lstm_lm(vocab=65, hidden=512, layers=2), batch=1, seq_len=100)
    >>> [c.outputs[0] for c in cost.layers]
    [(1, 100, 512), (1, 100, 512), (1, 100, 65)]
    >>> cost.forward_flops
    847673700
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, NoReturn

from shapecalc.core.dims import Dim, as_size, count_str, dim_str, exact_div, shape_str
from shapecalc.core.errors import InvalidArgumentError, ShapecalcError, ShapeError, require_one_of
from shapecalc.core.spec import LayerSpec, Shape, Stored, Work
from shapecalc.core.tree import Model
from shapecalc.core.units import DTYPE_BYTES

__all__ = [
    "OPTIMIZERS",
    "OPTIMIZER_STATES",
    "TRAINING_DTYPES",
    "Cost",
    "LayerCost",
    "MemoryLine",
    "analyze",
]

#: optimizers whose training memory shapecalc counts: state tensors per trainable
#: parameter ("none" is inference; :data:`OPTIMIZERS` gives the rules)
OPTIMIZER_STATES: dict[str, int] = {"none": 0, "sgd": 0, "adam": 2, "adamw": 2}
#: optimizer -> (state tensors per trainable parameter, the rule)
OPTIMIZERS: dict[str, tuple[int, str]] = {
    name: (states, rule)
    for (name, states), rule in zip(
        OPTIMIZER_STATES.items(),
        (
            "inference: no gradients, no optimizer",
            "plain SGD keeps no state (momentum would add 1 per parameter)",
            "Adam: exp_avg and exp_avg_sq, 2 per trainable parameter",
            "AdamW: exp_avg and exp_avg_sq, 2 per trainable parameter",
        ),
        strict=True,
    )
}
#: weights a model can be trained in; int8 and fp8 are storage formats for inference here
TRAINING_DTYPES = ("fp32", "fp16", "bf16")
HALF = ("fp16", "bf16")


@dataclass(frozen=True)
class LayerCost:
    """One layer of the flow: its input shapes and what one forward call costs."""

    name: str
    spec: LayerSpec
    inputs: tuple[Shape, ...]
    work: Work

    @property
    def outputs(self) -> tuple[Shape, ...]:
        return self.work.outputs


@dataclass(frozen=True)
class MemoryLine:
    """One line of the memory account: what, how many bytes, and the rule used."""

    label: str
    bytes: Dim
    rule: str


@dataclass(frozen=True)
class Cost:
    """Shapes, compute and memory of one model for one input."""

    model: Model
    batch: Dim
    seq_len: Dim | None
    dtype: str
    training: str
    mixed_precision: bool
    layers: tuple[LayerCost, ...]
    #: True when the input came from the model's own layout at B × T; False for input
    #: shapes given by hand (then there are no tokens to divide by)
    from_layout: bool = True

    # -- compute ------------------------------------------------------------------------
    @property
    def macs(self) -> Dim:
        return sum((c.work.macs for c in self.layers), start=0)

    @property
    def forward_flops(self) -> Dim:
        return sum((c.work.forward_flops for c in self.layers), start=0)

    @property
    def backward_flops(self) -> Dim:
        return sum((c.work.backward_flops for c in self.layers), start=0)

    @property
    def tokens(self) -> Dim | None:
        """B·T: the positions one forward pass computes (B without a sequence); None for
        input shapes given by hand."""
        if not self.from_layout:
            return None
        return self.batch if self.seq_len is None else self.batch * self.seq_len

    def per_token(self, value: Dim) -> Dim | None:
        """``value / (B·T)`` when that divides exactly (attention's T² terms do not)."""
        tokens = self.tokens
        return None if tokens is None else exact_div(value, tokens)

    # -- memory -------------------------------------------------------------------------
    @property
    def itemsize(self) -> int:
        """Bytes per stored weight."""
        return DTYPE_BYTES[self.dtype]

    @property
    def activation_itemsize(self) -> int:
        """Bytes per activation: 2 under mixed precision, else the weights' dtype."""
        return 2 if self.mixed_precision else self.itemsize

    def kept_bytes(self, layer: LayerCost) -> Dim:
        """Bytes ``layer`` keeps for backward at this cost's activation dtype."""
        return layer.work.kept_bytes(self.activation_itemsize)

    @property
    def activation_bytes(self) -> Dim:
        return sum((self.kept_bytes(c) for c in self.layers), start=0)

    @property
    def state(self) -> list[tuple[str, Stored]]:
        return [(c.name, s) for c in self.layers for s in c.work.state]

    @property
    def state_bytes(self) -> Dim:
        return sum((s.nbytes(self.itemsize) for _, s in self.state), start=0)

    @property
    def buffer_bytes(self) -> Dim:
        """Running statistics at ``dtype``; ``num_batches_tracked`` is an int64."""
        return sum(
            (
                b.count * (8 if b.name.endswith("num_batches_tracked") else self.itemsize)
                for _, b in self.model.buffer_rows()
            ),
            start=0,
        )

    @cached_property
    def memory(self) -> tuple[MemoryLine, ...]:
        """The memory account, one line per kind of tensor, with the rule beside it."""
        m = self.model
        n, trainable = m.total, m.trainable
        b = self.itemsize
        lines: list[MemoryLine] = []
        if self.mixed_precision:
            lines.append(
                MemoryLine(
                    "weights", n * b, f"{self.dtype} copy for forward and backward: {b} bytes each"
                )
            )
            lines.append(MemoryLine("fp32 master weights", trainable * 4, "4 bytes each"))
        else:
            lines.append(MemoryLine("weights", n * b, f"{b} bytes each ({self.dtype})"))
        buffers = self.buffer_bytes
        if buffers != 0:
            lines.append(
                MemoryLine("buffers", buffers, f"running statistics at {b} bytes, counters int64")
            )
        if self.training != "none":
            lines.append(
                MemoryLine(
                    "gradients",
                    trainable * b,
                    f"1 per trainable parameter, {b} bytes ({self.dtype})",
                )
            )
            states, rule = OPTIMIZERS[self.training]
            state_size = 4 if self.mixed_precision else b
            lines.append(
                MemoryLine(
                    "optimizer state",
                    states * trainable * state_size,
                    rule + (f", {state_size} bytes each" if states else ""),
                )
            )
            ids = any(s.itemsize for c in self.layers for s in c.work.saved)
            lines.append(
                MemoryLine(
                    "activations",
                    self.activation_bytes,
                    f"tensors kept for backward at {self.describe_input()}, "
                    f"{self.activation_itemsize} bytes each" + (", ids int64" if ids else ""),
                )
            )
        if self.state:
            names = ", ".join(dict.fromkeys(s.name for _, s in self.state))
            rule = f"{names} carried from call to call, for a batch of {dim_str(self.batch)}"
            per = exact_div(self.state_bytes, self.batch)
            if per is not None and self.batch != 1:
                rule += f"; {count_str(per)} bytes per sequence"
            lines.append(MemoryLine("inference state", self.state_bytes, rule))
        return tuple(lines)

    @property
    def training_bytes(self) -> Dim:
        """Everything a training step holds at once (the inference state excluded)."""
        return sum((line.bytes for line in self.memory if line.label != "inference state"), start=0)

    def describe_input(self) -> str:
        """``B=1, T=100``; for input shapes given by hand, ``input (32, 3, 224, 224)``."""
        if not self.from_layout:
            return "input " + ", ".join(shape_str(s) for s in self.layers[0].inputs)
        sizes = {"B": self.batch, "T": self.seq_len}
        return ", ".join(
            name if dim_str(value) == name else f"{name}={dim_str(value)}"
            for name, value in sizes.items()
            if value is not None
        )


def analyze(
    model: Model,
    inputs: tuple[Shape, ...] | None = None,
    *,
    batch: Any = "B",
    seq_len: Any = "T",
    dtype: str = "fp32",
    training: str = "adam",
    mixed_precision: bool = False,
) -> Cost:
    """Follow ``inputs`` (by default the model's own input at ``batch`` × ``seq_len``)
    through the layers and account for compute and memory.

    Raises :class:`~shapecalc.core.errors.ShapeError` naming the layer and both shapes when an
    input does not fit, and :class:`~shapecalc.core.errors.InvalidArgumentError` for a bad
    dtype, optimizer or size.
    """
    owner = "analyze"
    require_one_of("dtype", dtype, tuple(DTYPE_BYTES), layer=owner)
    require_one_of("training", training, tuple(OPTIMIZERS), layer=owner)
    if not isinstance(mixed_precision, bool):
        _refuse("mixed_precision", mixed_precision, "mixed_precision must be True or False")
    if training != "none" and dtype not in TRAINING_DTYPES:
        _refuse(
            "dtype",
            dtype,
            "training needs dtype fp32, fp16 or bf16",
            "int8 and fp8 are counted as inference storage: set training to 'none'",
            "training",
        )
    if mixed_precision and dtype not in HALF:
        _refuse(
            "dtype",
            dtype,
            "mixed precision needs dtype fp16 or bf16",
            "the half-precision copy",
            "mixed_precision",
        )
    b = as_size(batch, owner=owner, field="batch")
    t: Dim | None = as_size(seq_len, owner=owner, field="seq_len")
    from_layout = inputs is None
    if inputs is None:
        if not model.input_layout:
            raise ShapeError(
                f"{model.name} has no input layout: give its input shapes",
                layer=model.name,
                field="input",
                value=None,
                rule="a model without an input layout needs input shapes",
            )
        inputs = model.input_shapes(b, t if t is not None else 1)
        if not any("T" in shape for shape in model.input_layout):
            t = None
    else:
        t = None if seq_len is None else t
    layers: list[LayerCost] = []
    current = inputs
    for layer in model.layers:
        try:
            work = layer.spec.work(*current)
        except ShapecalcError as err:
            where = f"layer {layer.name!r} " if layer.name else ""
            shapes = ", ".join(shape_str(s) for s in current)
            raise ShapeError(
                f"{where}{layer.spec} cannot take input {shapes}: {err.message}",
                layer=model.name,
                field="input",
                value=current,
                rule=err.rule or str(err),
            ) from None
        layers.append(LayerCost(layer.name, layer.spec, current, work))
        current = work.outputs[:1]
    return Cost(
        model=model,
        batch=b,
        seq_len=t,
        dtype=dtype,
        training=training,
        mixed_precision=mixed_precision,
        layers=tuple(layers),
        from_layout=from_layout,
    )


def _refuse(field: str, value: Any, rule: str, why: str = "", *related: str) -> NoReturn:
    """``analyze: dtype must be one of ..., got 'fp9'``, as one error naming the field."""
    raise InvalidArgumentError(
        f"{rule}, got {value!r}" + (f" ({why})" if why else ""),
        layer="analyze",
        field=field,
        value=value,
        rule=rule,
        related=related,
    )
