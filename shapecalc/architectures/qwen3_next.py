"""``shapecalc qwen3-next``: Qwen3-Next (Qwen3-Next-80B-A3B), named as ``transformers``
names it (model type ``qwen3_next``).

A hybrid decoder: most layers mix tokens with linear attention, a Gated DeltaNet
(``linear_attn``) whose state is a fixed matrix per head, and every
``full_attention_interval``-th layer with gated full attention (``self_attn``: q_proj
makes each head's query and a sigmoid gate on its output, q and k RMSNorms, rotary
positions on a quarter of each head). Which layer is which is ``layer_types``, or
transformers' rule: layer i attends fully when (i + 1) % interval == 0. The MLPs are
Qwen-MoE's: in the sparse layers a router, E experts and a shared expert scaled by a
sigmoid gate (layer i is sparse unless it is one of ``mlp_only_layers``, when there are
experts and (i + 1) % decoder_sparse_step == 0); the others a dense MLP. A stack whose
layers differ is shown as runs.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from shapecalc.architectures import _transformer as tf
from shapecalc.architectures._moe import gated_mlp
from shapecalc.architectures._transformer import GroupedQueryLM
from shapecalc.core.choices import EXPERT_LAYOUTS
from shapecalc.core.declare import Built, Reference, choice, flag, indices, layer_kinds, size
from shapecalc.core.dims import Dim, count_str, dim_str, known, shape_str
from shapecalc.core.errors import InvalidArgumentError
from shapecalc.core.flow import chain, each, multiply, parallel, residual, summed
from shapecalc.core.frozen import frozen
from shapecalc.core.hfmap import HFType
from shapecalc.core.model import Model
from shapecalc.core.tree import (
    Block,
    Child,
    Leaf,
    ModuleList,
    Node,
    Repeat,
    cycle,
    runs,
    split_name,
)
from shapecalc.layers._embedding import Embedding
from shapecalc.layers._experts import Experts, TopkRouter
from shapecalc.layers._linear import Linear
from shapecalc.layers.activation import Sigmoid
from shapecalc.layers.functional import Rotary, SplitHeads
from shapecalc.layers.linear_attention import (
    CHUNK,
    GatedAttention,
    GatedDeltaNet,
    SplitQueryGate,
)
from shapecalc.layers.transformers import Gemma3RMSNorm

__all__ = ["Qwen3Next", "qwen3_next"]

#: the two kinds of token mixer, as layer_types names them
LINEAR, FULL = "linear_attention", "full_attention"

#: full_attention_interval unless given (Qwen3NextConfig pops it from its arguments, 4
#: when absent)
_INTERVAL = 4

#: the most layers listed one by one to find their runs, and the longest pattern (the
#: layer kinds' and the sparse step's) a stack of more layers, or of a letter, repeats
MAX_LISTED = 4096
#: the most runs a stack is shown as
MAX_RUNS = 1024

#: fields the class reads that change no tensor
_FREE = frozenset(
    {
        "max_position_embeddings",
        "rms_norm_eps",
        "rope_parameters",
        "rope_scaling",
        "rope_theta",
        "attention_dropout",
        "norm_topk_prob",
        "output_router_logits",
        "router_aux_loss_coef",
        "use_sliding_window",
        "sliding_window",
        "max_window_layers",
    }
)


def _read(f: Any, out: dict[str, Any]) -> None:
    """The padding id inside the vocabulary; layer_types one per layer (the config class
    refuses another length); the same shapes in fewer letters: a head_dim of H / A, as
    many kv heads as heads; no experts per token without experts."""
    f.padding("pad_token_id", out["vocab"], "token embedding (vocab_size)")
    types = out["layer_types"]
    if types and len(types) != out["layers"]:
        raise f.fail(
            "layer_types",
            list(types),
            "layer_types must give one kind per layer (num_hidden_layers)",
            f"{len(types)} kinds for {out['layers']} layers",
        )
    if out["head_dim"] is not None and out["head_dim"] * out["heads"] == out["hidden"]:
        out["head_dim"] = None
    if out["kv_heads"] == out["heads"]:
        out["kv_heads"] = None
    if out["experts"] == 0:
        out["experts_per_token"] = None  # no router: the class's default, unused


def _write(model: Any, reference: Reference) -> Reference | None:
    """The dense layers as a JSON list; layer_types left out when not given (the class's
    rule from full_attention_interval); no intermediate_size or experts per token when
    unused; the padding id 0."""
    config = dict(reference.config)
    config["mlp_only_layers"] = list(config["mlp_only_layers"])
    if not config.get("layer_types"):
        config.pop("layer_types", None)
    for unused in ("intermediate_size", "num_experts_per_tok", "full_attention_interval"):
        if config.get(unused) is None:
            config.pop(unused, None)
    return tf.first_padding(model, Reference(reference.model, reference.config_class, config))


@frozen(kw_only=True)
class Qwen3Next(GroupedQueryLM):
    """A Qwen3-Next decoder: token embedding (V × H), L blocks of RMSNorm, a token mixer
    (linear or full attention), RMSNorm and an MLP, a final RMSNorm and a head (V × H, or
    the embedding itself with tie_weights).

    Linear attention (``linear_attn``, a Gated DeltaNet): Nk key heads of Dk and Nv value
    heads of Dv; in_proj_qkvz (2·Nk·Dk + 2·Nv·Dv, H), in_proj_ba (2·Nv, H), a causal
    depthwise conv1d of width W over q, k and v, dt_bias and A_log (Nv,), a gated RMSNorm
    (Dv,) and out_proj (H, Nv·Dv). Full attention (``self_attn``): q_proj (2·A·D, H), each
    head's query and output gate, k_proj and v_proj (K·D, H), o_proj (H, A·D), q_norm and
    k_norm (D,). A sparse layer's MLP: a router ``gate`` (E, H), E experts of M (3·H·M
    each, k per token), a shared expert of S (3·H·S) scaled by a sigmoid of
    ``shared_expert_gate`` (1, H); a dense layer's a gated MLP of I.

        >>> m = qwen3_next(vocab=151936, hidden=2048, layers=48, heads=16, kv_heads=2,
        ...     head_dim=256, moe_intermediate=512, shared_intermediate=512, experts=512,
        ...     experts_per_token=10)
        >>> m.total, m.active
        (79674391296, 3874929408)
    """

    command: ClassVar[str] = "qwen3-next"
    function: ClassVar[str] = "qwen3_next"
    title: ClassVar[str] = "Qwen3-Next hybrid decoder (linear attention, experts)"
    example: ClassVar[str] = (
        "--vocab 151936 --hidden 2048 --layers 48 --heads 16 --kv-heads 2 --head-dim 256 "
        "--moe-intermediate 512 --shared-intermediate 512 --experts 512 "
        "--experts-per-token 10"
    )
    budget: ClassVar[str] = "80B"
    explains: ClassVar[str] = (
        "Explain linear attention (the Gated DeltaNet's tensors and its fixed state), which "
        "layers attend fully and why, the gated attention, the experts and the shared "
        "expert, and every matrix of each kind of block."
    )
    size_order: ClassVar[tuple[str, ...]] = (
        "vocab",
        "hidden",
        "layers",
        "heads",
        "kv_heads",
        "head_dim",
        "linear_key_heads",
        "linear_value_heads",
        "linear_key_dim",
        "linear_value_dim",
        "conv_kernel",
        "intermediate",
        "moe_intermediate",
        "shared_intermediate",
        "experts",
        "experts_per_token",
        "labels",
    )
    #: the body's name under the question-answering class (Qwen3NextForQuestionAnswering)
    qa_body: ClassVar[str] = "transformer"

    vocab: Any = tf.vocab()
    hidden: Any = tf.hidden()
    layers: Any = tf.layers()
    heads: Any = tf.heads()
    kv_heads: Any = tf.kv_heads()
    head_dim: Any = tf.head_dim()
    linear_key_heads: Any = size(
        "Nk",
        "Linear attention's query and key heads (linear_num_key_heads).",
        16,
        solvable=False,
    )
    linear_value_heads: Any = size(
        "Nv",
        "Linear attention's value heads (linear_num_value_heads), a multiple of the key "
        "heads: each key head serves Nv / Nk of them.",
        32,
        solvable=False,
    )
    linear_key_dim: Any = size(
        "Dk", "Width of a linear-attention query and key head (linear_key_head_dim).", 128
    )
    linear_value_dim: Any = size(
        "Dv", "Width of a linear-attention value head (linear_value_head_dim).", 128
    )
    conv_kernel: Any = size(
        "W",
        "Width of linear attention's causal convolution over q, k and v (linear_conv_kernel_dim).",
        4,
        solvable=False,
    )
    full_attention_interval: Any = size(
        "R",
        "Without layer_types, every R-th layer attends fully (full_attention_interval): "
        "layer i when (i + 1) % R == 0, the others linear attention.",
        None,
        unset=None,
        default_text=str(_INTERVAL),
        solvable=False,
        names=False,
    )
    layer_types: Any = layer_kinds(
        (LINEAR, FULL),
        "Each layer's token mixer (layer_types): linear_attention*3,full_attention repeats "
        "from layer 0; unset: full_attention_interval's rule.",
    )
    moe_intermediate: Any = size("M", "Each expert's inner size (moe_intermediate_size).")
    shared_intermediate: Any = size(
        "S",
        "The shared expert's inner size (shared_expert_intermediate_size): a gated MLP "
        "every token goes through, scaled by a sigmoid gate.",
    )
    experts: Any = size(
        "E",
        "Routed experts of a sparse layer (num_experts); 0: every layer dense.",
        minimum=0,
        solvable=False,
    )
    experts_per_token: Any = size(
        "k",
        "Experts each token is sent to by the router (num_experts_per_tok); needed with "
        "experts, refused without.",
        None,
        unset=None,
        default_text="none (needed with experts)",
        solvable=False,
    )
    intermediate: Any = size(
        "I",
        "The dense layers' MLP size (intermediate_size), needed when a layer is dense.",
        None,
        unset=None,
        default_text="none (every layer sparse)",
    )
    sparse_step: Any = size(
        "P",
        "Experts in every P-th layer (decoder_sparse_step): layer i is sparse when "
        "(i + 1) % P == 0, dense otherwise.",
        1,
        solvable=False,
        names=False,
    )
    dense_layers: Any = indices(
        "Layers with a dense MLP of intermediate size instead of experts (mlp_only_layers), "
        "numbered from 0: 0,1,2."
    )
    rotary_pct: float = tf.rotary_fraction("partial_rotary_factor", 0.25)
    attention_bias: bool = flag("Biases of the full attention's four projections (attention_bias).")
    tie_weights: bool = flag("The head is the token embedding (tie_word_embeddings).")
    moe_layout: str = choice(
        EXPERT_LAYOUTS,
        "How the experts are named: as transformers 5 holds them (fused gate_up_proj), "
        "or as checkpoint files store them (experts.{e}.gate_proj.weight, ...).",
        "fused",
    )
    head: str = tf.lm_head("Qwen3NextForCausalLM", "Qwen3NextModel", *tf.HEADS)
    labels: Any = tf.labels()

    hf: ClassVar[tuple[HFType, ...]] = (
        HFType(
            model_type="qwen3_next",
            peft_moe="gated",
            gguf="qwen3next",
            config_class="Qwen3NextConfig",
            classes=tf.head_classes("Qwen3Next", *tf.HEADS),
            base="model",
            keys={
                **tf.SIZE_KEYS,
                "kv_heads": "num_key_value_heads",
                "head_dim": "head_dim",
                "linear_key_heads": "linear_num_key_heads",
                "linear_value_heads": "linear_num_value_heads",
                "linear_key_dim": "linear_key_head_dim",
                "linear_value_dim": "linear_value_head_dim",
                "conv_kernel": "linear_conv_kernel_dim",
                "full_attention_interval": "full_attention_interval",
                "layer_types": "layer_types",
                "moe_intermediate": "moe_intermediate_size",
                "shared_intermediate": "shared_expert_intermediate_size",
                "experts": "num_experts",
                "experts_per_token": "num_experts_per_tok",
                "sparse_step": "decoder_sparse_step",
                "dense_layers": "mlp_only_layers",
                "rotary_pct": "partial_rotary_factor",
                "attention_bias": "attention_bias",
                **tf.LABEL_KEYS,
            },
            # Qwen3NextConfig's defaults, which describe Qwen3-Next-80B-A3B
            defaults={
                "vocab_size": 151936,
                "hidden_size": 2048,
                "intermediate_size": 5632,
                "num_hidden_layers": 48,
                "num_attention_heads": 16,
                "num_key_value_heads": 2,
                "head_dim": 256,
                "linear_conv_kernel_dim": 4,
                "linear_key_head_dim": 128,
                "linear_value_head_dim": 128,
                "linear_num_key_heads": 16,
                "linear_num_value_heads": 32,
                "full_attention_interval": None,  # an argument the class pops: 4 unless given
                "layer_types": None,
                "decoder_sparse_step": 1,
                "moe_intermediate_size": 512,
                "shared_expert_intermediate_size": 512,
                "num_experts_per_tok": 10,
                "num_experts": 512,
                "mlp_only_layers": None,
                "partial_rotary_factor": 0.25,
                "attention_bias": False,
                "tie_word_embeddings": False,
                "hidden_act": "silu",
            },
            free=_FREE,
            only={
                "hidden_act": (
                    ("silu",),
                    "the MLPs, experts and linear attention's convolution here use SiLU",
                )
            },
            not_null=frozenset({"head_dim"}),
            dropped=(r"rotary_emb\.inv_freq", r"^mtp.*"),
            checkpoint={"moe_layout": "checkpoint"},
            read=_read,
            write=_write,
        ),
    )

    # -- which layer is which ---------------------------------------------------------------
    def mixers(self) -> tuple[str, ...] | None:
        """Each layer's token mixer: layer_types, or transformers' rule (every
        full_attention_interval-th layer attends fully); None with a letter for the
        layers, or more than :data:`MAX_LISTED` of them."""
        n = known(self.layers)
        if n is None or n > MAX_LISTED:
            return None
        given = self.kinds_of("layer_types", n)
        if given is not None:
            return given
        return tuple(self._mixer(i) for i in range(n))

    def _mixer(self, index: int) -> str:
        """Layer ``index``'s token mixer (the pattern repeated, or the interval's rule)."""
        given: tuple[str, ...] = self.layer_types
        if given:
            return given[index % len(given)]
        return LINEAR if (index + 1) % self.interval else FULL

    @property
    def interval(self) -> int:
        """full_attention_interval: given, or 4 (the config class's)."""
        given: int | None = self.full_attention_interval
        return _INTERVAL if given is None else given

    def sparse(self, index: int) -> bool:
        """transformers' rule: layer ``index`` has experts unless it is one of the dense
        layers, when there are experts and (index + 1) % sparse_step == 0."""
        return (
            index not in self.dense_layers
            and self.experts != 0
            and (index + 1) % self.sparse_step == 0
        )

    def _period(self) -> int:
        """The fewest layers after which the kinds repeat (the dense layers aside): the
        shortest period of the mixers' pattern and the sparse step together."""
        mixers = len(self.layer_types) or self.interval
        step = int(self.sparse_step) if self.experts != 0 else 1
        whole = mixers * step // math.gcd(mixers, step)
        if whole > MAX_LISTED:
            return whole
        kinds = [(self._mixer(i), self.experts != 0 and (i + 1) % step == 0) for i in range(whole)]
        return next(
            p
            for p in range(1, whole + 1)
            if whole % p == 0 and all(kinds[i] == kinds[i % p] for i in range(whole))
        )

    # -- checks -------------------------------------------------------------------------
    def _refuse(self, field: str, value: Any, rule: str, detail: str) -> None:
        raise InvalidArgumentError(
            f"{rule} ({detail})", layer=self.owner(), field=field, value=value, rule=rule
        )

    def check(self) -> None:
        self.check_labels()
        self.check_heads(self.head_dim)
        self.check_rotary(self.head_size(self.head_dim), self.head_dim)
        self.check_turned("rotary_pct", self.rotary_pct)
        self._divides(
            "kv_heads", self.heads, self.kv, "kv_heads must divide heads (query heads per group)"
        )
        self._divides(
            "linear_key_heads",
            self.linear_value_heads,
            self.linear_key_heads,
            "linear_key_heads must divide linear_value_heads (value heads per key head)",
        )
        tf.check_no_top_k(self.owner(), self.experts, self.experts_per_token)
        if self.experts != 0 and self.experts_per_token is None:
            rule = "experts need experts_per_token (num_experts_per_tok): the router's choice"
            self._refuse("experts_per_token", None, rule, f"experts is {dim_str(self.experts)}")
        tf.check_top_k(self.owner(), self.experts, self.experts_per_token)
        n = known(self.layers)
        past = [i for i in self.dense_layers if n is not None and i >= n]
        if past:
            self._refuse(
                "dense_layers",
                ",".join(map(str, self.dense_layers)),
                "dense_layers are layers of the model (numbered from 0)",
                f"layer {past[0]} of {n}",
            )
        if n is not None:
            self.kinds_of("layer_types", n)  # no more kinds than layers
        period = self._period()
        if period > MAX_LISTED and (n is None or n > MAX_LISTED):
            field = "sparse_step" if len(self.layer_types) < period else "layer_types"
            rule = (
                f"the layers' kinds repeat within {MAX_LISTED:,} layers (the mixers' pattern "
                "and the sparse step)"
            )
            self._refuse(field, getattr(self, field), rule, f"these repeat every {period:,}")
        if self.intermediate is None and self._dense_layer() is not None:
            rule = "intermediate sizes the dense layers' MLP: needed when a layer is dense"
            self._refuse("intermediate", None, rule, f"layer {self._dense_layer()} is dense")
        entries = len(self._entries())
        if entries > MAX_RUNS:
            field = "layer_types" if self.layer_types else "dense_layers"
            rule = f"the layers form at most {MAX_RUNS:,} runs (layer_types, dense_layers)"
            self._refuse(field, getattr(self, field), rule, f"these make {entries:,}")

    def _dense_layer(self) -> int | None:
        """A layer with a dense MLP, or None when every layer has experts."""
        if self.experts == 0 or self.sparse_step != 1:
            return 0  # layer 0 is off any step above 1
        first: int | None = self.dense_layers[0] if self.dense_layers else None
        return first

    def sizes(self) -> dict[str, Dim]:
        """The sizes given, and D = H / A; k, M and S only with experts; P and R not at all
        (numbers in the rule of the layers, never in a formula)."""
        out = super().sizes()
        out.pop("P", None)
        out.pop("R", None)
        if self.experts == 0:
            for letter in ("k", "M", "S"):
                out.pop(letter, None)
        n = known(self.layers)
        if n is not None and LINEAR not in {self._mixer(i) for i in range(min(n, self._period()))}:
            for letter in ("Nk", "Nv", "Dk", "Dv", "W"):
                out.pop(letter, None)
        return out

    @property
    def inner(self) -> Dim:
        """The dense MLP's size: given, or none (every layer sparse)."""
        given: Dim = self.intermediate
        return given

    @classmethod
    def consistent(cls, arguments: dict[str, Any]) -> dict[str, Any]:
        out = super().consistent(arguments)
        if out["experts"]:
            out["experts_per_token"] = min(out["experts_per_token"] or 1, out["experts"])
        else:
            out["experts_per_token"] = None
        if out["linear_value_heads"] % out["linear_key_heads"]:
            out["linear_value_heads"] = out["linear_key_heads"] * max(
                1, out["linear_value_heads"] // out["linear_key_heads"]
            )
        out["dense_layers"] = tuple(i for i in out["dense_layers"] if i < out["layers"])
        out["layer_types"] = tuple(out.get("layer_types") or ())[: out["layers"]]
        # the stack as published models have it: the pattern repeated twice or more after
        # the dense layers, so that the same run is the longest with the layers as a
        # number or a letter (the line of activations recomputed per block names that run)
        mixers = len(out["layer_types"]) or out.get("full_attention_interval") or _INTERVAL
        step = out["sparse_step"] if out["experts"] else 1
        period = mixers * step // math.gcd(mixers, step)
        first = 0
        holes = [i for i in out["dense_layers"] if out["experts"] and (i + 1) % step == 0]
        if holes:
            first = -(-(max(holes) + 1) // period) * period
        out["layers"] = max(out["layers"], first + 2 * period)
        dense = not out["experts"] or out["sparse_step"] != 1 or out["dense_layers"]
        if out["intermediate"] is None and dense:
            out["intermediate"] = 4  # a dense layer's MLP needs its size
        return out

    # -- the tree -------------------------------------------------------------------------
    def _attention(self) -> Block:
        """Qwen3NextAttention: q_proj makes each head's query and output gate."""
        h, a, kv, bias = self.hidden, self.heads, self.kv, self.attention_bias
        d, q_width, kv_width = self._widths()
        turned = None if self.rotary_pct == 1 else self.turned(d, self.rotary_pct)
        rope_q, rope_k = Rotary(a, d, turned), Rotary(kv, d, turned)
        children: dict[str, Any] = {
            "q_proj": Leaf(
                Linear(h, 2 * q_width, bias=bias),
                "each head's query and its output gate",
                "query and gate",
            ),
            "k_proj": Leaf(Linear(h, kv_width, bias=bias), role="key"),
            "v_proj": Leaf(Linear(h, kv_width, bias=bias), role="value"),
            "o_proj": Leaf(Linear(q_width, h, bias=bias), role="output projection"),
            "q_norm": Leaf(Gemma3RMSNorm(d), role="query norm"),
            "k_norm": Leaf(Gemma3RMSNorm(d), role="key norm"),
        }
        qkv = parallel(
            ("q_proj", SplitQueryGate(a, d), each(("q_norm", rope_q), ())),
            ("k_proj", SplitHeads(kv, d), "k_norm", rope_k),
            "v_proj",
        )
        flow = chain(qkv, GatedAttention(a, kv, d), "o_proj")
        what = (
            f"{dim_str(a)} query heads over {dim_str(kv)} key and value heads of "
            f"{dim_str(d)}, each head's output gated"
        )
        return Block("Attention", children, flow=flow, description=what)

    def _linear_attention(self) -> Leaf:
        spec = GatedDeltaNet(
            self.hidden,
            self.linear_key_heads,
            self.linear_value_heads,
            self.linear_key_dim,
            self.linear_value_dim,
            self.conv_kernel,
        )
        what = (
            f"{dim_str(self.linear_key_heads)} key heads of {dim_str(self.linear_key_dim)} "
            f"and {dim_str(self.linear_value_heads)} value heads of "
            f"{dim_str(self.linear_value_dim)}, a fixed state per value head"
        )
        return Leaf(spec, what, "linear attention")

    def _sparse_block(self) -> Block:
        h, e, k = self.hidden, self.experts, self.experts_per_token
        children = {
            "gate": Leaf(TopkRouter(h, e, correction_bias=False), "a score per expert", "router"),
            "experts": Leaf(
                Experts(e, h, self.moe_intermediate, k, layout=self.moe_layout, naming="gated"),
                role="experts",
            ),
            "shared_expert": gated_mlp(h, self.shared_intermediate, what="shared expert"),
            "shared_expert_gate": Leaf(
                Linear(h, 1, bias=False),
                "how much of the shared expert to add",
                "shared expert's sigmoid gate",
            ),
        }
        flow = summed(
            chain(parallel((), "gate"), "experts"),
            multiply(("shared_expert_gate", Sigmoid()), "shared_expert"),
        )
        what = f"{dim_str(e)} experts, {dim_str(k)} per token, and a shared expert"
        return Block("SparseMoeBlock", children, flow=flow, description=what)

    def _layer(self, mixer: str, sparse: bool, cache: dict[tuple[str, bool], Block]) -> Block:
        """A decoder layer of one kind (made once per kind)."""
        found = cache.get((mixer, sparse))
        if found is not None:
            return found
        h = self.hidden
        name = "linear_attn" if mixer == LINEAR else "self_attn"
        token_mixer: Node = self._linear_attention() if mixer == LINEAR else self._attention()
        mlp = self._sparse_block() if sparse else gated_mlp(h, self.inner, what="dense MLP")
        block = Block(
            "DecoderLayer",
            {
                name: token_mixer,
                "mlp": mlp,
                "input_layernorm": Gemma3RMSNorm(h),
                "post_attention_layernorm": Gemma3RMSNorm(h),
            },
            flow=chain(
                residual("input_layernorm", name), residual("post_attention_layernorm", "mlp")
            ),
        )
        cache[(mixer, sparse)] = block
        return block

    def _entries(self) -> tuple[Repeat | Child, ...]:
        """The layers as runs: every layer listed and its runs found (up to
        :data:`MAX_LISTED` layers), else the dense layers listed and the pattern repeated
        to the last layer (a letter for the layers: each run's count a formula)."""
        cache: dict[tuple[str, bool], Block] = {}

        def node(i: int) -> Block:
            return self._layer(self._mixer(i), self.sparse(i), cache)

        n = known(self.layers)
        if n is not None and n <= MAX_LISTED:
            mixers = self.mixers() or ()
            return runs([self._layer(mixers[i], self.sparse(i), cache) for i in range(n)])
        period = self._period()
        first = 0
        holes = [
            i for i in self.dense_layers if self.experts != 0 and (i + 1) % self.sparse_step == 0
        ]
        if holes:  # dense layers the sparse step would have given experts
            first = -(-(max(holes) + 1) // period) * period
        if first > MAX_LISTED:
            rule = (
                f"the layers up to the last dense one are listed one by one: dense_layers "
                f"(mlp_only_layers) below {MAX_LISTED:,} when the sparse step would give "
                "them experts"
            )
            raise InvalidArgumentError(
                f"{self.owner()}: {rule} (layer {max(holes):,})",
                layer=self.owner(),
                field="dense_layers",
                value=",".join(str(i) for i in self.dense_layers[:8]),
                rule=rule,
            )
        head = runs([node(i) for i in range(first)]) if first else ()
        return (
            *head,
            *cycle(
                [node(i) for i in range(first, first + period)], self.layers - first, start=first
            ),
        )

    def _stack(self) -> Block:
        entries = self._entries()
        if len(entries) == 1 and isinstance(entries[0], Child):  # one layer: a run of one
            return ModuleList(entries[0].node, 1)
        return Block("ModuleList", entries)

    def build(self) -> Built:
        h, v = self.hidden, self.vocab
        body = Block(
            "Model",
            {
                "embed_tokens": Leaf(Embedding(v, h), "one H-vector per token", "token embedding"),
                "layers": self._stack(),
                "norm": Leaf(Gemma3RMSNorm(h), role="final norm"),
            },
            flow=chain("embed_tokens", "layers", "norm"),
        )
        return self.causal_lm("ForCausalLM", "model", body, "embed_tokens", "head")

    # -- the transformers classes of the same model -------------------------------------
    def hf_values(self) -> dict[str, Any]:
        """The sizes as a config writes them: kv heads and head_dim worked out, layer_types
        one per layer (a pattern repeated)."""
        n = known(self.layers)
        given = self.kinds_of("layer_types", n) if n is not None else None
        return {
            **super().hf_values(),
            "intermediate": self.intermediate,
            "layer_types": list(given or ()),
        }

    # -- explanation ----------------------------------------------------------------------
    def explanation(self, model: Model) -> list[tuple[str, list[str]]]:
        d, q_width, kv_width = self._widths()
        a, kv, h = self.heads, self.kv, self.hidden
        nk, nv = self.linear_key_heads, self.linear_value_heads
        dk, dv, w = self.linear_key_dim, self.linear_value_dim, self.conv_kernel
        spec = self._linear_attention().spec
        assert isinstance(spec, GatedDeltaNet)
        conv, key_dim, value_dim = spec.conv_dim, spec.key_dim, spec.value_dim
        turned = self.turned(d, self.rotary_pct)
        lines = [
            f"The hidden size H = {dim_str(h)} is the length of every token's vector, in and "
            "out of every block.",
            self._layers_line(),
        ]
        linear = [
            f"A linear-attention layer (linear_attn, a Gated DeltaNet) has Nk = {dim_str(nk)} "
            f"query and key heads of Dk = {dim_str(dk)} and Nv = {dim_str(nv)} value heads "
            f"of Dv = {dim_str(dv)}; each key head serves Nv / Nk value heads.",
            f"in_proj_qkvz ({dim_str(2 * key_dim + 2 * value_dim)}, {dim_str(h)}) makes the "
            f"queries and keys ({dim_str(key_dim)} each), the values and the output gate z "
            f"({dim_str(value_dim)} each); in_proj_ba ({dim_str(2 * nv)}, {dim_str(h)}) makes "
            "β, how much each token writes, and a, how fast the state forgets, per value head.",
            f"conv1d ({dim_str(conv)}, 1, {dim_str(w)}) is a causal depthwise convolution of "
            f"width W = {dim_str(w)} over the queries, keys and values, each channel mixing "
            "its last W positions (no bias, SiLU after).",
            f"A_log and dt_bias ({dim_str(nv)},) set each value head's decay: the state is "
            "multiplied by exp(−exp(A_log)·softplus(a + dt_bias)) every token.",
            f"The state is a Dk × Dv = {dim_str(dk)} × {dim_str(dv)} matrix per value head: "
            "each token decays it, reads what it predicts for the token's key, and writes "
            "β times the difference from the token's value (the delta rule); the token's "
            "query reads the output from it. Nothing grows with the context.",
            f"norm ({dim_str(dv)},) is an RMSNorm of each value head's output, times SiLU(z); "
            f"out_proj ({dim_str(h)}, {dim_str(value_dim)}) maps the heads back to H.",
            f"For decoding, a linear-attention layer keeps the convolution's last W inputs "
            f"({dim_str(conv)} × {dim_str(w)} per sequence, in the model's dtype) and the "
            f"state ({dim_str(nv)} × {dim_str(dk)} × {dim_str(dv)} per sequence, fp32 as "
            "transformers keeps it even in a bf16 model): fixed sizes, whatever the context.",
            f"transformers' torch path computes the rule in chunks of {CHUNK} positions (the "
            "sequence padded to a multiple of them): within a chunk as matrix products, the "
            "state carried from chunk to chunk.",
        ]
        full = [
            f"A full-attention layer (self_attn) has {dim_str(a)} query heads of head_dim "
            f"D = {dim_str(d)} over {dim_str(kv)} key and value heads: q_proj "
            f"({dim_str(2 * q_width)}, {dim_str(h)}) makes each head's query and a gate of "
            f"D; k_proj and v_proj ({dim_str(kv_width)}, {dim_str(h)}); q_norm and k_norm "
            f"({dim_str(d)},) normalise each head's queries and keys.",
            f"The attention's output is multiplied by the sigmoid of the gate, head by head, "
            f"before o_proj ({dim_str(h)}, {dim_str(q_width)}). Rotary positions turn "
            f"{dim_str(turned)} of each head's {dim_str(d)} numbers (partial_rotary_factor "
            f"{self.rotary_pct:g}).",
            "These layers keep every token's keys and values for decoding: their cache grows "
            "with the context; the linear-attention layers' does not.",
        ]
        moe = self._expert_lines()
        sections = [
            ("What the sizes mean", lines),
            ("Linear attention (Gated DeltaNet)", linear),
            ("Gated full attention", full),
            ("The experts", moe),
        ]
        if self.experts != 0:
            sections.append(
                (
                    "Active and total",
                    self.mixture_lines(model, self.experts, self.experts_per_token),
                )
            )
        layers = self.in_body("model", "layers")
        seen: set[tuple[str, str]] = set()
        names = {r.name for r in model.rows()}
        for run in dict.fromkeys(
            split_name(r.name[len(layers) + 1 :])[0]
            for r in model.rows()
            if r.name.startswith(layers + ".")
        ):
            mixer = "linear" if f"{layers}.{run}.linear_attn.A_log" in names else "full"
            mlp = "sparse" if f"{layers}.{run}.mlp.gate.weight" in names else "dense"
            if (mixer, mlp) in seen:
                continue
            seen.add((mixer, mlp))
            title = f"Every matrix of a {mixer}-attention block with a {mlp} MLP (layers.{run})"
            sections.append((title, self._run_lines(model, layers, run)))
        return sections

    def _expert_lines(self) -> list[str]:
        h, e, k, m = self.hidden, self.experts, self.experts_per_token, self.moe_intermediate
        if e == 0:
            return ["With no experts, every layer has the dense MLP."]
        s = self.shared_intermediate
        lines = [
            f"An expert is a gated MLP of its own: gate and up map H to M = {dim_str(m)}, "
            f"down maps M back, 3·H·M = {count_str(3 * h * m)} numbers. A sparse layer holds "
            f"E = {dim_str(e)} of them, stored side by side "
            + (
                "(gate_up_proj (E, 2·M, H) and down_proj (E, H, M), as transformers 5 fuses them)."
                if self.moe_layout == "fused"
                else "(experts.{e}.gate_proj, up_proj and down_proj, as checkpoints store them)."
            ),
            f"The router, gate ({dim_str(e)}, {dim_str(h)}), scores every expert for each "
            f"token; the token goes through the k = {dim_str(k)} it scores highest, their "
            "outputs weighted by the softmax of the scores (renormalised over the k with "
            "norm_topk_prob, the default).",
            f"The shared expert is a gated MLP of S = {dim_str(s)} that every token goes "
            f"through, whatever the router says ({count_str(3 * h * s)} numbers); "
            f"shared_expert_gate (1, {dim_str(h)}) scales its output by a sigmoid.",
        ]
        n, step = known(self.layers), self.sparse_step
        rule = (
            "every layer has experts"
            if step == 1
            else f"layer i has experts when (i + 1) % {step} == 0 (decoder_sparse_step)"
        )
        if self.dense_layers:
            rule += (
                ", but layers "
                + ", ".join(str(i) for i in self.dense_layers)
                + " (mlp_only_layers) have a dense MLP"
            )
        if n is not None:
            sparse = sum(1 for i in range(n) if self.sparse(i)) if n <= MAX_LISTED else None
            if sparse is not None:
                rule += f": {sparse} of the {n} layers are sparse, {n - sparse} dense"
        if self._dense_layer() is not None and self.intermediate is not None:
            rule += f"; a dense layer's MLP is of I = {dim_str(self.intermediate)}"
        lines.append(rule[0].upper() + rule[1:] + ".")
        return lines

    def _layers_line(self) -> str:
        """Which layers attend fully, in words."""
        if self.layer_types:
            pattern = ", ".join(self.layer_types)
            how = (
                f"layer_types gives each layer's mixer ({pattern})"
                if known(self.layers) == len(self.layer_types)
                else f"layer_types repeats {pattern} from layer 0"
            )
        else:
            r = self.interval
            how = (
                f"without layer_types, transformers' rule: layer i attends fully when "
                f"(i + 1) % {r} == 0 (full_attention_interval), the others use linear attention"
            )
        mixers = self.mixers()
        if mixers is None or len(mixers) > MAX_LISTED:
            return how[0].upper() + how[1:] + "."
        full = [i for i, kind in enumerate(mixers) if kind == FULL]
        shown = ", ".join(str(i) for i in full[:8]) + (", ..." if len(full) > 8 else "")
        return (
            how[0].upper()
            + how[1:]
            + f": {len(full)} of the {len(mixers)} layers attend fully"
            + (f" ({shown})" if full else "")
            + "."
        )

    def _run_lines(self, model: Model, layers: str, run: str) -> list[str]:
        """Every matrix of one run of layers: name, shape, count and formula."""
        prefix = f"{layers}.{run}."
        lines = []
        for row in model.rows():
            if row.name.startswith(prefix):
                one, formula = row.param.size, row.template.size
                same = count_str(one) == dim_str(formula)
                lines.append(
                    f"{row.name[len(prefix) :]} {shape_str(row.shape)}: {count_str(one)}"
                    + ("" if same else f" = {dim_str(formula)}")
                    + f" ({row.role})"
                )
        return lines


qwen3_next = Qwen3Next.function_for()
