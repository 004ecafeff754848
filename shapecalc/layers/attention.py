"""Attention: ``MultiheadAttention``, ``TransformerEncoderLayer``, ``TransformerDecoderLayer``.

``MultiheadAttention`` keeps one stacked ``in_proj_weight`` (3E, E) when keys and values
have the query's size, and separate ``q_proj_weight``, ``k_proj_weight`` (E, kdim),
``v_proj_weight`` (E, vdim) when they do not; then ``in_proj_bias`` (3E), ``bias_k`` and
``bias_v`` (1, 1, E) with ``add_bias_kv``, and the output projection ``out_proj`` (E, E).
The transformer layers are made of these, two Linear layers and LayerNorms, with the
submodule names PyTorch gives them (``self_attn.in_proj_weight``, ``linear1.weight``, ...).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any, ClassVar

from shapecalc.core.dims import Dim, dim_str, known, product, same_size, shape_str
from shapecalc.core.errors import ShapecalcError
from shapecalc.core.frozen import frozen
from shapecalc.core.spec import LayerSpec, Param, Shape, Stored, Work, register
from shapecalc.layers._shapes import check_features
from shapecalc.layers.linear import Linear
from shapecalc.layers.norm import LayerNorm

__all__ = ["MultiheadAttention", "TransformerDecoderLayer", "TransformerEncoderLayer"]

ACTIVATIONS = ("relu", "gelu")


def _nested(prefix: str, spec: LayerSpec, what: str) -> Iterator[Param]:
    """A submodule's parameters under its attribute name (``linear1.weight``)."""
    for p in spec.params():
        yield dataclasses.replace(p, name=f"{prefix}.{p.name}", role=f"{what}: {p.role}")


