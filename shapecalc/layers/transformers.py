"""Layers that Hugging Face ``transformers`` defines and torch.nn does not: GPT-2's
``Conv1D`` (a linear layer whose weight is stored (in, out)), the experts of a
mixture-of-experts block, and a bias a head holds itself (BERT's
``cls.predictions.bias``). They are not torch.nn kinds, so ``shapecalc layers`` does not
list them; the architectures use them, and the torch bridge builds them.

    >>> [(p.name, p.shape) for p in Conv1D(2304, 768).params()]
    [('weight', (768, 2304)), ('bias', (2304,))]
    >>> [(p.name, p.shape) for p in Experts(8, 4096, 14336, 2).params()]
    [('gate_up_proj', (8, 28672, 4096)), ('down_proj', (8, 4096, 14336))]
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from shapecalc.core.choices import EXPERT_LAYOUTS
from shapecalc.core.dims import Dim, dim_str, floor_div, known, product, same_size, shape_str
from shapecalc.core.frozen import frozen
from shapecalc.core.spec import LayerSpec, Param, Shape, Stored, Work
from shapecalc.layers._experts import EXPERT_NAMES, Experts, TopkRouter, grouped_moments
from shapecalc.layers._function import _Function, _heads_of
from shapecalc.layers._shapes import bias_adds, check_features, one_input
from shapecalc.layers.functional import kv_cache

__all__ = [
    "EXPERT_LAYOUTS",
    "EXPERT_NAMES",
    "MXFP4_BLOCK",
    "Bias",
    "Conv1D",
    "Experts",
    "Gemma3RMSNorm",
    "GptOssExperts",
    "SinkAttention",
    "Sinks",
    "TopkRouter",
]


@frozen
class Conv1D(LayerSpec):
    """``transformers.pytorch_utils.Conv1D(nf, nx)``: ``y = x·W + b`` with the weight
    stored (nx, nf), in then out, the transpose of ``nn.Linear``'s (GPT-2's ``c_attn``,
    ``c_proj``, ``c_fc``)."""

    nf: Dim
    nx: Dim

    kind: ClassVar[str] = "Conv1D"
    family: ClassVar[str] = "transformers"
    summary: ClassVar[str] = "y = x·W + b with W stored (in, out), GPT-2's linear layer"
    size_fields: ClassVar[dict[str, int]] = {"nf": 1, "nx": 1}

    def __post_init__(self) -> None:
        self._check_fields()

    def params(self) -> Iterator[Param]:
        nx, nf = self.nx, self.nf
        yield Param(
            "weight",
            (nx, nf),
            f"weights of y = x·W + b, {dim_str(nx)} in -> {dim_str(nf)} out, stored (in, out)",
        )
        yield Param("bias", (nf,), f"bias b: one per output, {dim_str(nf)}")

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        """(*, nx) -> (*, nf)."""
        shape = one_input(self, inputs)
        check_features(self, shape, -1, self.nx, "nx")
        return ((*shape[:-1], self.nf),)

    def work(self, *inputs: Shape) -> Work:
        """rows · nx · nf MACs and a bias add per output; keeps its input (an addmm)."""
        outputs = self.output_shapes(*inputs)
        other, rule = bias_adds(True, outputs[0])
        return Work(
            outputs,
            macs=product(inputs[0][:-1]) * self.nx * self.nf,
            other=other,
            other_rule=rule,
            saved=(Stored("input", inputs[0], of="input"),),
        )


@frozen
class Bias(LayerSpec):
    """A bias a module holds itself, outside its layers: BERT's ``cls.predictions.bias``
    (V,), which the decoder's bias shares. Adds ``features`` numbers to its input."""

    features: Dim

    own_step: ClassVar[bool] = True
    kind: ClassVar[str] = "Bias"
    family: ClassVar[str] = "transformers"
    summary: ClassVar[str] = "y = x + b, a bias of the module's own"
    size_fields: ClassVar[dict[str, int]] = {"features": 1}

    def __post_init__(self) -> None:
        self._check_fields()

    def params(self) -> Iterator[Param]:
        yield Param("bias", (self.features,), f"bias b: one per output, {dim_str(self.features)}")

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        shape = one_input(self, inputs)
        check_features(self, shape, -1, self.features, "features")
        return (shape,)

    def work(self, *inputs: Shape) -> Work:
        outputs = self.output_shapes(*inputs)
        other, rule = bias_adds(True, outputs[0])
        return Work(outputs, other=other, other_rule=rule)


