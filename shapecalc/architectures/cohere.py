"""``shapecalc cohere``: Cohere's Command R, named as ``transformers``'
``CohereForCausalLM`` names it.

One LayerNorm without a bias before each block, whose attention and gated MLP read the
same normalised input side by side (their outputs are added to the input); optional
per-head LayerNorms of the queries and keys (``use_qk_norm``); the head is the token
embedding unless told otherwise.
"""

from __future__ import annotations

from typing import Any, ClassVar

from shapecalc.architectures import _transformer as tf
from shapecalc.architectures._transformer import GroupedQueryLM
from shapecalc.architectures.llama import _read
from shapecalc.core.declare import Built, flag
from shapecalc.core.dims import Dim, dim_str
from shapecalc.core.flow import chain, multiply, parallel, residual, summed
from shapecalc.core.frozen import frozen
from shapecalc.core.hfmap import HFType
from shapecalc.core.model import Model
from shapecalc.core.tree import Block, Leaf, ModuleList
from shapecalc.layers._embedding import Embedding
from shapecalc.layers._linear import Linear
from shapecalc.layers.activation import SiLU
from shapecalc.layers.functional import Rotary, ScaledDotProductAttention, SplitHeads
from shapecalc.layers.norm import LayerNorm

__all__ = ["Cohere", "cohere", "parallel_block"]


def parallel_block(
    prefix: str, hidden: Dim, inner: Dim, attention: Block, description: str = ""
) -> Block:
    """Cohere's block (``{prefix}DecoderLayer``): one LayerNorm without a bias, whose
    output attention and the gated MLP (``{prefix}MLP``) read side by side; both are added
    to the input."""
    h, i = hidden, inner
    mlp = Block(
        f"{prefix}MLP",
        {
            "gate_proj": Leaf(Linear(h, i, bias=False), role="gate"),
            "up_proj": Leaf(Linear(h, i, bias=False), role="up"),
            "down_proj": Leaf(Linear(i, h, bias=False), role="down"),
        },
        flow=chain(multiply(("gate_proj", SiLU()), "up_proj"), "down_proj"),
        description="gated MLP",
    )
    return Block(
        f"{prefix}DecoderLayer",
        {
            "self_attn": attention,
            "mlp": mlp,
            "input_layernorm": LayerNorm(h, bias=False),
        },
        flow=residual("input_layernorm", summed("self_attn", "mlp")),
        description=description or "attention and MLP side by side",
    )