@register
@frozen
class MultiheadAttention(LayerSpec):
    """``nn.MultiheadAttention(embed_dim, num_heads, dropout=0.0, bias=True,
    add_bias_kv=False, add_zero_attn=False, kdim=None, vdim=None, batch_first=False)``.

        >>> MultiheadAttention(512, 8).total()
        1050624
    """

    embed_dim: Dim
    num_heads: Dim
    dropout: float = 0.0
    bias: bool = True
    add_bias_kv: bool = False
    add_zero_attn: bool = False
    kdim: Dim | None = None
    vdim: Dim | None = None
    batch_first: bool = False

    kind: ClassVar[str] = "MultiheadAttention"
    letters: ClassVar[dict[str, str]] = {"kdim": "K", "vdim": "V"}
    family: ClassVar[str] = "attention"
    summary: ClassVar[str] = "multi-head attention: q, k, v and output projections"
    example: ClassVar[dict[str, Any]] = {"embed_dim": 512, "num_heads": 8}
    formula_args: ClassVar[dict[str, Any]] = {"embed_dim": "E", "num_heads": 8}
    example_input: ClassVar[tuple[Shape, ...]] = ((100, 32, 512), (120, 32, 512), (120, 32, 512))
    size_fields: ClassVar[dict[str, int]] = {"embed_dim": 1, "num_heads": 1}
    output_names: ClassVar[tuple[str, ...]] = ("attn_output", "attn_weights")
    bool_fields: ClassVar[tuple[str, ...]] = (
        "bias",
        "add_bias_kv",
        "add_zero_attn",
        "batch_first",
    )

    def __post_init__(self) -> None:
        self._check_fields()
        for name in ("kdim", "vdim"):
            if getattr(self, name) is not None:
                self._check_size_field(name, 0)
        self._check_number("dropout")
        e, h = known(self.embed_dim), known(self.num_heads)
        if e is not None and h is not None and e % h:
            self._fail(
                "embed_dim",
                e,
                "embed_dim must be divisible by num_heads",
                f"{e} % {h} = {e % h}",
                "num_heads",
            )

    def deferred_rules(self) -> list[str]:
        e, h = self.embed_dim, self.num_heads
        return self._deferred(
            (
                known(e) is None or known(h) is None,
                f"embed_dim must be divisible by num_heads: {dim_str(e)} % {dim_str(h)} = 0",
            )
        )

    @property
    def key_size(self) -> Dim:
        return self.embed_dim if self.kdim is None else self.kdim

    @property
    def value_size(self) -> Dim:
        return self.embed_dim if self.vdim is None else self.vdim

    @property
    def packed(self) -> bool:
        """One stacked in_proj_weight (keys and values have the query's size)."""
        return self.key_size == self.embed_dim and self.value_size == self.embed_dim

    def _heads(self) -> str:
        return f"{dim_str(self.num_heads)} heads"

    def params(self) -> Iterator[Param]:
        e = self.embed_dim
        if self.packed:
            yield Param(
                "in_proj_weight",
                (3 * e, e),
                f"query, key and value projections stacked: 3 × ({dim_str(e)} × {dim_str(e)}), "
                f"split into {self._heads()}",
            )
        else:
            for name, size in (("q", e), ("k", self.key_size), ("v", self.value_size)):
                yield Param(
                    f"{name}_proj_weight",
                    (e, size),
                    f"{dict(q='query', k='key', v='value')[name]} projection: "
                    f"{dim_str(e)} × {dim_str(size)}",
                )
        if self.bias:
            yield Param("in_proj_bias", (3 * e,), f"query, key and value biases: 3 × {dim_str(e)}")
        if self.add_bias_kv:
            yield Param("bias_k", (1, 1, e), "a learned key appended to every sequence")
            yield Param("bias_v", (1, 1, e), "a learned value appended to every sequence")
        yield from _nested(
            "out_proj", Linear(e, e, bias=self.bias), "output projection of the heads"
        )

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        """``attn_output`` and the head-averaged ``attn_weights`` for query (L, N, E),
        key (S, N, kdim), value (S, N, vdim) ((N, L, E), ... with ``batch_first``;
        (L, E), (S, kdim), (S, vdim) unbatched). One shape is self-attention, one tensor
        as query, key and value (``attn(x, x, x)``).

            >>> MultiheadAttention(8, 2, batch_first=True).output_shapes((2, 5, 8))
            ((2, 5, 8), (2, 5, 5))
        """
        query, key, value = self._qkv(inputs)
        rank = len(query)
        if rank not in (2, 3) or len(key) != rank or len(value) != rank:
            self._fail_shape(
                "query, key and value must all be 2-D or all 3-D, got "
                f"{shape_str(query)}, {shape_str(key)}, {shape_str(value)}",
                inputs,
            )
        check_features(self, query, -1, self.embed_dim, "embed_dim")
        check_features(self, key, -1, self.key_size, "kdim")
        check_features(self, value, -1, self.value_size, "vdim")
        seq = 1 if rank == 3 and self.batch_first else 0
        if not same_size(key[seq], value[seq]):
            self._fail_shape(
                f"key {shape_str(key)} and value {shape_str(value)} differ in length", inputs
            )
        source: Dim = key[seq] + int(self.add_bias_kv) + int(self.add_zero_attn)
        if rank == 2:
            return (query, (query[0], source))
        batch = query[1 - seq]
        return (query, (batch, query[seq], source))

    def _qkv(self, inputs: tuple[Shape, ...]) -> tuple[Shape, Shape, Shape]:
        """Query, key and value shapes: three, or one for self-attention. torch's forward
        takes query, key and value; with one tensor as all three (self-attention) the
        keys and values have the query's size, so kdim and vdim must be embed_dim."""
        if len(inputs) == 1:
            if not self.packed:
                self._fail_shape(
                    "one input shape is self-attention (query = key = value), which needs "
                    f"kdim and vdim equal to embed_dim (got kdim={dim_str(self.key_size)}, "
                    f"vdim={dim_str(self.value_size)}); give query, key and value shapes",
                    inputs,
                )
            return inputs[0], inputs[0], inputs[0]
        if len(inputs) != 3:
            self._fail_shape(
                f"takes one input shape (self-attention: query = key = value) or three "
                f"(query, key, value), got {len(inputs)}: torch's forward needs a key and a "
                "value; for key and value from one tensor give its shape twice",
                inputs,
            )
        return inputs[0], inputs[1], inputs[2]

    def work(self, *inputs: Shape) -> Work:
        """MACs: the q, k, v and output projections (tokens·E·size each), then the scores
        Q·Kᵀ and weights·V (N·L·S·E each, over all heads). Elementwise: the projection
        biases, scaling q, a softmax of 5 FLOPs per score (max, subtract, exp, sum,
        divide), averaging the weights over heads, and dropout on the weights. Kept:
        the inputs (one tensor for self-attention), q, k and v, the attention weights (and
        their dropout mask), the heads' output. State for decoding: the keys and values
        seen so far."""
        distinct = 1 if len(inputs) == 1 else 3
        return self._attention_work(self._qkv(inputs), need_weights=True, distinct=distinct)

    def _attention_work(
        self, inputs: tuple[Shape, ...], *, need_weights: bool, distinct: int
    ) -> Work:
        """``distinct``: how many of query, key and value are separate tensors (1 for
        self-attention, 2 when key and value are one memory, 3)."""
        outputs = self.output_shapes(*inputs)
        weights = outputs[1]
        query, key, value = inputs
        target, source = weights[-2], weights[-1]
        batch = weights[0] if len(weights) == 3 else 1
        e = self.embed_dim
        tokens_q, tokens_k = product(query[:-1]), product(key[:-1])
        macs = e * (tokens_q * e + tokens_k * self.key_size + tokens_k * self.value_size)
        macs += tokens_q * e * e + 2 * batch * target * source * e
        scores = batch * self.num_heads * target * source
        other = tokens_q * e + 5 * scores
        rule = "scale q (1 per number), softmax (5 per score)"
        if self.bias:
            other += 2 * tokens_q * e + 2 * tokens_k * e
            rule = "projection biases (1 per number), " + rule
        if need_weights:
            other += scores
            rule += ", average over heads (1 per score)"
        saved = [Stored("query", query, of="input")]
        if distinct == 2:
            saved.append(Stored("key and value (one tensor)", key, of="input1"))
        elif distinct == 3:
            saved += [Stored("key", key, of="input1"), Stored("value", value, of="input2")]
        saved += [
            Stored("q", (*query[:-1], e)),
            # after add_bias_kv and add_zero_attn append their rows: S' = source positions
            Stored("k and v", (batch, source, e) if len(key) == 3 else (source, e), copies=2),
            # the fused kernel (no weights asked for, no dropout) keeps the softmax's
            # log-sum-exp per query row instead of every score
            Stored("attention weights", (scores,))
            if need_weights or self.dropout > 0
            else Stored("log-sum-exp per query and head", (batch * self.num_heads * target,)),
            Stored("heads' output", (*query[:-1], e)),
        ]
        appends = self.add_bias_kv or self.add_zero_attn
        if distinct == 1 and need_weights and not appends and self.dropout == 0 and len(query) == 3:
            # batched self-attention projects q, k and v as one tensor, which k and v keep
            # whole; the scores read a scaled copy of q (measured, torch 2.13 CPU)
            saved.append(Stored("scaled q", (*query[:-1], e)))
        if self.dropout > 0:
            other += 2 * scores
            rule += ", dropout (2 per score)"
            saved += [  # the unfused path: the scaled q and k it multiplies, the mask
                Stored("scaled q and k", (*query[:-1], e), copies=2),
                Stored("dropout mask of the weights", (scores,)),
                Stored("weights after dropout", (scores,)),
            ]
        return Work(
            outputs,
            macs=macs,
            other=other,
            other_rule=rule,
            saved=tuple(saved),
            # no state: torch's module keeps nothing from call to call (no cache of keys
            # and values; a model that wants one keeps it outside)
        )


