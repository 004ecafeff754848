"""``shapecalc deepseek``: DeepSeek-V2 and V3 (and R1, and the models that copy their
layout), named as ``transformers`` names them.

A decoder with multi-head latent attention (keys and values made from one small latent
per token, queries through a low-rank pair of projections), a few dense layers first, then
in every layer a mixture of routed experts beside shared experts.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from shapecalc.architectures import _moe
from shapecalc.architectures import _transformer as tf
from shapecalc.architectures._moe import MOE_KEYS, SharedExpertsLM, mtp_notes
from shapecalc.core.declare import Built, Reference, flag, size
from shapecalc.core.dims import Dim, count_str, dim_str, known
from shapecalc.core.errors import InvalidArgumentError
from shapecalc.core.flow import chain, each, parallel
from shapecalc.core.frozen import frozen
from shapecalc.core.hfmap import HFType
from shapecalc.core.model import Model
from shapecalc.core.tree import Block, Leaf
from shapecalc.layers._function import Chunk
from shapecalc.layers._linear import Linear
from shapecalc.layers._norm import LlamaRMSNorm
from shapecalc.layers.latent import LatentAttention

__all__ = ["DeepSeek", "deepseek"]

_FREE = frozenset(
    {
        "max_position_embeddings",
        "rms_norm_eps",
        "rope_parameters",
        "rope_scaling",
        "rope_theta",
        "rope_interleave",
        "attention_dropout",
        "pretraining_tp",
        "routed_scaling_factor",
        "norm_topk_prob",
        "output_router_logits",
        "aux_loss_alpha",
        "seq_aux",
        "scoring_func",
        "ep_size",
        "head_dim",  # DeepseekV2Config and V3 set it to qk_rope_head_dim, whatever is given
        "qk_head_dim",
    }
)


def _read(f: Any, out: dict[str, Any]) -> None:
    """The padding id inside the vocabulary; every head its own keys (transformers'
    attention repeats MLA's per-head keys heads // num_key_value_heads times, which must be
    once); DeepSeek-V2's groups only where its router uses them."""
    f.padding("pad_token_id", out["vocab"], "token embedding (vocab_size)")
    kv = f.raw("num_key_value_heads")
    heads = out["heads"]
    if kv is not None and (
        isinstance(kv, bool) or not isinstance(kv, int) or kv < 1 or heads // kv != 1
    ):
        raise f.fail(
            "num_key_value_heads",
            kv,
            "num_attention_heads // num_key_value_heads must be 1: multi-head latent "
            "attention makes every head's keys and values, which transformers repeats "
            "that many times",
            f"{heads} // {kv}",
        )
    if f.family.model_type == "deepseek_v2" and f.raw("topk_method") != "group_limited_greedy":
        out["expert_groups"] = out["topk_groups"] = None  # greedy: the groups change nothing


def _write(model: Any, reference: Reference) -> Reference | None:
    """The padding id 0; as many key and value heads as heads; DeepSeek-V2 routes within
    groups when it has them; V3 always does (one group of all experts is no limit)."""
    config = {**reference.config, "num_key_value_heads": reference.config["num_attention_heads"]}
    if reference.config_class == "DeepseekV2Config":
        grouped = config.get("n_group") is not None
        config["topk_method"] = "group_limited_greedy" if grouped else "greedy"
    elif config.get("n_group") is None:
        config["n_group"] = config["topk_group"] = 1
    return tf.first_padding(model, Reference(reference.model, reference.config_class, config))


def _keys(**extra: str) -> dict[str, str]:
    return {
        **tf.SIZE_KEYS,
        **MOE_KEYS,
        "q_lora_rank": "q_lora_rank",
        "kv_lora_rank": "kv_lora_rank",
        "nope_dim": "qk_nope_head_dim",
        "rope_dim": "qk_rope_head_dim",
        "value_dim": "v_head_dim",
        "attention_bias": "attention_bias",
        **tf.LABEL_KEYS,
        **extra,
    }


