"""``shapecalc qwen-moe``: Qwen's mixtures of experts (Qwen1.5-MoE and Qwen2-MoE,
Qwen3-MoE), named as ``transformers`` names them.

A LLaMA-style decoder whose MLPs are, in the sparse layers, a router and E experts of
their own inner size, each token sent to k of them; Qwen2-MoE adds a shared expert that
every token goes through, scaled by a sigmoid gate. Which layers are sparse is
transformers' rule: layer i has experts unless it is one of ``mlp_only_layers``, when there
are experts and ``(i + 1) % decoder_sparse_step == 0``; the other layers have a dense MLP of
``intermediate_size``. A stack whose layers differ is shown as runs.
"""

from __future__ import annotations

from typing import Any, ClassVar

from shapecalc.architectures import _transformer as tf
from shapecalc.architectures._transformer import GroupedQueryLM
from shapecalc.core.choices import EXPERT_LAYOUTS
from shapecalc.core.declare import Built, Reference, choice, flag, indices, size
from shapecalc.core.dims import Dim, count_str, dim_str, floor_div, known, shape_str
from shapecalc.core.errors import InvalidArgumentError
from shapecalc.core.flow import chain, multiply, parallel, residual, summed
from shapecalc.core.frozen import frozen
from shapecalc.core.hfmap import HFType
from shapecalc.core.model import Model
from shapecalc.core.tree import Block, Child, Leaf, ModuleList, Node, Repeat, runs, split_name
from shapecalc.layers._embedding import Embedding
from shapecalc.layers._linear import Linear
from shapecalc.layers._norm import LlamaRMSNorm
from shapecalc.layers.activation import Sigmoid, SiLU
from shapecalc.layers.functional import Rotary, ScaledDotProductAttention, SplitHeads

__all__ = ["MAX_RUNS", "QwenMoE", "qwen_moe"]

#: the most runs of layers a stack is shown as (one per layer of the sparse step's pattern,
#: two per group of dense layers among the sparse ones)
MAX_RUNS = 1024

#: fields the classes read that change no tensor
_FREE = frozenset(
    {
        "max_position_embeddings",
        "rms_norm_eps",
        "rope_parameters",
        "rope_scaling",
        "rope_theta",
        "attention_dropout",
        "sliding_window",
        "use_sliding_window",
        "max_window_layers",
        "layer_types",
        "norm_topk_prob",
        "output_router_logits",
        "router_aux_loss_coef",
    }
)

#: the keys both types read
_KEYS = {
    **tf.SIZE_KEYS,
    "kv_heads": "num_key_value_heads",
    "head_dim": "head_dim",
    "moe_intermediate": "moe_intermediate_size",
    "experts": "num_experts",
    "experts_per_token": "num_experts_per_tok",
    "sparse_step": "decoder_sparse_step",
    "dense_layers": "mlp_only_layers",
    **tf.LABEL_KEYS,
}


def _read(f: Any, out: dict[str, Any]) -> None:
    """The padding id inside the vocabulary; the same shapes in fewer letters: a head_dim
    of H / A, as many kv heads as heads."""
    f.padding("pad_token_id", out["vocab"], "token embedding (vocab_size)")
    if out["head_dim"] is not None and out["head_dim"] * out["heads"] == out["hidden"]:
        out["head_dim"] = None
    if out["kv_heads"] == out["heads"]:
        out["kv_heads"] = None
    if out["experts"] == 0:
        out["experts_per_token"] = None  # no router: the class's default, unused


def _write(model: Any, reference: Reference) -> Reference | None:
    """The dense layers as a JSON list; no intermediate_size when no layer is dense (the
    class's default, unused); Qwen2-MoE only with its shared expert."""
    config = dict(reference.config)
    if config.get("shared_expert_intermediate_size", 1) == 0:
        return None  # transformers' Qwen2-MoE always has a shared expert
    config["mlp_only_layers"] = list(config["mlp_only_layers"])
    for unused in ("intermediate_size", "num_experts_per_tok"):
        if config.get(unused) is None:
            config.pop(unused, None)
    return tf.first_padding(model, Reference(reference.model, reference.config_class, config))


