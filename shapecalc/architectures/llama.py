"""``shapecalc llama``: the LLaMA family of decoders, named as ``transformers`` names them.

One block: RMSNorm, attention with rotary positions (no position parameters), RMSNorm,
a gated MLP; the flags cover the family: grouped-query attention (Llama 2 and 3, Mistral),
a head_dim of its own (Gemma, Qwen3), attention and MLP biases (Qwen2, LLaMA's options),
q and k norms (Qwen3), four norms per block (Gemma 2), fused projections (Phi-3) and a
mixture of experts (Mixtral).
"""

from __future__ import annotations

from typing import Any, ClassVar

from shapecalc.architectures import _transformer as tf
from shapecalc.architectures._transformer import GroupedQueryLM
from shapecalc.core.choices import EXPERT_LAYOUTS
from shapecalc.core.declare import Built, Reference, choice, flag, size
from shapecalc.core.dims import Dim, count_str, dim_str, known, symbol
from shapecalc.core.errors import InvalidArgumentError
from shapecalc.core.flow import Multiply, chain, each, multiply, parallel, residual
from shapecalc.core.frozen import frozen
from shapecalc.core.hfmap import ACTIVATIONS, HFType
from shapecalc.core.model import Model
from shapecalc.core.tree import Block, Leaf, Node
from shapecalc.layers._embedding import Embedding
from shapecalc.layers._linear import Linear
from shapecalc.layers._norm import LlamaRMSNorm
from shapecalc.layers.activation import GELU, SiLU
from shapecalc.layers.functional import Chunk, Rotary, ScaledDotProductAttention, SplitHeads
from shapecalc.layers.transformers import Gemma3RMSNorm

__all__ = ["LLaMA", "llama", "llama_inner", "llama_intermediate"]


def llama_inner(model: GroupedQueryLM) -> Dim:
    """The MLP's intermediate size of a model sized as LLaMA is: given, LLaMA's rule of
    H, or the letter I."""
    if model.intermediate is not None:
        given: Dim = model.intermediate
        return given
    h = known(model.hidden)
    return symbol("I") if h is None else llama_intermediate(h)