@frozen(kw_only=True)
class DeepSeek(SharedExpertsLM):
    """A DeepSeek-V2/V3 decoder: token embedding (V × H), L blocks of RMSNorm, multi-head
    latent attention, RMSNorm and an MLP (dense in the first F blocks, a mixture of experts
    after), a final RMSNorm and a head (V × H).

    Latent attention: queries through q_a_proj (Q × H), an RMSNorm and q_b_proj
    (A·(Dn + Dr) × Q), or one q_proj without q_lora_rank; keys and values from one latent
    of R numbers per token: kv_a_proj_with_mqa ((R + Dr) × H) makes it and one rotated key
    of Dr shared by every head, kv_b_proj (A·(Dn + Dv) × R) each head's unrotated key part
    and value; o_proj (H × A·Dv). A mixture layer: E routed experts of M (3·H·M each), k
    per token, a router (E × H) and shared experts of M·Ns.

        >>> m = deepseek(vocab=102400, hidden=2048, layers=27, heads=16, intermediate=10944,
        ...     moe_intermediate=1408, experts=64, experts_per_token=6, shared_experts=2,
        ...     dense_layers=1, kv_lora_rank=512, correction_bias=False)
        >>> m.total, m.active
        (15706484224, 2661150208)
    """

    command: ClassVar[str] = "deepseek"
    function: ClassVar[str] = "deepseek"
    title: ClassVar[str] = "DeepSeek-style decoder"
    example: ClassVar[str] = (
        "--vocab 102400 --hidden 2048 --layers 27 --heads 16 --intermediate 10944 "
        "--moe-intermediate 1408 --experts 64 --experts-per-token 6 --shared-experts 2 "
        "--dense-layers 1 --no-correction-bias"
    )
    budget: ClassVar[str] = "16B"
    explains: ClassVar[str] = (
        "Explain latent attention (its ranks, the shared rotated key, what a cache could "
        "keep), the experts (routed, shared, active and total) and every matrix of a block."
    )
    size_order: ClassVar[tuple[str, ...]] = (
        "vocab",
        "hidden",
        "layers",
        "heads",
        "q_lora_rank",
        "kv_lora_rank",
        "nope_dim",
        "rope_dim",
        "value_dim",
        "intermediate",
        "moe_intermediate",
        "experts",
        "experts_per_token",
        "shared_experts",
        "labels",
    )

    vocab: Any = tf.vocab()
    hidden: Any = tf.hidden()
    layers: Any = tf.layers()
    heads: Any = size(
        "A", "Attention heads, each with its own queries, keys and values.", solvable=False
    )
    intermediate: Any = size("I", "The dense layers' MLP size (intermediate_size).")
    q_lora_rank: Any = size(
        "Q",
        "The queries' low rank (q_lora_rank): q_a_proj to it, q_b_proj from it; unset: one "
        "q_proj (DeepSeek-V2-Lite).",
        None,
        unset=None,
        solvable=False,
    )
    kv_lora_rank: Any = size(
        "R", "The latent keys and values are made from (kv_lora_rank).", 512, solvable=False
    )
    nope_dim: Any = size(
        "Dn",
        "Each head's query and key numbers without positions (qk_nope_head_dim).",
        128,
        solvable=False,
    )
    rope_dim: Any = size(
        "Dr",
        "Each head's query numbers turned by rotary positions, and the rotated key every "
        "head shares (qk_rope_head_dim).",
        64,
        solvable=False,
    )
    value_dim: Any = size("Dv", "Each head's value width (v_head_dim).", 128, solvable=False)
    moe_intermediate: Any = _moe.moe_intermediate()
    experts: Any = _moe.experts()
    experts_per_token: Any = _moe.experts_per_token()
    shared_experts: Any = _moe.shared_experts()
    dense_layers: Any = _moe.dense_layers(0)
    expert_groups: Any = _moe.expert_groups()
    topk_groups: Any = _moe.topk_groups()
    correction_bias: bool = flag(
        "The router's e_score_correction_bias buffer and sigmoid scores (DeepSeek-V3); "
        "without: softmax scores and no buffer (V2).",
        True,
    )
    attention_bias: bool = flag(
        "Biases of q_a_proj (or none with q_proj), kv_a_proj_with_mqa and o_proj (attention_bias)."
    )
    mlp_bias: bool = flag("Biases of the dense and shared MLPs' projections (V2's mlp_bias).")
    tie_weights: bool = flag("The head is the token embedding (tie_word_embeddings).")
    moe_layout: str = _moe.moe_layout()
    head: str = tf.lm_head("DeepseekV3ForCausalLM", "DeepseekV3Model", "seq-cls", "token-cls")
    labels: Any = tf.labels()

    hf: ClassVar[tuple[HFType, ...]] = (
        HFType(
            model_type="deepseek_v3",
            peft_moe="gated",
            gguf="deepseek2",
            config_class="DeepseekV3Config",
            classes=tf.head_classes("DeepseekV3", "seq-cls", "token-cls"),
            base="model",
            keys=_keys(),
            defaults={
                "vocab_size": 129280,
                "hidden_size": 7168,
                "intermediate_size": 18432,
                "moe_intermediate_size": 2048,
                "num_hidden_layers": 61,
                "num_attention_heads": 128,
                "num_key_value_heads": 128,
                "n_shared_experts": 1,
                "n_routed_experts": 256,
                "kv_lora_rank": 512,
                "q_lora_rank": 1536,
                "qk_rope_head_dim": 64,
                "v_head_dim": 128,
                "qk_nope_head_dim": 128,
                "n_group": 8,
                "topk_group": 4,
                "num_experts_per_tok": 8,
                "first_k_dense_replace": 3,
                "tie_word_embeddings": False,
                "attention_bias": False,
                "num_labels": None,
            },
            fixed={"correction_bias": True, "mlp_bias": False},
            aliases={"num_local_experts": "n_routed_experts"},
            free=_FREE
            | {"num_key_value_heads", "num_nextn_predict_layers", "num_mtp_layers", "mlp_bias"}
            | {"topk_method", "moe_layer_freq"},
            not_null=frozenset({"n_group", "topk_group"}),
            nullable=frozenset({"q_lora_rank"}),
            only={"hidden_act": (("silu",), "the MLPs and experts here are SwiGLU")},
            dropped=(r"rotary_emb\.inv_freq", r"model\.layers\.61.*"),
            checkpoint={"moe_layout": "checkpoint"},
            read=_read,
            write=_write,
            notes=mtp_notes,
        ),
        HFType(
            model_type="deepseek_v2",
            peft_moe="gated",
            gguf="deepseek2",
            config_class="DeepseekV2Config",
            classes=tf.head_classes("DeepseekV2", "seq-cls"),
            base="model",
            keys=_keys(mlp_bias="mlp_bias"),
            defaults={
                "vocab_size": 102400,
                "hidden_size": 4096,
                "intermediate_size": 11008,
                "moe_intermediate_size": 1407,
                "num_hidden_layers": 32,
                "num_attention_heads": 32,
                "num_key_value_heads": None,
                "n_shared_experts": 2,
                "n_routed_experts": 64,
                "kv_lora_rank": 512,
                "q_lora_rank": 1536,
                "qk_rope_head_dim": 64,
                "v_head_dim": 128,
                "qk_nope_head_dim": 128,
                "n_group": None,
                "topk_group": None,
                "topk_method": "greedy",
                "num_experts_per_tok": None,
                "first_k_dense_replace": 0,
                "tie_word_embeddings": False,
                "attention_bias": False,
                "mlp_bias": False,
                "num_labels": None,
            },
            fixed={"correction_bias": False},
            aliases={"num_experts": "n_routed_experts"},
            free=_FREE | {"num_key_value_heads", "moe_layer_freq", "use_mla"},
            only={
                "topk_method": (
                    ("greedy", "group_limited_greedy"),
                    "DeepseekV2TopkRouter routes by one of these two",
                ),
                "hidden_act": (("silu",), "the MLPs and experts here are SwiGLU"),
            },
            strict_heads=True,
            nullable=frozenset({"q_lora_rank"}),
            dropped=(r"rotary_emb\.inv_freq",),
            checkpoint={"moe_layout": "checkpoint"},
            read=_read,
            write=_write,
            notes=mtp_notes,
        ),
    )

    # -- checks ---------------------------------------------------------------------------
    def check(self) -> None:
        self.check_labels()
        self.check_experts()
        self._divides(
            "heads",
            self.hidden,
            self.heads,
            "heads must divide hidden (DeepseekV2Config's rule)",
        )
        rope = known(self.rope_dim)
        if rope is not None and rope % 2:
            self._refuse(
                "rope_dim",
                rope,
                "rope_dim must be even (rotary positions turn pairs of numbers)",
                f"got {rope}",
            )
        if self.head == "token-cls" and not self.correction_bias:
            raise InvalidArgumentError(
                "--head token-cls is DeepSeek-V3's (DeepseekV3ForTokenClassification); "
                "V2 (no correction bias) has seq-cls only",
                layer=self.owner(),
                field="head",
                value=self.head,
                rule="token-cls needs correction_bias (DeepSeek-V3)",
            )
        if self.correction_bias and self.mlp_bias:
            raise InvalidArgumentError(
                "mlp_bias is DeepSeek-V2's; V3's MLPs (correction bias) have none",
                layer=self.owner(),
                field="mlp_bias",
                value=True,
                rule="mlp_bias needs correction_bias off (DeepSeek-V2)",
            )

    def sizes(self) -> dict[str, Dim]:
        """The sizes given; no head_dim D (each head's widths are Dn, Dr and Dv)."""
        out = super().sizes()
        out.pop("D", None)
        return out

    @classmethod
    def consistent(cls, arguments: dict[str, Any]) -> dict[str, Any]:
        out = super().consistent(arguments)
        out["rope_dim"] += out["rope_dim"] % 2
        if out["correction_bias"]:
            out["mlp_bias"] = False
        elif out["head"] == "token-cls":
            out["head"] = "seq-cls"
        return cls.consistent_experts(out)

    # -- the tree -------------------------------------------------------------------------
    def _attention(self) -> Block:
        h, a, q = self.hidden, self.heads, self.q_lora_rank
        dn, dr, dv, r = self.nope_dim, self.rope_dim, self.value_dim, self.kv_lora_rank
        bias = self.attention_bias
        children: dict[str, Any] = {}
        if q is None:
            children["q_proj"] = Leaf(Linear(h, a * (dn + dr), bias=False), role="query")
            q_steps: tuple[Any, ...] = ("q_proj",)
        else:
            children["q_a_proj"] = Leaf(Linear(h, q, bias=bias), role="query down to its rank")
            children["q_a_layernorm"] = Leaf(LlamaRMSNorm(q), role="query latent norm")
            children["q_b_proj"] = Leaf(
                Linear(q, a * (dn + dr), bias=False), role="query up to the heads"
            )
            q_steps = ("q_a_proj", "q_a_layernorm", "q_b_proj")
        children["kv_a_proj_with_mqa"] = Leaf(
            Linear(h, r + dr, bias=bias), role="key-value latent and shared rotated key"
        )
        children["kv_a_layernorm"] = Leaf(LlamaRMSNorm(r), role="key-value latent norm")
        children["kv_b_proj"] = Leaf(
            Linear(r, a * (dn + dv), bias=False), role="keys and values up to the heads"
        )
        children["o_proj"] = Leaf(Linear(a * dv, h, bias=bias), role="output projection")
        kv_steps = (
            "kv_a_proj_with_mqa",
            Chunk((r, dr)),
            each(("kv_a_layernorm", "kv_b_proj"), ()),
        )
        attend = LatentAttention(a, dn, dr, dv, r)
        flow = chain(parallel(q_steps, kv_steps), attend, "o_proj")
        what = f"{dim_str(a)} heads, keys and values from a latent of {dim_str(r)} per token"
        return Block("Attention", children, flow=flow, description=what)

    def build(self) -> Built:
        built = super().build()
        cache = (
            "inference state: transformers' cache holds the compressed latent and the rotated "
            f"key, R + Dr = {dim_str(self.kv_lora_rank + self.rope_dim)} numbers per position "
            "and layer (checked on a forward with use_cache), not every head's keys and values"
        )
        return dataclasses.replace(built, notes=(*built.notes, cache))

    # -- explanation ----------------------------------------------------------------------
    def explanation(self, model: Model) -> list[tuple[str, list[str]]]:
        a, h, r = self.heads, self.hidden, self.kv_lora_rank
        dn, dr, dv = self.nope_dim, self.rope_dim, self.value_dim
        latent = [
            f"Multi-head latent attention: each of the A = {dim_str(a)} heads has queries and "
            f"keys of Dn + Dr = {dim_str(dn + dr)} numbers ({dim_str(dn)} without positions, "
            f"{dim_str(dr)} turned by rotary positions) and values of Dv = {dim_str(dv)}.",
            f"Keys and values come from one latent of R = {dim_str(r)} numbers per token: "
            f"kv_a_proj_with_mqa maps H to R + Dr, the latent and one rotated key of "
            f"{dim_str(dr)} that every head shares; kv_b_proj maps the latent to each head's "
            f"unrotated key part and value, A·(Dn + Dv) = {dim_str(a * (dn + dv))}.",
            (
                f"Queries go through a low rank Q = {dim_str(self.q_lora_rank)}: q_a_proj "
                f"(Q × H), an RMSNorm, q_b_proj (A·(Dn + Dr) × Q)."
                if self.q_lora_rank is not None
                else f"Queries come from one q_proj, A·(Dn + Dr) × H = "
                f"{dim_str(a * (dn + dr))} × {dim_str(h)}."
            ),
        ]
        per_token = r + dr
        latent.append(
            f"What a cache must keep per token and layer: the latent and the rotated key, "
            f"R + Dr = {count_str(per_token)} numbers, instead of every head's keys and values, "
            f"A·(Dn + Dr + Dv) = {count_str(a * (dn + dr + dv))}: that is what MLA saves. "
            "transformers' cache holds the latent and the rotated key (the KV cache line counts "
            "them), and makes each head's keys and values again at every step."
        )
        return [
            ("Latent attention", latent),
            ("The experts", self.expert_lines()),
            ("Active and total", self.mixture_lines(model, self.experts, self.experts_per_token)),
            *self.blocks(model, self.in_body("model", "layers")),
        ]


deepseek = DeepSeek.function_for()
