"""Linear attention as ``transformers`` builds it for Qwen3-Next: the Gated DeltaNet layer
(:class:`GatedDeltaNet`, ``Qwen3NextGatedDeltaNet``), and the two steps of the gated full
attention beside it (:class:`SplitQueryGate`, :class:`GatedAttention`:
``Qwen3NextAttention``'s q_proj makes each head's query and an output gate).

A Gated DeltaNet layer keeps no keys and values: its state is a fixed matrix per value
head (key_head_dim × value_head_dim) that every token decays and corrects (the delta
rule), and the last few inputs of its causal convolution. Neither grows with the context.

    >>> layer = GatedDeltaNet(2048, 16, 32, 128, 128)
    >>> [(p.name, p.shape) for p in layer.params()][:3]
    [('dt_bias', (32,)), ('A_log', (32,)), ('conv1d.weight', (8192, 1, 4))]
    >>> [s.shape for s in layer.work((1, 100, 2048)).state]
    [(1, 8192, 4), (1, 32, 128, 128)]
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import ClassVar

from shapecalc.core.dims import Dim, dim_str, floor_div, known, product, same_size, shape_str
from shapecalc.core.frozen import frozen
from shapecalc.core.spec import LayerSpec, Param, Shape, Stored, Work
from shapecalc.layers._function import _Function, _heads_of
from shapecalc.layers._shapes import check_features, one_input
from shapecalc.layers.functional import ScaledDotProductAttention

__all__ = ["CHUNK", "GatedAttention", "GatedDeltaNet", "SplitQueryGate"]

#: the positions transformers' torch path of the gated delta rule takes at a time
#: (``torch_chunk_gated_delta_rule``'s chunk_size)
CHUNK = 64


@frozen
class GatedDeltaNet(LayerSpec):
    """Qwen3-Next's linear attention (``Qwen3NextGatedDeltaNet``), named as transformers
    names it: ``dt_bias`` and ``A_log`` (one per value head: the step size and the decay
    rate of each head's state), ``conv1d.weight`` (C, 1, W), a causal depthwise convolution
    of width W over the queries, keys and values (C = 2·Nk·Dk + Nv·Dv channels, no bias),
    ``in_proj_qkvz.weight`` (2·Nk·Dk + 2·Nv·Dv, H): queries, keys, values and the output
    gate z, ``in_proj_ba.weight`` (2·Nv, H): β (how much each token writes) and a (its
    decay), ``norm.weight`` (Dv,): an RMSNorm per value head gated by SiLU(z), and
    ``out_proj.weight`` (H, Nv·Dv). Nk key heads of Dk (queries and keys), Nv value heads
    of Dv; each key head serves Nv / Nk value heads.

    Input and output (…, T, H). MACs, as ``FlopCounterMode`` counts transformers' torch
    path (``torch_chunk_gated_delta_rule``, no fla kernels) on a forward from an empty
    cache: the projections, H·(2·Nk·Dk + 2·Nv·Dv + 2·Nv) and Nv·Dv·H per token; the
    convolution, C·W per output position of ``F.conv1d``, which pads W − 1 positions: T +
    W − 1 of them (a forward without a cache, or with one and T >= W; a cached prefill
    shorter than W pads its input to W positions, which the counter then sees); the
    chunked delta rule over T padded to T' (a multiple of the chunk, 64), per value head:
    k_β·kᵀ and q·kᵀ within each chunk (2·T'·64·Dk), and per chunk the state read twice and
    written once (3·64·Dk·Dv) and the chunk's attention times the new values (64·64·Dv).
    The counter does not see the two triangular solves (``linalg.solve_triangular``,
    about 64·(Dk + Dv) per position and value head), the l2 norms, decays and gates:
    they are in the elementwise estimate. Kept for backward: an estimate of what the
    eager torch path keeps (the fp32 copies and chunk tensors it makes), not checked
    against autograd. State for decoding: the convolution's last W inputs (C, W) in the
    model's dtype and the recurrent state (Nv, Dk, Dv), fp32 whatever the model's dtype,
    per batch row: fixed sizes, whatever the context."""

    hidden_size: Dim
    num_key_heads: Dim
    num_value_heads: Dim
    key_head_dim: Dim
    value_head_dim: Dim
    conv_kernel_size: Dim = 4
    chunk_size: int = CHUNK

    kind: ClassVar[str] = "GatedDeltaNet"
    family: ClassVar[str] = "transformers"
    summary: ClassVar[str] = "Qwen3-Next's linear attention: the gated delta rule"
    size_fields: ClassVar[dict[str, int]] = {
        "hidden_size": 1,
        "num_key_heads": 1,
        "num_value_heads": 1,
        "key_head_dim": 1,
        "value_head_dim": 1,
        "conv_kernel_size": 1,
        "chunk_size": 1,
    }

    def __post_init__(self) -> None:
        self._check_fields()
        nk, nv = known(self.num_key_heads), known(self.num_value_heads)
        if nk is not None and nv is not None and nv % nk:
            self._fail(
                "num_key_heads",
                self.num_key_heads,
                "num_key_heads must divide num_value_heads (value heads per key head)",
                f"{nv} % {nk} = {nv % nk}",
                "num_value_heads",
            )

    # -- the sizes ------------------------------------------------------------------------
    @property
    def key_dim(self) -> Dim:
        """Nk·Dk: the queries' (and the keys') width."""
        return self.num_key_heads * self.key_head_dim

    @property
    def value_dim(self) -> Dim:
        """Nv·Dv: the values' (and the gate z's) width."""
        return self.num_value_heads * self.value_head_dim

    @property
    def conv_dim(self) -> Dim:
        """The convolution's channels: queries, keys and values."""
        return 2 * self.key_dim + self.value_dim

    def params(self) -> Iterator[Param]:
        h, nv, dv = self.hidden_size, self.num_value_heads, self.value_head_dim
        c, w = self.conv_dim, self.conv_kernel_size
        yield Param(
            "dt_bias",
            (nv,),
            f"one per value head: added to a before the softplus that sets the step "
            f"({dim_str(nv)} value heads)",
        )
        yield Param(
            "A_log",
            (nv,),
            "one per value head: the log of its decay rate (the state decays by "
            "exp(−exp(A_log)·softplus(a + dt_bias)) each token)",
        )
        yield Param(
            "conv1d.weight",
            (c, 1, w),
            f"a causal depthwise convolution of width {dim_str(w)} over q, k and v: "
            f"{dim_str(c)} channels",
        )
        yield Param(
            "in_proj_qkvz.weight",
            (2 * self.key_dim + 2 * self.value_dim, h),
            f"queries and keys ({dim_str(self.key_dim)} each), values and the output gate "
            f"z ({dim_str(self.value_dim)} each) from {dim_str(h)}, stored (out, in)",
        )
        yield Param(
            "in_proj_ba.weight",
            (2 * nv, h),
            "β (how much each token writes) and a (how fast the state decays), one each "
            "per value head",
        )
        yield Param(
            "norm.weight",
            (dv,),
            f"the gated RMSNorm's scale, shared by the {dim_str(nv)} value heads",
        )
        yield Param(
            "out_proj.weight",
            (h, self.value_dim),
            f"the value heads' output back to {dim_str(h)}, stored (out, in)",
        )

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        """(…, T, H) -> (…, T, H)."""
        shape = one_input(self, inputs, least=2)
        check_features(self, shape, -1, self.hidden_size, "hidden_size")
        return (shape,)

    def chunks(self, length: Dim) -> Dim:
        """The chunks the rule works on: ⌈T / 64⌉ (the length padded to a multiple of the
        chunk)."""
        c = self.chunk_size
        n = known(length)
        if n is not None:
            return -(-n // c)
        return floor_div(length + c - 1, c)

    def work(self, *inputs: Shape) -> Work:
        (out,) = self.output_shapes(*inputs)
        shape = inputs[0]
        batch, length = product(shape[:-2]), shape[-2]
        tokens = batch * length
        h, nv = self.hidden_size, self.num_value_heads
        dk, dv, w, c = (
            self.key_head_dim,
            self.value_head_dim,
            self.conv_kernel_size,
            self.chunk_size,
        )
        conv, value_dim = self.conv_dim, self.value_dim
        chunks = self.chunks(length)
        padded = c * chunks
        reads = length
        projections = tokens * h * (2 * self.key_dim + 2 * value_dim + 2 * nv)
        convolution = batch * conv * (reads + w - 1) * w
        rule = batch * nv * padded * (2 * c * dk + 3 * dk * dv + c * dv)
        macs = projections + convolution + rule + tokens * value_dim * h
        heads = batch * nv * padded  # a value head at a padded position
        other = (
            2 * batch * conv * length  # SiLU after the convolution
            + 3 * heads * 2 * dk  # l2 norms of q and k
            + 5 * tokens * nv  # β = σ(b), g = −exp(A)·softplus(a + dt_bias)
            + 5 * heads * c  # decays between pairs of a chunk, masks, the two products
            + heads * c * (dk + dv)  # the triangular solves the counter does not see
            + 2 * batch * nv * chunks * dk * dv  # the state's decay per chunk
            + 8 * tokens * value_dim  # the gated RMSNorm
        )
        fp32 = 4
        saved = (
            Stored("input", shape, of="input"),
            Stored("q, k and v before and after the convolution", (batch, conv, reads), copies=2),
            Stored("the gate z, β and a", (tokens, value_dim + 2 * nv)),
            Stored("q and k per value head, l2-normalised, fp32", (heads, dk), fp32, copies=2),
            Stored("values and β·values, fp32", (heads, dv), fp32, copies=2),
            Stored("decays and pairs of a chunk, fp32", (heads, c), fp32, copies=3),
            Stored("new values and decayed keys, fp32", (heads, dv + dk), fp32),
            Stored("the state per chunk, fp32", (batch * nv * chunks, dk * dv), fp32),
            Stored("the rule's output and the gated norm's input", (tokens, value_dim), copies=3),
        )
        state = (
            Stored(
                "convolution state: the last W inputs of q, k and v",
                (batch, conv, w),
                kind="linear attention",
            ),
            Stored(
                "recurrent state: a Dk × Dv matrix per value head, fp32",
                (batch, nv, dk, dv),
                itemsize=fp32,
                kind="linear attention",
            ),
        )
        return Work(
            (out,),
            macs=macs,
            other=other,
            other_rule=(
                "SiLU after the convolution (2 per number), l2 norms of q and k (3 per "
                "number), β and the decay (5 per value head and token), decays and masks "
                "between the positions of a chunk (5 per pair), the triangular solves "
                "(chunk·(Dk + Dv) per value head and position), the state's decay (2 per "
                "number and chunk), the gated RMSNorm (8 per value number)"
            ),
            saved=saved,
            state=state,
        )


@frozen
class SplitQueryGate(_Function):
    """Qwen3-Next's q_proj output (…, T, A·2·D) viewed as (…, T, A, 2·D) and split: each
    head's query (the first D) and its output gate (the other D), the gate flat
    (…, T, A·D). No compute."""

    num_heads: Dim
    head_dim: Dim

    kind: ClassVar[str] = "split_query_gate"
    summary: ClassVar[str] = "each head's query and output gate from one projection"
    passes_all: ClassVar[bool] = True

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        shape = one_input(self, inputs, least=2)
        a, d = self.num_heads, self.head_dim
        if not same_size(shape[-1], 2 * a * d):
            self._fail_shape(
                f"input {shape_str(shape)} has {dim_str(shape[-1])} at its last dim, expected "
                f"2·heads·head_dim = {dim_str(2 * a * d)}",
                shape,
            )
        return ((*shape[:-1], a, d), (*shape[:-1], a * d))

    def work(self, *inputs: Shape) -> Work:
        return Work(self.output_shapes(*inputs), views=True)


@frozen
class GatedAttention(_Function):
    """Qwen3-Next's full attention after the projections: ``softmax(q·kᵀ/√d + mask)·v``
    per head (as :class:`~shapecalc.layers.functional.ScaledDotProductAttention`), times
    the sigmoid of the gate q_proj made. Inputs: queries (…, T, A·D or A, D), the gate
    (…, T, A·D), keys and values (…, S, K·D or K, D); output (…, T, A·D). MACs: the
    attention's. Elementwise: the attention's, and the gate's sigmoid and product (2 per
    output number). Kept: the attention's q, k, v, output and log-sum-exp, and the
    gate's sigmoid. State for decoding: the keys and values seen (full attention)."""

    num_heads: Dim
    num_kv_heads: Dim
    head_dim: Dim

    kind: ClassVar[str] = "gated_attention"
    summary: ClassVar[str] = "attention whose output each head gates by a sigmoid"

    def _attention(self) -> ScaledDotProductAttention:
        return ScaledDotProductAttention(self.num_heads, self.num_kv_heads, self.head_dim)

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        if len(inputs) != 4:
            self._fail_shape(
                f"takes query, gate, key and value, got {len(inputs)} input(s)", inputs
            )
        q, gate, k, v = inputs
        (out,) = self._attention().output_shapes(q, k, v)
        rows = _heads_of(self, gate, self.num_heads, self.head_dim, "gate")
        if len(gate) != len(out) or not all(
            same_size(a, b) for a, b in zip(rows, out[:-1], strict=False)
        ):
            self._fail_shape(f"gate {shape_str(gate)} and query {shape_str(q)} differ", inputs)
        return (out,)

    def work(self, *inputs: Shape) -> Work:
        outputs = self.output_shapes(*inputs)
        q, gate, k, v = inputs
        inner = self._attention().work(q, k, v)
        numbers = product(outputs[0])
        saved = tuple(
            replace(s, of={"input1": "input2", "input2": "input3"}.get(s.of or "", s.of))
            if s.of != "output"
            else replace(s, name="attention output", of=None)
            for s in inner.saved
        )
        return Work(
            outputs,
            macs=inner.macs,
            other=inner.other + 2 * numbers,
            other_rule=inner.other_rule + ", the gate's sigmoid and product (2 per number)",
            saved=(*saved, Stored("sigmoid of the gate", gate)),
            state=inner.state,
        )