def llama_intermediate(hidden: int, multiple_of: int = 256) -> int:
    """LLaMA's MLP size: ⌈2·(4·H)/3⌉ up to a multiple of 256 (11,008 for 4,096)."""
    inner = 2 * 4 * hidden // 3
    return multiple_of * -(-inner // multiple_of)


#: attention_bias in a config: every projection's bias, or none
_BIASES = {True: "all", False: "none"}
#: hidden_act: SwiGLU, or GeGLU for the GELUs (the activation holds no parameters)
_ACTIVATIONS = {name: "gelu_tanh" if name.startswith("gelu") else "silu" for name in ACTIVATIONS}
_FREE = frozenset(
    {
        "max_position_embeddings",
        "rms_norm_eps",
        "rope_parameters",
        "rope_scaling",
        "rope_theta",
        "attention_dropout",
        "pretraining_tp",
        "sliding_window",
        "use_sliding_window",
        "max_window_layers",
        "layer_types",
        "use_mrope",
    }
)


def _defaults(**extra: Any) -> dict[str, Any]:
    """The fields every member of the LLaMA family has, and its own defaults."""
    return {"head_dim": None, "num_key_value_heads": None, "tie_word_embeddings": False, **extra}


def _read(f: Any, out: dict[str, Any]) -> None:
    """The padding id inside the vocabulary; the same shapes in fewer letters: a head_dim
    of H / A, as many kv heads as heads."""
    f.padding("pad_token_id", out["vocab"], "token embedding (vocab_size)")
    hidden, heads, kv = out["hidden"], out["heads"], out["kv_heads"]
    if out.get("head_dim") is not None and out["head_dim"] * heads == hidden:
        out["head_dim"] = None
    if kv == heads:
        out["kv_heads"] = None


def _write_phi3(model: Any, reference: Reference) -> Reference | None:
    """Phi-3's heads split the hidden size; its default padding id (32000) is outside a
    small vocabulary."""
    config = dict(reference.config)
    if config.pop("head_dim") * config["num_attention_heads"] != config["hidden_size"]:
        return None
    return tf.first_padding(model, Reference(reference.model, reference.config_class, config))


#: how each type says which layers slide (:class:`tf.WindowRule`)
_WINDOWS = {
    "mistral": "all",
    "mixtral": "all",
    "phi3": "all",
    "qwen2": "qwen",
    "qwen3": "qwen",
    "gemma2": "alternate",
    "qwen2_vl_text": "qwen",
    "qwen2_5_vl_text": "qwen",
}


def _windowed(model_type: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The type's read and write hooks with its sliding-window rule around them."""
    rule_kind = _WINDOWS.get(model_type)
    if rule_kind is None:
        return {"read": _read, **kwargs}
    return {**tf.windowed_hooks(rule_kind, _read, kwargs.pop("write", None)), **kwargs}


def _vision_language_text(model_type: str, prefix: str, **defaults: Any) -> HFType:
    """The language model of Qwen2-VL and Qwen2.5-VL (``text_config``, read by
    ``qwen2_vl.py``): Qwen2's body as ``{prefix}TextModel``, its heads H / A wide (no
    head_dim field), its q, k and v biased."""
    return HFType(
        model_type=model_type,
        config_class=f"{prefix}TextConfig",
        classes={f"{prefix}TextModel": {"head": "none"}},
        base="model",
        keys={
            **{k: v for k, v in tf.SIZE_KEYS.items() if k != "tie_weights"},
            "kv_heads": "num_key_value_heads",
            "activation": "hidden_act",
        },
        values={"activation": _ACTIVATIONS},
        defaults={
            "vocab_size": 152064,
            "hidden_size": 8192,
            "intermediate_size": 29568,
            "num_hidden_layers": 80,
            "num_attention_heads": 64,
            "num_key_value_heads": 8,
            "hidden_act": "silu",
            "use_sliding_window": False,
            "sliding_window": 4096,
            "max_window_layers": 80,
            "layer_types": None,
            "max_position_embeddings": 32768,
            **defaults,
        },
        fixed={"attention_bias": "qkv"},
        free=_FREE | {"head_dim"},
        dropped=(r"rotary_emb\.inv_freq",),
        **_windowed(model_type, {}),
    )


def _member(
    *,
    model_type: str,
    prefix: str,
    defaults: dict[str, Any],
    keys: dict[str, str] | None = None,
    free: set[str] | frozenset[str] = frozenset(),
    kinds: tuple[str, ...] = ("seq-cls", "token-cls"),
    qa_body: str | None = None,
    **kwargs: Any,
) -> HFType:
    """One member of the LLaMA family: the fields they all read (but those it fixes), and
    its own."""
    read = {
        **tf.SIZE_KEYS,
        "kv_heads": "num_key_value_heads",
        "head_dim": "head_dim",
        "activation": "hidden_act",
        "rotary_pct": "partial_rotary_factor",
        **tf.LABEL_KEYS,
        **(keys or {}),
    }
    ignored: set[str] = set()
    for name in kwargs.get("fixed", {}):  # a field of a fixed argument: read, changes nothing
        if name in read:
            ignored.add(read.pop(name))
    return HFType(
        model_type=model_type,
        config_class=f"{prefix}Config",
        classes=tf.head_classes(prefix, *kinds, qa_body=qa_body),
        base="model",
        keys=read,
        values={"activation": _ACTIVATIONS, **kwargs.pop("values", {})},
        defaults=defaults,
        free=_FREE | frozenset(free) | ignored,
        dropped=(r"rotary_emb\.inv_freq",),
        **_windowed(model_type, kwargs),
    )


@frozen(kw_only=True)
class LLaMA(tf.Windowed, GroupedQueryLM):
    """A LLaMA-style decoder: token embedding (V × H), L blocks of RMSNorm, attention
    with rotary positions and RMSNorm, gated MLP, a final RMSNorm and a head (V × H, or the
    embedding itself with tie_weights).

    A head is head_dim (D) wide, H / A unless given. The A query heads share K key and
    value heads (grouped-query attention): q_proj is (A·D, H), k_proj and v_proj (K·D, H)
    each, o_proj (H, A·D). The MLP's gate and up projections map H to the intermediate size
    I and down maps I back: 3·H·I; with experts, each of E experts has its own three and a
    router (E, H) sends each token to experts_per_token of them.

        >>> m = llama(vocab=32000, hidden=4096, layers=32, heads=32, intermediate=11008)
        >>> m.total
        6738415616
        >>> print(m.total_formula)
        4·L·H² + 3·L·H·I + 2·L·H + 2·V·H + H
    """

    command: ClassVar[str] = "llama"
    function: ClassVar[str] = "llama"
    title: ClassVar[str] = "LLaMA-style decoder"
    example: ClassVar[str] = (
        "--vocab 32000 --hidden 4096 --layers 32 --heads 32 --intermediate 11008"
    )
    budget: ClassVar[str] = "7B"
    size_order: ClassVar[tuple[str, ...]] = (
        "vocab",
        "hidden",
        "layers",
        "heads",
        "kv_heads",
        "head_dim",
        "intermediate",
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
    intermediate: Any = tf.intermediate(
        "intermediate_size", "LLaMA's 8·H/3, up to a multiple of 256"
    )
    tie_weights: bool = flag("The head is the token embedding (tie_word_embeddings).")
    attention_bias: str = choice(
        ("none", "qkv", "all"),
        "Biases of the attention's projections: q, k and v (Qwen2), or all four "
        "(LLaMA's attention_bias).",
        "none",
    )
    mlp_bias: bool = flag("Biases of the MLP's projections (mlp_bias).")
    qk_norm: bool = flag("An RMSNorm of head_dim on each head's queries and keys (Qwen3).")
    sandwich_norm: bool = flag(
        "Four RMSNorms per block, before and after attention and MLP (Gemma 2)."
    )
    gemma_norm: bool = flag(
        "Gemma's RMSNorms: x/rms times 1 + weight, all in float32 (Gemma, Gemma 2)."
    )
    fused_qkv: bool = flag("One qkv_proj for queries, keys and values (Phi-3).")
    fused_gate_up: bool = flag("One gate_up_proj for the MLP's gate and up (Phi-3).")
    experts: Any = size(
        "E",
        "Experts of a mixture-of-experts MLP (Mixtral); 0: one dense MLP.",
        0,
        minimum=0,
        unset=0,
        solvable=False,
    )
    experts_per_token: Any = size(
        "k",
        "Experts each token is sent to, by the router.",
        None,
        unset=None,
        default_text="2",
        solvable=False,
        names=False,
    )
    moe_layout: str = choice(
        EXPERT_LAYOUTS,
        "How the experts are named: as transformers 5 holds them (fused gate_up_proj), "
        "or as checkpoint files store them (experts.{e}.w1.weight, ...).",
        "fused",
    )
    activation: str = choice(
        ("silu", "gelu_tanh"), "The MLP's gate activation: SwiGLU, or GeGLU (Gemma).", "silu"
    )
    rotary_pct: float = tf.rotary_fraction("Phi-3's partial_rotary_factor; 1: whole heads", 1.0)
    sliding_window: Any = tf.sliding_window()
    layer_types: Any = tf.window_layer_types()
    head: str = tf.lm_head("LlamaForCausalLM", "LlamaModel", *tf.HEADS)
    labels: Any = tf.labels()
    qa_body: str = choice(
        ("transformer", "model"),
        "The body's name under the question-answering head: transformer (Llama, Qwen2, "
        "Qwen3) or model (Mistral, Mixtral).",
        "transformer",
    )

    #: Gemma first: --verify checks a GeGLU model against the class that has one
    hf: ClassVar[tuple[HFType, ...]] = (
        _member(
            model_type="gemma",
            lora_targets=("q_proj", "v_proj"),
            gguf="gemma",
            prefix="Gemma",
            defaults=_defaults(
                max_position_embeddings=8192,
                vocab_size=256000,
                hidden_size=3072,
                num_hidden_layers=28,
                num_attention_heads=16,
                num_key_value_heads=16,
                head_dim=256,
                intermediate_size=24576,
                attention_bias=False,
                tie_word_embeddings=True,
                hidden_act="gelu_pytorch_tanh",
                pad_token_id=0,
            ),
            keys={"attention_bias": "attention_bias"},
            values={"attention_bias": _BIASES},
            fixed={"activation": "gelu_tanh", "gemma_norm": True},
            free={"hidden_activation", "use_bidirectional_attention"},
        ),
        _member(
            model_type="llama",
            lora_targets=("q_proj", "v_proj"),
            gguf="llama",
            gguf_70b="80 layers, grouped heads",
            kinds=tuple(tf.HEADS),
            qa_body="transformer",
            prefix="Llama",
            defaults=_defaults(
                max_position_embeddings=2048,
                vocab_size=32000,
                hidden_size=4096,
                num_hidden_layers=32,
                num_attention_heads=32,
                intermediate_size=11008,
                attention_bias=False,
                mlp_bias=False,
                hidden_act="silu",
            ),
            keys={"attention_bias": "attention_bias", "mlp_bias": "mlp_bias"},
            values={"attention_bias": _BIASES},
            strict_heads=True,
        ),
        _member(
            model_type="mistral",
            lora_targets=("q_proj", "v_proj"),
            gguf="llama",
            gguf_70b="80 layers, grouped heads",
            kinds=tuple(tf.HEADS),
            qa_body="model",
            prefix="Mistral",
            defaults=_defaults(
                max_position_embeddings=131072,
                sliding_window=4096,
                vocab_size=32000,
                hidden_size=4096,
                num_hidden_layers=32,
                num_attention_heads=32,
                num_key_value_heads=8,
                intermediate_size=14336,
                hidden_act="silu",
            ),
            free={"attention_bias"},
        ),
        _member(
            model_type="mixtral",
            lora_targets=("q_proj", "v_proj"),
            peft_moe="numbered",
            gguf="llama",
            gguf_70b="80 layers, grouped heads",
            kinds=tuple(tf.HEADS),
            qa_body="model",
            prefix="Mixtral",
            defaults=_defaults(
                sliding_window=None,
                vocab_size=32000,
                hidden_size=4096,
                num_hidden_layers=32,
                num_attention_heads=32,
                num_key_value_heads=8,
                intermediate_size=14336,
                num_local_experts=8,
                num_experts_per_tok=2,
                hidden_act="silu",
            ),
            keys={"experts": "num_local_experts", "experts_per_token": "num_experts_per_tok"},
            aliases={"num_experts": "num_local_experts"},
            free={"router_jitter_noise", "router_aux_loss_coef", "output_router_logits"},
            checkpoint={"moe_layout": "checkpoint"},
        ),
        _member(
            model_type="qwen2",
            lora_targets=("q_proj", "v_proj"),
            gguf="qwen2",
            gguf_70b="80 layers",
            kinds=tuple(tf.HEADS),
            qa_body="transformer",
            prefix="Qwen2",
            defaults=_defaults(
                max_position_embeddings=32768,
                sliding_window=4096,
                use_sliding_window=False,
                max_window_layers=28,
                vocab_size=151936,
                hidden_size=4096,
                num_hidden_layers=32,
                num_attention_heads=32,
                num_key_value_heads=32,
                intermediate_size=22016,
                hidden_act="silu",
            ),
            fixed={"attention_bias": "qkv"},
            free={"attention_bias"},
            not_null=frozenset({"head_dim"}),
        ),
        _member(
            model_type="qwen3",
            lora_targets=("q_proj", "v_proj"),
            gguf="qwen3",
            kinds=tuple(tf.HEADS),
            qa_body="transformer",
            prefix="Qwen3",
            defaults=_defaults(
                max_position_embeddings=32768,
                sliding_window=4096,
                use_sliding_window=False,
                max_window_layers=28,
                vocab_size=151936,
                hidden_size=4096,
                num_hidden_layers=32,
                num_attention_heads=32,
                num_key_value_heads=32,
                head_dim=128,
                intermediate_size=22016,
                attention_bias=False,
                hidden_act="silu",
            ),
            keys={"attention_bias": "attention_bias"},
            values={"attention_bias": _BIASES},
            fixed={"qk_norm": True},
        ),
        _vision_language_text(model_type="qwen2_vl_text", prefix="Qwen2VL"),
        _vision_language_text(
            model_type="qwen2_5_vl_text",
            prefix="Qwen2_5_VL",
            vocab_size=152064,
            hidden_size=8192,
            intermediate_size=29568,
            num_hidden_layers=80,
            num_attention_heads=64,
            num_key_value_heads=8,
            max_window_layers=80,
        ),
        _member(
            model_type="gemma2",
            lora_targets=("q_proj", "v_proj"),
            vllm_no_float16=True,
            gguf="gemma2",
            prefix="Gemma2",
            defaults=_defaults(
                max_position_embeddings=8192,
                sliding_window=4096,
                vocab_size=256000,
                hidden_size=2304,
                num_hidden_layers=26,
                num_attention_heads=8,
                num_key_value_heads=4,
                head_dim=256,
                intermediate_size=9216,
                attention_bias=False,
                tie_word_embeddings=True,
                hidden_activation="gelu_pytorch_tanh",
                pad_token_id=0,
            ),
            keys={"attention_bias": "attention_bias"},
            values={"attention_bias": _BIASES},
            fixed={"activation": "gelu_tanh", "sandwich_norm": True, "gemma_norm": True},
            free={
                "hidden_activation",
                "use_bidirectional_attention",
                "attn_logit_softcapping",
                "final_logit_softcapping",
                "query_pre_attn_scalar",
                "sliding_window_size",
                "cache_implementation",
            },
            strict_heads=True,
        ),
        _member(
            model_type="phi3",
            gguf="phi3",
            prefix="Phi3",
            defaults=_defaults(
                max_position_embeddings=4096,
                sliding_window=None,
                vocab_size=32064,
                hidden_size=3072,
                num_hidden_layers=32,
                num_attention_heads=32,
                intermediate_size=8192,
                hidden_act="silu",
                pad_token_id=32000,
            ),
            fixed={"fused_qkv": True, "fused_gate_up": True},
            not_null=frozenset({"head_dim"}),
            free={
                "attention_bias",
                "mlp_bias",
                "embd_pdrop",
                "resid_pdrop",
                "original_max_position_embeddings",
                "full_attn_mod",
                "interpolate_factor",
                "lm_head_bias",
            },
            write=_write_phi3,
        ),
    )

    # -- checks ---------------------------------------------------------------------------
    def check(self) -> None:
        self.check_labels()
        self.check_heads(self.head_dim)
        self.check_rotary(self.head_size(self.head_dim), self.head_dim)
        self.check_turned("rotary_pct", self.rotary_pct)
        kv = self.kv
        self._divides(
            "kv_heads", self.heads, kv, "kv_heads must divide heads (query heads per group)"
        )
        if self.experts and self.mlp_bias:
            raise InvalidArgumentError(
                "mlp_bias needs a dense MLP: the experts have no biases",
                layer=self.owner(),
                field="mlp_bias",
                value=True,
                rule="mlp_bias needs a dense MLP (experts 0)",
            )
        tf.check_no_top_k(self.owner(), self.experts, self.experts_per_token)
        if self.experts and self.fused_gate_up:
            raise InvalidArgumentError(
                "fused_gate_up is the dense MLP's; the experts hold their own gate and up "
                "projections (fused in the fused layout)",
                layer=self.owner(),
                field="fused_gate_up",
                value=True,
                rule="fused_gate_up needs a dense MLP (experts 0)",
            )
        tf.check_top_k(
            self.owner(), self.experts, self.top_k, default=self.experts_per_token is None
        )
        self.check_window()

    @property
    def top_k(self) -> Dim:
        """The experts each token is sent to: experts_per_token, 2 unless given."""
        k: Dim = 2 if self.experts_per_token is None else self.experts_per_token
        return k

    inner = property(llama_inner)

    def sizes(self) -> dict[str, Dim]:
        """The sizes given, and those worked out: D = H / A, I by LLaMA's rule."""
        out = super().sizes()
        if self.experts == 0:
            out.pop("k", None)  # no router: nothing is chosen per token
        elif self.experts_per_token is None:
            out["k"] = self.top_k
        return out

    @classmethod
    def consistent(cls, arguments: dict[str, Any]) -> dict[str, Any]:
        out = super().consistent(arguments)
        if out["experts"]:
            out["fused_gate_up"] = out["mlp_bias"] = False
            if out["experts_per_token"] is not None or out["experts"] < 2:  # 2 unless given
                out["experts_per_token"] = min(out["experts_per_token"] or 2, out["experts"])
        else:
            out["experts_per_token"] = None
        return out

    # -- the tree -------------------------------------------------------------------------
    def _norm(self, size: Any) -> LlamaRMSNorm | Gemma3RMSNorm:
        """transformers' norm of the family: Gemma's times 1 + weight, in float32."""
        return Gemma3RMSNorm(size) if self.gemma_norm else LlamaRMSNorm(size)

    def _attention(self, window: int | None = None) -> Block:
        h, a, kv = self.hidden, self.heads, self.kv
        d, q_width, kv_width = self._widths()
        qkv_bias = self.attention_bias != "none"
        o_bias = self.attention_bias == "all"
        turned = None if self.rotary_pct == 1 else self.turned(d, self.rotary_pct)
        rope_q, rope_k = Rotary(a, d, turned), Rotary(kv, d, turned)
        children: dict[str, Any] = {}
        if self.fused_qkv:  # Phi-3 registers o_proj first
            children["o_proj"] = Leaf(Linear(q_width, h, bias=o_bias), role="output projection")
            children["qkv_proj"] = Leaf(
                Linear(h, q_width + 2 * kv_width, bias=qkv_bias), role="query, key and value"
            )
        else:
            children["q_proj"] = Leaf(Linear(h, q_width, bias=qkv_bias), role="query")
            children["k_proj"] = Leaf(Linear(h, kv_width, bias=qkv_bias), role="key")
            children["v_proj"] = Leaf(Linear(h, kv_width, bias=qkv_bias), role="value")
            children["o_proj"] = Leaf(Linear(q_width, h, bias=o_bias), role="output projection")
        q_steps: tuple[Any, ...] = (rope_q,)
        k_steps: tuple[Any, ...] = (rope_k,)
        if self.qk_norm:
            children["q_norm"] = Leaf(self._norm(d), role="query norm")
            children["k_norm"] = Leaf(self._norm(d), role="key norm")
            q_steps = (SplitHeads(a, d), "q_norm", rope_q)
            k_steps = (SplitHeads(kv, d), "k_norm", rope_k)
        sdpa = ScaledDotProductAttention(a, kv, d, window=window)
        if self.fused_qkv:
            split = Chunk((q_width, kv_width, kv_width))
            flow = chain("qkv_proj", split, each(q_steps, k_steps, ()), sdpa, "o_proj")
        else:
            qkv = parallel(("q_proj", *q_steps), ("k_proj", *k_steps), "v_proj")
            flow = chain(qkv, sdpa, "o_proj")
        what = f"{dim_str(a)} query heads over {dim_str(kv)} key and value heads of {dim_str(d)}"
        return Block("Attention", children, flow=flow, description=what)

    def _act(self) -> Any:
        return SiLU() if self.activation == "silu" else GELU(approximate="tanh")

    def _mlp(self) -> tuple[str, Node]:
        h, i = self.hidden, self.inner
        if self.experts != 0:
            from shapecalc.layers.transformers import Experts  # only for a mixture of experts

            layout = self.moe_layout
            experts = Leaf(
                Experts(self.experts, h, i, self.top_k, layout=layout),
                role="experts",
            )
            router = Leaf(Linear(h, self.experts, bias=False), "a score per expert", "router")
            block = Block(
                "SparseMoeBlock",
                {"gate": router, "experts": experts},
                flow=chain(parallel((), "gate"), "experts"),
                description=f"{dim_str(self.experts)} experts, {dim_str(self.top_k)} per token",
            )
            return ("mlp" if layout == "fused" else "block_sparse_moe"), block
        bias = self.mlp_bias
        if self.fused_gate_up:
            children: dict[str, Any] = {
                "gate_up_proj": Leaf(Linear(h, 2 * i, bias=bias), role="gate and up"),
                "down_proj": Leaf(Linear(i, h, bias=bias), role="down"),
            }
            flow = chain(
                "gate_up_proj", Chunk((i, i)), each(self._act(), ()), Multiply(), "down_proj"
            )
        else:
            children = {
                "gate_proj": Leaf(Linear(h, i, bias=bias), role="gate"),
                "up_proj": Leaf(Linear(h, i, bias=bias), role="up"),
                "down_proj": Leaf(Linear(i, h, bias=bias), role="down"),
            }
            flow = chain(multiply(("gate_proj", self._act()), "up_proj"), "down_proj")
        return "mlp", Block("MLP", children, flow=flow, description="gated MLP")

    def _block(self, window: int | None = None) -> Block:
        h = self.hidden
        mlp_name, mlp = self._mlp()
        children: dict[str, Any] = {
            "self_attn": self._attention(window),
            mlp_name: mlp,
            "input_layernorm": self._norm(h),
            "post_attention_layernorm": self._norm(h),
        }
        if self.sandwich_norm:
            children["pre_feedforward_layernorm"] = self._norm(h)
            children["post_feedforward_layernorm"] = self._norm(h)
            flow = chain(
                residual("input_layernorm", "self_attn", "post_attention_layernorm"),
                residual("pre_feedforward_layernorm", mlp_name, "post_feedforward_layernorm"),
            )
        else:
            flow = chain(
                residual("input_layernorm", "self_attn"),
                residual("post_attention_layernorm", mlp_name),
            )
        return Block("DecoderLayer", children, flow=flow)

    def build(self) -> Built:
        h, v = self.hidden, self.vocab
        body = Block(
            "Model",
            {
                "embed_tokens": Leaf(Embedding(v, h), "one H-vector per token", "token embedding"),
                "layers": self.windowed_stack(self._block),
                "norm": Leaf(self._norm(h), role="final norm"),
            },
            flow=chain("embed_tokens", "layers", "norm"),
        )
        return self.causal_lm("ForCausalLM", "model", body, "embed_tokens", "head")

    # -- the transformers classes of the same model -------------------------------------
    def hf_values(self) -> dict[str, Any]:
        """The sizes as a config writes them: kv heads, head_dim and the intermediate size
        worked out (Gemma's head_dim is 256 unless given), k when there are experts."""
        return {
            **super().hf_values(),
            "intermediate": self.inner,
            "experts_per_token": self.top_k,
        }

    # -- explanation ----------------------------------------------------------------------
    def explanation(self, model: Model) -> list[tuple[str, list[str]]]:
        d, q_width, kv_width = self._widths()
        a, kv, h = self.heads, self.kv, self.hidden
        groups = (
            f"{dim_str(a)} query heads share {dim_str(kv)} key and value heads"
            if self.kv_heads is not None
            else f"each of the {dim_str(a)} heads has its own queries, keys and values"
        )
        lines = [
            f"The hidden size H = {dim_str(h)} is the length of every token's vector, in and "
            "out of every block.",
            f"Attention splits it into heads of head_dim D = {dim_str(d)}: {groups}"
            + (" (grouped-query attention)" if self.kv_heads is not None else "")
            + (
                f", so qkv_proj, queries, keys and values side by side, is "
                f"({dim_str(q_width + 2 * kv_width)}, {dim_str(h)})."
                if self.fused_qkv
                else f", so q_proj is ({dim_str(q_width)}, {dim_str(h)}) and k_proj and v_proj "
                f"({dim_str(kv_width)}, {dim_str(h)}) each."
            ),
        ]
        if self.kv_heads is not None and known(a) is not None and known(kv) is not None:
            saved = 2 * (a - kv) * d * h
            lines.append(
                f"With {dim_str(kv)} key and value heads instead of {dim_str(a)}, k_proj and "
                f"v_proj hold {count_str(saved)} fewer numbers per block, and the KV cache "
                f"is {dim_str(kv)}/{dim_str(a)} of what {dim_str(a)} heads would keep."
            )
        lines.append(
            f"The MLP's intermediate size I = {dim_str(self.inner)}: "
            + (
                "gate_up_proj maps H to 2·I (gate and up side by side), "
                if self.fused_gate_up
                else "gate and up map H to I, "
            )
            + "down maps I back to H, 3·H·I numbers"
            + (f" per expert, {dim_str(self.experts)} experts" if self.experts else "")
            + "."
        )
        mixture = self.mixture_lines(model, self.experts, self.top_k) if self.experts else []
        return [
            ("What the sizes mean", lines),
            *([("Active and total", mixture)] if mixture else []),
            (
                "Every matrix of one block",
                self.block_lines(model, self.in_body("model", "layers")),
            ),
        ]


llama = LLaMA.function_for()
