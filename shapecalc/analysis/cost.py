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

import functools
from collections.abc import Callable
from dataclasses import replace
from functools import cached_property
from typing import Any

from shapecalc.analysis.encdec import decode_rows, per_request
from shapecalc.core.choices import CACHE_CONVENTIONS, OPTIMIZER_STATES
from shapecalc.core.dims import (
    Dim,
    as_size,
    at_least,
    count_str,
    dim_str,
    exact_div,
    known,
    product,
    same_shape,
    shape_str,
)
from shapecalc.core.errors import (
    ShapecalcError,
    ShapeError,
    echo,
    expect,
    field_error,
    require_one_of,
)
from shapecalc.core.flow import Opaque
from shapecalc.core.frozen import FrozenMethods, frozen
from shapecalc.core.model import Model
from shapecalc.core.spec import STATE_KINDS, LayerSpec, Shape, Stored, Work
from shapecalc.core.storage import STORAGE
from shapecalc.core.tree import (
    Block,
    Child,
    Interleaved,
    Leaf,
    Node,
    Repeat,
    execute,
    find_node,
    join_name,
    listed,
    run_in_order,
    run_indices,
    split_name,
)
from shapecalc.core.units import DTYPE_BYTES

__all__ = [
    "CACHE_NAMES",
    "EIGHT_BIT",
    "OPTIMIZERS",
    "OPTIMIZER_STATES",
    "TRAINING_DTYPES",
    "Cost",
    "LayerCost",
    "MemoryLine",
    "Peak",
    "StateGroup",
    "analyze",
    "kept_shape",
]

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
            "bitsandbytes AdamW8bit: state1 and state2 in uint8 and an fp32 absmax per "
            "256 for each tensor of 4096 numbers or more, both states fp32 for a smaller "
            "one, and the two 256-number quantization maps",
            "bitsandbytes PagedAdamW8bit: AdamW8bit's tensors in paged memory, state1 and "
            "state2 in uint8 and an fp32 absmax per 256 for each tensor of 4096 numbers or "
            "more, both states fp32 for a smaller one, and the two 256-number maps",
        ),
        strict=True,
    )
}
#: the optimizers whose state bitsandbytes keeps in 8 bits (``shapecalc.adapt.optim``)
EIGHT_BIT = ("adamw-8bit", "paged-adamw-8bit")
#: weights a model can be trained in; int8 and fp8 are storage formats for inference here
TRAINING_DTYPES = ("fp32", "fp16", "bf16")
HALF = ("fp16", "bf16")


@frozen
class LayerCost(FrozenMethods):
    """One call in the flow (a layer, a stateless step, the sum or product of branches):
    its input shapes, what one call costs, and how many calls the row stands for (a block
    repeated L times: L)."""

    name: str
    spec: LayerSpec
    inputs: tuple[Shape, ...]
    work: Work
    calls: Dim = 1
    #: each tensor kept for backward with how many of it this row counts: 0 when an
    #: earlier row keeps the same tensor (a ReLU's output is the next Linear's input)
    kept: tuple[tuple[Stored, Dim], ...] = ()

    @property
    def outputs(self) -> tuple[Shape, ...]:
        return self.work.outputs

    @property
    def macs(self) -> Dim:
        return self.calls * self.work.macs

    @property
    def forward_flops(self) -> Dim:
        return self.calls * self.work.forward_flops

    @property
    def backward_flops(self) -> Dim:
        return self.calls * self.work.backward_flops

    def kept_bytes(self, activation_itemsize: int) -> Dim:
        """Bytes this row keeps for backward, activations at ``activation_itemsize``."""
        return sum((n * s.nbytes(activation_itemsize) for s, n in self.kept), start=0)

    @property
    def state(self) -> tuple[Stored, ...]:
        """The inference state of every call (every convention's)."""
        return tuple(replace(s, copies=self.calls * s.copies) for s in self.work.state)

    def state_of(self, convention: str) -> tuple[Stored, ...]:
        """The inference state one call keeps under ``convention``."""
        return tuple(s for s in self.work.state if s.convention in (None, convention))


@functools.lru_cache(maxsize=8192)
def layer_part(name: str) -> tuple[str, range | int | None]:
    """The name up to the layer's number in its stack, and the numbers it stands for:
    ``model.layers.{0..3}.self_attn`` -> (``model.layers.{0..3}``, range(0, 4)); a name
    without a number -> (the name, None); a run of symbolic length -> (its name, None)."""
    parts = split_name(name.split(" ")[0])
    for i, part in enumerate(parts):
        if part.isascii() and part.isdigit() and len(part) < 19:
            return join_name(*parts[: i + 1]), int(part)
        if part.startswith("{"):
            return join_name(*parts[: i + 1]), run_indices(part)
    return name, None


@frozen
class Peak(FrozenMethods):
    """The largest live tensors of one forward at inference (an estimate by a stated
    rule): the block's input, kept for its residual add, and its largest step's inputs
    and outputs together (a formula when it is the largest whatever the sizes)."""

    bytes: Dim
    #: the step
    where: str
    #: the block whose input is counted beside it, or "" outside the blocks
    block: str
    #: what of the step is counted: its inputs and outputs, or its inputs and the
    #: tensors it holds at its fullest moment (named)
    what: str = "inputs and outputs"


@frozen
class StateGroup(FrozenMethods):
    """Layers that keep the same inference state: their kind, how many, the bytes each
    keeps, the tensors and the rule."""

    kind: str
    #: the positions kept at most (a sliding window's), None for every position
    window: int | None
    layers: Dim
    #: bytes one layer keeps, for the whole batch
    each: Dim
    #: what one layer keeps: (name, shape, numbers kept) of each tensor
    tensors: tuple[tuple[str, Shape, Dim], ...]
    #: True when the window capped the positions (a symbolic length: assumed past it)
    capped: bool
    #: True when it grows with the context
    grows: bool

    @property
    def total(self) -> Dim:
        return self.layers * self.each

    @property
    def sliding_window(self) -> int | None:
        """A sliding layer's window: the positions kept and the one a query adds."""
        return self.window + 1 if self.window and self.kind == "sliding attention" else None