@frozen
class Gemma3RMSNorm(LayerSpec):
    """transformers' ``Gemma3RMSNorm(dim, eps=1e-6)``: the last dimension's numbers over
    their root mean square, in float32, times ``1 + weight`` (weight (dim,), zeros at
    first): ``x * rsqrt(mean(x²) + eps) * (1.0 + weight.float())`` (Gemma 3's projector's
    ``mm_soft_emb_norm``).

    Autograd keeps the input, 1/rms per row, the normalised input and ``1 + weight``, a
    tensor the forward makes (dim numbers), all float32: with half-precision activations
    ``x.float()`` is a float32 copy of the input, kept in the input's place (Gemma's and
    Gemma 2's norms are the same code)."""

    dim: Dim
    eps: float = 1e-6

    kind: ClassVar[str] = "Gemma3RMSNorm"
    family: ClassVar[str] = "transformers"
    summary: ClassVar[str] = "x / rms(x) times (1 + weight), in float32"
    size_fields: ClassVar[dict[str, int]] = {"dim": 1}

    def __post_init__(self) -> None:
        self._check_fields()
        self._check_number("eps")

    def params(self) -> Iterator[Param]:
        yield Param("weight", (self.dim,), f"1 + weight scales each number: {dim_str(self.dim)}")

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        shape = one_input(self, inputs)
        check_features(self, shape, -1, self.dim, "dim")
        return (shape,)

    def work(self, *inputs: Shape) -> Work:
        outputs = self.output_shapes(*inputs)
        shape = inputs[0]
        return Work(
            outputs,
            other=4 * product(shape) + self.dim,
            other_rule="per number: square and mean (2), multiply by 1/rms (1), scale (1); "
            "1 + weight (1 per weight)",
            saved=(
                Stored("input in float32", shape, itemsize=4, of="input", cast=True),
                Stored("1/rms per row", (product(shape[:-1]),), itemsize=4),
                Stored("normalised input", shape, itemsize=4),
                Stored("1 + weight", (self.dim,), itemsize=4),
            ),
        )


#: MXFP4: 4-bit numbers in blocks of 32, two numbers per byte, one uint8 scale per block
MXFP4_BLOCK = 32


