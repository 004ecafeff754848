"""``shapecalc starcoder2``: StarCoder2, named as ``transformers``' ``Starcoder2ForCausalLM``
names it.

A token embedding, L blocks of LayerNorm, grouped-query attention with rotary positions,
LayerNorm and an MLP of two projections, a final LayerNorm and a head tied to the token
embedding unless told otherwise. Every projection and norm has a bias (``use_bias``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from shapecalc.architectures import _transformer as tf
from shapecalc.architectures._transformer import TransformerLM
from shapecalc.core.declare import Built, flag
from shapecalc.core.dims import dim_str
from shapecalc.core.flow import chain, parallel, residual
from shapecalc.core.frozen import frozen
from shapecalc.core.hfmap import HFType
from shapecalc.core.model import Model
from shapecalc.core.tree import Block, Leaf
from shapecalc.layers._embedding import Embedding
from shapecalc.layers._linear import Linear
from shapecalc.layers.activation import GELU
from shapecalc.layers.functional import Rotary, ScaledDotProductAttention
from shapecalc.layers.norm import LayerNorm

__all__ = ["StarCoder2", "starcoder2"]


@frozen(kw_only=True)
class StarCoder2(tf.Windowed, TransformerLM):
    """StarCoder2: token embedding ``embed_tokens`` (V × H), L blocks, a final LayerNorm
    ``norm`` and a head ``lm_head`` (V × H), the token embedding itself unless
    --no-tie-weights.

    One block: LayerNorm, attention, LayerNorm, MLP, each with a residual add. Attention's
    q_proj is (H, H), k_proj and v_proj (K·D, H) each, D = H / A, the A query heads sharing
    K key and value heads; o_proj (H, H). The MLP's c_fc maps H to I and c_proj back. With
    use_bias every projection has a bias; the LayerNorms always have one.

        >>> m = starcoder2(vocab=49152, hidden=3072, layers=30, heads=24, kv_heads=2,
        ...                intermediate=12288)
        >>> m.total
        3030371328
    """

    command: ClassVar[str] = "starcoder2"
    function: ClassVar[str] = "starcoder2"
    title: ClassVar[str] = "StarCoder2"
    example: ClassVar[str] = (
        "--vocab 49152 --hidden 3072 --layers 30 --heads 24 --kv-heads 2 --intermediate 12288"
    )
    budget: ClassVar[str] = "3B"
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
    bias: bool = flag(
        "Biases of every projection of attention and the MLP (use_bias; --no-bias: none).",
        True,
    )
    tie_weights: bool = flag(
        "The head is the token embedding (tie_word_embeddings; --no-tie-weights: a head of "
        "its own).",
        True,
    )
    head: str = tf.lm_head("Starcoder2ForCausalLM", "Starcoder2Model", "seq-cls", "token-cls")
    labels: Any = tf.labels()
    sliding_window: Any = tf.sliding_window()
    layer_types: Any = tf.window_layer_types()
    dropout: float = tf.dropout("residual_dropout, embedding_dropout, attention_dropout", 0.0)

    hf: ClassVar[tuple[HFType, ...]] = (
        HFType(
            model_type="starcoder2",
            gguf="starcoder2",
            config_class="Starcoder2Config",
            classes=tf.head_classes("Starcoder2", "seq-cls", "token-cls"),
            base="model",
            keys={
                **tf.SIZE_KEYS,
                **tf.LABEL_KEYS,
                "kv_heads": "num_key_value_heads",
                "bias": "use_bias",
                "dropout": ("residual_dropout", "embedding_dropout", "attention_dropout"),
            },
            defaults={
                "sliding_window": None,
                "vocab_size": 49152,
                "hidden_size": 3072,
                "intermediate_size": 12288,
                "num_hidden_layers": 30,
                "num_attention_heads": 24,
                "num_key_value_heads": 2,
                "hidden_act": "gelu_pytorch_tanh",
                "use_bias": True,
                "tie_word_embeddings": True,
                "residual_dropout": 0.0,
                "embedding_dropout": 0.0,
                "attention_dropout": 0.0,
                "pad_token_id": None,
            },
            free=frozenset(
                {
                    "hidden_act",
                    "norm_epsilon",
                    "max_position_embeddings",
                    "rope_parameters",
                    "rope_scaling",
                    "rope_theta",
                    "sliding_window",  # no tensor: read for the cache by the window rule
                    "head_dim",
                    "mlp_type",  # in the published files ("default"); transformers reads none
                }
            ),
            dropped=(r"rotary_emb\.inv_freq",),
            strict_heads=True,
            **tf.windowed_hooks("all", lambda f, out: _read(f, out)),
        ),
    )

    def hf_values(self) -> dict[str, Any]:
        """The arguments as a config writes them: kv heads and intermediate size worked out."""
        return {**super().hf_values(), "kv_heads": self.kv, "intermediate": self.inner}

    def check(self) -> None:
        self.check_labels()
        self.check_heads()
        self._divides(
            "kv_heads", self.heads, self.kv, "kv_heads must divide heads (query heads per group)"
        )
        self.check_window()

    @classmethod
    def consistent(cls, arguments: dict[str, Any]) -> dict[str, Any]:
        out = super().consistent(arguments)
        if out.get("kv_heads") is not None and out["heads"] % out["kv_heads"]:
            out["kv_heads"] = 1  # a divisor of every head count
        return out

    def _attention(self, window: int | None = None) -> Block:
        h, a, kv, d, b = self.hidden, self.heads, self.kv, self.head_size(), self.bias
        kv_width = h if self.kv_heads is None else kv * d
        qkv = parallel(("q_proj", Rotary(a, d)), ("k_proj", Rotary(kv, d)), "v_proj")
        return Block(
            "Starcoder2Attention",
            {
                "q_proj": Leaf(Linear(h, h, bias=b), role="query"),
                "k_proj": Leaf(Linear(h, kv_width, bias=b), role="key"),
                "v_proj": Leaf(Linear(h, kv_width, bias=b), role="value"),
                "o_proj": Leaf(Linear(h, h, bias=b), role="output projection"),
            },
            flow=chain(qkv, ScaledDotProductAttention(a, kv, d, window=window), "o_proj"),
            description=f"{dim_str(a)} query heads over {dim_str(kv)} key and value heads "
            f"of {dim_str(d)}",
        )

    def _block(self, window: int | None = None) -> Block:
        h, i, b = self.hidden, self.inner, self.bias
        mlp = Block(
            "Starcoder2MLP",
            {
                "c_fc": Leaf(Linear(h, i, bias=b), role="up"),
                "c_proj": Leaf(Linear(i, h, bias=b), role="down"),
                "act": GELU(approximate="tanh"),
            },
            flow=chain("c_fc", "act", "c_proj"),
        )
        return Block(
            "Starcoder2DecoderLayer",
            {
                "self_attn": self._attention(window),
                "mlp": mlp,
                "input_layernorm": LayerNorm(h),
                "post_attention_layernorm": LayerNorm(h),
            },
            flow=chain(
                residual("input_layernorm", "self_attn"),
                residual("post_attention_layernorm", "mlp"),
            ),
        )

    def build(self) -> Built:
        h, v = self.hidden, self.vocab
        body = Block(
            "Starcoder2Model",
            {
                "embed_tokens": Leaf(Embedding(v, h), "one H-vector per token", "token embedding"),
                "layers": self.windowed_stack(self._block),
                "norm": Leaf(LayerNorm(h), role="final norm"),
            },
            flow=chain("embed_tokens", "layers", "norm"),
        )
        return self.causal_lm("Starcoder2ForCausalLM", "model", body, "embed_tokens", "head")

    def explanation(self, model: Model) -> list[tuple[str, list[str]]]:
        h, a, kv, d, i = self.hidden, self.heads, self.kv, self.head_size(), self.inner
        biases = "Every projection has a bias." if self.bias else "No projection has a bias."
        lines = [
            f"The hidden size H = {dim_str(h)} is the length of every token's vector, in and "
            "out of every block.",
            f"Attention splits it into A = {dim_str(a)} heads of head_dim D = {dim_str(d)}, "
            f"sharing {dim_str(kv)} key and value heads: q_proj and o_proj are "
            f"({dim_str(h)}, {dim_str(h)}), k_proj and v_proj ({dim_str(kv * d)}, "
            f"{dim_str(h)}) each. {biases}",
            "Rotary positions turn every head's numbers and hold no parameters.",
            f"The MLP's intermediate size I = {dim_str(i)}: c_fc maps H to I and c_proj back.",
        ]
        if self.with_head:
            lines.append(
                "The head (lm_head) is the token embedding itself: counted once."
                if self.tie_weights
                else "The head (lm_head) is a V × H matrix of its own."
            )
        return [
            ("What the sizes mean", lines),
            ("Every matrix of one block", self.block_lines(model, self.in_body("model", "layers"))),
        ]


starcoder2 = StarCoder2.function_for()


def _read(f: Any, out: dict[str, Any]) -> None:
    """The padding id inside the vocabulary; as many kv heads as heads in fewer letters;
    a head_dim that is H / A or absent."""
    f.padding("pad_token_id", out["vocab"], "token embedding (vocab_size)")
    if out["kv_heads"] == out["heads"]:
        out["kv_heads"] = None
    head_dim = f.raw("head_dim")
    if head_dim is not None and head_dim != out["hidden"] // out["heads"]:
        raise f.fail(
            "head_dim",
            head_dim,
            "head_dim must be hidden_size / num_attention_heads or absent: StarCoder2's "
            "q_proj and o_proj are hidden_size wide",
        )