@frozen
class MemoryLine(FrozenMethods):
    """One line of the memory account: what, how many bytes, and the rule used;
    ``account``: the account it belongs to, ``"training"``, ``"inference"`` or
    ``"both"`` (the weights, held by either)."""

    label: str
    bytes: Dim
    rule: str
    account: str = "both"

    @property
    def training(self) -> bool:
        return self.account in ("both", "training")

    @property
    def inference(self) -> bool:
        return self.account in ("both", "inference")


@frozen
class SixN(FrozenMethods):
    """FLOPs per token of one training step (forward and backward) against the rule of
    thumb 6·N: 2 per parameter forward and 4 backward. What is counted instead: 6 per
    multiply-accumulate of the products with weights and of attention's products between
    activations, 2 per elementwise FLOP (forward and once more backward)."""

    params: Dim
    #: multiply-accumulates per token of the products with weights
    weights: Dim
    #: multiply-accumulates per token of products between activations (q·kᵀ, weights·v)
    attention: Dim
    #: elementwise FLOPs per token, forward
    other: Dim

    @property
    def rule(self) -> Dim:
        return 6 * self.params

    @property
    def counted(self) -> Dim:
        return 6 * (self.weights + self.attention) + 2 * self.other

    @property
    def idle(self) -> Dim:
        """Parameters no token multiplies: N minus the weights' MACs per token (embedding
        lookups, position tables, biases and norms, the experts a token is not sent to)."""
        return self.params - self.weights


@frozen
class Recomputed(FrozenMethods):
    """Activations under per-block recomputation (``torch.utils.checkpoint`` around each
    repeated block): the forward keeps what lies outside the blocks and each block's
    input; the backward recomputes one block at a time."""

    block: str
    count: Dim
    #: bytes kept outside the repeated blocks
    outside: Dim
    #: one block's input
    block_input: Dim
    #: one block's activations, recomputed in the backward
    per_block: Dim

    @property
    def forward_bytes(self) -> Dim:
        """What the forward keeps: outside the blocks, and every block's input."""
        return self.outside + self.count * self.block_input

    @property
    def peak_bytes(self) -> Dim:
        """The forward's, and one block's activations during its backward (its input is
        already kept)."""
        return self.forward_bytes + self.per_block - self.block_input


