"""``shapecalc gpt-oss``: OpenAI's gpt-oss decoders (gpt-oss-20b, gpt-oss-120b), named as
``transformers`` names them (model type ``gpt_oss``).

One block: RMSNorm, attention with rotary positions, biased projections, a head_dim of its
own and a learned sink logit per head (``self_attn.sinks``), RMSNorm, and a mixture of
experts: a biased router (``mlp.router``) sends each token to the top k of E experts, each
a biased MLP with a clamped SwiGLU. Layers take turns attending over a sliding window and
over the whole context, which changes no tensor. The Hub's checkpoints store the experts
MXFP4-quantized (``--moe-layout checkpoint``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from shapecalc.architectures import _transformer as tf
from shapecalc.architectures._transformer import GroupedQueryLM
from shapecalc.core.choices import EXPERT_LAYOUTS
from shapecalc.core.declare import Built, choice, flag, size
from shapecalc.core.dims import Dim, count_str, dim_str, known
from shapecalc.core.errors import InvalidArgumentError
from shapecalc.core.flow import chain, parallel, residual
from shapecalc.core.frozen import frozen
from shapecalc.core.hfmap import HFType
from shapecalc.core.model import Model
from shapecalc.core.tree import Block, Leaf
from shapecalc.layers._embedding import Embedding
from shapecalc.layers._linear import Linear
from shapecalc.layers._norm import RMSNorm
from shapecalc.layers.functional import Rotary
from shapecalc.layers.transformers import MXFP4_BLOCK, GptOssExperts, SinkAttention, Sinks

#: experts_per_token unless given (num_experts_per_tok's default)
_DEFAULT_TOP_K = 4

__all__ = ["GptOss", "gpt_oss"]

#: transformers' default window (every other layer slides, the first first)
_WINDOW = 128


def _read(f: Any, out: dict[str, Any]) -> None:
    """The padding id inside the vocabulary; the same shapes in fewer letters: a head_dim
    of H / A, as many kv heads as heads."""
    f.padding("pad_token_id", out["vocab"], "token embedding (vocab_size)")
    if out["head_dim"] is not None and out["head_dim"] * out["heads"] == out["hidden"]:
        out["head_dim"] = None
    if out["kv_heads"] == out["heads"]:
        out["kv_heads"] = None


@frozen(kw_only=True)
class GptOss(tf.Windowed, GroupedQueryLM):
    """A gpt-oss decoder: token embedding (V × H), L blocks of RMSNorm, attention with
    sinks, RMSNorm and a mixture of E experts, a final RMSNorm and a head (V × H).

    Attention: A query heads of head_dim D over K key and value heads, every projection
    biased (q_proj (A·D, H), k_proj and v_proj (K·D, H), o_proj (H, A·D)), and ``sinks``
    (A,): a learned logit per head that takes part in the softmax as one more column. The
    router (E, H) and its bias (E,) send each token to k experts; each expert holds
    gate_up_proj (H, 2·I), gate and up interleaved, stored (in, out), its bias (2·I),
    down_proj (I, H) and its bias (H): 3·H·I + 2·I + H numbers.

        >>> m = gpt_oss(vocab=201088, hidden=2880, layers=24, heads=64, kv_heads=8,
        ...             head_dim=64, intermediate=2880, experts=32)
        >>> m.total, m.active
        (20914757184, 4187440704)
    """

    command: ClassVar[str] = "gpt-oss"
    function: ClassVar[str] = "gpt_oss"
    title: ClassVar[str] = "gpt-oss decoder (mixture of experts, attention sinks)"
    #: gpt-oss-20b's sizes with 32 heads of H / A = 90 and no grouped queries: the
    #: published model's own (64 heads of 64 over 8 kv heads) has a formula too long for a
    #: table of 140 columns; it is the doctest above, and `shapecalc hf` reads its config
    example: ClassVar[str] = (
        "--vocab 201088 --hidden 2880 --layers 24 --heads 32 --intermediate 2880 --experts 32"
    )
    budget: ClassVar[str] = "21B"
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
    intermediate: Any = size("I", "Each expert's intermediate size (intermediate_size).")
    experts: Any = size(
        "E",
        "Experts of each block's mixture (num_local_experts).",
        solvable=False,
    )
    experts_per_token: Any = size(
        "k",
        "Experts each token is sent to by the router (num_experts_per_tok).",
        None,
        unset=None,
        default_text=str(_DEFAULT_TOP_K),
        solvable=False,
        names=False,
    )
    attention_bias: bool = flag(
        "Biases of the attention's four projections (attention_bias).", True
    )
    moe_layout: str = choice(
        EXPERT_LAYOUTS,
        "How the experts are named: as transformers 5 holds them (gate_up_proj (E, H, 2·I) "
        "and down_proj (E, I, H) with their biases), or as the Hub's checkpoints store "
        "them, MXFP4-quantized (gate_up_proj_blocks and _scales, uint8, counted as stored).",
        "fused",
    )
    tie_weights: bool = flag("The head is the token embedding (tie_word_embeddings).")
    head: str = tf.lm_head("GptOssForCausalLM", "GptOssModel", "seq-cls", "token-cls")
    labels: Any = tf.labels()
    sliding_window: Any = tf.sliding_window(_WINDOW)
    layer_types: Any = tf.window_layer_types(
        "every other layer slides, layer 0 first (transformers' default)"
    )

    hf: ClassVar[tuple[HFType, ...]] = (
        HFType(
            model_type="gpt_oss",
            gguf="gpt-oss",
            config_class="GptOssConfig",
            classes=tf.head_classes("GptOss", "seq-cls", "token-cls"),
            base="model",
            keys={
                **tf.SIZE_KEYS,
                **tf.LABEL_KEYS,
                "kv_heads": "num_key_value_heads",
                "head_dim": "head_dim",
                "experts": "num_local_experts",
                "experts_per_token": "num_experts_per_tok",
                "attention_bias": "attention_bias",
            },
            defaults={
                "sliding_window": _WINDOW,
                "vocab_size": 201088,
                "hidden_size": 2880,
                "num_hidden_layers": 36,
                "num_attention_heads": 64,
                "num_key_value_heads": 8,
                "head_dim": 64,
                "intermediate_size": 2880,
                "num_local_experts": 128,
                "num_experts_per_tok": 4,
                "attention_bias": True,
                "tie_word_embeddings": False,
            },
            aliases={"num_experts": "num_local_experts"},
            free=frozenset(
                {
                    "max_position_embeddings",
                    "rms_norm_eps",
                    "rope_parameters",
                    "rope_scaling",
                    "rope_theta",
                    "attention_dropout",
                    "sliding_window",  # no tensor: read for the cache by the window rule
                    "layer_types",
                    "hidden_act",
                    "swiglu_alpha",
                    "swiglu_limit",
                    "router_aux_loss_coef",
                    "output_router_logits",
                    # the original release's names, which transformers' class does not read
                    "experts_per_token",
                    "initial_context_length",
                }
            ),
            not_null=frozenset({"head_dim", "num_key_value_heads"}),
            dropped=(r"rotary_emb\.inv_freq",),
            checkpoint={"moe_layout": "checkpoint"},
            quantized={
                "mxfp4": "the checkpoint stores the experts' weights as MXFP4 (blocks of 32 "
                "numbers, two per byte, and a scale per block: `--layout checkpoint` lists "
                "them); counted here as transformers builds the model, in bf16"
            },
            **tf.windowed_hooks("alternate", _read, tf.first_padding),
        ),
    )

    @classmethod
    def default_pattern(cls, arguments: Mapping[str, Any]) -> tuple[str, ...] | None:
        """Every other layer slides, layer 0 first, when there is a window."""
        if arguments.get("sliding_window") is None:
            return None
        return ("sliding_attention", "full_attention")

    # -- checks ---------------------------------------------------------------------------
    def check(self) -> None:
        self.check_labels()
        self.check_heads(self.head_dim)
        self.check_rotary(self.head_size(self.head_dim), self.head_dim)
        self._divides(
            "kv_heads", self.heads, self.kv, "kv_heads must divide heads (query heads per group)"
        )
        default = self.experts_per_token is None  # 4 exceeds the experts: say so of those
        tf.check_top_k(self.owner(), self.experts, self.top_k, default=default)
        self.check_window()
        if self.moe_layout == "checkpoint":
            for name in ("hidden", "intermediate"):
                n = known(getattr(self, name))
                if n is not None and n % MXFP4_BLOCK:
                    rule = (
                        f"{name} is a multiple of {MXFP4_BLOCK} in the checkpoint layout "
                        f"(MXFP4 stores the experts in blocks of {MXFP4_BLOCK} numbers)"
                    )
                    raise InvalidArgumentError(
                        f"{rule} ({n} % {MXFP4_BLOCK} = {n % MXFP4_BLOCK})",
                        layer=self.owner(),
                        field=name,
                        value=n,
                        rule=rule,
                    )

    @classmethod
    def consistent(cls, arguments: dict[str, Any]) -> dict[str, Any]:
        out = super().consistent(arguments)
        k = out["experts_per_token"]
        if k is not None or out["experts"] < _DEFAULT_TOP_K:
            out["experts_per_token"] = min(_DEFAULT_TOP_K if k is None else k, out["experts"])
        if out.get("moe_layout") == "checkpoint":
            step = MXFP4_BLOCK * out["heads"]  # a multiple of the heads and of 32
            out["hidden"] = step * max(1, out["hidden"] // step)
            out["intermediate"] = MXFP4_BLOCK * max(1, out["intermediate"] // MXFP4_BLOCK)
        return out

    @property
    def top_k(self) -> Dim:
        k: Dim = _DEFAULT_TOP_K if self.experts_per_token is None else self.experts_per_token
        return k

    def sizes(self) -> dict[str, Dim]:
        """The sizes given, and k, 4 unless given."""
        out = super().sizes()
        out["k"] = self.top_k
        return out

    # -- the tree -------------------------------------------------------------------------
    def _attention(self, window: int | None = None) -> Block:
        h, a, kv, bias = self.hidden, self.heads, self.kv, self.attention_bias
        d, q_width, kv_width = self._widths()
        children = {
            "": Leaf(Sinks(a), "a learned logit per head", "attention sinks"),
            "q_proj": Leaf(Linear(h, q_width, bias=bias), role="query"),
            "k_proj": Leaf(Linear(h, kv_width, bias=bias), role="key"),
            "v_proj": Leaf(Linear(h, kv_width, bias=bias), role="value"),
            "o_proj": Leaf(Linear(q_width, h, bias=bias), role="output projection"),
        }
        qkv = parallel(("q_proj", Rotary(a, d)), ("k_proj", Rotary(kv, d)), "v_proj", "")
        what = (
            f"{dim_str(a)} query heads over {dim_str(kv)} key and value heads of "
            f"{dim_str(d)}, a sink per head"
        )
        flow = chain(qkv, SinkAttention(a, kv, d, window=window), "o_proj")
        return Block("GptOssAttention", children, flow=flow, description=what)

    def _mlp(self) -> Block:
        h, e = self.hidden, self.experts
        experts = GptOssExperts(e, h, self.inner, self.top_k, layout=self.moe_layout)
        return Block(
            "GptOssMLP",
            {
                "router": Leaf(Linear(h, e), "a score per expert", "router"),
                "experts": Leaf(experts, role="experts"),
            },
            flow=chain(parallel((), "router"), "experts"),
            description=f"{dim_str(e)} experts, {dim_str(self.top_k)} per token",
        )

    def _block(self, window: int | None = None) -> Block:
        h = self.hidden
        return Block(
            "GptOssDecoderLayer",
            {
                "self_attn": self._attention(window),
                "mlp": self._mlp(),
                "input_layernorm": RMSNorm(h),
                "post_attention_layernorm": RMSNorm(h),
            },
            flow=chain(
                residual("input_layernorm", "self_attn"),
                residual("post_attention_layernorm", "mlp"),
            ),
        )

    def build(self) -> Built:
        h, v = self.hidden, self.vocab
        body = Block(
            "GptOssModel",
            {
                "embed_tokens": Leaf(Embedding(v, h), "one H-vector per token", "token embedding"),
                "layers": self.windowed_stack(self._block),
                "norm": Leaf(RMSNorm(h), role="final norm"),
            },
            flow=chain("embed_tokens", "layers", "norm"),
        )
        return self.causal_lm("GptOssForCausalLM", "model", body, "embed_tokens", "head")

    # -- the transformers classes of the same model -------------------------------------
    def hf_values(self) -> dict[str, Any]:
        return {**super().hf_values(), "intermediate": self.inner, "experts_per_token": self.top_k}

    # -- explanation ----------------------------------------------------------------------
    def explanation(self, model: Model) -> list[tuple[str, list[str]]]:
        d, q_width, kv_width = self._widths()
        a, kv, h, i = self.heads, self.kv, self.hidden, self.inner
        e, k = self.experts, self.top_k
        one = 3 * h * i + 2 * i + h
        lines = [
            f"The hidden size H = {dim_str(h)} is the length of every token's vector, in and "
            "out of every block.",
            f"Attention has {dim_str(a)} query heads of head_dim D = {dim_str(d)} over "
            f"{dim_str(kv)} key and value heads: q_proj is ({dim_str(q_width)}, {dim_str(h)}), "
            f"k_proj and v_proj ({dim_str(kv_width)}, {dim_str(h)}) each"
            + (", every projection with a bias." if self.attention_bias else "."),
            f"sinks ({dim_str(a)},): one learned logit per head. Each head's softmax takes it "
            "as one more column beside the keys' scores and drops it after, so a head may "
            "give less than all of its attention to the tokens; it adds no matrix product.",
            "Layers take turns attending over a sliding window (transformers' default: the "
            "even layers, 128 tokens) and over the whole context (layer_types, "
            "sliding_window): the same tensors either way.",
            f"The experts: each block holds E = {dim_str(e)} MLPs; the router, a linear "
            f"layer with a bias ({dim_str(e)}, {dim_str(h)}), scores them for each token and "
            f"sends the token to the k = {dim_str(k)} best, weighted by the softmax of their "
            f"scores. Each expert maps H to 2·I = {dim_str(2 * i)} (gate and up interleaved), "
            f"clamps them (the gate at 7 from above, the up at ±7), computes "
            f"(up + 1)·gate·sigmoid(1.702·gate) and maps I = {dim_str(i)} back to H, with "
            f"biases: {count_str(one)} numbers per expert.",
            "gpt-oss has no shared expert (a dense MLP every token goes through beside the "
            "routed ones): every expert is routed.",
        ]
        if self.moe_layout == "checkpoint":
            lines.append(
                "The checkpoint layout names the experts as the Hub's files store them, "
                f"MXFP4: 4-bit numbers in blocks of {MXFP4_BLOCK}, two to a uint8 byte "
                f"(_blocks, (E, rows, cols/{MXFP4_BLOCK}, {MXFP4_BLOCK // 2})), and one uint8 "
                "power-of-two scale per block (_scales); counts here are elements as "
                "stored, a byte each, so a block's count is half its weights and the total "
                "is not the fused layout's; weights' memory counts those tensors at 1 byte."
            )
        return [
            ("What the sizes mean", lines),
            ("Active and total", self.mixture_lines(model, e, k)),
            (
                "Every matrix of one block",
                self.block_lines(model, self.in_body("model", "layers")),
            ),
        ]


gpt_oss = GptOss.function_for()