@frozen
class GptOssExperts(LayerSpec):
    """The experts of gpt-oss: ``num_experts`` MLPs with biases and a clamped SwiGLU,
    each token sent to ``top_k`` of them by the router, weighted by the softmax of its
    top_k scores.

    ``layout="fused"`` names them as ``transformers`` 5 builds them: ``gate_up_proj``
    (E, H, 2·I), stored (in, out) with gate and up interleaved (columns 0, 2, 4, ... the
    gate, 1, 3, 5, ... the up), ``gate_up_proj_bias`` (E, 2·I), ``down_proj`` (E, I, H)
    and ``down_proj_bias`` (E, H). ``"checkpoint"`` as the Hub's checkpoints store them,
    MXFP4-quantized: ``gate_up_proj_blocks`` (E, 2·I, H/32, 16) and ``down_proj_blocks``
    (E, H, I/32, 16), uint8 bytes each packing two 4-bit numbers, 32 numbers (16 bytes) to
    a block, stored (out, in); ``gate_up_proj_scales`` (E, 2·I, H/32) and
    ``down_proj_scales`` (E, H, I/32), one uint8 power-of-two exponent per block (biased
    by 127); the biases as in the fused layout. The checkpoint's counts are elements as
    stored: a block's byte holds two weights, so its total is not the fused one's.

    Inputs: the tokens (…, H) and the router's logits (…, E)."""

    num_experts: Dim
    hidden_size: Dim
    intermediate_size: Dim
    top_k: Dim = 4
    layout: str = "fused"

    kind: ClassVar[str] = "GptOssExperts"
    family: ClassVar[str] = "transformers"
    summary: ClassVar[str] = "the biased, clamped-SwiGLU experts of gpt-oss"
    size_fields: ClassVar[dict[str, int]] = {
        "num_experts": 1,
        "hidden_size": 1,
        "intermediate_size": 1,
        "top_k": 1,
    }
    routed: ClassVar[bool] = True

    def __post_init__(self) -> None:
        self._check_fields()
        self._check_choice("layout", EXPERT_LAYOUTS)
        k, e = known(self.top_k), known(self.num_experts)
        if k is not None and e is not None and k > e:
            self._fail(
                "top_k",
                self.top_k,
                "top_k must be at most num_experts",
                f"{k} > {e}",
                "num_experts",
            )
        if self.layout == "checkpoint":
            for name in ("hidden_size", "intermediate_size"):
                n = known(getattr(self, name))
                if n is not None and n % MXFP4_BLOCK:
                    self._fail(
                        name,
                        n,
                        f"{name} must be a multiple of {MXFP4_BLOCK} in the checkpoint layout "
                        f"(MXFP4 stores blocks of {MXFP4_BLOCK} numbers)",
                        f"{n} % {MXFP4_BLOCK} = {n % MXFP4_BLOCK}",
                    )

    def deferred_rules(self) -> list[str]:
        if self.layout != "checkpoint":
            return []
        return self._deferred(
            *(
                (known(getattr(self, name)) is None, f"{name} a multiple of {MXFP4_BLOCK}")
                for name in ("hidden_size", "intermediate_size")
            )
        )

    def _expert(self) -> Dim:
        """One expert's numbers as this layout stores them."""
        h, i = self.hidden_size, self.intermediate_size
        if self.layout == "fused":
            return 3 * h * i + 2 * i + h
        blocks = floor_div(h, MXFP4_BLOCK)
        down_blocks = floor_div(i, MXFP4_BLOCK)
        half = MXFP4_BLOCK // 2
        return 2 * i * blocks * (half + 1) + h * down_blocks * (half + 1) + 2 * i + h

    def active(self) -> Dim:
        """The top_k experts a token is sent to, each with its biases: 3·H·I + 2·I + H
        (in the checkpoint layout, their blocks, scales and biases as stored)."""
        return self.top_k * self._expert()

    def params(self) -> Iterator[Param]:
        e, h, i = self.num_experts, self.hidden_size, self.intermediate_size
        each = f"{dim_str(e)} experts"
        if self.layout == "fused":
            yield Param(
                "gate_up_proj",
                (e, h, 2 * i),
                f"every expert's gate and up projections, stored (in, out), gate and up "
                f"interleaved: {each} × ({dim_str(h)} × 2 × {dim_str(i)})",
            )
            yield Param(
                "gate_up_proj_bias",
                (e, 2 * i),
                f"every expert's gate and up biases, interleaved: {each} × 2 × {dim_str(i)}",
            )
            yield Param(
                "down_proj",
                (e, i, h),
                f"every expert's down projection, stored (in, out): {each} × "
                f"({dim_str(i)} × {dim_str(h)})",
            )
            yield Param(
                "down_proj_bias", (e, h), f"every expert's down bias: {each} × {dim_str(h)}"
            )
            return
        half = MXFP4_BLOCK // 2
        for name, rows, cols in (("gate_up_proj", 2 * i, h), ("down_proj", h, i)):
            blocks = floor_div(cols, MXFP4_BLOCK)
            what = "gate and up (interleaved)" if name == "gate_up_proj" else "down"
            yield Param(
                f"{name}_blocks",
                (e, rows, blocks, half),
                f"every expert's {what} weights, MXFP4: uint8 bytes of two 4-bit numbers, "
                f"{half} bytes per block of {MXFP4_BLOCK}, stored (out, in); counted as "
                "stored, one per byte",
                trainable=False,
                dtype="uint8",
            )
            yield Param(
                f"{name}_scales",
                (e, rows, blocks),
                f"one uint8 power-of-two exponent (biased by 127) per block of {MXFP4_BLOCK}",
                trainable=False,
                dtype="uint8",
            )
            yield Param(
                f"{name}_bias",
                (e, rows),
                f"every expert's {what} bias: {each} × {dim_str(rows)}",
            )

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        """The tokens (…, H) and the router's logits (…, E) -> (…, H)."""
        if len(inputs) != 2:
            self._fail_shape(f"takes the tokens and the router's logits, got {inputs}", inputs)
        tokens, logits = inputs
        check_features(self, tokens, -1, self.hidden_size, "hidden_size")
        check_features(self, logits, -1, self.num_experts, "num_experts")
        return (tokens,)

    def work(self, *inputs: Shape) -> Work:
        """Each token through top_k experts: 3·H·I MACs per expert it visits (two matrix
        products, gate_up then down). Elementwise, as transformers' eager forward computes
        it: top-k of the logits (1 per logit) and the softmax of the top k (5 each); per
        visit the biases (2·I + H), the clamps (2 per I: the gate above, the up both
        sides), the gate times the sigmoid of alpha times it (3 per I), up + 1 and the
        product (2 per I), the weighting and the sum (2 per H). Kept, as autograd keeps
        that forward: per visit the token gathered, gate_up, the clamped gate, the sigmoid,
        up + 1, the SwiGLU, its output into down, down's output and the weighted output
        (3·H + 7·I), the routing weight gathered and the softmax's output (2), the token's
        index and top-k slot (int64); per token and k the top-k indices (int64). The
        checkpoint layout dequantizes its blocks once per forward: the weights it makes
        (3·E·H·I) are kept, and the products' inputs are not (its uint8 blocks train no
        gradient): 2·H + 6·I per visit."""
        outputs = self.output_shapes(*inputs)
        tokens = product(inputs[0][:-1])
        visits = tokens * self.top_k
        h, i, e = self.hidden_size, self.intermediate_size, self.num_experts
        if self.layout == "fused":
            kept = Stored(
                "per visit: the token, gate_up, clamped gate, sigmoid, up + 1, SwiGLU, "
                "down's input and output, weighted output",
                (visits, 3 * h + 7 * i),
            )
        else:  # no weight to train: the products' inputs are not kept
            kept = Stored(
                "per visit: gate_up, clamped gate, sigmoid, up + 1, SwiGLU, down's output, "
                "weighted output",
                (visits, 2 * h + 6 * i),
            )
        saved = [
            kept,
            Stored("per visit: its routing weight, gathered, and the top-k softmax", (visits, 2)),
            Stored("per visit: the token's index and top-k slot", (visits, 2), itemsize=8),
            Stored("the top-k indices", (visits,), itemsize=8),
        ]
        if self.layout == "checkpoint":
            saved.append(Stored("the experts' weights, dequantized", (e, 3 * h * i)))
        return Work(
            outputs,
            # the fused layout runs transformers' grouped forward: the biases gathered per
            # visit (2·I, then H) live beside the gating's clamped gate and up, the SwiGLU,
            # up + 1 and their product (5·I) and the weighting
            moments=grouped_moments(visits, h, e, 9 * i, 4 * h) if self.layout == "fused" else (),
            macs=visits * 3 * h * i,
            other=tokens * (e + 5 * self.top_k) + visits * (9 * i + 3 * h),
            other_rule="top-k (1 per logit) and its softmax (5 per chosen); per visit: "
            "gate_up's bias, the clamps, the SwiGLU with up + 1 (9 per intermediate "
            "number), down's bias, the weighting and the sum (3 per output number)",
            saved=tuple(saved),
        )


