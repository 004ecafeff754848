"""``shapecalc olmo2``: OLMo 2, named as ``transformers``' ``Olmo2ForCausalLM`` names it.

A LLaMA-like decoder whose RMSNorms come after attention and after the MLP (no norm
before them), and whose q_norm and k_norm are RMSNorms over the whole projected queries and
keys (all heads at once, not one head).
"""

from __future__ import annotations

from typing import Any, ClassVar

from shapecalc.architectures import _transformer as tf
from shapecalc.architectures._transformer import GroupedQueryLM
from shapecalc.architectures.llama import _read, llama_inner
from shapecalc.core.declare import Built, flag
from shapecalc.core.dims import dim_str
from shapecalc.core.flow import chain, multiply, parallel, residual
from shapecalc.core.frozen import frozen
from shapecalc.core.hfmap import HFType
from shapecalc.core.model import Model
from shapecalc.core.tree import Block, Leaf, ModuleList
from shapecalc.layers._embedding import Embedding
from shapecalc.layers._linear import Linear
from shapecalc.layers._norm import RMSNorm
from shapecalc.layers.activation import SiLU
from shapecalc.layers.functional import Rotary, ScaledDotProductAttention

__all__ = ["OLMo2", "olmo2"]


@frozen(kw_only=True)
class OLMo2(GroupedQueryLM):
    """OLMo 2: token embedding (V × H), L blocks, a final RMSNorm and a head (V × H).

    One block: attention, then an RMSNorm of its output (post_attention_layernorm) added
    to the input; the gated MLP, then an RMSNorm (post_feedforward_layernorm) added to
    that. q_proj is (A·D, H), k_proj and v_proj (K·D, H), o_proj (H, A·D); q_norm and
    k_norm scale the whole A·D and K·D. The MLP's gate and up map H to I, down maps back.

        >>> m = olmo2(vocab=100352, hidden=4096, layers=32, heads=32, intermediate=11008)
        >>> m.total
        7298617344
        >>> print(m.total_formula)
        4·L·H² + 3·L·H·I + 4·L·H + 2·V·H + H
    """

    command: ClassVar[str] = "olmo2"
    function: ClassVar[str] = "olmo2"
    title: ClassVar[str] = "OLMo 2 decoder"
    example: ClassVar[str] = (
        "--vocab 100352 --hidden 4096 --layers 32 --heads 32 --intermediate 11008"
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
    attention_bias: bool = flag("Biases of q_proj, k_proj, v_proj and o_proj (attention_bias).")
    head: str = tf.lm_head("Olmo2ForCausalLM", "Olmo2Model", "seq-cls")
    labels: Any = tf.labels()

    hf: ClassVar[tuple[HFType, ...]] = (
        HFType(
            model_type="olmo2",
            gguf="olmo2",
            config_class="Olmo2Config",
            classes=tf.head_classes("Olmo2", "seq-cls"),
            base="model",
            keys={
                **tf.SIZE_KEYS,
                **tf.LABEL_KEYS,
                "kv_heads": "num_key_value_heads",
                "head_dim": "head_dim",
                "attention_bias": "attention_bias",
            },
            defaults={
                "vocab_size": 50304,
                "hidden_size": 4096,
                "intermediate_size": 11008,
                "num_hidden_layers": 32,
                "num_attention_heads": 32,
                "num_key_value_heads": None,
                "head_dim": None,
                "tie_word_embeddings": False,
                "attention_bias": False,
                "pad_token_id": 1,
            },
            free=frozenset(
                {
                    "max_position_embeddings",
                    "rms_norm_eps",
                    "rope_parameters",
                    "rope_scaling",
                    "rope_theta",
                    "attention_dropout",
                    "hidden_act",
                }
            ),
            dropped=(r"rotary_emb\.inv_freq",),
            read=_read,
            write=tf.first_padding,
        ),
    )

    def check(self) -> None:
        self.check_labels()
        self.check_heads(self.head_dim)
        self.check_rotary(self.head_size(self.head_dim), self.head_dim)
        self._divides(
            "kv_heads", self.heads, self.kv, "kv_heads must divide heads (query heads per group)"
        )

    #: the MLP's intermediate size by LLaMA's rule of H, unless given
    inner = property(llama_inner)

    def hf_values(self) -> dict[str, Any]:
        return {
            **super().hf_values(),
            "intermediate": self.inner,
        }

    def _attention(self) -> Block:
        h, a, kv, bias = self.hidden, self.heads, self.kv, self.attention_bias
        d, q_width, kv_width = self._widths()
        children = {
            "q_proj": Leaf(Linear(h, q_width, bias=bias), role="query"),
            "k_proj": Leaf(Linear(h, kv_width, bias=bias), role="key"),
            "v_proj": Leaf(Linear(h, kv_width, bias=bias), role="value"),
            "o_proj": Leaf(Linear(q_width, h, bias=bias), role="output projection"),
            "q_norm": Leaf(RMSNorm(q_width), role="query norm"),
            "k_norm": Leaf(RMSNorm(kv_width), role="key norm"),
        }
        qkv = parallel(
            ("q_proj", "q_norm", Rotary(a, d)), ("k_proj", "k_norm", Rotary(kv, d)), "v_proj"
        )
        what = f"{dim_str(a)} query heads over {dim_str(kv)} key and value heads of {dim_str(d)}"
        flow = chain(qkv, ScaledDotProductAttention(a, kv, d), "o_proj")
        return Block("Olmo2Attention", children, flow=flow, description=what)

    def _block(self) -> Block:
        h, i = self.hidden, self.inner
        mlp = Block(
            "Olmo2MLP",
            {
                "gate_proj": Leaf(Linear(h, i, bias=False), role="gate"),
                "up_proj": Leaf(Linear(h, i, bias=False), role="up"),
                "down_proj": Leaf(Linear(i, h, bias=False), role="down"),
            },
            flow=chain(multiply(("gate_proj", SiLU()), "up_proj"), "down_proj"),
            description="gated MLP",
        )
        return Block(
            "Olmo2DecoderLayer",
            {
                "self_attn": self._attention(),
                "mlp": mlp,
                "post_attention_layernorm": RMSNorm(h),
                "post_feedforward_layernorm": RMSNorm(h),
            },
            flow=chain(
                residual("self_attn", "post_attention_layernorm"),
                residual("mlp", "post_feedforward_layernorm"),
            ),
        )

    def build(self) -> Built:
        h, v = self.hidden, self.vocab
        body = Block(
            "Olmo2Model",
            {
                "embed_tokens": Leaf(Embedding(v, h), "one H-vector per token", "token embedding"),
                "layers": ModuleList(self._block(), self.layers),
                "norm": Leaf(RMSNorm(h), role="final norm"),
            },
            flow=chain("embed_tokens", "layers", "norm"),
        )
        return self.causal_lm("Olmo2ForCausalLM", "model", body, "embed_tokens", "head")

    def explanation(self, model: Model) -> list[tuple[str, list[str]]]:
        d, q_width, kv_width = self._widths()
        h = self.hidden
        lines = [
            f"The hidden size H = {dim_str(h)} is the length of every token's vector, in and "
            "out of every block.",
            f"Attention splits it into {dim_str(self.heads)} query heads of head_dim "
            f"D = {dim_str(d)} over {dim_str(self.kv)} key and value heads: q_proj is "
            f"({dim_str(q_width)}, {dim_str(h)}), k_proj and v_proj ({dim_str(kv_width)}, "
            f"{dim_str(h)}) each.",
            f"q_norm ({dim_str(q_width)}) and k_norm ({dim_str(kv_width)}) scale the whole "
            "projected queries and keys, every head at once.",
            "The block's two RMSNorms come after attention and after the MLP, before each "
            "residual add; no norm comes before them.",
            f"The MLP's intermediate size I = {dim_str(self.inner)}: gate and up map H to I, "
            "down maps I back to H, 3·H·I numbers.",
        ]
        return [
            ("What the sizes mean", lines),
            ("Every matrix of one block", self.block_lines(model, self.in_body("model", "layers"))),
        ]


olmo2 = OLMo2.function_for()
