"""``shapecalc gpt2``: GPT-2, named as ``transformers``' ``GPT2LMHeadModel`` names it.

Token and learned position embeddings summed, L blocks of LayerNorm, attention through one
fused ``c_attn``, LayerNorm and an MLP of 4·H, a final LayerNorm and the head, which is
the token embedding itself. Its linear layers are ``Conv1D``: the weight stored (in, out).
"""

from __future__ import annotations

from typing import Any, ClassVar

from shapecalc.architectures import _transformer as tf
from shapecalc.architectures._transformer import TransformerLM
from shapecalc.core.declare import Built, flag
from shapecalc.core.dims import dim_str
from shapecalc.core.flow import Positions, chain, residual, summed
from shapecalc.core.frozen import frozen
from shapecalc.core.hfmap import HFType
from shapecalc.core.model import Model
from shapecalc.core.tree import Block, Leaf, ModuleList
from shapecalc.layers._embedding import Embedding
from shapecalc.layers.activation import GELU
from shapecalc.layers.functional import Chunk, ScaledDotProductAttention
from shapecalc.layers.linear import Dropout
from shapecalc.layers.norm import LayerNorm
from shapecalc.layers.transformers import Conv1D

__all__ = ["GPT2", "gpt2"]


@frozen(kw_only=True)
class GPT2(TransformerLM):
    """GPT-2: token embedding ``wte`` (V × H) plus position embedding ``wpe`` (C × H), L
    blocks, a final LayerNorm and a head tied to ``wte``.

    One block: LayerNorm, attention, LayerNorm, MLP, each with a residual add. Attention's
    ``c_attn`` makes queries, keys and values at once, (H, 3·H) stored (in, out), split
    into A heads of H / A; ``c_proj`` maps the heads back, (H, H). The MLP maps H to the
    intermediate size I (4·H unless given, n_inner) and back. Every LayerNorm and Conv1D
    has a bias.

        >>> m = gpt2(vocab=50257, hidden=768, layers=12, heads=12)
        >>> m.total
        124439808
        >>> print(m.total_formula)
        12·L·H² + 13·L·H + V·H + H·C + 2·H
    """

    command: ClassVar[str] = "gpt2"
    function: ClassVar[str] = "gpt2"
    title: ClassVar[str] = "GPT-2"
    example: ClassVar[str] = "--layers 12 --hidden 768 --heads 12 --vocab 50257 --context 1024"
    budget: ClassVar[str] = "350M"
    size_order: ClassVar[tuple[str, ...]] = (
        "vocab",
        "hidden",
        "layers",
        "heads",
        "context",
        "intermediate",
        "labels",
    )

    vocab: Any = tf.vocab()
    hidden: Any = tf.hidden()
    layers: Any = tf.layers()
    heads: Any = tf.heads()
    context: Any = tf.context(1024, "n_positions")
    intermediate: Any = tf.intermediate("n_inner")
    tie_weights: bool = flag(
        "The head is the token embedding wte (tie_word_embeddings; --no-tie-weights: a "
        "head of its own).",
        True,
    )
    head: str = tf.lm_head("GPT2LMHeadModel", "GPT2Model", *tf.HEADS)
    labels: Any = tf.labels()
    dropout: float = tf.dropout("embd_pdrop, attn_pdrop, resid_pdrop", 0.1)

    hf: ClassVar[tuple[HFType, ...]] = (
        HFType(
            model_type="gpt2",
            lora_targets=("c_attn",),
            gguf="gpt2",
            config_class="GPT2Config",
            classes=tf.head_classes("GPT2", *tf.HEADS, lm="LMHeadModel"),
            base="transformer",
            keys={
                "vocab": "vocab_size",
                "hidden": "n_embd",
                "layers": "n_layer",
                "heads": "n_head",
                "context": "n_positions",
                "intermediate": "n_inner",
                "tie_weights": "tie_word_embeddings",
                "dropout": ("embd_pdrop", "attn_pdrop", "resid_pdrop"),
                **tf.LABEL_KEYS,
            },
            aliases={
                "hidden_size": "n_embd",
                "max_position_embeddings": "n_positions",
                "num_attention_heads": "n_head",
                "num_hidden_layers": "n_layer",
            },
            defaults={
                "vocab_size": 50257,
                "n_embd": 768,
                "n_layer": 12,
                "n_head": 12,
                "n_positions": 1024,
                "n_inner": None,
                "tie_word_embeddings": True,
                "embd_pdrop": 0.1,
                "attn_pdrop": 0.1,
                "resid_pdrop": 0.1,
                "activation_function": "gelu_new",
                "add_cross_attention": False,
            },
            free=frozenset(
                {
                    "activation_function",
                    "layer_norm_epsilon",
                    "n_ctx",
                    "reorder_and_upcast_attn",
                    "scale_attn_by_inverse_layer_idx",
                    "scale_attn_weights",
                    "summary_activation",
                    "summary_first_dropout",
                    "summary_proj_to_labels",
                    "summary_type",
                    "summary_use_proj",
                }
            ),
            only={
                "add_cross_attention": ((False,), "cross-attention layers are an encoder-decoder's")
            },
            dropped=(r"attn.bias", r"crossattention.bias"),
            strict_heads=True,
        ),
    )

    def check(self) -> None:
        self.check_labels()
        self.check_heads()

    def _block(self) -> Block:
        h, a, i = self.hidden, self.heads, self.inner
        p = self.dropout
        attention = Block(
            "GPT2Attention",
            {
                "c_attn": Leaf(Conv1D(3 * h, h), role="query, key and value"),
                "c_proj": Leaf(Conv1D(h, h), role="output projection"),
                "attn_dropout": Dropout(p),
                "resid_dropout": Dropout(p),
            },
            flow=chain(
                "c_attn",
                Chunk((h, h, h)),
                ScaledDotProductAttention(a, a, self.head_size()),
                "c_proj",
                "resid_dropout",
            ),
            description=f"{dim_str(a)} heads of {dim_str(self.head_size())}",
        )
        mlp = Block(
            "GPT2MLP",
            {
                "c_fc": Leaf(Conv1D(i, h), role="up"),
                "c_proj": Leaf(Conv1D(h, i), role="down"),
                "act": GELU(approximate="tanh"),
                "dropout": Dropout(p),
            },
            flow=chain("c_fc", "act", "c_proj", "dropout"),
        )
        return Block(
            "GPT2Block",
            {"ln_1": LayerNorm(h), "attn": attention, "ln_2": LayerNorm(h), "mlp": mlp},
            flow=chain(residual("ln_1", "attn"), residual("ln_2", "mlp")),
        )

    def build(self) -> Built:
        h, v, c = self.hidden, self.vocab, self.context
        body = Block(
            "GPT2Model",
            {
                "wte": Leaf(Embedding(v, h), "one H-vector per token", "token embedding"),
                "wpe": Leaf(Embedding(c, h), "one H-vector per position", "position embedding"),
                "drop": Dropout(self.dropout),
                "h": ModuleList(self._block(), self.layers),
                "ln_f": Leaf(LayerNorm(h), role="final norm"),
            },
            flow=chain(summed("wte", (Positions(limit=c), "wpe")), "drop", "h", "ln_f"),
        )
        return self.causal_lm(
            "GPT2LMHeadModel", "transformer", body, "wte", "head", classifier="classifier"
        )

    def explanation(self, model: Model) -> list[tuple[str, list[str]]]:
        h, a, d, i = self.hidden, self.heads, self.head_size(), self.inner
        lines = [
            f"The hidden size H = {dim_str(h)} is the length of every token's vector, in and "
            "out of every block.",
            f"Attention splits it into A = {dim_str(a)} heads of head_dim D = {dim_str(d)}. "
            f"c_attn makes the queries, keys and values of all heads at once: ({dim_str(h)}, "
            f"{dim_str(3 * h)}), stored (in, out) as Conv1D stores it; c_proj maps the heads "
            f"back, ({dim_str(h)}, {dim_str(h)}).",
            f"The MLP's intermediate size I = {dim_str(i)}: c_fc maps H to I and c_proj I "
            "back to H.",
            f"The position embedding wpe holds C = {dim_str(self.context)} rows: no sequence "
            "can be longer.",
        ]
        if self.with_head:
            lines.append(
                "The head (lm_head) is the token embedding wte itself: counted once."
                if self.tie_weights
                else "The head (lm_head) is a V × H matrix of its own."
            )
        return [
            ("What the sizes mean", lines),
            (
                "Every matrix of one block",
                self.block_lines(model, self.in_body("transformer", "h")),
            ),
        ]


gpt2 = GPT2.function_for()
