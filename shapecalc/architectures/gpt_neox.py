"""``shapecalc gpt-neox``: GPT-NeoX and Pythia, named as ``transformers``'
``GPTNeoXForCausalLM`` names them.

A token embedding, L blocks whose attention makes queries, keys and values in one
``query_key_value`` and turns a fraction of each head by rotary positions, attention and
MLP side by side on the same input (the parallel residual), a final LayerNorm and a head of
its own.
"""

from __future__ import annotations

from typing import Any, ClassVar

from shapecalc.architectures import _transformer as tf
from shapecalc.architectures._transformer import TransformerLM
from shapecalc.core.declare import Built, flag
from shapecalc.core.dims import Dim, dim_str
from shapecalc.core.flow import chain, each, residual, summed
from shapecalc.core.frozen import frozen
from shapecalc.core.hfmap import HFType
from shapecalc.core.model import Model
from shapecalc.core.tree import Block, Leaf, ModuleList
from shapecalc.layers._embedding import Embedding
from shapecalc.layers.activation import GELU
from shapecalc.layers.functional import Chunk, Rotary, ScaledDotProductAttention, SplitHeads
from shapecalc.layers.linear import Dropout, Linear
from shapecalc.layers.norm import LayerNorm

__all__ = ["GPTNeoX", "gpt_neox"]


