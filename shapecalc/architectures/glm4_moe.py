"""``shapecalc glm4-moe``: GLM-4.5 and GLM-4.5-Air, named as ``transformers``' ``Glm4Moe``
classes name them.

DeepSeek-V3's mixture (a dense first layer, then routed experts beside shared experts, a
router with a correction bias choosing within groups) under grouped-query attention whose
heads turn only part of their numbers by rotary positions, with optional per-head q and k
norms and biases on q, k and v.
"""

from __future__ import annotations

from typing import Any, ClassVar

from shapecalc.architectures import _moe
from shapecalc.architectures import _transformer as tf
from shapecalc.architectures._moe import MOE_KEYS, SharedExpertsLM, mtp_notes
from shapecalc.architectures._transformer import GroupedQueryLM
from shapecalc.core.declare import Reference, flag, size
from shapecalc.core.dims import dim_str
from shapecalc.core.flow import chain, parallel
from shapecalc.core.frozen import frozen
from shapecalc.core.hfmap import HFType
from shapecalc.core.model import Model
from shapecalc.core.tree import Block, Leaf
from shapecalc.layers._linear import Linear
from shapecalc.layers._norm import LlamaRMSNorm
from shapecalc.layers.functional import Rotary, ScaledDotProductAttention, SplitHeads

__all__ = ["Glm4Moe", "glm4_moe"]


def _read(f: Any, out: dict[str, Any]) -> None:
    """The padding id inside the vocabulary; without a head_dim, ⌊H / A⌋ as transformers
    takes it (GLM-4.5's heads need not divide the hidden size); a head_dim of H / A said in
    fewer letters."""
    f.padding("pad_token_id", out["vocab"], "token embedding (vocab_size)")
    if out["head_dim"] is None:  # Glm4MoeAttention: getattr(config, "head_dim", H // A)
        out["head_dim"] = out["hidden"] // out["heads"]
        if not out["head_dim"]:
            raise f.fail(
                "num_attention_heads",
                out["heads"],
                "num_attention_heads must be at most hidden_size without a head_dim "
                "(head_dim = hidden_size // num_attention_heads)",
                f"{out['hidden']} // {out['heads']} = 0",
            )
    if out["head_dim"] * out["heads"] == out["hidden"]:
        out["head_dim"] = None


def _write(model: Any, reference: Reference) -> Reference | None:
    """The padding id 0; one group of every expert when the model has no groups (the
    router always routes within groups; one is no limit)."""
    config = dict(reference.config)
    if config.get("n_group") is None:
        config["n_group"] = config["topk_group"] = 1
    return tf.first_padding(model, Reference(reference.model, reference.config_class, config))