#: how each type says which layers slide (:class:`tf.WindowRule`)
_WINDOW_RULES = {"qwen2_moe": "qwen2_moe", "qwen3_moe": "qwen_all"}


def _member(
    *, model_type: str, prefix: str, qa_body: str, defaults: dict[str, Any], **kwargs: Any
) -> HFType:
    keys = {**_KEYS, **kwargs.pop("keys", {})}
    for name in kwargs.get("fixed", {}):
        keys.pop(name, None)
    return HFType(
        model_type=model_type,
        config_class=f"{prefix}Config",
        classes=tf.head_classes(prefix, *tf.HEADS, qa_body=qa_body),
        base="model",
        keys=keys,
        defaults={"head_dim": None, "tie_word_embeddings": False, **defaults},
        free=_FREE | kwargs.pop("free", frozenset()),
        only={"hidden_act": (("silu",), "the MLPs and experts here are SwiGLU")},
        not_null=frozenset({"head_dim"}),
        dropped=(r"rotary_emb\.inv_freq",),
        checkpoint={"moe_layout": "checkpoint"},
        **tf.windowed_hooks(
            "qwen2_moe" if model_type == "qwen2_moe" else "qwen_all", _read, _write
        ),
        **kwargs,
    )


@frozen(kw_only=True)
class QwenMoE(tf.Windowed, GroupedQueryLM):
    """A Qwen mixture of experts: token embedding (V × H), L blocks of RMSNorm, attention
    with rotary positions and RMSNorm, an MLP, a final RMSNorm and a head (V × H, or the
    embedding itself with tie_weights).

    The MLP of a sparse layer is a router, ``gate`` (E, H), a score per expert, and E
    experts, each a gated MLP of moe_intermediate (M): 3·H·M numbers each; every token
    goes through the k experts it scores highest. With shared_intermediate (S), a shared
    expert every token goes through, 3·H·S, scaled by a sigmoid of ``shared_expert_gate``
    (1, H) (Qwen1.5-MoE, Qwen2-MoE). A dense layer (``dense_layers``, or one off the
    sparse step) has one gated MLP of intermediate (I). Attention as in Qwen2 (q, k and v
    biases) or Qwen3 (q and k norms of head_dim, no biases). The names' order is the
    classes': the router before the experts with a shared expert (Qwen2-MoE), after them
    without (Qwen3-MoE).

        >>> m = qwen_moe(vocab=151936, hidden=2048, layers=48, heads=32, kv_heads=4,
        ...     head_dim=128, moe_intermediate=768, experts=128, experts_per_token=8,
        ...     qk_norm=True)
        >>> m.total, m.active
        (30532122624, 3353032704)
        >>> print(m.active_formula)
        2·L·D·H·A + 2·L·D·H·K + 3·L·H·M·k + L·H·E + 2·L·D + 2·L·H + 2·V·H + H
    """

    command: ClassVar[str] = "qwen-moe"
    function: ClassVar[str] = "qwen_moe"
    title: ClassVar[str] = "Qwen mixture of experts"
    example: ClassVar[str] = (
        "--vocab 151936 --hidden 2048 --layers 48 --heads 32 --kv-heads 4 --head-dim 128 "
        "--moe-intermediate 768 --experts 128 --experts-per-token 8 --qk-norm"
    )
    budget: ClassVar[str] = "30B"
    explains: ClassVar[str] = (
        "Explain hidden size, heads and head_dim, the experts, the shared expert, which "
        "layers are sparse, why fewer parameters are active than held, and every matrix "
        "of one block."
    )
    size_order: ClassVar[tuple[str, ...]] = (
        "vocab",
        "hidden",
        "layers",
        "heads",
        "kv_heads",
        "head_dim",
        "intermediate",
        "moe_intermediate",
        "shared_intermediate",
        "experts",
        "experts_per_token",
        "labels",
    )

    vocab: Any = tf.vocab()
    hidden: Any = tf.hidden()
    layers: Any = tf.layers()
    heads: Any = tf.heads()
    kv_heads: Any = tf.kv_heads()
    head_dim: Any = tf.head_dim()
    moe_intermediate: Any = size("M", "Each expert's inner size (moe_intermediate_size).")
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
    shared_intermediate: Any = size(
        "S",
        "The shared expert's inner size (shared_expert_intermediate_size): a gated MLP "
        "every token goes through, scaled by a sigmoid gate (Qwen2-MoE); 0: none (Qwen3-MoE).",
        0,
        minimum=0,
        unset=0,
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
    tie_weights: bool = flag("The head is the token embedding (tie_word_embeddings).")
    attention_bias: str = choice(
        ("none", "qkv", "all"),
        "Biases of the attention's projections: q, k and v (Qwen2-MoE's qkv_bias), or all "
        "four (Qwen3-MoE's attention_bias).",
        "none",
    )
    qk_norm: bool = flag("An RMSNorm of head_dim on each head's queries and keys (Qwen3-MoE).")
    moe_layout: str = choice(
        EXPERT_LAYOUTS,
        "How the experts are named: as transformers 5 holds them (fused gate_up_proj), "
        "or as checkpoint files store them (experts.{e}.gate_proj.weight, ...).",
        "fused",
    )
    head: str = tf.lm_head("Qwen3MoeForCausalLM", "Qwen3MoeModel", *tf.HEADS)
    labels: Any = tf.labels()
    sliding_window: Any = tf.sliding_window()
    layer_types: Any = tf.window_layer_types()
    qa_body: str = choice(
        ("transformer", "model"),
        "The body's name under the question-answering head: transformer (Qwen3-MoE) or "
        "model (Qwen2-MoE).",
        "transformer",
    )

    hf: ClassVar[tuple[HFType, ...]] = (
        _member(
            model_type="qwen2_moe",
            gguf="qwen2moe",
            prefix="Qwen2Moe",
            qa_body="model",
            defaults={
                "sliding_window": 4096,
                "use_sliding_window": False,
                "max_window_layers": 28,
                "vocab_size": 151936,
                "hidden_size": 2048,
                "intermediate_size": 5632,
                "num_hidden_layers": 24,
                "num_attention_heads": 16,
                "num_key_value_heads": 16,
                "moe_intermediate_size": 1408,
                "shared_expert_intermediate_size": 5632,
                "num_experts_per_tok": 4,
                "num_experts": 60,
                "decoder_sparse_step": 1,
                "mlp_only_layers": None,
                "qkv_bias": True,
                "hidden_act": "silu",
            },
            keys={
                "shared_intermediate": "shared_expert_intermediate_size",
                "attention_bias": "qkv_bias",
            },
            values={"attention_bias": {True: "qkv", False: "none"}},
            fixed={"qk_norm": False},
        ),
        _member(
            model_type="qwen3_moe",
            peft_moe="gated",
            gguf="qwen3moe",
            prefix="Qwen3Moe",
            qa_body="transformer",
            defaults={
                "sliding_window": 4096,
                "use_sliding_window": False,
                "vocab_size": 151936,
                "hidden_size": 2048,
                "intermediate_size": 6144,
                "num_hidden_layers": 24,
                "num_attention_heads": 32,
                "num_key_value_heads": 4,
                "moe_intermediate_size": 768,
                "num_experts_per_tok": 8,
                "num_experts": 128,
                "decoder_sparse_step": 1,
                "mlp_only_layers": None,
                "attention_bias": False,
                "hidden_act": "silu",
            },
            keys={"attention_bias": "attention_bias"},
            values={"attention_bias": {True: "all", False: "none"}},
            fixed={"qk_norm": True, "shared_intermediate": 0},
            aliases={"num_local_experts": "num_experts"},
        ),
    )

    # -- which layers are sparse ------------------------------------------------------------
    def sparse(self, index: int) -> bool:
        """transformers' rule: layer ``index`` has experts unless it is one of the dense
        layers, when there are experts and (index + 1) % sparse_step == 0."""
        return (
            index not in self.dense_layers
            and self.experts != 0
            and (index + 1) % self.sparse_step == 0
        )

    def sparse_layers(self) -> int | None:
        """How many layers have experts (None with a symbolic layer count): every
        sparse_step-th, but the dense ones among them."""
        n = known(self.layers)
        if n is None:
            return None
        step: int = self.sparse_step
        return 0 if self.experts == 0 else n // step - len(self._holes())

    def _holes(self) -> list[int]:
        """The dense layers the sparse step would have given experts."""
        return [i for i in self.dense_layers if (i + 1) % self.sparse_step == 0]

    def _runs(self) -> int:
        """The runs of layers the stack is shown as: one per layer of the step's pattern,
        two per group of dense layers on the step."""
        holes, step = self._holes(), int(self.sparse_step)
        groups = sum(1 for k, i in enumerate(holes) if k == 0 or holes[k - 1] + step != i)
        return step + 2 * groups

    # -- checks -------------------------------------------------------------------------
    def check(self) -> None:
        self.check_labels()
        self.check_heads(self.head_dim)
        self.check_rotary(self.head_size(self.head_dim), self.head_dim)
        self._divides(
            "kv_heads", self.heads, self.kv, "kv_heads must divide heads (query heads per group)"
        )
        tf.check_no_top_k(self.owner(), self.experts, self.experts_per_token)
        if self.experts != 0 and self.experts_per_token is None:
            rule = "experts need experts_per_token (num_experts_per_tok): the router's choice"
            raise InvalidArgumentError(
                f"{rule} (experts is {dim_str(self.experts)})",
                layer=self.owner(),
                field="experts_per_token",
                value=None,
                rule=rule,
            )
        tf.check_top_k(self.owner(), self.experts, self.experts_per_token)
        self.check_window()
        n = known(self.layers)
        mixed = self.window_pattern()
        if n is None and mixed is not None and "full_attention" in mixed:
            raise InvalidArgumentError(
                f"{self.owner()}: layer_types with both kinds needs the layers as a number, "
                f"got the name {dim_str(self.layers)} (the tree needs the number)",
                layer=self.owner(),
                field="layers",
                value=str(self.layers),
                rule="a number of layers when some slide and others do not",
                related=("layer_types",),
            )
        past = [i for i in self.dense_layers if n is not None and i >= n]
        if past:
            rule = "dense_layers are layers of the stack: each < layers"
            raise InvalidArgumentError(
                f"{rule} (layer {past[0]} of {n}, numbered from 0)",
                layer=self.owner(),
                field="dense_layers",
                value=",".join(str(i) for i in self.dense_layers),
                rule=rule,
            )
        n_runs, step = self._runs(), self.sparse_step
        if self.experts != 0 and n_runs > MAX_RUNS and (n is None or step <= n):
            field = "sparse_step" if step > MAX_RUNS // 2 else "dense_layers"
            rule = f"the layers form at most {MAX_RUNS:,} runs (sparse_step and dense_layers)"
            raise InvalidArgumentError(
                f"{rule}; these make {n_runs:,}",
                layer=self.owner(),
                field=field,
                value=step if field == "sparse_step" else ",".join(map(str, self.dense_layers)),
                rule=rule,
            )
        if self.intermediate is None and self._dense_layer() is not None:
            rule = "intermediate sizes the dense layers' MLP: needed when a layer is dense"
            raise InvalidArgumentError(
                f"{rule} (layer {self._dense_layer()} is dense)",
                layer=self.owner(),
                field="intermediate",
                value=None,
                rule=rule,
            )

    def _dense_layer(self) -> int | None:
        """A layer with a dense MLP, or None when every layer has experts."""
        if self.experts == 0 or self.sparse_step != 1:
            return 0  # layer 0 is off any step above 1
        first: int | None = self.dense_layers[0] if self.dense_layers else None
        return first

    def sizes(self) -> dict[str, Dim]:
        """The sizes given, and D = H / A; k only with experts, P not at all (a number in
        the rule of the layers, never in a formula)."""
        out = super().sizes()
        out.pop("P", None)
        if self.experts == 0:
            out.pop("k", None)
            out.pop("M", None)
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
        out["dense_layers"] = tuple(i for i in out["dense_layers"] if i < out["layers"])
        # the stack as published models have it: the mixture's runs long enough that the
        # same run is the longest with the layers as a number or a letter (the line of
        # activations recomputed per block names that run)
        if out["experts"] and out["sparse_step"] > 1:
            out["dense_layers"] = ()
            out["layers"] = max(out["layers"], 2 * out["sparse_step"])
        elif out["experts"] and out["dense_layers"]:
            out["layers"] = max(out["layers"], 2 * max(out["dense_layers"]) + 4)
        dense = not out["experts"] or out["sparse_step"] != 1 or out["dense_layers"]
        if out["intermediate"] is None and dense:
            out["intermediate"] = 4  # a dense layer's MLP needs its size
        return out

    # -- the tree -------------------------------------------------------------------------
    def _attention(self, window: int | None = None) -> Block:
        h, a, kv = self.hidden, self.heads, self.kv
        d, q_width, kv_width = self._widths()
        qkv_bias = self.attention_bias != "none"
        o_bias = self.attention_bias == "all"
        rope_q, rope_k = Rotary(a, d), Rotary(kv, d)
        children: dict[str, Any] = {
            "q_proj": Leaf(Linear(h, q_width, bias=qkv_bias), role="query"),
            "k_proj": Leaf(Linear(h, kv_width, bias=qkv_bias), role="key"),
            "v_proj": Leaf(Linear(h, kv_width, bias=qkv_bias), role="value"),
            "o_proj": Leaf(Linear(q_width, h, bias=o_bias), role="output projection"),
        }
        q_steps: tuple[Any, ...] = (rope_q,)
        k_steps: tuple[Any, ...] = (rope_k,)
        if self.qk_norm:
            children["q_norm"] = Leaf(LlamaRMSNorm(d), role="query norm")
            children["k_norm"] = Leaf(LlamaRMSNorm(d), role="key norm")
            q_steps = (SplitHeads(a, d), "q_norm", rope_q)
            k_steps = (SplitHeads(kv, d), "k_norm", rope_k)
        qkv = parallel(("q_proj", *q_steps), ("k_proj", *k_steps), "v_proj")
        flow = chain(qkv, ScaledDotProductAttention(a, kv, d, window=window), "o_proj")
        what = f"{dim_str(a)} query heads over {dim_str(kv)} key and value heads of {dim_str(d)}"
        return Block("Attention", children, flow=flow, description=what)

    def _mlp(self, inner: Dim, what: str) -> Block:
        h = self.hidden
        children = {
            "gate_proj": Leaf(Linear(h, inner, bias=False), role=f"{what} gate"),
            "up_proj": Leaf(Linear(h, inner, bias=False), role=f"{what} up"),
            "down_proj": Leaf(Linear(inner, h, bias=False), role=f"{what} down"),
        }
        flow = chain(multiply(("gate_proj", SiLU()), "up_proj"), "down_proj")
        return Block("MLP", children, flow=flow, description=f"gated MLP of {dim_str(inner)}")

    def _sparse_block(self) -> Block:
        from shapecalc.layers.transformers import Experts

        h, e, k = self.hidden, self.experts, self.experts_per_token
        experts = Leaf(
            Experts(e, h, self.moe_intermediate, k, layout=self.moe_layout, naming="gated"),
            role="experts",
        )
        router = Leaf(Linear(h, e, bias=False), "a score per expert", "router")
        routed = chain(parallel((), "gate"), "experts")
        what = f"{dim_str(e)} experts, {dim_str(k)} per token"
        if self.shared_intermediate == 0:  # Qwen3-MoE registers the experts first
            return Block(
                "SparseMoeBlock",
                {"experts": experts, "gate": router},
                flow=routed,
                description=what,
            )
        gate = Leaf(
            Linear(h, 1, bias=False),
            "how much of the shared expert to add",
            "shared expert's sigmoid gate",
        )
        children = {
            "gate": router,
            "experts": experts,
            "shared_expert": self._mlp(self.shared_intermediate, "shared expert"),
            "shared_expert_gate": gate,
        }
        flow = summed(routed, multiply(("shared_expert_gate", Sigmoid()), "shared_expert"))
        return Block(
            "SparseMoeBlock", children, flow=flow, description=what + " and a shared expert"
        )

    def _block(self, mlp: Node, window: int | None = None) -> Block:
        h = self.hidden
        children: dict[str, Any] = {
            "self_attn": self._attention(window),
            "mlp": mlp,
            "input_layernorm": LlamaRMSNorm(h),
            "post_attention_layernorm": LlamaRMSNorm(h),
        }
        flow = chain(
            residual("input_layernorm", "self_attn"), residual("post_attention_layernorm", "mlp")
        )
        return Block("DecoderLayer", children, flow=flow)

    def _stack(self) -> Block:
        """The layers as transformers numbers them, each kind a run: with a sparse step P,
        the P - 1 dense layers between two sparse ones as P - 1 runs P apart
        (``layers.{0,2..46}``), the sparse layers as one run broken by the dense layers
        among them. No layer is listed one by one, so a symbolic layer count gives each
        run's count as a formula. Some layers sliding and others not: the runs of both."""
        pattern = self.window_pattern()
        window = self.sliding_window if pattern is not None else None
        if pattern is not None and "full_attention" in pattern:
            return self._mixed_stack(pattern)
        dense = (
            self._block(self._mlp(self.inner, "dense"), window)
            if self._dense_layer() is not None
            else None
        )
        n, step, total = known(self.layers), self.sparse_step, self.layers
        if self.experts == 0 or (n is not None and step > n):
            return ModuleList(dense, total)
        sparse = self._block(self._sparse_block(), window)
        entries: list[Repeat | Child] = []

        def add(node: Node | None, start: int, count: Dim) -> None:
            c = known(count)
            if node is None or (c is not None and c <= 0):
                return
            entries.append(Child(str(start), node) if c == 1 else Repeat(node, count, start, step))

        def to_the_end(start: int) -> Dim:  # start, start + P, ... below L
            return total - start if step == 1 else floor_div(total - start + step - 1, step)

        for first in range(step - 1):
            add(dense, first, to_the_end(first))
        holes, start, k = self._holes(), step - 1, 0
        while k < len(holes):
            j = k
            while j + 1 < len(holes) and holes[j + 1] == holes[j] + step:
                j += 1
            add(sparse, start, (holes[k] - start) // step)
            add(dense, holes[k], j - k + 1)
            start, k = holes[j] + step, j + 1
        add(sparse, start, to_the_end(start))
        entries.sort(key=lambda e: e.start if isinstance(e, Repeat) else int(e.name))
        if len(entries) == 1 and isinstance(entries[0], Child):  # one layer: a run of one,
            return ModuleList(entries[0].node, 1)  # as every other stack of one layer is
        return Block("ModuleList", tuple(entries))

    def _mixed_stack(self, pattern: tuple[str, ...]) -> Block:
        """Sliding and full layers, each dense or sparse: the runs of the four kinds."""
        n = known(self.layers)
        assert n is not None  # checked: both kinds need the layers as a number
        made: dict[tuple[bool, bool], Node] = {}
        nodes = []
        for i in range(n):
            key = (self.sparse(i), pattern[i % len(pattern)] == "sliding_attention")
            if key not in made:
                mlp = self._sparse_block() if key[0] else self._mlp(self.inner, "dense")
                made[key] = self._block(mlp, self.sliding_window if key[1] else None)
            nodes.append(made[key])
        return Block("ModuleList", runs(nodes))

    def build(self) -> Built:
        h, v = self.hidden, self.vocab
        body = Block(
            "Model",
            {
                "embed_tokens": Leaf(Embedding(v, h), "one H-vector per token", "token embedding"),
                "layers": self._stack(),
                "norm": Leaf(LlamaRMSNorm(h), role="final norm"),
            },
            flow=chain("embed_tokens", "layers", "norm"),
        )
        return self.causal_lm("ForCausalLM", "model", body, "embed_tokens", "head")

    # -- the transformers classes of the same model -------------------------------------
    def hf_values(self) -> dict[str, Any]:
        """The sizes as a config writes them: kv heads and head_dim worked out."""
        return {**super().hf_values(), "intermediate": self.intermediate}

    # -- explanation ----------------------------------------------------------------------
    def explanation(self, model: Model) -> list[tuple[str, list[str]]]:
        d, q_width, kv_width = self._widths()
        a, kv, h = self.heads, self.kv, self.hidden
        e, k, m = self.experts, self.experts_per_token, self.moe_intermediate
        lines = [
            f"The hidden size H = {dim_str(h)} is the length of every token's vector, in and "
            "out of every block.",
            f"Attention splits it into heads of head_dim D = {dim_str(d)}: {dim_str(a)} query "
            f"heads share {dim_str(kv)} key and value heads, so q_proj is "
            f"({dim_str(q_width)}, {dim_str(h)}) and k_proj and v_proj "
            f"({dim_str(kv_width)}, {dim_str(h)}) each"
            + (", each head's queries and keys normalised (q_norm, k_norm)" if self.qk_norm else "")
            + ".",
        ]
        moe: list[str] = []
        if e != 0:
            moe += [
                f"An expert is a gated MLP of its own: gate and up map H to M = {dim_str(m)}, "
                f"down maps M back, 3·H·M = {count_str(3 * h * m)} numbers. A sparse layer "
                f"holds E = {dim_str(e)} of them, stored side by side "
                + (
                    "(gate_up_proj (E, 2·M, H) and down_proj (E, H, M), as transformers 5 "
                    "fuses them)."
                    if self.moe_layout == "fused"
                    else "(experts.{e}.gate_proj, up_proj and down_proj, as checkpoints "
                    "store them)."
                ),
                f"The router, gate ({dim_str(e)}, {dim_str(h)}), scores every expert for each "
                f"token; the token goes through the k = {dim_str(k)} it scores highest, their "
                "outputs weighted by the softmax of the scores.",
            ]
            if self.shared_intermediate != 0:
                s = self.shared_intermediate
                moe.append(
                    f"The shared expert is a gated MLP of S = {dim_str(s)} that every token goes "
                    f"through, whatever the router says ({count_str(3 * h * s)} numbers); "
                    f"shared_expert_gate ({dim_str(1)}, {dim_str(h)}) scales its output by a "
                    "sigmoid, and it is added to the routed experts' output."
                )
            moe.append(self._layers_line())
        else:
            moe.append("With no experts, every layer has the dense MLP.")
        layers = self.in_body("model", "layers")
        runs = list(
            dict.fromkeys(
                split_name(r.name[len(layers) + 1 :])[0]
                for r in model.rows()
                if r.name.startswith(layers + ".")
            )
        )
        sparse = [
            run
            for run in runs
            if f"{layers}.{run}.mlp.gate.weight" in {r.name for r in model.rows()}
        ]
        dense = [run for run in runs if run not in sparse]
        sections = [("What the sizes mean", lines), ("The experts", moe)]
        if e != 0:
            sections.append(("Active and total", self.mixture_lines(model, e, k)))
        if sparse:
            sections.append(
                (
                    f"Every matrix of a sparse block (layers.{sparse[0]})",
                    self._run_lines(model, layers, sparse[0], ""),
                )
            )
        if dense:
            sections.append(
                (
                    f"The MLP of a dense block (layers.{dense[0]})",
                    self._run_lines(model, layers, dense[0], "mlp."),
                )
            )
        return sections

    def _run_lines(self, model: Model, layers: str, run: str, within: str) -> list[str]:
        """Every matrix of one run of layers (under ``within`` only): name, shape, count
        and formula."""
        prefix = f"{layers}.{run}.{within}"
        lines = []
        for row in model.rows():
            if row.name.startswith(prefix):
                one, formula = row.param.size, row.template.size
                same = count_str(one) == dim_str(formula)
                lines.append(
                    f"{row.name[len(layers) + len(run) + 2 :]} {shape_str(row.shape)}: "
                    f"{count_str(one)}"
                    + ("" if same else f" = {dim_str(formula)}")
                    + f" ({row.role})"
                )
        return lines

    def _layers_line(self) -> str:
        """Which layers are sparse, in words."""
        n, step = known(self.layers), self.sparse_step
        rule = (
            "every layer has experts"
            if step == 1
            else f"layer i has experts when (i + 1) % {step} == 0 (decoder_sparse_step)"
        )
        if self.dense_layers:
            listed = ", ".join(str(i) for i in self.dense_layers)
            rule += f", but layers {listed} (mlp_only_layers) have a dense MLP"
        if n is not None:
            sparse = self.sparse_layers()
            rule += f": {sparse} of the {n} layers are sparse, {n - (sparse or 0)} dense"
        if self._dense_layer() is not None and self.intermediate is not None:
            rule += f"; a dense layer's MLP is of I = {dim_str(self.intermediate)}"
        return rule[0].upper() + rule[1:] + "."


qwen_moe = QwenMoE.function_for()