@frozen(kw_only=True)
class GPTNeoX(TransformerLM):
    """GPT-NeoX (Pythia): token embedding ``embed_in`` (V × H), L blocks, a final
    LayerNorm and a head ``lm_head`` (V × H) of its own (checkpoints and transformers 4
    call it ``embed_out``).

    One block: attention and MLP each read a LayerNorm of the same input and their outputs
    are added to it (``use_parallel_residual``; without it, one after the other as in
    GPT-2). ``query_key_value`` is (3·H, H), per head queries, keys and values side by side;
    ``dense`` maps the heads back, (H, H). The first rotary_pct of each head's numbers are
    turned by rotary positions: no parameters. The MLP maps H to I (4·H unless given) and
    back. Every LayerNorm and Linear has a bias.

        >>> m = gpt_neox(vocab=50304, hidden=512, layers=6, heads=8)
        >>> m.total
        70426624
        >>> print(m.total_formula)
        12·L·H² + 13·L·H + 2·V·H + 2·H
    """

    command: ClassVar[str] = "gpt-neox"
    function: ClassVar[str] = "gpt_neox"
    title: ClassVar[str] = "GPT-NeoX (Pythia)"
    example: ClassVar[str] = "--vocab 50304 --hidden 512 --layers 6 --heads 8"
    budget: ClassVar[str] = "160M"
    size_order: ClassVar[tuple[str, ...]] = (
        "vocab",
        "hidden",
        "layers",
        "heads",
        "intermediate",
        "labels",
    )

    vocab: Any = tf.vocab()
    hidden: Any = tf.hidden()
    layers: Any = tf.layers()
    heads: Any = tf.heads()
    intermediate: Any = tf.intermediate("intermediate_size")
    rotary_pct: float = tf.rotary_fraction("rotary_pct, partial_rotary_factor", 0.25)
    parallel_residual: bool = flag(
        "Attention and MLP side by side on the same input (use_parallel_residual; "
        "--no-parallel-residual: one after the other).",
        True,
    )
    attention_bias: bool = flag(
        "Biases of query_key_value and dense (attention_bias; --no-attention-bias: none).",
        True,
    )
    tie_weights: bool = flag("The head is the token embedding (tie_word_embeddings).")
    head: str = tf.lm_head("GPTNeoXForCausalLM", "GPTNeoXModel", *tf.HEADS)
    labels: Any = tf.labels()
    dropout: float = tf.dropout("hidden_dropout, attention_dropout", 0.0)

    hf: ClassVar[tuple[HFType, ...]] = (
        HFType(
            model_type="gpt_neox",
            lora_targets=("query_key_value",),
            gguf="gptneox",
            config_class="GPTNeoXConfig",
            classes=tf.head_classes("GPTNeoX", *tf.HEADS),
            base="gpt_neox",
            keys={
                **tf.SIZE_KEYS,
                "rotary_pct": "partial_rotary_factor",
                "parallel_residual": "use_parallel_residual",
                "attention_bias": "attention_bias",
                "dropout": ("hidden_dropout", "attention_dropout"),
                **tf.LABEL_KEYS,
            },
            defaults={
                "vocab_size": 50432,
                "hidden_size": 6144,
                "num_hidden_layers": 44,
                "num_attention_heads": 64,
                "intermediate_size": 24576,
                "tie_word_embeddings": False,
                "use_parallel_residual": True,
                "attention_bias": True,
                "hidden_dropout": 0.0,
                "attention_dropout": 0.0,
                "hidden_act": "gelu",
                "partial_rotary_factor": 0.25,
            },
            free=frozenset(
                {
                    "hidden_act",
                    "layer_norm_eps",
                    "max_position_embeddings",
                    "rope_parameters",
                    "rope_scaling",
                    "rope_theta",
                    "rotary_emb_base",
                    "rotary_pct",
                    "classifier_dropout",
                    "is_decoder",
                    "head_dim",
                }
            ),
            dropped=(r"attention.bias", r"attention.masked_bias", r"rotary_emb\.inv_freq"),
            renamed={"embed_out.": "lm_head."},
            strict_heads=True,
            read=lambda f, out: _read(f, out),
        ),
    )

    def check(self) -> None:
        self.check_labels()
        self.check_heads()
        self.check_turned("rotary_pct", self.rotary_pct)

    @property
    def rotated(self) -> Dim:
        """The numbers of a head rotary positions turn (see :meth:`TransformerLM.turned`)."""
        return self.turned(self.head_size(), self.rotary_pct)

    def _attention(self) -> Block:
        h, a, d = self.hidden, self.heads, self.head_size()
        bias = self.attention_bias
        rope = Rotary(a, d, self.rotated)
        return Block(
            "GPTNeoXAttention",
            {
                "query_key_value": Leaf(Linear(h, 3 * h, bias=bias), role="query, key and value"),
                "dense": Leaf(Linear(h, h, bias=bias), role="output projection"),
            },
            flow=chain(
                "query_key_value",
                SplitHeads(a, 3 * d),
                Chunk((d, d, d)),
                each((rope,), (rope,), ()),
                ScaledDotProductAttention(a, a, d),
                "dense",
            ),
            description=f"{dim_str(a)} heads of {dim_str(d)}",
        )

    def _block(self) -> Block:
        h, i, p = self.hidden, self.inner, self.dropout
        mlp = Block(
            "GPTNeoXMLP",
            {
                "dense_h_to_4h": Leaf(Linear(h, i), role="up"),
                "dense_4h_to_h": Leaf(Linear(i, h), role="down"),
                "act": GELU(),
            },
            flow=chain("dense_h_to_4h", "act", "dense_4h_to_h"),
        )
        attention = ("input_layernorm", "attention", "post_attention_dropout")
        feed_forward = ("post_attention_layernorm", "mlp", "post_mlp_dropout")
        flow = (
            summed((), attention, feed_forward)
            if self.parallel_residual
            else chain(residual(*attention), residual(*feed_forward))
        )
        return Block(
            "GPTNeoXLayer",
            {
                "input_layernorm": LayerNorm(h),
                "post_attention_layernorm": LayerNorm(h),
                "post_attention_dropout": Dropout(p),
                "post_mlp_dropout": Dropout(p),
                "attention": self._attention(),
                "mlp": mlp,
            },
            flow=flow,
        )

    def build(self) -> Built:
        h, v = self.hidden, self.vocab
        body = Block(
            "GPTNeoXModel",
            {
                "embed_in": Leaf(Embedding(v, h), "one H-vector per token", "token embedding"),
                "emb_dropout": Dropout(self.dropout),
                "layers": ModuleList(self._block(), self.layers),
                "final_layer_norm": Leaf(LayerNorm(h), role="final norm"),
            },
            flow=chain("embed_in", "emb_dropout", "layers", "final_layer_norm"),
        )
        head = "head (embed_out)"
        return self.causal_lm(
            "GPTNeoXForCausalLM", "gpt_neox", body, "embed_in", head, classifier="classifier"
        )

    def explanation(self, model: Model) -> list[tuple[str, list[str]]]:
        h, a, d, i = self.hidden, self.heads, self.head_size(), self.inner
        together = (
            "Attention and the MLP read the same input side by side and both outputs are "
            "added to it (the parallel residual)."
            if self.parallel_residual
            else "Attention, then the MLP, each with a residual add."
        )
        lines = [
            f"The hidden size H = {dim_str(h)} is the length of every token's vector, in and "
            "out of every block.",
            f"Attention splits it into A = {dim_str(a)} heads of head_dim D = {dim_str(d)}: "
            f"query_key_value ({dim_str(3 * h)}, {dim_str(h)}) makes each head's queries, "
            f"keys and values side by side; dense ({dim_str(h)}, {dim_str(h)}) maps them back.",
            f"Rotary positions turn {dim_str(self.rotated)} of each head's {dim_str(d)} numbers "
            "and hold no parameters.",
            f"The MLP's intermediate size I = {dim_str(i)}: dense_h_to_4h maps H to I and "
            "dense_4h_to_h back.",
            together,
        ]
        return [
            ("What the sizes mean", lines),
            (
                "Every matrix of one block",
                self.block_lines(model, self.in_body("gpt_neox", "layers")),
            ),
        ]


gpt_neox = GPTNeoX.function_for()


def _read(f: Any, out: dict[str, Any]) -> None:
    """transformers 4's ``rotary_pct``; a head_dim that is H / A or absent."""
    out["rotary_pct"] = f.rotary_fraction("rotary_pct")
    head_dim = f.raw("head_dim")
    if head_dim is not None and head_dim != out["hidden"] // out["heads"]:
        raise f.fail(
            "head_dim",
            head_dim,
            "head_dim must be hidden_size / num_attention_heads or absent: GPT-NeoX's heads "
            "split the hidden size",
        )
