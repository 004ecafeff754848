"""``shapecalc phi``: Phi-1, Phi-1.5 and Phi-2, named as ``transformers``' ``PhiForCausalLM``
names them.

A token embedding, L blocks in which attention and the MLP read one LayerNorm of the same
input side by side (the parallel residual), attention with rotary positions on a fraction
of each head, a final LayerNorm and a head with a bias of its own.
"""

from __future__ import annotations

from typing import Any, ClassVar

from shapecalc.architectures import _transformer as tf
from shapecalc.architectures._transformer import TransformerLM
from shapecalc.core.declare import Built, flag
from shapecalc.core.dims import Dim, dim_str
from shapecalc.core.flow import chain, parallel, residual, summed
from shapecalc.core.frozen import frozen
from shapecalc.core.hfmap import HFType
from shapecalc.core.model import Model
from shapecalc.core.tree import Block, Leaf, ModuleList
from shapecalc.layers._embedding import Embedding
from shapecalc.layers.activation import GELU
from shapecalc.layers.functional import Rotary, ScaledDotProductAttention, SplitHeads
from shapecalc.layers.linear import Dropout, Linear
from shapecalc.layers.norm import LayerNorm

__all__ = ["Phi", "phi"]


@frozen(kw_only=True)
class Phi(TransformerLM):
    """Phi-1, Phi-1.5 and Phi-2: token embedding ``embed_tokens`` (V × H), L blocks, a
    final LayerNorm ``final_layernorm`` and a head ``lm_head`` (V × H) with a bias (V).

    One block: one LayerNorm, read by attention and the MLP side by side; both outputs are
    added to the block's input. Attention has q_proj (A·D, H), k_proj and v_proj (K·D, H)
    each and ``dense`` (H, A·D), D = H / A, every one with a bias; rotary positions turn the
    first rotary_pct of each head (no parameters); with qk_norm, a LayerNorm of D on each
    head's queries and keys. The MLP maps H to I (fc1) and back (fc2), with biases.

        >>> m = phi(vocab=51200, hidden=2560, layers=32, heads=32)
        >>> m.total
        2779683840
        >>> print(m.total_formula)
        12·L·H² + 11·L·H + 2·V·H + 2·H + V
    """

    command: ClassVar[str] = "phi"
    function: ClassVar[str] = "phi"
    title: ClassVar[str] = "Phi-1, Phi-1.5, Phi-2"
    example: ClassVar[str] = "--vocab 51200 --hidden 2048 --layers 24 --heads 32"
    budget: ClassVar[str] = "1.4B"
    size_order: ClassVar[tuple[str, ...]] = (
        "vocab",
        "hidden",
        "layers",
        "heads",
        "kv_heads",
        "intermediate",
        "labels",
    )

    vocab: Any = tf.vocab()
    hidden: Any = tf.hidden()
    layers: Any = tf.layers()
    heads: Any = tf.heads()
    kv_heads: Any = tf.kv_heads()
    intermediate: Any = tf.intermediate("intermediate_size")
    rotary_pct: float = tf.rotary_fraction("partial_rotary_factor", 0.5)
    qk_norm: bool = flag("A LayerNorm of head_dim on each head's queries and keys (qk_layernorm).")
    tie_weights: bool = flag(
        "The head's weight is the token embedding (tie_word_embeddings); its bias stays."
    )
    head: str = tf.lm_head("PhiForCausalLM", "PhiModel", "seq-cls", "token-cls")
    labels: Any = tf.labels()
    dropout: float = tf.dropout("resid_pdrop, embd_pdrop, attention_dropout", 0.0)

    hf: ClassVar[tuple[HFType, ...]] = (
        HFType(
            model_type="phi",
            lora_targets=("q_proj", "v_proj", "fc1", "fc2"),
            gguf="phi2",
            config_class="PhiConfig",
            classes=tf.head_classes("Phi", "seq-cls", "token-cls"),
            base="model",
            keys={
                **tf.SIZE_KEYS,
                **tf.LABEL_KEYS,
                "kv_heads": "num_key_value_heads",
                "rotary_pct": "partial_rotary_factor",
                "qk_norm": "qk_layernorm",
                "dropout": ("resid_pdrop", "embd_pdrop", "attention_dropout"),
            },
            defaults={
                "vocab_size": 51200,
                "hidden_size": 2048,
                "intermediate_size": 8192,
                "num_hidden_layers": 24,
                "num_attention_heads": 32,
                "num_key_value_heads": None,
                "resid_pdrop": 0.0,
                "embd_pdrop": 0.0,
                "attention_dropout": 0.0,
                "hidden_act": "gelu_new",
                "tie_word_embeddings": False,
                "qk_layernorm": False,
                "partial_rotary_factor": 0.5,
                "pad_token_id": None,
            },
            free=frozenset(
                {
                    "hidden_act",
                    "layer_norm_eps",
                    "max_position_embeddings",
                    "rope_parameters",
                    "rope_scaling",
                    "rope_theta",
                    "head_dim",
                }
            ),
            dropped=(r"rotary_emb\.inv_freq",),
            strict_heads=True,
            read=lambda f, out: _read(f, out),
        ),
    )

    @property
    def rotated(self) -> Dim:
        """The numbers of a head rotary positions turn (see :meth:`TransformerLM.turned`)."""
        return self.turned(self.head_size(), self.rotary_pct)

    def hf_values(self) -> dict[str, Any]:
        """The arguments as a config writes them: kv heads and intermediate size worked out."""
        return {**super().hf_values(), "kv_heads": self.kv, "intermediate": self.inner}

    def check(self) -> None:
        self.check_labels()
        self.check_heads()
        self.check_turned("rotary_pct", self.rotary_pct)
        self._divides(
            "kv_heads", self.heads, self.kv, "kv_heads must divide heads (query heads per group)"
        )

    @classmethod
    def consistent(cls, arguments: dict[str, Any]) -> dict[str, Any]:
        out = super().consistent(arguments)
        if out.get("kv_heads") is not None and out["heads"] % out["kv_heads"]:
            out["kv_heads"] = 1  # a divisor of every head count
        return out

    def _attention(self) -> Block:
        h, a, kv, d = self.hidden, self.heads, self.kv, self.head_size()
        kv_width = h if self.kv_heads is None else kv * d
        rope_q, rope_k = Rotary(a, d, self.rotated), Rotary(kv, d, self.rotated)
        children: dict[str, Any] = {
            "q_proj": Leaf(Linear(h, h), role="query"),
            "k_proj": Leaf(Linear(h, kv_width), role="key"),
            "v_proj": Leaf(Linear(h, kv_width), role="value"),
            "dense": Leaf(Linear(h, h), role="output projection"),
        }
        q_steps: tuple[Any, ...] = (rope_q,)
        k_steps: tuple[Any, ...] = (rope_k,)
        if self.qk_norm:
            children["q_layernorm"] = Leaf(LayerNorm(d), role="query norm")
            children["k_layernorm"] = Leaf(LayerNorm(d), role="key norm")
            q_steps = (SplitHeads(a, d), "q_layernorm", rope_q)
            k_steps = (SplitHeads(kv, d), "k_layernorm", rope_k)
        qkv = parallel(("q_proj", *q_steps), ("k_proj", *k_steps), "v_proj")
        return Block(
            "PhiAttention",
            children,
            flow=chain(qkv, ScaledDotProductAttention(a, kv, d), "dense"),
            description=f"{dim_str(a)} query heads over {dim_str(kv)} key and value heads "
            f"of {dim_str(d)}",
        )

    def _block(self) -> Block:
        h, i = self.hidden, self.inner
        mlp = Block(
            "PhiMLP",
            {
                "fc1": Leaf(Linear(h, i), role="up"),
                "fc2": Leaf(Linear(i, h), role="down"),
                "activation_fn": GELU(approximate="tanh"),
            },
            flow=chain("fc1", "activation_fn", "fc2"),
        )
        return Block(
            "PhiDecoderLayer",
            {
                "self_attn": self._attention(),
                "mlp": mlp,
                "input_layernorm": LayerNorm(h),
                "resid_dropout": Dropout(self.dropout),
            },
            flow=residual(
                "input_layernorm",
                summed(("self_attn", "resid_dropout"), ("mlp", "resid_dropout")),
            ),
        )

    def build(self) -> Built:
        h, v = self.hidden, self.vocab
        body = Block(
            "PhiModel",
            {
                "embed_tokens": Leaf(Embedding(v, h), "one H-vector per token", "token embedding"),
                "layers": ModuleList(self._block(), self.layers),
                "embed_dropout": Dropout(self.dropout),
                "final_layernorm": Leaf(LayerNorm(h), role="final norm"),
            },
            flow=chain("embed_tokens", "embed_dropout", "layers", "final_layernorm"),
        )
        # Phi's head has a bias
        return self.causal_lm("PhiForCausalLM", "model", body, "embed_tokens", "head", bias=True)

    def explanation(self, model: Model) -> list[tuple[str, list[str]]]:
        h, a, kv, d, i = self.hidden, self.heads, self.kv, self.head_size(), self.inner
        lines = [
            f"The hidden size H = {dim_str(h)} is the length of every token's vector, in and "
            "out of every block.",
            f"Attention splits it into A = {dim_str(a)} heads of head_dim D = {dim_str(d)}: "
            f"q_proj ({dim_str(h)}, {dim_str(h)}) makes the queries, k_proj and v_proj the "
            f"keys and values of {dim_str(kv)} heads; dense ({dim_str(h)}, {dim_str(h)}) maps "
            "them back. Every projection has a bias.",
            f"Rotary positions turn {dim_str(self.rotated)} of each head's {dim_str(d)} numbers "
            "and hold no parameters.",
            f"The MLP's intermediate size I = {dim_str(i)}: fc1 maps H to I and fc2 back.",
            "One LayerNorm per block: attention and the MLP read it side by side and both "
            "outputs are added to the block's input (the parallel residual).",
        ]
        if self.with_head:
            lines.append(
                "The head (lm_head) scores every token with a bias of V numbers"
                + (
                    "; its weight is the token embedding, counted once."
                    if self.tie_weights
                    else "."
                )
            )
        return [
            ("What the sizes mean", lines),
            ("Every matrix of one block", self.block_lines(model, self.in_body("model", "layers"))),
        ]


phi = Phi.function_for()


def _read(f: Any, out: dict[str, Any]) -> None:
    """The padding id inside the vocabulary; as many kv heads as heads in fewer letters;
    a head_dim that is H / A or absent (the class splits the hidden size)."""
    f.padding("pad_token_id", out["vocab"], "token embedding (vocab_size)")
    if out["kv_heads"] == out["heads"]:
        out["kv_heads"] = None
    head_dim = f.raw("head_dim")
    if head_dim is not None and head_dim != out["hidden"] // out["heads"]:
        raise f.fail(
            "head_dim",
            head_dim,
            "head_dim must be hidden_size / num_attention_heads or absent: Phi's q and k "
            "norms and its dense projection split the hidden size",
        )
