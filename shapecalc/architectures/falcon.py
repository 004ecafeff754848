"""``shapecalc falcon``: Falcon, named as ``transformers``' ``FalconForCausalLM`` names it.

A token embedding, L blocks whose attention makes queries, keys and values in one
``query_key_value``, a final LayerNorm and a head tied to the embedding. The flags cover
both layouts: Falcon-7B's (one key and value head shared by every query head, attention
and MLP side by side on one LayerNorm) and Falcon-40B's ``new_decoder_architecture``
(num_kv_heads key and value heads, a LayerNorm each for attention and MLP), and the older
RW models' (a key and value per head, ALiBi instead of rotary positions, biases,
attention then MLP).
"""

from __future__ import annotations

from typing import Any, ClassVar

from shapecalc.architectures import _transformer as tf
from shapecalc.architectures._transformer import TransformerLM
from shapecalc.core.declare import Built, choice, flag, size
from shapecalc.core.dims import Dim, dim_str, known
from shapecalc.core.errors import InvalidArgumentError
from shapecalc.core.flow import chain, each, residual, summed
from shapecalc.core.frozen import frozen
from shapecalc.core.hfmap import HFType
from shapecalc.core.model import Model
from shapecalc.core.tree import Block, Leaf, ModuleList
from shapecalc.layers._embedding import Embedding
from shapecalc.layers.activation import GELU
from shapecalc.layers.functional import Chunk, Rotary, ScaledDotProductAttention
from shapecalc.layers.linear import Dropout, Linear
from shapecalc.layers.norm import LayerNorm

__all__ = ["Falcon", "falcon"]

#: num_ln_in_parallel_attn: null (two with the new decoder, else one), 1 or 2
_NORMS = {None: "auto", 1: "one", 2: "two"}


