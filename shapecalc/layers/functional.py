"""Steps of a forward that are functions, not modules: used inline in a block's flow.

``ScaledDotProductAttention`` is ``torch.nn.functional.scaled_dot_product_attention``
with its heads: queries, keys and values in, the heads' output out. ``Rotary`` turns
queries or keys by their position (RoPE), ``SplitHeads`` views the last dimension as
(heads, head_dim), ``Chunk`` splits it into parts (a fused q, k, v projection), ``Pick``
passes on one of a block's inputs (BERT's residual into its ``output`` block), ``Select``
takes one position (the first token, which BERT's pooler reads). None holds a tensor, so
none has a name; they are not torch.nn kinds (``shapecalc layers`` does not list them),
and the torch bridge runs each with torch's own functions.

    >>> attention = ScaledDotProductAttention(num_heads=8, num_kv_heads=2, head_dim=64)
    >>> work = attention.work((1, 100, 512), (1, 100, 128), (1, 100, 128))
    >>> work.outputs, work.macs
    (((1, 100, 512),), 10240000)
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from shapecalc.core.dims import Dim, floor_div, product, same_size, shape_str
from shapecalc.core.frozen import frozen
from shapecalc.core.spec import Shape, Stored, Work
from shapecalc.layers._function import Chunk, Select, _Function, _heads_of

__all__ = [
    "Chunk",
    "Pick",
    "Rotary",
    "ScaledDotProductAttention",
    "Select",
    "SplitHeads",
    "cross_cache",
    "kv_cache",
]


@frozen
class ScaledDotProductAttention(_Function):
    """``softmax(q·kᵀ/√d + mask)·v`` per head: ``num_heads`` query heads sharing
    ``num_kv_heads`` key and value heads (grouped-query attention; 1 is multi-query), each
    ``head_dim`` wide. Queries (…, T, num_heads·head_dim), keys and values (…, S,
    num_kv_heads·head_dim), given flat or split into heads; the output is the heads'
    output, flat: (…, T, num_heads·head_dim).

    MACs: q·kᵀ and weights·v, 2·T·S·head_dim per query head and batch row (the
    counter's count: the causal mask does not halve it). Elementwise: scaling q (1 per
    number), the mask (1 per score, causal), the softmax (5 per score). Kept for backward,
    as the fused kernel keeps them: q, k and v, the output and the softmax's log-sum-exp
    per query row and head. State for decoding: the keys and values seen, per layer; with
    a sliding ``window``, transformers' cache keeps the last window − 1 of them (the mask
    limits what each query sees; the products are as large)."""

    num_heads: Dim
    num_kv_heads: Dim
    head_dim: Dim
    causal: bool = True
    #: a sliding window: each query attends to the last ``window`` positions; None: all
    window: int | None = None
    #: cross-attention: keys and values come from another sequence (an encoder's output),
    #: computed once per request and kept whole, not growing with the queries
    cross: bool = False
    #: the keys and values are kept for the next call (a decoder's); False: an encoder's,
    #: run once per request, keeps none; None (the default): kept by causal attention and
    #: cross-attention, not by an encoder's or a vision tower's attention, every position
    #: seeing every other (transformers passes no cache to those: SiglipEncoder,
    #: CLIPEncoder, PixtralTransformer and Qwen2.5-VL's vision blocks take none)
    cached: bool | None = None

    kind: ClassVar[str] = "scaled_dot_product_attention"
    summary: ClassVar[str] = "softmax(q·kᵀ/√d)·v per head"

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        if len(inputs) != 3:
            self._fail_shape(f"takes query, key and value, got {len(inputs)} input(s)", inputs)
        q, k, v = inputs
        rows = _heads_of(self, q, self.num_heads, self.head_dim, "query")
        krows = _heads_of(self, k, self.num_kv_heads, self.head_dim, "key")
        vrows = _heads_of(self, v, self.num_kv_heads, self.head_dim, "value")
        if len(rows) != len(krows) or not all(
            same_size(a, b) for a, b in zip(rows[:-1], krows[:-1], strict=True)
        ):
            self._fail_shape(f"query {shape_str(q)} and key {shape_str(k)} differ", inputs)
        if not same_size(krows[-1], vrows[-1]):
            self._fail_shape(f"key {shape_str(k)} and value {shape_str(v)} differ", inputs)
        return ((*rows, self.num_heads * self.head_dim),)

    def work(self, *inputs: Shape) -> Work:
        (out,) = outputs = self.output_shapes(*inputs)
        q, k, _ = inputs
        rows = _heads_of(self, q, self.num_heads, self.head_dim, "query")
        target = rows[-1]
        source = _heads_of(self, k, self.num_kv_heads, self.head_dim, "key")[-1]
        batch = product(rows[:-1])
        scores = batch * self.num_heads * target * source
        other = product(out) + 5 * scores + (scores if self.causal else 0)
        rule = "scale q (1 per number), " + ("causal mask (1 per score), " if self.causal else "")
        cache = (*rows[:-1], self.num_kv_heads, source, self.head_dim)
        return Work(
            outputs,
            macs=2 * scores * self.head_dim,
            other=other,
            other_rule=rule + "softmax (5 per score)",
            saved=(
                Stored("q", q, of="input"),
                Stored("k", k, of="input1"),
                Stored("v", inputs[2], of="input2"),
                Stored("output", out, of="output"),
                Stored(  # fp32 whatever the inputs' dtype, as torch's kernels keep it
                    "log-sum-exp per query row and head",
                    (batch * self.num_heads * target,),
                    itemsize=4,
                ),
            ),
            state=self._state(cache, source),
        )

    @property
    def keeps_cache(self) -> bool:
        """Whether the keys and values are kept for the next call (:attr:`cached`)."""
        return self.causal or self.cross if self.cached is None else self.cached

    def _state(self, cache: Shape, source: Dim) -> tuple[Stored, ...]:
        if not self.keeps_cache:
            return ()
        if self.cross:
            return (cross_cache(cache),)
        return (kv_cache(cache, source, self.window),)


def cross_cache(shape: Shape) -> Stored:
    """The keys and values a cross-attention layer keeps for decoding, ``shape`` each: the
    encoder output's, made at the first step and kept whole for the request
    (transformers' ``EncoderDecoderCache.cross_attention_cache``); they do not grow with
    the tokens generated."""
    return Stored("cross-attention key and value cache", shape, copies=2, kind="cross attention")


def kv_cache(shape: Shape, positions: Dim, window: int | None) -> Stored:
    """The keys and values an attention layer keeps for decoding, ``shape`` each, over
    ``positions``; a sliding window keeps the last window − 1 (transformers'
    ``DynamicSlidingWindowLayer``: the query that comes next makes the window). A window
    of 1 keeps every position there (its slice ``[-0:]`` is the whole tensor)."""
    if window is None:
        return Stored(
            "key and value cache",
            shape,
            copies=2,
            per_position=True,
            positions=positions,
            kind="full attention",
        )
    return Stored(
        f"key and value cache, the last {window - 1:,} positions at most"
        if window > 1
        else "key and value cache (a window of 1: transformers keeps every position)",
        shape,
        copies=2,
        per_position=True,
        positions=positions,
        window=window - 1 if window > 1 else None,
        kind="sliding attention",
    )


@frozen
class Rotary(_Function):
    """Rotary position embedding (RoPE) on queries or keys: each pair of the first
    ``rotated`` numbers of every head turned by an angle of its position. No parameters:
    the angles come from the positions. The tables have ⌈rotated / 2⌉ frequencies, one per
    pair, so 2·⌈rotated / 2⌉ numbers turn (rotated itself when even, or the whole head).
    3 FLOPs per turned number (x·cos + rotated(x)·sin); keeps nothing the size of the
    input: only the cos and sin tables, (T, turned) each, made once per forward and shared
    by every layer."""

    num_heads: Dim
    head_dim: Dim
    #: how many numbers of each head turn (GPT-NeoX turns a fraction, ``rotary_pct``)
    rotated: Dim | None = None

    kind: ClassVar[str] = "rotary"
    summary: ClassVar[str] = "turns each pair of numbers by its position's angle"

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        if len(inputs) != 1:
            self._fail_shape(f"takes one input, got {len(inputs)}", inputs)
        _heads_of(self, inputs[0], self.num_heads, self.head_dim, "input")
        return (inputs[0],)

    @property
    def turned(self) -> Dim:
        """The numbers of a head that turn: 2·⌈rotated / 2⌉, the same rounding for a
        number and a formula (``⌊D·p⌋`` of a size D is rounded up to even as its value is)."""
        if self.rotated is None or self.rotated == self.head_dim:
            return self.head_dim
        return 2 * floor_div(self.rotated + 1, 2)

    def work(self, *inputs: Shape) -> Work:
        outputs = self.output_shapes(*inputs)
        rows = _heads_of(self, inputs[0], self.num_heads, self.head_dim, "input")
        turned = self.turned
        table = Stored("cos and sin, one table for every layer", (rows[-1], turned), copies=2)
        return Work(
            outputs,
            other=3 * product(rows) * self.num_heads * turned,
            other_rule="x·cos + rotated(x)·sin, 3 per turned number",
            saved=(replace(table, shared=True),),
        )


@frozen
class SplitHeads(_Function):
    """The last dimension viewed as (heads, head_dim): a view, no compute."""

    num_heads: Dim
    head_dim: Dim

    kind: ClassVar[str] = "split_heads"
    summary: ClassVar[str] = "views (..., heads·head_dim) as (..., heads, head_dim)"

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        if len(inputs) != 1:
            self._fail_shape(f"takes one input, got {len(inputs)}", inputs)
        rows = _heads_of(self, inputs[0], self.num_heads, self.head_dim, "input")
        return ((*rows, self.num_heads, self.head_dim),)

    def work(self, *inputs: Shape) -> Work:
        return Work(self.output_shapes(*inputs), inplace=True)


@frozen
class Pick(_Function):
    """Passes on input ``index`` of several (a block that takes a layer's output and the
    residual, as BERT's ``BertSelfOutput`` does): no compute, no copy."""

    index: int

    kind: ClassVar[str] = "pick"
    summary: ClassVar[str] = "passes on one of its inputs"

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        if not 0 <= self.index < len(inputs):
            self._fail_shape(f"picks input {self.index} of {len(inputs)}", inputs)
        return (inputs[self.index],)

    def work(self, *inputs: Shape) -> Work:
        return Work(self.output_shapes(*inputs), inplace=True, aliases=self.index)
