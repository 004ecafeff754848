"""The Mamba-2 mixer's own layers, as ``transformers`` 5 builds them
(``models/mamba2/modeling_mamba2.py``, the torch path without CUDA kernels): the
depthwise causal convolution over x, B and C (``conv1d``), the state-space scan of
state space duality (SSD, chunked) with the mixer's own ``dt_bias``, ``A_log`` and ``D``,
and the gated RMSNorm (``norm``). Falcon-H1's mixer is the same mixer. None is a
torch.nn kind, so ``shapecalc layers`` does not list them; the architectures use them,
and the torch bridge builds them.

The mixer: ``in_proj`` (H -> 2·I + 2·G·N + M: the gate z, then x, B and C, then dt, for
I = M·P) split in three; x·B·C through the convolution and SiLU; the scan; the gated norm
of its output by z; ``out_proj`` (I -> H).

    >>> scan = Mamba2Scan(num_heads=8, head_dim=4, state_size=6, n_groups=2, chunk_size=5)
    >>> [(p.name, p.shape) for p in scan.params()]
    [('dt_bias', (8,)), ('A_log', (8,)), ('D', (8,))]
    >>> work = scan.work((2, 7, 56), (2, 7, 8))
    >>> work.outputs, work.macs
    (((2, 7, 32),), 19136)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from shapecalc.core.dims import Dim, dim_str, floor_div, known, product, same_size, shape_str
from shapecalc.core.frozen import frozen
from shapecalc.core.spec import LayerSpec, Param, Shape, Stored, Work
from shapecalc.layers._function import _Function
from shapecalc.layers._shapes import check_features, one_input

__all__ = ["CausalConv1d", "GatedRMSNorm", "Mamba2Scan", "Take", "chunks"]


def chunks(length: Dim, chunk_size: int) -> Dim:
    """The chunks the scan cuts ``length`` positions into: ⌈T / Q⌉ (the last one padded
    with zeros, as transformers pads it)."""
    return floor_div(length + chunk_size - 1, chunk_size)


@frozen
class CausalConv1d(LayerSpec):
    """Mamba's depthwise causal convolution: ``nn.Conv1d(channels, channels, kernel_size,
    groups=channels, padding=kernel_size - 1, bias=bias)``, each channel its own filter of
    kernel_size taps over the positions before it. Input and output (…, T, channels): the
    mixer turns them to (…, channels, T) for torch's convolution and back, and keeps the
    first T of the T + K − 1 positions the padding makes.

    MACs as FlopCounterMode counts torch's convolution: every one of the T + K − 1 output
    positions, channels·K each (the K − 1 cut off after are computed too). A forward with
    transformers' cache and T < K pads the input to K first (K + K − 1 positions); the
    forward counted here is the one without a cache. Kept for backward: its input (a view
    of in_proj's output, turned) and, beside the output's first T positions (which the
    activation after it keeps as a view), the K − 1 past them. State for decoding, as
    transformers' cache keeps it: the last K inputs of every channel (``conv_states``,
    (B, channels, K), zeros before the first token), in the activations' dtype: fixed,
    whatever the context."""

    channels: Dim
    kernel_size: Dim
    bias: bool = True

    kind: ClassVar[str] = "CausalConv1d"
    family: ClassVar[str] = "transformers"
    summary: ClassVar[str] = "depthwise causal 1-D convolution (Mamba's conv1d)"
    size_fields: ClassVar[dict[str, int]] = {"channels": 1, "kernel_size": 1}

    def __post_init__(self) -> None:
        self._check_fields()

    def params(self) -> Iterator[Param]:
        c, k = self.channels, self.kernel_size
        yield Param(
            "weight",
            (c, 1, k),
            f"one filter of {dim_str(k)} taps per channel (depthwise): {dim_str(c)} channels",
        )
        if self.bias:
            yield Param("bias", (c,), f"bias: one per channel, {dim_str(c)}")

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        """(…, T, channels) -> (…, T, channels)."""
        shape = one_input(self, inputs, least=2)
        check_features(self, shape, -1, self.channels, "channels")
        return (shape,)

    def work(self, *inputs: Shape) -> Work:
        outputs = self.output_shapes(*inputs)
        shape = inputs[0]
        batch, length, c, k = product(shape[:-2]), shape[-2], self.channels, self.kernel_size
        positions = length + k - 1
        return Work(
            outputs,
            macs=batch * c * positions * k,
            other=batch * c * positions if self.bias else 0,
            other_rule="bias: 1 add per output of the padded convolution" if self.bias else "",
            saved=(
                Stored("input (turned (…, channels, T), a view)", shape, of="input"),
                Stored(
                    "the K − 1 positions of the output past T: the next step keeps a view "
                    "of the first T, so the whole output stays",
                    (batch, k - 1, c),
                ),
            ),
            state=(
                Stored(
                    f"convolution state: the last {dim_str(k)} inputs of every channel",
                    (batch, c, k),
                    kind="state space",
                ),
            ),
        )


@frozen
class Mamba2Scan(LayerSpec):
    """The Mamba-2 mixer's own tensors and its selective scan, chunked (state space
    duality), as transformers' torch path (``mamba2_chunk_scan``) computes it. Tensors,
    one per head: ``dt_bias`` (added to dt before its softplus), ``A_log`` (A = −exp(A_log),
    the decay rate) and ``D`` (the skip: D·x added to the output).

    Inputs: x·B·C after the convolution (…, T, M·P + 2·G·N) and dt (…, T, M); output y
    (…, T, M·P). Each of the G groups' B and C (N numbers a position) serves M / G heads.
    The T positions are cut into ⌈T / Q⌉ chunks of Q (chunk_size), the last padded.

    MACs, the five einsums as FlopCounterMode counts them (c chunks, Q positions each):
    C·Bᵀ within a chunk (c·Q²·M·N), those scores times x (c·Q²·M·P), each chunk's state
    from its B and x (c·Q·M·P·N), the states carried across chunks ((c + 1)²·M·P·N, every
    chunk boundary from every earlier one), and C times the state entering each chunk
    (c·Q·M·P·N), per batch row. The counter sees no elementwise work: the softplus of dt,
    A·dt, the cumulative sums and their exponentials, the masks, the decays, x·dt, D·x
    (estimated in ``other``). Kept for backward, as autograd keeps the torch path (fp32
    activations; in bf16 x's fp32 copy is kept instead of the input): the input, dt before
    and after its softplus, x padded, the masks, the decays, and the einsums' operands as
    the bmm they become (C, B and x per chunk, the scores, the states).

    State for decoding, as transformers' cache keeps it: one (P × N) state per head
    (``recurrent_states``, (B, M, P, N)), fp32 whatever the model's dtype (the scan
    computes in fp32 and the cache keeps its result): fixed, whatever the context."""

    num_heads: Dim
    head_dim: Dim
    state_size: Dim
    n_groups: Dim
    chunk_size: int = 256
    #: the width of x, num_heads·head_dim by rule, when a model names it otherwise
    #: (Falcon-H1's mamba_d_ssm); None: num_heads·head_dim
    width: Dim | None = None

    own_step: ClassVar[bool] = True
    kind: ClassVar[str] = "Mamba2Scan"
    family: ClassVar[str] = "transformers"
    summary: ClassVar[str] = "Mamba-2's chunked selective scan (SSD), with dt_bias, A_log, D"
    size_fields: ClassVar[dict[str, int]] = {
        "num_heads": 1,
        "head_dim": 1,
        "state_size": 1,
        "n_groups": 1,
    }

    def __post_init__(self) -> None:
        self._check_fields()
        q = self.chunk_size
        if isinstance(q, bool) or not isinstance(q, int) or q < 1:
            self._fail("chunk_size", q, "chunk_size must be an integer >= 1", f"got {q!r}")
        m, g = known(self.num_heads), known(self.n_groups)
        if m is not None and g is not None and m % g:
            self._fail(
                "n_groups",
                g,
                "n_groups must divide num_heads (each group's B and C serve num_heads / "
                "n_groups heads)",
                f"{m} % {g} = {m % g}",
                "num_heads",
            )

    def deferred_rules(self) -> list[str]:
        open_ = known(self.num_heads) is None or known(self.n_groups) is None
        return self._deferred((open_, "n_groups divides num_heads"))

    @property
    def inner(self) -> Dim:
        """I = M·P, the width of x and of the output (``width`` when given)."""
        given: Dim = self.num_heads * self.head_dim if self.width is None else self.width
        return given

    @property
    def conv_width(self) -> Dim:
        """x·B·C: I + 2·G·N."""
        return self.inner + 2 * self.n_groups * self.state_size

    def params(self) -> Iterator[Param]:
        m = dim_str(self.num_heads)
        yield Param("dt_bias", (self.num_heads,), f"added to dt before its softplus, per head: {m}")
        yield Param("A_log", (self.num_heads,), f"A = −exp(A_log), each head's decay rate: {m}")
        yield Param(
            "D", (self.num_heads,), f"the skip D·x added to the scan's output, per head: {m}"
        )

    def _rows(self, inputs: tuple[Shape, ...]) -> Shape:
        """(…, T) of the inputs, checked: x·B·C (…, T, I + 2·G·N) and dt (…, T, M)."""
        if len(inputs) != 2:
            self._fail_shape(f"takes x·B·C and dt, got {len(inputs)} input(s)", inputs)
        xbc, dt = inputs
        if len(xbc) < 2 or not same_size(xbc[-1], self.conv_width):
            self._fail_shape(
                f"x·B·C {shape_str(xbc)} is not (…, T, {dim_str(self.conv_width)})", inputs
            )
        if len(dt) != len(xbc) or not same_size(dt[-1], self.num_heads):
            self._fail_shape(f"dt {shape_str(dt)} is not (…, T, {dim_str(self.num_heads)})", inputs)
        if not all(same_size(a, b) for a, b in zip(xbc[:-1], dt[:-1], strict=True)):
            self._fail_shape(f"x·B·C {shape_str(xbc)} and dt {shape_str(dt)} differ", inputs)
        return xbc[:-1]

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        rows = self._rows(inputs)
        return ((*rows, self.inner),)

    def _kept(self, xbc: Shape, batch: Dim, length: Dim, c: Dim) -> tuple[Stored, ...]:
        """What autograd keeps of the torch path, op by op (fp32 activations: x is a view
        of the input there; the einsums keep their operands as the bmm they become). With
        one batch row or one chunk, some operands are views the bmm reads as they are
        rather than copies, and autograd's account differs by a few of them."""
        m, p, n, q = self.num_heads, self.head_dim, self.state_size, self.chunk_size
        padded = c * q
        fp32 = 4
        return (
            Stored("x·B·C (x is a view of it)", xbc, of="input"),
            Stored("dt + dt_bias, into the softplus", (batch, length, m)),
            Stored("dt after the softplus", (batch, length, m), fp32),
            Stored("A = −exp(A_log), twice", (m,), fp32, copies=2),
            Stored("x padded, for D·x", (batch, padded, m * p), fp32),
            Stored("the triangular masks of a chunk", (q, q), 1, copies=2),
            Stored("the masks across chunks", (c + 1, c + 1), 1, copies=2),
            Stored(
                "within chunks: the decays, C·Bᵀ and the masked scores",
                (batch, c * q * q * m),
                fp32,
                copies=3,
            ),
            Stored(
                "B, C (twice), B decayed and B chunked, per head",
                (batch, padded, m * n),
                fp32,
                copies=5,
            ),
            Stored("x per chunk, twice; C·state", (batch, padded, m * p), fp32, copies=3),
            Stored("the decays to and from a chunk's edge", (batch, padded, m), fp32, copies=2),
            Stored("the decays across chunks", (batch, m * (c + 1) * (c + 1)), fp32),
            Stored("the states at the chunks' edges", (batch, (c + 1) * m * p * n), fp32),
            Stored("the states entering each chunk", (batch, c * m * p * n), fp32),
            Stored(
                "the output's padded positions past T (the next step keeps a view of the "
                "first T: the whole output stays)",
                (batch, padded - length, m * p),
                fp32,
            ),
        )

    def work(self, *inputs: Shape) -> Work:
        outputs = self.output_shapes(*inputs)
        rows = self._rows(inputs)
        batch, length = product(rows[:-1]), rows[-1]
        m, p, n, q = self.num_heads, self.head_dim, self.state_size, self.chunk_size
        c = chunks(length, q)
        padded = c * q
        macs = (
            batch * c * q * q * m * (n + p)  # C·Bᵀ, then the scores times x
            + 2 * batch * c * q * m * p * n  # chunk states from B and x; C times the states
            + batch * (c + 1) * (c + 1) * m * p * n  # the states across chunks
        )
        other = (
            8 * batch * length * m  # dt: bias, softplus, clamp; A·dt, its sums and decays
            + 3 * batch * c * q * q * m  # the segment sums, their exp, the mask on C·Bᵀ
            + 5 * batch * padded * m * p  # x·dt, D·x and its add, the decay, Y_diag + Y_off
            + batch * padded * m * n  # B times its decay
            + 2 * batch * (c + 1) * (c + 1) * m  # the decays across chunks
        )
        return Work(
            outputs,
            macs=macs,
            other=other,
            other_rule="per position and head: dt's bias, softplus and clamp, A·dt, its "
            "cumulative sum and decays (8); per pair in a chunk and head: segment sum, exp, "
            "mask (3); per number of x: x·dt, D·x and its add, the decay, the sum (5); B's "
            "decay (1 per number); the decays across chunks (2 per pair)",
            saved=self._kept(inputs[0], batch, length, c),
            state=(
                Stored(
                    "SSM state: one (head_dim × state_size) state per head, fp32",
                    (batch, m, p, n),
                    itemsize=4,
                    kind="state space",
                ),
            ),
        )