@frozen(kw_only=True)
class Falcon(TransformerLM):
    """Falcon: token embedding ``word_embeddings`` (V × H), L blocks, a final LayerNorm
    ``ln_f`` and a head ``lm_head`` (V × H), the embedding itself unless
    --no-tie-weights.

    One block: ``query_key_value`` makes the A query heads of D = H / A and K key and
    value heads: (H + 2·K·D, H). K is 1 with multi_query (Falcon-7B), A without it, and
    num_kv_heads with new_decoder_architecture (Falcon-40B). ``dense`` maps the heads back,
    (H, H); the MLP maps H to I (4·H unless given) and back. Attention and MLP read one
    LayerNorm of the same input side by side (parallel_attn), or one each (ln_attn and
    ln_mlp, the new decoder's), or run one after the other with a LayerNorm each. Rotary
    positions or ALiBi: no parameters either way. Biases only with ``bias``.

        >>> m = falcon(vocab=65024, hidden=4544, layers=32, heads=71)
        >>> m.total
        6921720704
        >>> print(m.total_formula)
        2·L·D·H + 10·L·H² + 2·L·H + V·H + 2·H
    """

    command: ClassVar[str] = "falcon"
    function: ClassVar[str] = "falcon"
    title: ClassVar[str] = "Falcon"
    example: ClassVar[str] = "--vocab 65024 --hidden 4544 --layers 32 --heads 71"
    budget: ClassVar[str] = "7B"
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
    kv_heads: Any = size(
        "K",
        "Key and value heads of the new decoder (num_kv_heads), each shared by heads / "
        "kv_heads query heads; the old decoder has 1 (multi_query) or A.",
        None,
        unset=None,
        default_text="A",
        solvable=False,
    )
    intermediate: Any = tf.intermediate("ffn_hidden_size")
    new_decoder_architecture: bool = flag(
        "Falcon-40B's decoder: kv_heads key and value heads, attention and MLP side by side "
        "(new_decoder_architecture).",
        False,
    )
    multi_query: bool = flag(
        "One key and value head shared by every query head (multi_query; the old decoder "
        "only; --no-multi-query: one per head).",
        True,
    )
    parallel_attn: bool = flag(
        "Attention and MLP side by side on the same input (parallel_attn; "
        "--no-parallel-attn: one after the other, the old decoder only).",
        True,
    )
    parallel_norms: str = choice(
        ("auto", "one", "two"),
        "LayerNorms of a parallel block (num_ln_in_parallel_attn): two, ln_attn and ln_mlp "
        "(the new decoder only), or one input_layernorm for both; auto: two with the new "
        "decoder, else one.",
        "auto",
    )
    bias: bool = flag("Biases of every Linear of a block (bias).")
    alibi: bool = flag("ALiBi position biases instead of rotary positions (alibi).")
    tie_weights: bool = flag("The head is the token embedding (tie_word_embeddings).", True)
    head: str = tf.lm_head("FalconForCausalLM", "FalconModel", *tf.HEADS)
    labels: Any = tf.labels()
    dropout: float = tf.dropout("hidden_dropout, attention_dropout", 0.0)

    hf: ClassVar[tuple[HFType, ...]] = (
        HFType(
            model_type="falcon",
            lora_targets=("query_key_value",),
            gguf="falcon",
            config_class="FalconConfig",
            classes=tf.head_classes("Falcon", *tf.HEADS),
            base="transformer",
            keys={
                **tf.SIZE_KEYS,
                "kv_heads": "num_kv_heads",
                "intermediate": "ffn_hidden_size",
                "new_decoder_architecture": "new_decoder_architecture",
                "multi_query": "multi_query",
                "parallel_attn": "parallel_attn",
                "parallel_norms": "num_ln_in_parallel_attn",
                "bias": "bias",
                "alibi": "alibi",
                "dropout": ("hidden_dropout", "attention_dropout"),
                **tf.LABEL_KEYS,
            },
            values={"parallel_norms": _NORMS},
            defaults={
                "vocab_size": 65024,
                "hidden_size": 4544,
                "num_hidden_layers": 32,
                "num_attention_heads": 71,
                "num_kv_heads": None,
                "ffn_hidden_size": None,
                "num_ln_in_parallel_attn": None,
                "new_decoder_architecture": False,
                "multi_query": True,
                "parallel_attn": True,
                "bias": False,
                "alibi": False,
                "tie_word_embeddings": True,
                "hidden_dropout": 0.0,
                "attention_dropout": 0.0,
                "activation": "gelu",
            },
            aliases={"n_embed": "hidden_size"},
            free=frozenset(
                {
                    "activation",
                    "apply_residual_connection_post_layernorm",
                    "layer_norm_epsilon",
                    "max_position_embeddings",
                    "rope_parameters",
                    "rope_scaling",
                    "rope_theta",
                    "num_key_value_heads",
                    "head_dim",
                }
            ),
            dropped=(r"rotary_emb\.inv_freq",),
            strict_heads=True,
            read=lambda f, out: _read(out),
        ),
    )

    # -- checks ---------------------------------------------------------------------------
    def check(self) -> None:
        self.check_labels()
        self.check_heads()
        # transformers' FalconConfig checks its rotary table even with ALiBi
        self.check_rotary(self.head_size())
        if self.kv_heads is not None and not self.new_decoder_architecture:
            self._refuse(
                "kv_heads",
                self.kv_heads,
                "kv_heads is the new decoder's (new_decoder_architecture); the old one has "
                "1 key and value head (multi_query) or one per head",
            )
        self._divides(
            "kv_heads", self.heads, self.kv, "kv_heads must divide heads (query heads per group)"
        )
        if self.new_decoder_architecture and not self.parallel_attn:
            self._refuse(
                "parallel_attn",
                False,
                "the new decoder runs attention and MLP side by side: transformers' forward "
                "needs parallel_attn with new_decoder_architecture",
            )
        if self.parallel_norms == "two" and not (
            self.new_decoder_architecture and self.parallel_attn
        ):
            self._refuse(
                "parallel_norms",
                "two",
                "two LayerNorms (ln_attn, ln_mlp) are the new decoder's: transformers' forward "
                "reads them with new_decoder_architecture only",
            )

    def _refuse(self, field: str, value: Any, rule: str) -> None:
        raise InvalidArgumentError(rule, layer=self.owner(), field=field, value=value, rule=rule)

    @classmethod
    def multiple_for(cls, free: str, arguments: dict[str, Any]) -> int:
        """hidden: a multiple of twice the heads (an even head_dim, which transformers'
        FalconConfig asks for its rotary table even with ALiBi)."""
        step = super().multiple_for(free, arguments)
        return 2 * step if free == "hidden" else step

    @classmethod
    def consistent(cls, arguments: dict[str, Any]) -> dict[str, Any]:
        out = super().consistent(arguments)
        if out["hidden"] // out["heads"] % 2:
            out["hidden"] += out["heads"]  # an even head_dim (the rotary table's)
        if not out["new_decoder_architecture"]:
            out["kv_heads"] = None
        elif out["kv_heads"] is not None and out["heads"] % out["kv_heads"]:
            out["kv_heads"] = 1  # a divisor of every head count
        if out["new_decoder_architecture"]:
            out["parallel_attn"] = True
        elif out["parallel_norms"] == "two":
            out["parallel_norms"] = "auto"
        return out

    # -- the sizes worked out -------------------------------------------------------------
    @property
    def kv(self) -> Dim:
        """The key and value heads: num_kv_heads (new decoder), 1 (multi_query) or A."""
        if self.new_decoder_architecture:
            kv: Dim = self.heads if self.kv_heads is None else self.kv_heads
            return kv
        return 1 if self.multi_query else self.heads

    @property
    def two_norms(self) -> bool:
        """ln_attn and ln_mlp, as transformers' FalconDecoderLayer decides."""
        if not self.parallel_attn:
            return False
        if self.parallel_norms == "auto":
            return self.new_decoder_architecture
        return self.parallel_norms == "two"

    def _kv_width(self) -> Dim:
        """The keys' (and the values') width: K·D, written as H or D where it is one."""
        d = self.head_size()
        if self.new_decoder_architecture and self.kv_heads is not None:
            return self.kv * d
        if not self.new_decoder_architecture and self.multi_query:
            return d
        width: Dim = self.hidden
        return width

    # -- the tree -------------------------------------------------------------------------
    def _attention(self) -> Block:
        h, a, kv, d = self.hidden, self.heads, self.kv, self.head_size()
        kv_width = self._kv_width()
        bias = self.bias
        steps: tuple[Any, ...] = (Chunk((h, kv_width, kv_width)),)
        if not self.alibi:
            steps += (each((Rotary(a, d),), (Rotary(kv, d),), ()),)
        positions = "ALiBi" if self.alibi else "rotary positions"
        return Block(
            "FalconAttention",
            {
                "query_key_value": Leaf(
                    Linear(h, h + 2 * kv_width, bias=bias), role="query, key and value"
                ),
                "dense": Leaf(Linear(h, h, bias=bias), role="output projection"),
            },
            flow=chain("query_key_value", *steps, ScaledDotProductAttention(a, kv, d), "dense"),
            description=(
                f"{dim_str(a)} query heads over {dim_str(kv)} key and value heads of "
                f"{dim_str(d)}, {positions}"
            ),
        )

    def _block(self) -> Block:
        h, i, bias = self.hidden, self.inner, self.bias
        mlp = Block(
            "FalconMLP",
            {
                "dense_h_to_4h": Leaf(Linear(h, i, bias=bias), role="up"),
                "act": GELU(),
                "dense_4h_to_h": Leaf(Linear(i, h, bias=bias), role="down"),
            },
            flow=chain("dense_h_to_4h", "act", "dense_4h_to_h"),
        )
        children: dict[str, Any] = {"self_attention": self._attention(), "mlp": mlp}
        drop = Dropout(self.dropout)
        if not self.parallel_attn:  # transformers registers post_attention_layernorm first
            children["post_attention_layernorm"] = LayerNorm(h)
            children["input_layernorm"] = LayerNorm(h)
            flow = chain(
                residual("input_layernorm", "self_attention", drop),
                residual("post_attention_layernorm", "mlp", drop),
            )
        elif self.two_norms:
            children["ln_attn"] = LayerNorm(h)
            children["ln_mlp"] = LayerNorm(h)
            flow = chain(
                summed(
                    (),
                    (summed(("ln_attn", "self_attention"), ("ln_mlp", "mlp")), drop),
                )
            )
        else:
            children["input_layernorm"] = LayerNorm(h)
            flow = chain(
                summed((), ("input_layernorm", summed("self_attention", "mlp"), drop)),
            )
        return Block("FalconDecoderLayer", children, flow=flow)

    def build(self) -> Built:
        h, v = self.hidden, self.vocab
        body = Block(
            "FalconModel",
            {
                "word_embeddings": Leaf(
                    Embedding(v, h), "one H-vector per token", "token embedding"
                ),
                "h": ModuleList(self._block(), self.layers),
                "ln_f": Leaf(LayerNorm(h), role="final norm"),
            },
            flow=chain("word_embeddings", "h", "ln_f"),
        )
        return self.causal_lm(
            "FalconForCausalLM",
            "transformer",
            body,
            "word_embeddings",
            "head",
            classifier="classifier",
        )

    # -- the transformers classes of the same model -------------------------------------
    def hf_values(self) -> dict[str, Any]:
        """The arguments as a config writes them: the intermediate size worked out."""
        return super().hf_values()

    # -- explanation ----------------------------------------------------------------------
    def explanation(self, model: Model) -> list[tuple[str, list[str]]]:
        h, a, d, i, kv = self.hidden, self.heads, self.head_size(), self.inner, self.kv
        kv_width = self._kv_width()
        if self.new_decoder_architecture:
            shared = f"the new decoder's {dim_str(kv)} key and value heads"
        elif self.multi_query:
            shared = "one key and value head shared by every query head (multi_query)"
        else:
            shared = "a key and value head per query head"
        if not self.parallel_attn:
            together = "Attention, then the MLP, each after a LayerNorm with a residual add."
        elif self.two_norms:
            together = (
                "Attention and the MLP read the same input side by side, each through a "
                "LayerNorm of its own (ln_attn, ln_mlp); both outputs are added to it."
            )
        else:
            together = (
                "Attention and the MLP read one LayerNorm of the same input side by side; "
                "both outputs are added to it."
            )
        positions = (
            "ALiBi adds a bias per head and distance to the attention scores"
            if self.alibi
            else "Rotary positions turn every head's queries and keys"
        )
        lines = [
            f"The hidden size H = {dim_str(h)} is the length of every token's vector, in and "
            "out of every block.",
            f"Attention splits it into A = {dim_str(a)} query heads of head_dim D = "
            f"{dim_str(d)}, over {shared}: query_key_value is "
            f"({dim_str(h + 2 * kv_width)}, {dim_str(h)}), the queries and the keys and "
            f"values side by side; dense ({dim_str(h)}, {dim_str(h)}) maps them back.",
            f"{positions}: no parameters.",
            f"The MLP's size I = {dim_str(i)} (ffn_hidden_size): dense_h_to_4h maps H to I "
            "and dense_4h_to_h back.",
            together,
        ]
        if known(kv) is not None and known(a) is not None and kv != a:
            lines.append(
                f"The KV cache keeps {dim_str(kv)} key and value heads per layer, "
                f"{dim_str(kv)}/{dim_str(a)} of what one per query head would keep."
            )
        return [
            ("What the sizes mean", lines),
            (
                "Every matrix of one block",
                self.block_lines(model, self.in_body("transformer", "h")),
            ),
        ]


falcon = Falcon.function_for()


def _read(out: dict[str, Any]) -> None:
    """The same shapes in fewer letters: num_kv_heads only where the new decoder reads it
    (transformers' configs write it always), and not when it is A; the parallel norms
    only where they are read."""
    if not out["new_decoder_architecture"] or out["kv_heads"] == out["heads"]:
        out["kv_heads"] = None
    old_one = not out["new_decoder_architecture"] and out["parallel_norms"] == "one"
    if not out["parallel_attn"] or old_one:
        out["parallel_norms"] = "auto"