@frozen(kw_only=True)
class Cohere(GroupedQueryLM):
    """Command R: token embedding (V × H), L blocks, a final LayerNorm (a scale, no
    shift) and a head, by default the embedding itself (tie_weights).

    One block: input_layernorm (H), then attention and the gated MLP on its output side
    by side, both added to the input. q_proj is (A·D, H), k_proj and v_proj (K·D, H),
    o_proj (H, A·D); with qk_norm, q_norm (A, D) and k_norm (K, D) scale each head's
    queries and keys. The MLP's gate and up map H to I, down maps back: 3·H·I.

        >>> m = cohere(vocab=256000, hidden=8192, layers=40, heads=64, intermediate=22528)
        >>> m.total
        34980831232
        >>> print(m.total_formula)
        4·L·H² + 3·L·H·I + L·H + V·H + H
    """

    command: ClassVar[str] = "cohere"
    function: ClassVar[str] = "cohere"
    title: ClassVar[str] = "Cohere Command R decoder"
    example: ClassVar[str] = (
        "--vocab 256000 --hidden 8192 --layers 40 --heads 64 --intermediate 22528"
    )
    budget: ClassVar[str] = "35B"
    size_order: ClassVar[tuple[str, ...]] = (
        "vocab",
        "hidden",
        "layers",
        "heads",
        "kv_heads",
        "head_dim",
        "intermediate",
    )

    vocab: Any = tf.vocab()
    hidden: Any = tf.hidden()
    layers: Any = tf.layers()
    heads: Any = tf.heads()
    kv_heads: Any = tf.kv_heads()
    head_dim: Any = tf.head_dim()
    intermediate: Any = tf.intermediate("intermediate_size")
    tie_weights: bool = flag(
        "The head is the token embedding (tie_word_embeddings; --no-tie-weights: a head of "
        "its own).",
        True,
    )
    attention_bias: bool = flag("Biases of q_proj, k_proj, v_proj and o_proj (attention_bias).")
    qk_norm: bool = flag(
        "A LayerNorm of (heads, head_dim) on the queries and of (kv_heads, head_dim) on the "
        "keys (use_qk_norm, Command R+)."
    )
    head: str = tf.lm_head("CohereForCausalLM", "CohereModel")

    hf: ClassVar[tuple[HFType, ...]] = (
        HFType(
            model_type="cohere",
            gguf="command-r",
            config_class="CohereConfig",
            classes={"CohereForCausalLM": {"head": "lm"}, "CohereModel": {"head": "none"}},
            base="model",
            keys={
                **tf.SIZE_KEYS,
                "kv_heads": "num_key_value_heads",
                "head_dim": "head_dim",
                "attention_bias": "attention_bias",
                "qk_norm": "use_qk_norm",
            },
            defaults={
                "vocab_size": 256000,
                "hidden_size": 8192,
                "intermediate_size": 22528,
                "num_hidden_layers": 40,
                "num_attention_heads": 64,
                "num_key_value_heads": None,
                "head_dim": None,
                "tie_word_embeddings": True,
                "attention_bias": False,
                "use_qk_norm": False,
                "pad_token_id": 0,
            },
            free=frozenset(
                {
                    "logit_scale",
                    "hidden_act",
                    "layer_norm_eps",
                    "max_position_embeddings",
                    "rope_parameters",
                    "rope_scaling",
                    "rope_theta",
                    "attention_dropout",
                }
            ),
            dropped=(r"rotary_emb\.inv_freq",),
            read=_read,
            write=tf.first_padding,
        ),
    )

    def check(self) -> None:
        self.check_heads(self.head_dim)
        self.check_rotary(self.head_size(self.head_dim), self.head_dim)
        self._divides(
            "kv_heads", self.heads, self.kv, "kv_heads must divide heads (query heads per group)"
        )

    def hf_values(self) -> dict[str, Any]:
        return {
            **super().hf_values(),
            "intermediate": self.inner,
        }

    def _attention(self) -> Block:
        h, a, kv, bias = self.hidden, self.heads, self.kv, self.attention_bias
        d, q_width, kv_width = self._widths()
        children: dict[str, Any] = {
            "q_proj": Leaf(Linear(h, q_width, bias=bias), role="query"),
            "k_proj": Leaf(Linear(h, kv_width, bias=bias), role="key"),
            "v_proj": Leaf(Linear(h, kv_width, bias=bias), role="value"),
            "o_proj": Leaf(Linear(q_width, h, bias=bias), role="output projection"),
        }
        rope_q, rope_k = Rotary(a, d), Rotary(kv, d)
        q_steps: tuple[Any, ...] = (rope_q,)
        k_steps: tuple[Any, ...] = (rope_k,)
        if self.qk_norm:
            children["q_norm"] = Leaf(LayerNorm((a, d), bias=False), role="query norm")
            children["k_norm"] = Leaf(LayerNorm((kv, d), bias=False), role="key norm")
            q_steps = (SplitHeads(a, d), "q_norm", rope_q)
            k_steps = (SplitHeads(kv, d), "k_norm", rope_k)
        qkv = parallel(("q_proj", *q_steps), ("k_proj", *k_steps), "v_proj")
        what = f"{dim_str(a)} query heads over {dim_str(kv)} key and value heads of {dim_str(d)}"
        flow = chain(qkv, ScaledDotProductAttention(a, kv, d), "o_proj")
        return Block("CohereAttention", children, flow=flow, description=what)

    def _block(self) -> Block:
        return parallel_block("Cohere", self.hidden, self.inner, self._attention())

    def build(self) -> Built:
        h, v = self.hidden, self.vocab
        body = Block(
            "CohereModel",
            {
                "embed_tokens": Leaf(Embedding(v, h), "one H-vector per token", "token embedding"),
                "layers": ModuleList(self._block(), self.layers),
                "norm": Leaf(LayerNorm(h, bias=False), role="final norm"),
            },
            flow=chain("embed_tokens", "layers", "norm"),
        )
        return self.causal_lm("CohereForCausalLM", "model", body, "embed_tokens", "head")

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
            "One LayerNorm (a scale, no shift) before each block; attention and the MLP read "
            "its output side by side and both are added to the block's input.",
            f"The MLP's intermediate size I = {dim_str(self.inner)}: gate and up map H to I, "
            "down maps I back to H, 3·H·I numbers.",
        ]
        if self.qk_norm:
            lines.append(
                f"q_norm ({dim_str(self.heads)}, {dim_str(d)}) and k_norm ({dim_str(self.kv)}, "
                f"{dim_str(d)}) scale each head's queries and keys with weights of their own."
            )
        if self.tie_weights and self.with_head:
            lines.append("The head is the token embedding: one V × H matrix, counted once.")
        return [
            ("What the sizes mean", lines),
            ("Every matrix of one block", self.block_lines(model, self.in_body("model", "layers"))),
        ]


cohere = Cohere.function_for()
