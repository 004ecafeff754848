"""``shapecalc cohere2``: Cohere's Command R7B and Command A, named as ``transformers``'
``Cohere2ForCausalLM`` names them (model type ``cohere2``).

Command R's block (one LayerNorm without a bias, attention and the gated MLP side by side,
both added to the input), with layers of two kinds: sliding layers attend over the last
``sliding_window`` tokens with rotary positions, and keep the last window − 1 in their
cache; global layers attend over the whole context without any position information
(no rotary, no position embedding) and keep every token. Unless ``layer_types`` says
otherwise, three sliding layers to each global one (``sliding_window_pattern`` 4). The
logits are scaled by ``logit_scale`` (a number, not a parameter); the head is the token
embedding.
"""

from __future__ import annotations

from typing import Any, ClassVar

from shapecalc.architectures import _transformer as tf
from shapecalc.architectures._transformer import GroupedQueryLM
from shapecalc.architectures.cohere import parallel_block
from shapecalc.architectures.gemma3 import (
    SLIDING,
    check_kinds,
    consistent_kinds,
    count_sliding,
    kind_stack,
    kinds_argument,
    layer_types_written,
    read_kinds,
    sliding_pattern,
    window_note,
    window_size,
)
from shapecalc.architectures.llama import _read as _llama_read
from shapecalc.core.declare import Built, flag
from shapecalc.core.dims import Dim, dim_str
from shapecalc.core.flow import chain, parallel
from shapecalc.core.frozen import frozen
from shapecalc.core.hfmap import HFType
from shapecalc.core.model import Model
from shapecalc.core.tree import Block, Leaf
from shapecalc.layers._embedding import Embedding
from shapecalc.layers._linear import Linear
from shapecalc.layers.functional import Rotary, ScaledDotProductAttention
from shapecalc.layers.norm import LayerNorm

__all__ = ["Cohere2", "cohere2"]

#: transformers' sliding_window_pattern unless given: every fourth layer is global
_EVERY = 4


def _read(f: Any, out: dict[str, Any]) -> None:
    _llama_read(f, out)
    read_kinds(f, out)