@frozen
class Sinks(LayerSpec):
    """gpt-oss's attention sinks: one learned logit per query head, ``sinks`` (A,), held by
    the attention module itself. Each head's softmax takes it as one more column beside
    the keys' scores and then drops it, so that a head may attend to nothing. Passes the
    logits on to the attention (its input is not used)."""

    num_heads: Dim

    own_step: ClassVar[bool] = True
    kind: ClassVar[str] = "Sinks"
    family: ClassVar[str] = "transformers"
    summary: ClassVar[str] = "one learned softmax logit per head"
    size_fields: ClassVar[dict[str, int]] = {"num_heads": 1}

    def __post_init__(self) -> None:
        self._check_fields()

    def params(self) -> Iterator[Param]:
        yield Param(
            "sinks",
            (self.num_heads,),
            "a learned logit per head, a column of its own in the softmax: "
            + dim_str(self.num_heads),
        )

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        return ((self.num_heads,),)

    def work(self, *inputs: Shape) -> Work:
        """No compute: the logits themselves."""
        return Work(self.output_shapes(*inputs))


@frozen
class SinkAttention(_Function):
    """Attention with sinks, as gpt-oss's eager attention computes it: per head the scores
    ``q·kᵀ/√d`` (causal mask added), one more column holding the head's sink logit, a
    softmax over the row, the sink's column dropped, and the weights times ``v``.
    ``num_heads`` query heads share ``num_kv_heads`` key and value heads, each
    ``head_dim`` wide. Inputs: queries (…, T, A·D), keys and values (…, S, K·D), flat or
    split into heads, and the sinks (A,); the output is the heads' output, flat.

    MACs: q·kᵀ and weights·v, 2·T·S·head_dim per query head and batch row, as
    ScaledDotProductAttention's (the sink adds a column to the softmax, not to a matrix
    product). Elementwise: scaling and masking the scores (2 per score), subtracting the
    row's max and the softmax over S + 1 columns (6 per entry). Kept for backward, as
    autograd keeps the eager forward: the queries per head, the keys and values repeated
    for every query head (A·D each per position), the row maxima's indices (int64), the
    probabilities with the sink's column (the product with v reads a view without it).
    State for decoding: the keys and values seen, per layer (with a sliding ``window``,
    the last window − 1)."""

    num_heads: Dim
    num_kv_heads: Dim
    head_dim: Dim
    causal: bool = True
    #: a sliding window: each query attends to the last ``window`` positions; None: all
    window: int | None = None

    kind: ClassVar[str] = "attention_with_sinks"
    summary: ClassVar[str] = "softmax over q·kᵀ/√d and a sink logit per head, then ·v"

    def _rows(self, inputs: tuple[Shape, ...]) -> tuple[Shape, Dim]:
        """(the queries' rows, the keys' positions), the inputs checked."""
        if len(inputs) != 4:
            self._fail_shape(
                f"takes query, key, value and the sinks, got {len(inputs)} input(s)", inputs
            )
        q, k, v, sinks = inputs
        rows = _heads_of(self, q, self.num_heads, self.head_dim, "query")
        krows = _heads_of(self, k, self.num_kv_heads, self.head_dim, "key")
        vrows = _heads_of(self, v, self.num_kv_heads, self.head_dim, "value")
        if len(rows) != len(krows) or not all(
            same_size(a, b) for a, b in zip(rows[:-1], krows[:-1], strict=True)
        ):
            self._fail_shape(f"query {shape_str(q)} and key {shape_str(k)} differ", inputs)
        if not same_size(krows[-1], vrows[-1]):
            self._fail_shape(f"key {shape_str(k)} and value {shape_str(v)} differ", inputs)
        if len(sinks) != 1 or not same_size(sinks[0], self.num_heads):
            self._fail_shape(
                f"sinks {shape_str(sinks)}: one logit per query head, ({dim_str(self.num_heads)},)",
                inputs,
            )
        return rows, krows[-1]

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        rows, _ = self._rows(inputs)
        return ((*rows, self.num_heads * self.head_dim),)

    def work(self, *inputs: Shape) -> Work:
        outputs = self.output_shapes(*inputs)
        rows, source = self._rows(inputs)
        target = rows[-1]
        batch = product(rows[:-1])
        a, d = self.num_heads, self.head_dim
        scores = batch * a * target * source
        entries = batch * a * target * (source + 1)
        cache = (*rows[:-1], self.num_kv_heads, source, d)
        return Work(
            outputs,
            macs=2 * scores * d,
            other=(2 if self.causal else 1) * scores + 6 * entries,
            other_rule="scale the scores"
            + (" and add the causal mask (2 per score)" if self.causal else " (1 per score)")
            + ", subtract the row's max and softmax over the keys and the sink (6 per entry)",
            saved=(
                Stored("queries per head", (batch * a * target, d)),
                Stored(
                    "keys and values repeated for every query head",
                    (batch * a * source, d),
                    copies=2,
                ),
                Stored("each row's max, its index", (batch * a * target,), itemsize=8),
                Stored(
                    "probabilities with the sink's column (the product with v reads them "
                    "without it, a view)",
                    (batch * a * target, source + 1),
                ),
            ),
            state=(kv_cache(cache, source, self.window),),
        )