@frozen
class _TransformerLayer(LayerSpec):
    """The constructor arguments, checks and parameters both Transformer layers share."""

    d_model: Dim
    nhead: Dim
    dim_feedforward: Dim = 2048
    dropout: float = 0.1
    activation: str = "relu"
    layer_norm_eps: float = 1e-5
    batch_first: bool = False
    norm_first: bool = False
    bias: bool = True

    family: ClassVar[str] = "attention"
    size_fields: ClassVar[dict[str, int]] = {"d_model": 1, "nhead": 1, "dim_feedforward": 0}
    bool_fields: ClassVar[tuple[str, ...]] = ("batch_first", "norm_first", "bias")
    #: the attention submodules, in order
    attentions: ClassVar[tuple[tuple[str, str], ...]]
    norms: ClassVar[int]

    def __post_init__(self) -> None:
        self._check_fields()
        self._check_number("dropout", 0, 1)
        self._check_number("layer_norm_eps")
        self._check_choice("activation", ACTIVATIONS)
        self._attention()  # the heads must divide d_model

    def deferred_rules(self) -> list[str]:
        return [
            rule.replace("embed_dim", "d_model").replace("num_heads", "nhead")
            for rule in self._attention().deferred_rules()
        ]

    def _attention(self) -> MultiheadAttention:
        try:
            return MultiheadAttention(self.d_model, self.nhead, bias=self.bias)
        except ShapecalcError as err:  # re-attributed: d_model and nhead are this layer's names
            raise err.renamed({"embed_dim": "d_model", "num_heads": "nhead"}) from None

    def params(self) -> Iterator[Param]:
        d, ff = self.d_model, self.dim_feedforward
        attention = self._attention()
        for name, what in self.attentions:
            yield from _nested(name, attention, what)
        yield from _nested("linear1", Linear(d, ff, bias=self.bias), "feed-forward, up")
        yield from _nested("linear2", Linear(ff, d, bias=self.bias), "feed-forward, down")
        for i in range(1, self.norms + 1):
            yield from _nested(
                f"norm{i}", LayerNorm(d, eps=self.layer_norm_eps, bias=self.bias), "layer norm"
            )

    def work(self, *inputs: Shape) -> Work:
        """The attention blocks (without head-averaged weights, as the layer asks for
        none), the feed-forward's two products (tokens·D·F MACs each) and its bias and
        activation, the residual adds, the LayerNorms and the dropouts (training mode)."""
        outputs = self.output_shapes(*inputs)
        tgt = inputs[0]
        d, ff, p = self.d_model, self.dim_feedforward, self.dropout
        attention = dataclasses.replace(self._attention(), batch_first=self.batch_first, dropout=p)
        sources = [(tgt, True)] + ([(inputs[1], False)] if len(inputs) == 2 else [])
        parts = [
            attention._attention_work((tgt, src, src), need_weights=False, distinct=1 if own else 2)
            for src, own in sources
        ]
        tokens = product(tgt[:-1])
        hidden: Shape = (*tgt[:-1], ff)
        up = Linear(d, ff, bias=self.bias).work(tgt)
        down = Linear(ff, d, bias=self.bias).work(hidden)  # keeps the activation's output
        norm = LayerNorm(d, bias=self.bias).work(tgt)
        blocks = len(parts) + 1  # each attention block and the feed-forward: residual, norm
        macs = sum((w.macs for w in parts), start=up.macs + down.macs)
        other = sum((w.other for w in parts), start=up.other + down.other)
        other += tokens * ff + blocks * (tokens * d + norm.other)
        saved = [s for w in parts for s in w.saved]
        # relu keeps its output, which is also linear2's input; gelu keeps its input too
        saved += [*up.saved, Stored(f"{self.activation} output (linear2's input)", hidden)]
        if self.activation == "gelu":
            saved.append(Stored("gelu input", hidden))
        saved += [s for _ in range(blocks) for s in norm.saved]
        if p > 0:
            masks = [Stored("dropout mask", tgt)] * blocks
            masks.append(Stored("feed-forward dropout mask", hidden))
            masks.append(Stored("linear2's input after dropout", hidden))
            saved += masks
            other += 2 * (blocks * tokens * d + tokens * ff)
        return Work(
            outputs,
            macs=macs,
            other=other,
            other_rule=f"attention as MultiheadAttention; feed-forward bias and "
            f"{self.activation} (1 per number); residual add and LayerNorm per block; "
            "dropout 2 per number",
            saved=tuple(saved),
            state=tuple(st for w in parts for st in w.state),
        )

    def _sequence(self, shape: Shape, what: str) -> Shape:
        if len(shape) not in (2, 3):
            self._fail_shape(f"{what} must be 2-D or 3-D, got {shape_str(shape)}", shape)
        check_features(self, shape, -1, self.d_model, "d_model")
        return shape