@frozen(kw_only=True)
class Glm4Moe(SharedExpertsLM, GroupedQueryLM):
    """A GLM-4.5 decoder: token embedding (V × H), L blocks of RMSNorm, grouped-query
    attention, RMSNorm and an MLP (dense in the first F blocks, a mixture after), a final
    RMSNorm and a head (V × H).

    Attention: A query heads of head_dim D share K key and value heads: q_proj (A·D, H),
    k_proj and v_proj (K·D, H) each, with biases with attention_bias, o_proj (H, A·D) with
    none; rotary positions turn partial_rotary_factor of each head (half by default).
    A mixture layer: E routed experts of M (3·H·M each), k per token, a router (E × H, and
    the correction bias buffer) and shared experts of M·Ns.
    """

    command: ClassVar[str] = "glm4-moe"
    function: ClassVar[str] = "glm4_moe"
    title: ClassVar[str] = "GLM-4.5 mixture-of-experts decoder"
    example: ClassVar[str] = (
        "--vocab 151552 --hidden 4096 --layers 46 --heads 96 --kv-heads 8 --head-dim 128 "
        "--intermediate 10944 --moe-intermediate 1408 --experts 128 --experts-per-token 8 "
        "--dense-layers 1 --attention-bias"
    )
    budget: ClassVar[str] = "110B"
    explains: ClassVar[str] = (
        "Explain the attention (grouped heads, partial rotary), the experts (routed, shared, "
        "active and total) and every matrix of a block."
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
        "experts",
        "experts_per_token",
        "shared_experts",
    )

    vocab: Any = tf.vocab()
    hidden: Any = tf.hidden()
    layers: Any = tf.layers()
    heads: Any = tf.heads()
    kv_heads: Any = tf.kv_heads()
    head_dim: Any = tf.head_dim()
    intermediate: Any = size("I", "The dense layers' MLP size (intermediate_size).")
    moe_intermediate: Any = _moe.moe_intermediate()
    experts: Any = _moe.experts()
    experts_per_token: Any = _moe.experts_per_token()
    shared_experts: Any = _moe.shared_experts()
    dense_layers: Any = _moe.dense_layers(1)
    expert_groups: Any = _moe.expert_groups()
    topk_groups: Any = _moe.topk_groups()
    attention_bias: bool = flag("Biases of q_proj, k_proj and v_proj (attention_bias).")
    qk_norm: bool = flag("An RMSNorm of head_dim on each head's queries and keys (use_qk_norm).")
    rotary_pct: float = tf.rotary_fraction("partial_rotary_factor", 0.5)
    tie_weights: bool = flag("The head is the token embedding (tie_word_embeddings).")
    mtp_layers: Any = size(
        "P",
        "Multi-token prediction layers the checkpoint holds after the last "
        "(num_nextn_predict_layers): not built, as transformers does not load them; a GGUF "
        "conversion writes them (--weights q4_k_m prices them).",
        0,
        minimum=0,
        names=False,
        solvable=False,
    )
    moe_layout: str = _moe.moe_layout()
    head: str = tf.lm_head("Glm4MoeForCausalLM", "Glm4MoeModel")

    hf: ClassVar[tuple[HFType, ...]] = (
        HFType(
            model_type="glm4_moe",
            peft_moe="gated",
            gguf="glm4moe",
            config_class="Glm4MoeConfig",
            classes=tf.head_classes("Glm4Moe"),
            base="model",
            keys={
                **tf.SIZE_KEYS,
                **MOE_KEYS,
                "kv_heads": "num_key_value_heads",
                "head_dim": "head_dim",
                "attention_bias": "attention_bias",
                "qk_norm": "use_qk_norm",
                "rotary_pct": "partial_rotary_factor",
                "mtp_layers": "num_mtp_layers",
            },
            defaults={
                "vocab_size": 151552,
                "hidden_size": 4096,
                "intermediate_size": 10944,
                "num_hidden_layers": 46,
                "num_attention_heads": 96,
                "num_key_value_heads": 8,
                "head_dim": None,
                "tie_word_embeddings": False,
                "attention_bias": False,
                "moe_intermediate_size": 1408,
                "num_experts_per_tok": 8,
                "n_shared_experts": 1,
                "n_routed_experts": 128,
                "n_group": 1,
                "topk_group": 1,
                "first_k_dense_replace": 1,
                "use_qk_norm": False,
                "partial_rotary_factor": 0.5,
                "num_mtp_layers": 1,
            },
            aliases={
                "num_local_experts": "n_routed_experts",
                "num_nextn_predict_layers": "num_mtp_layers",
            },
            free=frozenset(
                {
                    "max_position_embeddings",
                    "rms_norm_eps",
                    "rope_parameters",
                    "rope_scaling",
                    "rope_theta",
                    "attention_dropout",
                    "routed_scaling_factor",
                    "norm_topk_prob",
                    "output_router_logits",
                    "topk_method",
                    "moe_layer_freq",
                    "pretraining_tp",
                }
            ),
            not_null=frozenset({"n_group", "topk_group", "head_dim"}),
            only={"hidden_act": (("silu",), "the MLPs and experts here are SwiGLU")},
            dropped=(r"rotary_emb\.inv_freq", r"model\.layers\.92.*", r"model\.layers\.46.*"),
            checkpoint={"moe_layout": "checkpoint"},
            read=_read,
            write=_write,
            notes=mtp_notes,
        ),
    )

    # -- checks ---------------------------------------------------------------------------
    def check(self) -> None:
        self.check_experts()
        self.check_heads(self.head_dim)
        self.check_rotary(self.head_size(self.head_dim), self.head_dim)
        self.check_turned("rotary_pct", self.rotary_pct)
        self._divides(
            "kv_heads", self.heads, self.kv, "kv_heads must divide heads (query heads per group)"
        )

    @classmethod
    def consistent(cls, arguments: dict[str, Any]) -> dict[str, Any]:
        return cls.consistent_experts(super().consistent(arguments))

    # -- the tree -------------------------------------------------------------------------
    def _attention(self) -> Block:
        h, a, kv = self.hidden, self.heads, self.kv
        d, q_width, kv_width = self._widths()
        bias = self.attention_bias
        turned = None if self.rotary_pct == 1 else self.turned(d, self.rotary_pct)
        rope_q, rope_k = Rotary(a, d, turned), Rotary(kv, d, turned)
        children: dict[str, Any] = {
            "q_proj": Leaf(Linear(h, q_width, bias=bias), role="query"),
            "k_proj": Leaf(Linear(h, kv_width, bias=bias), role="key"),
            "v_proj": Leaf(Linear(h, kv_width, bias=bias), role="value"),
            "o_proj": Leaf(Linear(q_width, h, bias=False), role="output projection"),
        }
        q_steps: tuple[Any, ...] = (rope_q,)
        k_steps: tuple[Any, ...] = (rope_k,)
        if self.qk_norm:
            children["q_norm"] = Leaf(LlamaRMSNorm(d), role="query norm")
            children["k_norm"] = Leaf(LlamaRMSNorm(d), role="key norm")
            q_steps = (SplitHeads(a, d), "q_norm", rope_q)
            k_steps = (SplitHeads(kv, d), "k_norm", rope_k)
        qkv = parallel(("q_proj", *q_steps), ("k_proj", *k_steps), "v_proj")
        flow = chain(qkv, ScaledDotProductAttention(a, kv, d), "o_proj")
        what = f"{dim_str(a)} query heads over {dim_str(kv)} key and value heads of {dim_str(d)}"
        return Block("Attention", children, flow=flow, description=what)

    # -- explanation ----------------------------------------------------------------------
    def explanation(self, model: Model) -> list[tuple[str, list[str]]]:
        d, q_width, kv_width = self._widths()
        a, kv, h = self.heads, self.kv, self.hidden
        turned = self.turned(d, self.rotary_pct)
        attention = [
            f"Attention: A = {dim_str(a)} query heads of head_dim D = {dim_str(d)} share "
            f"K = {dim_str(kv)} key and value heads, so q_proj is ({dim_str(q_width)}, "
            f"{dim_str(h)}) and k_proj and v_proj ({dim_str(kv_width)}, {dim_str(h)}) each"
            + (", with biases" if self.attention_bias else "")
            + "; o_proj has no bias.",
            f"Rotary positions turn {dim_str(turned)} of each head's {dim_str(d)} numbers "
            f"(partial_rotary_factor {self.rotary_pct:g}); the rest carry no position.",
        ]
        if self.qk_norm:
            attention.append("q_norm and k_norm: an RMSNorm of D on every head's queries and keys.")
        return [
            ("Attention", attention),
            ("The experts", self.expert_lines()),
            ("Active and total", self.mixture_lines(model, self.experts, self.experts_per_token)),
            *self.blocks(model, self.in_body("model", "layers")),
        ]


glm4_moe = Glm4Moe.function_for()