@frozen(kw_only=True)
class Cohere2(GroupedQueryLM):
    """Command R7B / Command A: token embedding (V × H), L blocks, a final LayerNorm (a
    scale, no shift) and a head, by default the embedding itself.

    One block: input_layernorm (H), then attention and the gated MLP on its output side by
    side, both added to the input. q_proj is (A·D, H), k_proj and v_proj (K·D, H), o_proj
    (H, A·D); gate and up map H to I, down maps back. A sliding layer turns its queries and
    keys by rotary positions; a global one does not. Both hold the same tensors.

        >>> m = cohere2(vocab=256000, hidden=4096, layers=32, heads=32, kv_heads=8,
        ...             intermediate=14336)
        >>> m.total
        8028033024
    """

    command: ClassVar[str] = "cohere2"
    function: ClassVar[str] = "cohere2"
    title: ClassVar[str] = "Cohere Command R7B / Command A decoder (sliding and global attention)"
    example: ClassVar[str] = (
        "--vocab 256000 --hidden 4096 --layers 32 --heads 32 --kv-heads 8 --intermediate 14336"
    )
    budget: ClassVar[str] = "8B"
    size_order: ClassVar[tuple[str, ...]] = (
        "vocab",
        "hidden",
        "layers",
        "heads",
        "kv_heads",
        "head_dim",
        "intermediate",
        "sliding_window",
        "sliding_pattern",
    )

    vocab: Any = tf.vocab()
    hidden: Any = tf.hidden()
    layers: Any = tf.layers()
    heads: Any = tf.heads()
    kv_heads: Any = tf.kv_heads()
    head_dim: Any = tf.head_dim()
    intermediate: Any = tf.intermediate("intermediate_size")
    sliding_window: Any = window_size()
    layer_types: tuple[str, ...] = kinds_argument(
        _EVERY, "three sliding layers, then a global one (sliding_window_pattern 4)"
    )
    sliding_pattern: Any = sliding_pattern(_EVERY)
    tie_weights: bool = flag(
        "The head is the token embedding (tie_word_embeddings; --no-tie-weights: a head of "
        "its own).",
        True,
    )
    attention_bias: bool = flag("Biases of q_proj, k_proj, v_proj and o_proj (attention_bias).")
    head: str = tf.lm_head("Cohere2ForCausalLM", "Cohere2Model")

    hf: ClassVar[tuple[HFType, ...]] = (
        HFType(
            model_type="cohere2",
            gguf="cohere2",
            config_class="Cohere2Config",
            classes={"Cohere2ForCausalLM": {"head": "lm"}, "Cohere2Model": {"head": "none"}},
            base="model",
            keys={
                **tf.SIZE_KEYS,
                "kv_heads": "num_key_value_heads",
                "head_dim": "head_dim",
                "attention_bias": "attention_bias",
                "sliding_window": "sliding_window",
                "layer_types": "layer_types",
                "sliding_pattern": "sliding_window_pattern",
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
                "sliding_window": 4096,
                "layer_types": None,
                "sliding_window_pattern": None,
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
            notes=window_note(_EVERY),
        ),
    )

    def check(self) -> None:
        self.check_heads(self.head_dim)
        self.check_rotary(self.head_size(self.head_dim), self.head_dim)
        self._divides(
            "kv_heads", self.heads, self.kv, "kv_heads must divide heads (query heads per group)"
        )
        check_kinds(self, _EVERY)

    @classmethod
    def consistent(cls, arguments: dict[str, Any]) -> dict[str, Any]:
        out = super().consistent(arguments)
        return consistent_kinds(out)

    def hf_values(self) -> dict[str, Any]:
        """The sizes as a config writes them, and layer_types one kind per layer."""
        return {
            **super().hf_values(),
            "intermediate": self.inner,
            **layer_types_written(self, _EVERY),
        }

    def _attention(self, kind: str) -> Block:
        h, a, kv, bias = self.hidden, self.heads, self.kv, self.attention_bias
        d, q_width, kv_width = self._widths()
        children: dict[str, Any] = {
            "q_proj": Leaf(Linear(h, q_width, bias=bias), role="query"),
            "k_proj": Leaf(Linear(h, kv_width, bias=bias), role="key"),
            "v_proj": Leaf(Linear(h, kv_width, bias=bias), role="value"),
            "o_proj": Leaf(Linear(q_width, h, bias=bias), role="output projection"),
        }
        heads = f"{dim_str(a)} query heads over {dim_str(kv)} key and value heads of {dim_str(d)}"
        if kind == SLIDING:
            qkv = parallel(("q_proj", Rotary(a, d)), ("k_proj", Rotary(kv, d)), "v_proj")
            sdpa = ScaledDotProductAttention(a, kv, d, window=self.sliding_window)
            what = f"{heads}, rotary, a sliding window of {self.sliding_window:,}"
        else:
            qkv = parallel("q_proj", "k_proj", "v_proj")
            sdpa = ScaledDotProductAttention(a, kv, d)
            what = f"{heads}, the whole context, no positions"
        flow = chain(qkv, sdpa, "o_proj")
        return Block("Cohere2Attention", children, flow=flow, description=what)

    def _block(self, kind: str) -> Block:
        what = "sliding attention and MLP" if kind == SLIDING else "global attention and MLP"
        return parallel_block("Cohere2", self.hidden, self.inner, self._attention(kind), what)

    def build(self) -> Built:
        h, v = self.hidden, self.vocab
        body = Block(
            "Cohere2Model",
            {
                "embed_tokens": Leaf(Embedding(v, h), "one H-vector per token", "token embedding"),
                "layers": kind_stack(self, self._block, _EVERY),
                "norm": Leaf(LayerNorm(h, bias=False), role="final norm"),
            },
            flow=chain("embed_tokens", "layers", "norm"),
        )
        return self.causal_lm("Cohere2ForCausalLM", "model", body, "embed_tokens", "head")

    def sliding_layers(self) -> int | None:
        """How many layers slide (None with a symbolic layer count)."""
        return count_sliding(self, _EVERY)

    def sizes(self) -> dict[str, Dim]:
        """The sizes given and worked out; not P, a number in the rule of the layers."""
        out = super().sizes()
        out.pop("P", None)
        return out

    def explanation(self, model: Model) -> list[tuple[str, list[str]]]:
        d, q_width, kv_width = self._widths()
        h, w = self.hidden, self.sliding_window
        sliding = self.sliding_layers()
        share = (
            f"{sliding} of the {self.layers} layers"
            if sliding is not None
            else "three layers in four (layer i unless (i + 1) % 4 == 0)"
            if not self.layer_types
            else "the layers layer_types names"
        )
        lines = [
            f"The hidden size H = {dim_str(h)} is the length of every token's vector, in and "
            "out of every block.",
            f"Attention splits it into {dim_str(self.heads)} query heads of head_dim "
            f"D = {dim_str(d)} over {dim_str(self.kv)} key and value heads: q_proj is "
            f"({dim_str(q_width)}, {dim_str(h)}), k_proj and v_proj ({dim_str(kv_width)}, "
            f"{dim_str(h)}) each.",
            f"Sliding and global layers: {share} attend over the last W = {w:,} tokens with "
            f"rotary positions, and transformers' cache keeps the last {max(w - 1, 1):,} "
            "there, however long the context; the global layers attend over every token "
            "without any position information (no rotary: order reaches them only through "
            "the sliding layers) and keep every token. Both hold the same tensors.",
            "One LayerNorm (a scale, no shift) before each block; attention and the MLP read "
            "its output side by side and both are added to the block's input.",
            f"The MLP's intermediate size I = {dim_str(self.inner)}: gate and up map H to I, "
            "down maps I back to H, 3·H·I numbers.",
            "The logits are multiplied by logit_scale, a number, not a parameter.",
        ]
        if self.tie_weights and self.with_head:
            lines.append("The head is the token embedding: one V × H matrix, counted once.")
        return [
            ("What the sizes mean", lines),
            ("Every matrix of one block", self.block_lines(model, self.in_body("model", "layers"))),
        ]


cohere2 = Cohere2.function_for()