@frozen
class GatedRMSNorm(LayerSpec):
    """``Mamba2RMSNormGated``: y·SiLU(z), in fp32, normalised by its root mean square
    over each of ``n_groups`` groups of hidden_size / n_groups numbers, scaled by
    ``weight`` (hidden_size,); with ``norm_before_gate`` (Falcon-H1's
    ``FalconH1RMSNormGated``), y normalised and scaled first, then times SiLU(z).
    Inputs: y and the gate z, both (…, hidden_size). No matrix product; elementwise per
    number: SiLU (2), the product (1), the square and mean (2), normalising (1) and the
    scale (1)."""

    hidden_size: Dim
    n_groups: Dim = 1
    #: Falcon-H1's order (``mamba_norm_before_gate``): normalise y, then times SiLU(z)
    norm_before_gate: bool = False

    kind: ClassVar[str] = "Mamba2RMSNormGated"
    family: ClassVar[str] = "transformers"
    summary: ClassVar[str] = "RMSNorm of y·SiLU(z) per group, scaled (Mamba-2's norm)"
    size_fields: ClassVar[dict[str, int]] = {"hidden_size": 1, "n_groups": 1}

    def __post_init__(self) -> None:
        self._check_fields()

    def params(self) -> Iterator[Param]:
        yield Param("weight", (self.hidden_size,), f"scale per number: {dim_str(self.hidden_size)}")

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        if len(inputs) != 2:
            self._fail_shape(f"takes y and the gate z, got {len(inputs)} input(s)", inputs)
        y, z = inputs
        check_features(self, y, -1, self.hidden_size, "hidden_size")
        if len(y) != len(z) or not all(same_size(a, b) for a, b in zip(y, z, strict=True)):
            self._fail_shape(f"y {shape_str(y)} and the gate {shape_str(z)} differ", inputs)
        return (y,)

    def work(self, *inputs: Shape) -> Work:
        outputs = self.output_shapes(*inputs)
        y = inputs[0]
        numbers = product(y)
        groups = product(y[:-1]) * self.n_groups
        return Work(
            outputs,
            other=7 * numbers,
            other_rule="per number: SiLU of the gate (2), the product (1), square and mean "
            "(2), normalise (1), scale (1)",
            saved=(
                Stored("y", y, of="input"),
                Stored("the gate z", y, of="input1"),
                Stored("SiLU(z), y·SiLU(z) and its normalised value, fp32", y, 4, copies=3),
                Stored("1/rms per group", (groups,), itemsize=4),
            ),
        )


@frozen
class Take(_Function):
    """Passes on some of its inputs, in the order of ``indices`` (the scan takes x·B·C and
    dt of the mixer's three parts): no compute, no copy."""

    indices: tuple[int, ...]

    kind: ClassVar[str] = "take"
    summary: ClassVar[str] = "passes on some of its inputs"
    passes_all: ClassVar[bool] = True

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        if not self.indices or not all(0 <= i < len(inputs) for i in self.indices):
            self._fail_shape(f"takes inputs {self.indices} of {len(inputs)}", inputs)
        return tuple(inputs[i] for i in self.indices)

    def work(self, *inputs: Shape) -> Work:
        return Work(self.output_shapes(*inputs))