@register
class TransformerEncoderLayer(_TransformerLayer):
    """``nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward=2048, dropout=0.1,
    activation='relu', layer_norm_eps=1e-05, batch_first=False, norm_first=False,
    bias=True)``: self-attention and a feed-forward block, each with a LayerNorm.

        >>> TransformerEncoderLayer(512, 8).total()
        3152384
    """

    kind: ClassVar[str] = "TransformerEncoderLayer"
    summary: ClassVar[str] = "self-attention + feed-forward, two LayerNorms"
    example: ClassVar[dict[str, Any]] = {"d_model": 768, "nhead": 12, "dim_feedforward": 3072}
    formula_args: ClassVar[dict[str, Any]] = {"d_model": "D", "nhead": 12, "dim_feedforward": "F"}
    example_input: ClassVar[tuple[Shape, ...]] = ((128, 32, 768),)
    attentions: ClassVar[tuple[tuple[str, str], ...]] = (("self_attn", "self-attention"),)
    norms: ClassVar[int] = 2

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        """src (S, N, E), (N, S, E) or (S, E) -> the same shape."""
        if len(inputs) != 1:
            self._fail_shape(f"takes one input shape (src), got {len(inputs)}", inputs)
        return (self._sequence(inputs[0], "src"),)


@register
class TransformerDecoderLayer(_TransformerLayer):
    """``nn.TransformerDecoderLayer(d_model, nhead, dim_feedforward=2048, dropout=0.1,
    activation='relu', layer_norm_eps=1e-05, batch_first=False, norm_first=False,
    bias=True)``: self-attention, attention over the encoder's memory, feed-forward.

        >>> TransformerDecoderLayer(512, 8).total()
        4204032
    """

    kind: ClassVar[str] = "TransformerDecoderLayer"
    summary: ClassVar[str] = "self-attention + cross-attention + feed-forward, three LayerNorms"
    example: ClassVar[dict[str, Any]] = {"d_model": 512, "nhead": 8}
    formula_args: ClassVar[dict[str, Any]] = {"d_model": "D", "nhead": 8, "dim_feedforward": "F"}
    example_input: ClassVar[tuple[Shape, ...]] = ((100, 32, 512), (120, 32, 512))
    attentions: ClassVar[tuple[tuple[str, str], ...]] = (
        ("self_attn", "self-attention"),
        ("multihead_attn", "attention over the encoder's memory"),
    )
    norms: ClassVar[int] = 3

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        """tgt (T, N, E) and memory (S, N, E) -> tgt's shape."""
        if len(inputs) != 2:
            self._fail_shape(f"takes tgt and memory shapes, got {len(inputs)}", inputs)
        tgt = self._sequence(inputs[0], "tgt")
        memory = self._sequence(inputs[1], "memory")
        if len(tgt) != len(memory):
            self._fail_shape(
                f"tgt {shape_str(tgt)} and memory {shape_str(memory)} differ in rank", inputs
            )
        return (tgt,)