@frozen
class Cost(FrozenMethods):
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
    #: how latent attention's cache is counted (:data:`CACHE_CONVENTIONS`)
    cache: str = "latent"
    #: a tensor made before this forward and alive through it (an encoder-decoder's decode
    #: step: the encoder's output, which generate keeps for the request)
    held: Shape | None = None

    @cached_property
    def memo(self) -> dict[Any, Any]:
        """Facts derived from this cost, kept by whoever derives them (a cost is frozen):
        ``fit``'s searches ask one cost the same question many times."""
        return {}

    # -- compute ------------------------------------------------------------------------
    @property
    def macs(self) -> Dim:
        return sum((c.macs for c in self.layers), start=0)

    @property
    def forward_flops(self) -> Dim:
        return sum((c.forward_flops for c in self.layers), start=0)

    @property
    def backward_flops(self) -> Dim:
        return sum((c.backward_flops for c in self.layers), start=0)

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

    def six_n(self) -> SixN | None:
        """The FLOPs per training token against 6·N; None without tokens."""
        weights: Dim = 0
        between: Dim = 0
        for layer in self.layers:
            if any(True for _ in layer.spec.params()):
                weights = weights + layer.macs
            else:
                between = between + layer.macs
        other = self.forward_flops - 2 * (weights + between)
        parts = [self.per_token(v) for v in (weights, between, other)]
        if self.seq_len is None or any(p is None for p in parts):
            return None
        w, a, o = parts
        assert w is not None and a is not None and o is not None
        return SixN(self.model.parameters, w, a, o)

    # -- memory -------------------------------------------------------------------------
    def recomputed(self) -> Recomputed | None:
        """Activations with each block of the model's stack recomputed in the backward:
        the stack that holds the longest run, every block of it (runs of sliding and
        full layers, of attention and state-space layers alike); None without such a
        run, when its tensors are not counted per block, or when the blocks' own bytes
        differ as formulas (the largest of several formulas is no formula)."""
        run = _longest_run(self.model.root, ())
        if run is None or len(_stacks(self.model.root, ())) > 1:
            # several stacks (a vision tower and a language model, an encoder and a
            # decoder): each would be recomputed block by block; not modelled
            return None
        parts, _ = run
        container = find_node(self.model.root, parts)
        if not isinstance(container, Block):
            return None
        entries = [
            (e.part(), e.count, e.indices()) if isinstance(e, Repeat) else (e.name, 1, None)
            for e in container.children
            if isinstance(e, Repeat) or (e.name.isascii() and e.name.isdigit())
        ]
        prefix = join_name(*parts)
        depth = len(split_name(prefix)) if prefix else 0

        def entry_of(name: str) -> int | None:
            """Which entry a row belongs to (a range's test, never a set of numbers: a run
            may hold 10^12 blocks)."""
            names = split_name(name)
            if len(names) <= depth or ".".join(names[:depth]) != prefix:
                return None
            first = names[depth].split(" ")[0]
            number = int(first) if first.isascii() and first.isdigit() and len(first) < 30 else None
            for k, (part, _, numbers) in enumerate(entries):
                if first == part or (number is not None and numbers and number in numbers):
                    return k
            return None

        rows: list[list[LayerCost]] = [[] for _ in entries]
        for layer in self.layers:
            k = entry_of(layer.name)
            if k is not None:
                rows[k].append(layer)
        if not entries or not all(rows):
            return None
        size = self.activation_itemsize
        kept = [(s, n) for group in rows for layer in group for s, n in layer.kept]
        block_bytes = sum((n * s.nbytes(size) for s, n in kept if not s.shared), start=0)
        # tables every block shares (rotary's cos and sin): remade with the block
        shared = sum((n * s.nbytes(size) for s, n in kept if s.shared), start=0)
        each: list[Dim] = []
        for (_, times, _), group in zip(entries, rows, strict=True):
            own = sum(
                (n * s.nbytes(size) for layer in group for s, n in layer.kept if not s.shared),
                start=0,
            )
            one = exact_div(own, times)
            if one is None:
                return None
            each.append(one)
        numbers = [known(e) for e in each]
        if all(n is not None for n in numbers):
            largest: Dim = max(n for n in numbers if n is not None)
        elif all(e == each[0] for e in each):
            largest = each[0]
        else:
            return None
        count: Dim = sum((c for _, c, _ in entries), start=0)
        first = rows[0][0].inputs[0] if rows[0][0].inputs else ()
        block_input = product(first) * self.activation_itemsize
        outside = self.activation_bytes - block_bytes - shared
        where = f"{prefix}.{entries[0][0]}" if len(entries) == 1 else f"{prefix}.*"
        return Recomputed(where, count, outside, block_input, largest + shared)

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
        return layer.kept_bytes(self.activation_itemsize)

    @property
    def activation_bytes(self) -> Dim:
        return sum((self.kept_bytes(c) for c in self.layers), start=0)

    @property
    def state(self) -> list[tuple[str, Stored]]:
        """Every row's inference state under this cost's cache convention, each tensor's
        copies counting the row's calls."""
        return [
            (c.name, replace(s, copies=c.calls * s.copies))
            for c in self.layers
            for s in c.state_of(self.cache)
        ]

    @property
    def state_bytes(self) -> Dim:
        """Bytes of the inference state: what every layer keeps, a sliding window's
        positions capped (:attr:`Stored.kept`)."""
        return sum((s.kept_bytes(self.itemsize) for _, s in self.state), start=0)

    def state_groups(self) -> tuple[StateGroup, ...]:
        """The inference state by kind of layer: the layers that keep the same (kind,
        window, bytes), how many, and what each keeps; in :data:`STATE_KINDS` order,
        computed once per run of layers (a run of 10⁶ layers costs what one does)."""
        layers: dict[tuple[str, str], list[Any]] = {}
        for c in self.layers:
            stored = c.state_of(self.cache)
            if not stored:
                continue
            prefix, _ = layer_part(c.name)
            for s in stored:
                kind = s.kind or ("full attention" if s.per_position else "recurrent")
                entry = layers.setdefault((prefix, kind), [c.calls, None, []])
                if s.window is not None:
                    entry[1] = s.window
                entry[2].append((c, s))
        groups: dict[tuple[Any, ...], list[Any]] = {}
        for (_, kind), (calls, window, held) in layers.items():
            tensors = tuple((s.name, kept_shape(s), s.copies * s.kept) for _, s in held)
            each = sum((s.kept_bytes(self.itemsize) for _, s in held), start=0)
            capped = any(s.capped for _, s in held)
            grows = any(s.per_position for _, s in held)
            key = (kind, window, each, tensors)
            found = groups.setdefault(key, [0, capped, grows])
            found[0] = found[0] + calls
        order = {k: i for i, k in enumerate(STATE_KINDS)}
        out = [
            StateGroup(kind, window, count, each, tensors, capped, grows)
            for (kind, window, each, tensors), (count, capped, grows) in groups.items()
        ]
        out.sort(key=lambda g: (order.get(g.kind, len(order)), g.window or 0))
        return tuple(out)

    def state_at(self, seq_len: int) -> int | None:
        """Bytes of the inference state after ``seq_len`` positions, the batch as given
        (1 when it is a name), each sliding layer capped at its window; None when a state
        cannot be priced per position."""
        total = 0
        for _, s in self.state:
            size = s.kept_bytes(self.itemsize)
            if s.per_position and s.positions is not None:
                per = exact_div(s.count, s.positions)
                if per is None:
                    return None
                kept = seq_len if s.window is None else min(seq_len, s.window)
                size = per * kept * (self.itemsize if s.itemsize is None else s.itemsize)
            value = known(_batch_one(size, self.batch))
            if value is None:
                return None
            total += value
        return total

    @property
    def context(self) -> int | None:
        """The most positions the model takes, where its arguments name them (a learned
        position table: GPT-2's n_positions, BART's, Whisper's decoder's
        max_target_positions); None otherwise."""
        args = self.model.arguments
        value = args.get("context") or args.get("target_positions")
        return known(value) if value is not None else None

    def crossover(self) -> int | None:
        """The shortest context whose inference state outweighs the weights (the batch as
        given, 1 for a name); None when it never does (no state grows, every growing
        state is capped by a window first, or not within the model's own
        :attr:`context`) or the state cannot be priced."""
        weights = known(self.model.bytes(self.dtype))
        if weights is None or not any(s.per_position for _, s in self.state):
            return None
        context = self.context
        if context is not None:
            most = self.state_at(context)
            if most is None or most <= weights:
                return None
        low, high = 1, 1
        while True:
            at = self.state_at(high)
            if at is None:
                return None
            if at > weights:
                break
            if high > 2**62:
                return None
            low, high = high, 2 * high
        while low < high:  # the state grows with the context: the first past the weights
            mid = (low + high) // 2
            at = self.state_at(mid)
            assert at is not None
            if at > weights:
                high = mid
            else:
                low = mid + 1
        return low

    def inference_peak(self, share: Callable[[Shape], Dim] | None = None) -> Peak | None:
        """The largest live tensors of this forward at inference (no tensors kept for a
        backward): per block, its input (the residual the block adds back) and its
        largest step's inputs and outputs; outside the blocks, a step's inputs and
        outputs. The attention kernel is taken as fused (no T × S scores held); the head
        as generate runs it, on the last position only. ``share``: the numbers of a
        tensor one device holds (tensor parallelism), all of them by default. None for
        input shapes given by hand."""
        if not self.from_layout:
            return None
        numbers = product if share is None else share
        head = self.model.head
        size = self.itemsize
        held = 0 if self.held is None else numbers(self.held) * size
        tops: list[Peak] = []  # the candidates no other is known to be at least
        blocks: dict[str, Dim] = {}
        for c in self.layers:
            inputs = list(c.inputs)
            outputs = list(c.outputs)
            if head is not None and c.name.split(" ")[0] == head and self.seq_len is not None:
                inputs = [_last(shape, self.seq_len) for shape in inputs]
                outputs = [_last(shape, self.seq_len) for shape in outputs]
            taken = sum((numbers(x) for x in inputs), start=0) * size
            here = taken + sum((numbers(x) for x in outputs), start=0) * size
            prefix, _ = layer_part(c.name)
            block = prefix if prefix != c.name.split(" ")[0] else ""  # a layer of a stack
            if block and block not in blocks:
                blocks[block] = numbers(c.inputs[0]) * size if c.inputs else 0
            moments = [(here, "inputs and outputs")] + [
                (
                    taken + sum((numbers(s.shape) * (s.itemsize or size) for s in m), start=0),
                    "inputs and, inside it at once, " + "; ".join(s.name for s in m),
                )
                for m in c.work.moments
            ]
            for live, what in moments:
                total = live + (blocks[block] if block else 0) + held
                if any(at_least(top.bytes, total) for top in tops):
                    continue
                tops = [top for top in tops if not at_least(total, top.bytes)]
                tops.append(Peak(total, c.name, block, what))
        # the largest of several formulas, none at least the others, is no formula
        return tops[0] if len(tops) == 1 else None

    def decode(self) -> Cost | None:
        """The same model for one decode step: one position at the same batch (of an
        encoder-decoder, :meth:`decode_step`'s); None without a sequence."""
        if not self.from_layout or self.seq_len is None:
            return None
        return analyze(
            self.model,
            batch=self.batch,
            seq_len=1,
            dtype=self.dtype,
            training="none",
            cache=self.cache,
        ).decode_step()

    def decode_step(self) -> Cost:
        """This forward as one generated token's step: of an encoder-decoder (or a model
        whose cross-attention reads a stack run once per request, Mllama's vision model),
        the decoder's rows alone, its cross-attention reading the cached keys and values,
        with the encoder's output held (:func:`~shapecalc.analysis.encdec.decode_rows`); any
        other model's forward as it is."""
        rows, held = decode_rows(self.layers, per_request(self.model))
        if held is None and len(rows) == len(self.layers):
            return self
        return replace(self, layers=rows, held=held)

    def state_per_layer(self) -> dict[int, Dim]:
        """Bytes of inference state per layer number of the stack (rows whose name holds
        a layer number or a run of them); a run of symbolic length is left out."""
        out: dict[int, Dim] = {}
        for c in self.layers:
            stored = c.state_of(self.cache)
            if not stored:
                continue
            _, numbers = layer_part(c.name)
            if numbers is None:
                continue
            each = sum((s.kept_bytes(self.itemsize) for s in stored), start=0)
            for i in [numbers] if isinstance(numbers, int) else numbers:
                out[i] = out.get(i, 0) + each
        return dict(sorted(out.items()))

    @property
    def buffer_bytes(self) -> Dim:
        """Running statistics at ``dtype``; ``num_batches_tracked`` is an int64; a buffer
        with a dtype of its own (DeepSeek-V3's float32 e_score_correction_bias) at it."""
        return sum(
            (
                b.count * 8 if b.name.endswith("num_batches_tracked") else b.nbytes(self.itemsize)
                for _, b in self.model.buffer_rows()
            ),
            start=0,
        )

    def _buffers_rule(self) -> str:
        """What the buffers are, by kind: BatchNorm's statistics and counters, others by
        their name and dtype."""
        kinds: dict[str, None] = {}
        for name, b in self.model.buffer_rows():  # the full name: a leaf's own is ""
            if name.endswith("num_batches_tracked"):
                kinds["counters int64"] = None
            elif name in ("running_mean", "running_var") or name.endswith(
                (".running_mean", ".running_var")
            ):
                kinds[f"running statistics at {self.itemsize} bytes"] = None
            else:
                last = name.rpartition(".")[2]
                size = b.itemsize or self.itemsize
                kinds[f"{last} ({b.dtype or self.dtype}, {size} bytes each), not trained"] = None
        return ", ".join(kinds)

    @cached_property
    def memory(self) -> tuple[MemoryLine, ...]:
        """The memory account, one line per kind of tensor, with the rule beside it."""
        m = self.model
        trainable = m.trainable
        b = self.itemsize
        lines: list[MemoryLine] = []
        weights = m.bytes(self.dtype)  # N·b, but tensors of a dtype of their own at theirs
        stored = f"{b} bytes each ({self.dtype})"
        if m.quantization is not None:  # the method, and the bytes of each stored dtype
            from shapecalc.quant import weights_rule

            stored = weights_rule(m, b, self.dtype)
        else:
            kept = sorted({row.param.dtype for row in m.rows() if row.param.dtype})
            stored += "".join(f"; {d} tensors {_stored_text(d)}" for d in kept)
        if self.mixed_precision:
            lines.append(
                MemoryLine(
                    "weights",
                    weights,
                    f"{self.dtype} copy for forward and backward: {stored}",
                    "training",
                )
            )
            lines.append(MemoryLine("weights", weights, stored, "inference"))
            in_fp32, _ = m.trainable_own  # float32 already (LoRA's adapters): no master copy
            lines.append(
                MemoryLine(
                    "fp32 master weights",
                    (trainable - in_fp32) * 4,
                    "4 bytes each" + (", but for the tensors kept in float32" if in_fp32 else ""),
                    "training",
                )
            )
        else:
            lines.append(MemoryLine("weights", weights, stored))
        buffers = self.buffer_bytes
        if buffers != 0:
            lines.append(MemoryLine("buffers", buffers, self._buffers_rule()))
        if self.training != "none":
            own_count, _ = m.trainable_own
            adapters = "; float32 tensors (LoRA's adapters) 4 bytes" if own_count != 0 else ""
            lines.append(
                MemoryLine(
                    "gradients",
                    m.trainable_bytes(b),
                    f"1 per trainable parameter, {b} bytes ({self.dtype}){adapters}",
                    "training",
                )
            )
            states, rule = OPTIMIZERS[self.training]
            state_size = 4 if self.mixed_precision else b
            state_bytes: Dim = states * m.trainable_bytes(state_size)
            if self.training in EIGHT_BIT:
                state_bytes = _eight_bit(m)
            else:
                rule += f", {state_size} bytes each{adapters}" if states else ""
            lines.append(MemoryLine("optimizer state", state_bytes, rule, "training"))
            saved = [s for c in self.layers for s in c.work.saved]
            fixed = {
                s.itemsize
                for s in saved
                if s.itemsize and not s.name.startswith(("lora_A", "DoRA"))
            }
            own = "".join(  # the tensors whose dtype is their own, whatever the activations'
                text
                for size, text in ((8, ", ids int64"), (4, ", attention's log-sum-exp fp32"))
                if size in fixed and size != self.activation_itemsize
            )
            if self.activation_itemsize != 4 and any(s.name == "1/rms per row" for s in saved):
                own += ", RMSNorm's input copy and 1/rms fp32"  # they compute in float32
            if any(s.cast and s.name != "input in float32" for s in saved):  # peft's adapters
                copies = ", a copy per adapted layer" if self.activation_itemsize != 4 else ""
                own += f", LoRA's lora_A input{copies} and output fp32"
            lines.append(
                MemoryLine(
                    "activations",
                    self.activation_bytes,
                    f"tensors kept for backward at {self.describe_input()}, "
                    f"{self.activation_itemsize} bytes each{own}",
                    "training",
                )
            )
            again = self.recomputed()
            if again is not None:
                lines.append(
                    MemoryLine(
                        "activations, recomputed",
                        again.peak_bytes,
                        f"instead of the line above, with each of the {dim_str(again.count)} "
                        f"blocks {again.block} recomputed in the backward (activation "
                        f"checkpointing): every block's input, "
                        f"{dim_str(again.count)} × {count_str(again.block_input)} bytes, "
                        f"and one block's activations at a time, "
                        f"{count_str(again.per_block)} bytes",
                        "training",
                    )
                )
        if self.state:
            groups = self.state_groups()
            rule = f"carried from call to call, for a batch of {dim_str(self.batch)}"
            if len(groups) == 1 and groups[0].kind == "recurrent":
                names = ", ".join(dict.fromkeys(s.name for _, s in self.state))
                rule = f"{names} {rule}"
            per = exact_div(self.state_bytes, self.batch)
            if per is not None and self.batch != 1:
                rule += f"; {count_str(per)} bytes per sequence"
            tokens = self.tokens
            growing = sum(
                (s.kept_bytes(self.itemsize) for _, s in self.state if s.per_position), start=0
            )
            per_token = None if tokens is None else exact_div(growing, tokens)
            grows = any(s.per_position for _, s in self.state)
            capped = any(g.capped for g in groups)
            if (
                grows
                and not capped
                and self.seq_len is not None
                and per_token is not None
                and per_token != per
            ):
                rule += f"; {count_str(per_token)} bytes per token of context"
            kinds = ", ".join(
                f"{dim_str(g.layers)} {g.kind}"
                + (f" (window {g.sliding_window:,})" if g.sliding_window else "")
                for g in groups
            )
            if any(g.kind != "recurrent" for g in groups):  # an RNN's h and c say it all
                rule += f"; layers: {kinds}"
            if any(g.kind == "latent attention" for g in groups):
                rule += f"; latent attention as {CACHE_NAMES[self.cache]}"
            if any(g.capped for g in groups) and known(self.seq_len or 0) is None:
                rule += "; sliding layers counted at their window, for a context longer than it"
            lines.append(MemoryLine("inference state", self.state_bytes, rule, "inference"))
        lines.extend(self._inference_lines(lines))
        return tuple(lines)

    def _inference_lines(self, lines: list[MemoryLine]) -> list[MemoryLine]:
        """At inference: the largest live tensors of the forward (prefill) and of one
        decode step, and the total with the weights and the state."""
        prefill = self.inference_peak()
        if prefill is None:
            return []  # the largest of several formulas is no formula: give B, T and sizes
        rule = _peak_rule(self, prefill)
        step = self.decode()
        if step is None:  # no sequence: one forward
            held = sum((line.bytes for line in lines if line.inference), start=0)
            return [
                MemoryLine("activations, forward", prefill.bytes, rule, "inference"),
                MemoryLine(
                    "inference total",
                    held + prefill.bytes,
                    "the weights"
                    + (", buffers" if any(line.label == "buffers" for line in lines) else "")
                    + (", the inference state" if self.state else "")
                    + " and the activations of the forward",
                    "inference",
                ),
            ]
        out = [MemoryLine("activations, prefill", prefill.bytes, rule, "inference")]
        decoded = step.inference_peak()
        if decoded is None:
            return []
        rule = _peak_rule(step, decoded)
        out.append(MemoryLine("activations, decode step", decoded.bytes, rule, "inference"))
        if at_least(prefill.bytes, decoded.bytes):
            peak, larger = prefill.bytes, "prefill"
        elif at_least(decoded.bytes, prefill.bytes):
            peak, larger = decoded.bytes, "the decode step"
        else:
            return out[:0]  # neither is the larger whatever the sizes: no formula
        held = sum((line.bytes for line in lines if line.inference), start=0)
        out.append(
            MemoryLine(
                "inference total",
                held + peak,
                "the weights"
                + (", buffers" if any(line.label == "buffers" for line in lines) else "")
                + (", the inference state" if self.state else "")
                + f" and the activations of {larger} (the larger)",
                "inference",
            )
        )
        return out

    @property
    def training_bytes(self) -> Dim:
        """Everything a training step holds at once (the inference state excluded; the
        activations kept for backward, not the recomputed line that replaces them)."""
        return sum(
            (
                line.bytes
                for line in self.memory
                if line.training and line.label != "activations, recomputed"
            ),
            start=0,
        )

    @property
    def inference_bytes(self) -> Dim | None:
        """Everything an inference holds at once (weights, state, the larger of the
        activation lines), or None when it is no formula (see :meth:`inference_peak`)."""
        return next((m.bytes for m in self.memory if m.label == "inference total"), None)

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
    cache: str = "latent",
) -> Cost:
    """Follow ``inputs`` (by default the model's own input at ``batch`` × ``seq_len``)
    through the layers and account for compute and memory.

    Raises :class:`~shapecalc.core.errors.ShapeError` naming the layer and both shapes when an
    input does not fit, and :class:`~shapecalc.core.errors.InvalidArgumentError` for a bad
    dtype, optimizer or size.
    """
    owner = "analyze"
    if isinstance(model, LayerSpec):
        raise TypeError(
            f"analyze: model must be a Model, got the layer {model}: analyze(shapecalc."
            "layer_model(spec), inputs) follows one layer"
        )
    expect(model, Model, function="analyze", argument="model", what="a shapecalc Model")
    require_one_of("dtype", dtype, tuple(DTYPE_BYTES), layer=owner)
    require_one_of("training", training, tuple(OPTIMIZERS), layer=owner)
    require_one_of("cache", cache, CACHE_CONVENTIONS, layer=owner)
    if training in EIGHT_BIT and model.symbolic:
        raise field_error(
            "training",
            training,
            "an 8-bit optimizer's state needs every size a number",
            f"training {training}: the state of each tensor is 8-bit from 4096 numbers on "
            "and fp32 below, in blocks of 256: give every size a number",
            layer=owner,
        )
    if training != "none" and known(model.trainable) == 0 and known(model.total) != 0:
        raise field_error(  # no gradient to take: no backward, nothing kept for one
            "training",
            training,
            "a model with a trainable parameter",
            f"--training {training}: nothing in {model.name} is trainable (every weight is "
            "stored quantized, frozen): no backward to price; train adapters on it with "
            "--lora-rank R --lora-targets all-linear",
            layer=owner,
        )
    if not isinstance(mixed_precision, bool):
        rule = "mixed_precision must be True or False"
        raise field_error("mixed_precision", mixed_precision, rule, layer=owner)
    if training != "none" and dtype not in TRAINING_DTYPES:
        raise _refused_dtype(
            dtype,
            "training needs dtype fp32, fp16 or bf16",
            "int8 and fp8 are counted as inference storage: set training to 'none'",
            "training",
        )
    if mixed_precision and dtype not in HALF:
        raise _refused_dtype(
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
        inputs = _shapes(inputs)
        t = None if seq_len is None else t
    layers = _Flow(model.name).run(model.root, inputs)
    return Cost(
        model=model,
        batch=b,
        seq_len=t,
        dtype=dtype,
        training=training,
        mixed_precision=mixed_precision,
        layers=layers,
        from_layout=from_layout,
        cache=cache,
    )


def _eight_bit(model: Model) -> int:
    """bitsandbytes' 8-bit state for the model's trained tensors (shapecalc.adapt.optim)."""
    from shapecalc.adapt.optim import eight_bit_bytes

    tensors = (
        (row.shape, exact_div(row.count, product(row.shape)) or 0)
        for row in model.rows()
        if row.param.trainable and not row.tied_to
    )
    found = eight_bit_bytes(tensors)
    assert found is not None  # analyze refuses a symbolic model
    return found


def _shapes(inputs: Any) -> tuple[Shape, ...]:
    """Input shapes as given: one shape (``(2, 3, 224, 224)``) or several, each size an
    int or a size name (``("B", 3, "H", "W")``)."""
    rule = "inputs are shapes of sizes: ((2, 3, 224, 224),), or one shape"
    if not isinstance(inputs, (tuple, list)) or not inputs:
        raise field_error("inputs", inputs, rule, layer="analyze")
    shapes = inputs if all(isinstance(s, (tuple, list)) for s in inputs) else (inputs,)
    out = []
    for shape in shapes:
        if not isinstance(shape, (tuple, list)) or any(isinstance(d, (tuple, list)) for d in shape):
            raise field_error("inputs", inputs, rule, layer="analyze")
        out.append(tuple(as_size(d, owner="analyze", field="inputs", minimum=0) for d in shape))
    return tuple(out)


def _refused_dtype(dtype: Any, rule: str, why: str, other: str) -> ShapecalcError:
    """``analyze: training needs dtype ..., got 'int8' (why)``: a dtype that ``other``
    (the training or the mixed precision) rules out."""
    message = f"{rule}, got {echo(dtype)} ({why})"
    return field_error("dtype", dtype, rule, message, layer="analyze", related=(other,))


# -- following the flow ------------------------------------------------------------------------
class _Atom:
    """Tensors of one kind in the flow: how many there are, and the row (and its kept
    entry) that counts them; a tensor kept by several rows is counted by the first."""

    __slots__ = ("cast_owner", "instances", "owner")

    def __init__(self, instances: Dim) -> None:
        self.instances = instances
        self.owner: tuple[int, int] | None = None
        #: the first row keeping it only as a cast tensor's ``"same"`` entry (counted
        #: there when no row keeps it as it is; :attr:`Stored.cast`)
        self.cast_owner: tuple[int, int] | None = None

    def counted_by(self, place: tuple[int, int]) -> bool:
        """Whether the kept entry at ``place`` (row, entry) counts these tensors."""
        return self.owner == place or (self.owner is None and self.cast_owner == place)


class _Value:
    """A tensor flowing between calls: its shape, the row that made it, and its atoms
    (the iteration input of a repeated block stands for the block's input and the
    outputs of every iteration but the last)."""

    __slots__ = ("atoms", "producer", "shape", "storage")

    def __init__(
        self, shape: Shape, producer: str, atoms: list[_Atom], storage: Shape | None = None
    ) -> None:
        self.shape, self.producer, self.atoms = shape, producer, atoms
        #: a view's: the shape of the tensor whose storage it shares (what keeping it keeps)
        self.storage = storage

    def view(self, shape: Shape) -> _Value:
        """This tensor seen in another shape (a part of it, or its heads split)."""
        return _Value(shape, self.producer, self.atoms, self.storage or self.shape)


class _Flow:
    """Follows a model's tree with shapes (the runner of :func:`shapecalc.core.tree.execute`):
    one row per call, in order; a run longer than :data:`~shapecalc.core.tree.MAX_LISTED`
    (or of symbolic length) analysed once and multiplied."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.calls: Dim = 1
        self.rows: list[tuple[str, LayerSpec, tuple[Shape, ...], Work, Dim]] = []
        #: per row: (stored, its atoms)
        self.kept: list[list[tuple[Stored, list[_Atom]]]] = []
        #: tensors made once per forward and kept by every layer that uses them
        self.shared: dict[tuple[str, Shape], _Atom] = {}

    def run(self, root: Node, inputs: tuple[Shape, ...]) -> tuple[LayerCost, ...]:
        values = tuple(_Value(s, "", [_Atom(1)]) for s in inputs)
        self.node(root, (), values)
        out = []
        for i, ((name, spec, shapes, work, calls), kept) in enumerate(
            zip(self.rows, self.kept, strict=True)
        ):
            counted = tuple(
                (stored, sum((a.instances for a in atoms if a.counted_by((i, j))), start=0))
                for j, (stored, atoms) in enumerate(kept)
            )
            out.append(LayerCost(name, spec, shapes, work, calls, counted))
        return tuple(out)

    # -- the runner ---------------------------------------------------------------------
    def node(
        self, node: Node, parts: tuple[str, ...], values: tuple[_Value, ...]
    ) -> tuple[_Value, ...]:
        if isinstance(node, Leaf):
            return self._call(join_name(*parts), node.spec, values)
        if isinstance(node.flow, Opaque):
            where = join_name(*parts) or self.model
            raise ShapeError(
                f"the forward of {where} ({node.kind}) is not known to shapecalc: it was read "
                "from a module, so shapes cannot follow it",
                layer=self.model,
                field="input",
                value=where,
                rule="shapes follow a declared data flow",
            )
        return execute(node, parts, values, self)

    def op(
        self, spec: LayerSpec, parts: tuple[str, ...], values: tuple[_Value, ...]
    ) -> tuple[_Value, ...]:
        where = join_name(*parts)
        return self._call(f"{where} ({spec.kind})" if where else spec.kind, spec, values)

    def repeat(
        self, run: Repeat, parts: tuple[str, ...], values: tuple[_Value, ...]
    ) -> tuple[_Value, ...]:
        numbers = run.indices()
        if numbers is not None and listed(run, parts):
            out = values
            for index in numbers:
                out = self.node(run.node, (*parts, str(index)), run.given(index, values, out))
            return out
        return self._once(run, parts, values)

    def interleaved(
        self, runs: Interleaved, parts: tuple[str, ...], values: tuple[_Value, ...]
    ) -> tuple[_Value, ...]:
        """Short runs child by child in index order; else each run analysed once, one
        after the other (each keeps the shape it takes, so their order changes no count)."""
        repeats = [e for e in runs.entries if isinstance(e, Repeat)]
        if runs.known() and all(listed(r, parts) for r in repeats):
            return run_in_order(runs, parts, values, self)
        out = values
        for k, entry in enumerate(runs.entries):
            given = runs.given(k, values, out)
            if isinstance(entry, Child):
                out = self.node(entry.node, (*parts, entry.name), given)
            else:
                out = self._once(entry, parts, given)
        return out

    def _once(
        self, run: Repeat, parts: tuple[str, ...], values: tuple[_Value, ...]
    ) -> tuple[_Value, ...]:
        """A run analysed once: its rows count ``count`` calls. Its input a and output b
        have the same shape; the tensors between iterations (b of one, a of the next) are
        counted once, by the first row that keeps them."""
        outer, n = self.calls, run.count
        middle = _Atom(outer * (n - 1))
        first = values[0]
        inner = (_Value(first.shape, first.producer, [*first.atoms, middle]), *values[1:])
        self.calls = outer * n
        try:
            outs = self.node(run.node, (*parts, run.part()), inner)
        finally:
            self.calls = outer
        last = outs[0]
        where = join_name(*parts, run.part())
        if not same_shape(last.shape, first.shape):
            raise ShapeError(
                f"the repeated block {where} returns {shape_str(last.shape)} where it takes "
                f"{shape_str(first.shape)}: each repeat must return the shape it takes",
                layer=self.model,
                field="input",
                value=first.shape,
                rule="a repeated block keeps the shape of its input",
            )
        if last is inner[0]:  # changed in place all the way: one tensor throughout
            middle.instances = 0
            return (first, *outs[1:])
        if len(last.atoms) != 1:  # not made by the repeat itself: nothing to reconcile
            return outs
        (atom,) = last.atoms  # made inside: counted once per call
        atom.instances = outer  # the output of the last repeat
        if atom.owner is not None:  # the middle tensors are that row's before the next repeat's
            row, entry = middle.owner = atom.owner
            self.kept[row][entry][1].append(middle)
        if atom.cast_owner is not None:
            row, entry = middle.cast_owner = atom.cast_owner
            if (row, entry) != middle.owner:
                self.kept[row][entry][1].append(middle)
        return (_Value(last.shape, where, [atom]), *outs[1:])

    # -- one call -----------------------------------------------------------------------
    def _call(self, name: str, spec: LayerSpec, values: tuple[_Value, ...]) -> tuple[_Value, ...]:
        shapes = tuple(v.shape for v in values)
        try:
            work = spec.work(*shapes)
        except NotImplementedError:  # a spec of one's own without its shape rule
            rule = "a layer spec in a flow defines output_shapes (or work)"
            raise ShapeError(
                f"layer {echo(name)} ({spec.kind}) does not compute its output shapes: {rule}",
                layer=self.model,
                field="input",
                value=spec.kind,
                rule=rule,
            ) from None
        except ShapecalcError as err:
            where = f"layer {echo(name)} " if name else ""
            producers = {v.producer for v in values}
            source = (
                f"the output of {producers.pop()!r}, "
                if len(producers) == 1 and "" not in producers
                else "input "
            )
            listed_shapes = ", ".join(shape_str(s) for s in shapes)
            raise ShapeError(
                f"{where}{spec} cannot take {source}{listed_shapes}: {err.message}",
                layer=self.model,
                field="seq_len" if err.field == "seq_len" else "input",
                value=shapes,
                rule=err.rule or str(err),
            ) from None
        row = len(self.rows)
        # a module's own tensor is no activation: whoever keeps it keeps nothing new
        outs = [_Value(s, name, [_Atom(0 if work.own else self.calls)]) for s in work.outputs]
        if work.passes_rest:  # the inputs after the first, passed on as they are
            outs[1:] = values[1 : len(outs)]
        if work.views and values:  # parts of the first input: its storage
            outs = [values[0].view(v.shape) for v in outs]
        elif work.inplace and values and outs:  # an input's memory, maybe seen in a new shape
            same = values[work.aliases]
            reshaped = tuple(same.shape) != tuple(outs[0].shape)
            outs[0] = same.view(outs[0].shape) if reshaped else same
        kept: list[tuple[Stored, list[_Atom]]] = []
        for stored in work.saved:
            value = _tensor(stored.of, values, outs)
            if stored.cast and value is not None:
                # a cast input: an entry for the tensor itself and one for a copy, each
                # counted at the activation dtype it is kept at (Stored.when)
                own = _Atom(self.calls)
                own.owner = (row, len(kept))
                kept.append((replace(stored, of=None, when="copy"), [own]))
                stored = replace(stored, when="same")
            j = len(kept)
            if stored.shared:  # one tensor for the whole forward (rotary's cos and sin)
                key = (stored.name, tuple(stored.shape))
                atoms = [self.shared.setdefault(key, _Atom(1))]
            else:
                atoms = [_Atom(self.calls)] if value is None else value.atoms
            # keeping a part keeps it all: the view's storage is kept unless the sizes are
            # the same polynomial (3·H is not H, though a symbol may take any value)
            if (
                value is not None
                and value.storage is not None
                and product(value.storage) != product(stored.shape)
            ):
                stored = replace(
                    stored,
                    name=f"{stored.name}, a view of {shape_str(value.storage)}",
                    shape=value.storage,
                )
            for atom in atoms:
                if stored.when == "same":
                    if atom.cast_owner is None:
                        atom.cast_owner = (row, j)
                elif atom.owner is None:
                    atom.owner = (row, j)
            kept.append((stored, atoms))
        self.rows.append((name, spec, shapes, work, self.calls))
        self.kept.append(kept)
        return tuple(outs)


def _stacks(node: Node, parts: tuple[str, ...]) -> set[tuple[str, ...]]:
    """The places of the model that hold repeated runs of blocks (one for a decoder; a
    tower's and a language model's, an encoder's and a decoder's)."""
    if isinstance(node, Leaf):
        return set()
    out: set[tuple[str, ...]] = set()
    for entry in node.children:
        if isinstance(entry, Repeat):
            out.add(parts)
        else:
            out |= _stacks(entry.node, (*parts, entry.name))
    return out


def _longest_run(node: Node, parts: tuple[str, ...]) -> tuple[tuple[str, ...], Repeat] | None:
    """The repeated run with the most children (the blocks of a transformer), first found
    on a tie; with a symbolic count, the first such run."""
    if isinstance(node, Leaf):
        return None
    best: tuple[tuple[str, ...], Repeat] | None = None
    for entry in node.children:
        if isinstance(entry, Repeat):
            found: tuple[tuple[str, ...], Repeat] | None = (parts, entry)
        else:
            found = _longest_run(entry.node, (*parts, entry.name))
        if found is None:
            continue
        count, best_count = known(found[1].count), None if best is None else known(best[1].count)
        longer = count is not None and best_count is not None and count > best_count
        if best is None or (count is None and best_count is not None) or longer:
            best = found
    return best


def _tensor(of: str | None, inputs: tuple[_Value, ...], outputs: list[_Value]) -> _Value | None:
    """The value a kept tensor is (``input``, ``input1``, ``output``), or None."""
    if of is None:
        return None
    side, index = (outputs, of[6:]) if of.startswith("output") else (inputs, of[5:])
    i = int(index or 0)
    return side[i] if i < len(side) else None


#: how each latent-attention cache convention is named in the output
CACHE_NAMES = {
    "latent": "the compressed latent and the rotated key (transformers 5, vLLM, SGLang)",
    "heads": "every head's keys and values (transformers 4)",
}


def _stored_text(dtype: str) -> str:
    """``1 byte(s) each``, or for a dtype stored in blocks ``18 bytes per 32 numbers``."""
    storage = STORAGE[dtype]
    if storage.block == 1:
        return f"{storage.block_bytes} byte(s) each"
    return f"{storage.block_bytes} bytes per {storage.block} numbers"


def _peak_rule(cost: Cost, peak: Peak) -> str:
    """The rule of an activation line at inference."""
    where = peak.where.split(" (")[0] or peak.where or "a step"
    if where.isdigit():  # a Sequential's numbered layer
        where = f"layer {where}"
    return (
        f"estimate: the largest live tensors at {cost.describe_input()}, "
        + ("a block's input (the residual) and " if peak.block else "")
        + f"{where}'s {peak.what}"
        + (
            "; attention fused"
            if any("attention" in c.spec.kind.lower() for c in cost.layers)
            else ""
        )
        + ("; the head on the last position" if cost.seq_len is not None else "")
        + (
            f"; the decoder alone, the encoder's output {shape_str(cost.held)} held"
            if cost.held is not None
            else ""
        )
    )


def kept_shape(s: Stored) -> Shape:
    """A state's shape as kept: its positions at the window where the window caps them."""
    if not s.capped or s.window is None:
        return s.shape
    shape = list(s.shape)
    # the keys' layout (…, heads, S, head_dim) first, else the first axis after the batch
    order = [len(shape) - 2, *range(1, len(shape)), 0]
    at = next((i for i in order if 0 <= i < len(shape) and shape[i] == s.positions), None)
    if at is not None:
        shape[at] = s.window
    return tuple(shape)


def _batch_one(value: Dim, batch: Dim) -> Dim:
    """``value`` with a named batch taken as 1."""
    if known(batch) is not None or not hasattr(value, "subs"):
        return value
    names = batch.free_symbols if hasattr(batch, "free_symbols") else frozenset()
    out: Dim = value.subs({n: 1 for n in names})
    return out


def _last(shape: Shape, seq_len: Dim) -> Shape:
    """``shape`` with its sequence axis (the one equal to ``seq_len``) at 1."""
    out = list(shape)
    for i in range(len(out) - 1, -1, -1):
        if out[i] == seq_len:
            out[i] = 1
            break
    return tuple(out)
