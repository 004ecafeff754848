"""Multi-head latent attention (DeepSeek-V2 and V3): the attention of heads whose keys and
values are made from one small latent vector per token, a step of a forward with no
tensors of its own (the projections around it are the model's ``Linear`` layers).

    >>> a = LatentAttention(num_heads=4, nope_dim=8, rope_dim=4, value_dim=6, latent_dim=16)
    >>> a.output_shapes((2, 5, 48), (2, 5, 56), (2, 5, 4))
    ((2, 5, 24),)
    >>> a.work((2, 5, 48), (2, 5, 56), (2, 5, 4)).macs  # 2·4·5·5 scores of 12, then of 6
    3600
"""

from __future__ import annotations

from typing import ClassVar

from shapecalc.core.dims import Dim, dim_str, product, same_size, shape_str
from shapecalc.core.frozen import frozen
from shapecalc.core.spec import Shape, Stored, Work
from shapecalc.layers._function import _Function, _heads_of

__all__ = ["LatentAttention"]


@frozen
class LatentAttention(_Function):
    """``softmax(q·kᵀ·scale + mask)·v`` for ``num_heads`` heads whose queries and keys have
    two parts: ``nope_dim`` numbers without positions and ``rope_dim`` turned by rotary
    positions; values are ``value_dim`` wide. Inputs: the queries (…, T,
    heads·(nope_dim + rope_dim)), the keys' no-position parts and the values side by side
    per head, as ``kv_b_proj`` makes them from the latent (…, S, heads·(nope_dim +
    value_dim)), and the one rotated key every head shares (…, S, rope_dim). Output: the
    heads' values, flat (…, T, heads·value_dim).

    MACs: q·kᵀ over nope_dim + rope_dim and weights·v over value_dim, per query head,
    query and key (transformers' eager attention; the causal mask halves none of it).
    Elementwise: rotary on the rope parts (3 per turned number, the queries' and the shared
    key's), the scale and the mask (1 per score each), the softmax (5 per score). Kept for
    backward, as the eager product keeps them: the queries and the keys joined per head,
    the softmax's weights and the values. State for decoding, by convention: ``"latent"``,
    the compressed latent, ``latent_dim`` numbers and the rotated key per position, as
    transformers 5's cache and the serving engines (vLLM, SGLang) keep it, the heads' keys
    and values made again at every step; ``"heads"``, every head's keys (nope_dim +
    rope_dim) and values (value_dim) per position, as transformers 4 kept them."""

    num_heads: Dim
    nope_dim: Dim
    rope_dim: Dim
    value_dim: Dim
    #: kv_lora_rank: the latent's width, what the cache keeps per position with the key
    latent_dim: Dim
    causal: bool = True

    kind: ClassVar[str] = "latent_attention"
    summary: ClassVar[str] = "softmax(q·kᵀ·scale)·v per head, keys from a shared latent"

    def _rows(self, *inputs: Shape) -> tuple[Shape, Shape]:
        if len(inputs) != 3:
            self._fail_shape(
                f"takes queries, keys-and-values and the shared rotated key, got "
                f"{len(inputs)} input(s)",
                inputs,
            )
        q, kv, rope = inputs
        rows = _heads_of(self, q, self.num_heads, self.nope_dim + self.rope_dim, "query")
        krows = _heads_of(self, kv, self.num_heads, self.nope_dim + self.value_dim, "key-value")
        if not rope or not same_size(rope[-1], self.rope_dim):
            self._fail_shape(
                f"the shared key {shape_str(rope)} is not (..., S, {dim_str(self.rope_dim)})",
                inputs,
            )
        if len(rows) != len(krows) or not all(
            same_size(a, b) for a, b in zip(rows[:-1], krows[:-1], strict=True)
        ):
            self._fail_shape(f"query {shape_str(q)} and keys {shape_str(kv)} differ", inputs)
        if not all(same_size(a, b) for a, b in zip(krows, rope[:-1], strict=False)):
            self._fail_shape(f"keys {shape_str(kv)} and key {shape_str(rope)} differ", inputs)
        return rows, krows

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        rows, _ = self._rows(*inputs)
        return ((*rows, self.num_heads * self.value_dim),)

    def work(self, *inputs: Shape) -> Work:
        outputs = self.output_shapes(*inputs)
        rows, krows = self._rows(*inputs)
        target, source = rows[-1], krows[-1]
        batch = rows[:-1]
        a, qk = self.num_heads, self.nope_dim + self.rope_dim
        scores = product(batch) * a * target * source
        turned = product(batch) * (a * target + source) * self.rope_dim
        return Work(
            outputs,
            macs=scores * (qk + self.value_dim),
            other=3 * turned + (2 if self.causal else 1) * scores + 5 * scores,
            other_rule="rotary on the rope parts (3 per turned number), scale "
            + ("and causal mask (1 per score each)" if self.causal else "(1 per score)")
            + ", softmax (5 per score)",
            saved=(
                Stored("queries, each head's two parts joined", (*batch, a, target, qk)),
                Stored(
                    "keys, each head's part and the shared rotated key", (*batch, a, source, qk)
                ),
                Stored("attention weights (the softmax's output)", (*batch, a, target, source)),
                Stored("values", (*batch, a, source, self.value_dim)),
                Stored(  # the same tables a Rotary step keeps: one for every layer
                    "cos and sin, one table for every layer",
                    (target, self.rope_dim),
                    copies=2,
                    shared=True,
                ),
            ),
            state=(
                Stored(
                    "keys per head: the no-position part and the rotated key",
                    (*batch, a, source, qk),
                    per_position=True,
                    positions=source,
                    kind="latent attention",
                    convention="heads",
                ),
                Stored(
                    "values per head",
                    (*batch, a, source, self.value_dim),
                    per_position=True,
                    positions=source,
                    kind="latent attention",
                    convention="heads",
                ),
                Stored(
                    "latent cache: kv_lora_rank and the rotated key per position",
                    (*batch, source, self.latent_dim + self.rope_dim),
                    per_position=True,
                    positions=source,
                    kind="latent attention",
                    convention="latent",
                ),
            ),
        )
