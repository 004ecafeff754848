"""``shapecalc t5``: the T5 encoder-decoder (and mT5), named as ``transformers``'
``T5ForConditionalGeneration``, ``T5Model`` and ``T5EncoderModel`` name it.

One shared token embedding (``shared``, V × H) is the encoder's and the decoder's
``embed_tokens`` and the head (``lm_head``): transformers 5 ties all four whatever
``tie_word_embeddings`` says (that field only decides whether the decoder's output is
scaled by H^-0.5 before the head, a multiplication without parameters). Each stack: L
blocks of an RMS-style layer norm (``T5LayerNorm``: a weight, no bias), attention without
biases (queries, keys and values of A heads of D = d_kv each; A·D may differ from H) and
the feed-forward (``wi`` and ``wo``, or ``wi_0``, ``wi_1`` and ``wo`` gated), each with
its residual; the decoder's blocks have cross-attention (``EncDecAttention``) over the
encoder's output between the two. Positions are a bias on the attention scores learned
per bucket of relative distance and head (``relative_attention_bias``, R × A), held by
the first block of each stack only and shared by the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, ClassVar

from shapecalc.core.declare import Architecture, Built, choice, number, size
from shapecalc.core.dims import Dim, dim_str, known
from shapecalc.core.errors import InvalidArgumentError
from shapecalc.core.flow import chain, multiply, parallel, residual, summed
from shapecalc.core.frozen import frozen
from shapecalc.core.hfmap import HFType, Reference
from shapecalc.core.model import Model
from shapecalc.core.spec import LayerSpec
from shapecalc.core.tree import Block, Child, Leaf, ModuleList, Node, Repeat
from shapecalc.layers._embedding import Embedding
from shapecalc.layers._function import Select
from shapecalc.layers.activation import GELU, ReLU, SiLU, Tanh
from shapecalc.layers.functional import Pick, ScaledDotProductAttention
from shapecalc.layers.linear import Dropout, Linear
from shapecalc.layers.norm import RMSNorm

__all__ = ["T5", "t5"]

#: feed_forward_proj: the activation (``ACT2FN``'s name), ``gated-`` for the gated MLP;
#: transformers reads "gated-gelu" as gelu_new (configuration_t5.py, __post_init__)
FEED_FORWARD = ("relu", "gelu", "gelu_new", "silu", "gated-gelu", "gated-relu", "gated-silu")

#: the activation module of each of ACT2FN's names, as a layer spec
_ACT: dict[str, Callable[[], LayerSpec]] = {
    "relu": ReLU,
    "gelu": GELU,
    "gelu_new": lambda: GELU(approximate="tanh"),  # NewGELUActivation: the tanh form
    "silu": SiLU,
}

#: the classes: head -> the class's suffix
T5_HEADS: dict[str, str] = {
    "lm": "ForConditionalGeneration",
    "none": "Model",
    "encoder": "EncoderModel",
    "seq-cls": "ForSequenceClassification",
    "token-cls": "ForTokenClassification",
    "qa": "ForQuestionAnswering",
}
#: the heads over the encoder alone (no decoder, no source apart from the input)
ENCODER_ONLY = ("encoder", "token-cls")

#: the checkpoint name T5's and mT5's encoder-decoder classes drop on load, as they write it
_CROSS_BIAS = "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight"

#: T5LayerNorm's epsilon (layer_norm_epsilon's default)
EPS = 1e-6


def _read(f: Any, out: dict[str, Any]) -> None:
    """num_decoder_layers: null (or left out) is num_layers, as the config's
    ``__post_init__`` makes it."""
    if out.get("decoder_layers") == out.get("layers"):
        out["decoder_layers"] = None


def _write(model: Any, reference: Reference) -> Reference:
    """The decoder's layers always written (null is the encoder's)."""
    config = {**reference.config, "num_decoder_layers": model.decoder_depth}
    return Reference(reference.model, reference.config_class, config, reference.options)


def _t5_type(
    *,
    model_type: str,
    prefix: str,
    vocab: int,
    d_ff: int,
    layers: int,
    heads: int,
    feed_forward: str,
    dropped: tuple[str, ...] = (),
    position_bias: str = "first",
    lora_targets: tuple[str, ...] = (),
) -> HFType:
    """T5, mT5 or UMT5: the same classes and fields, their own defaults. ``dropped``:
    what transformers drops on load (``_keys_to_ignore_on_load_unexpected``, as it
    writes it); ``position_bias``: which blocks hold the relative position bias."""
    return HFType(
        lora_targets=lora_targets,
        model_type=model_type,
        config_class=f"{prefix}Config",
        classes={prefix + suffix: {"head": head} for head, suffix in T5_HEADS.items()},
        base="transformer",
        keys={
            "vocab": "vocab_size",
            "hidden": "d_model",
            "layers": "num_layers",
            "decoder_layers": "num_decoder_layers",
            "heads": "num_heads",
            "head_dim": "d_kv",
            "intermediate": "d_ff",
            "buckets": "relative_attention_num_buckets",
            "feed_forward": "feed_forward_proj",
            "dropout": "dropout_rate",
            "labels": "num_labels",
        },
        aliases={
            "hidden_size": "d_model",
            "num_attention_heads": "num_heads",
            "num_hidden_layers": "num_layers",
            "head_dim": "d_kv",
        },
        defaults={
            "vocab_size": vocab,
            "d_model": 512,
            "d_kv": 64,
            "d_ff": d_ff,
            "num_layers": layers,
            "num_decoder_layers": None,
            "num_heads": heads,
            "relative_attention_num_buckets": 32,
            "dropout_rate": 0.1,
            "feed_forward_proj": feed_forward,
        },
        free=frozenset(
            {
                # transformers 5 ties the head to shared whatever it says; false keeps the
                # decoder's output unscaled (configuration_t5.py, __post_init__)
                "tie_word_embeddings",
                "scale_decoder_outputs",
                "relative_attention_max_distance",
                "layer_norm_epsilon",
                "initializer_factor",
                "classifier_dropout",
                "is_encoder_decoder",
                "is_decoder",
                "use_cache",
                "decoder_start_token_id",
                "dense_act_fn",
                "is_gated_act",
                "n_positions",
                "task_specific_params",
                "output_past",
                "gradient_checkpointing",
                "tokenizer_class",
                "tie_encoder_decoder",
            }
        ),
        fixed={"position_bias": position_bias},
        unread=frozenset({"source_len"}),
        dropped=dropped,
        read=_read,
        write=_write,
    )


@frozen(kw_only=True)
class T5(Architecture):
    """T5: a shared token embedding (V × H), an encoder of L blocks and a decoder of M
    blocks (M = L unless given), each block's attention A heads of D (d_kv) and its
    feed-forward H to I and back (gated: two matrices in), RMS-style norms of H, the
    relative position bias (R × A) in the first block of each stack, and the head, which is
    the shared embedding.

        >>> m = t5(vocab=32128, hidden=768, layers=12, heads=12, intermediate=3072)
        >>> m.total
        222903552
    """

    command: ClassVar[str] = "t5"
    function: ClassVar[str] = "t5"
    title: ClassVar[str] = "T5 encoder-decoder"
    example: ClassVar[str] = "--vocab 32128 --hidden 768 --layers 12 --heads 12 --intermediate 3072"
    budget: ClassVar[str] = "250M"
    size_order: ClassVar[tuple[str, ...]] = (
        "vocab",
        "hidden",
        "layers",
        "decoder_layers",
        "heads",
        "head_dim",
        "intermediate",
        "buckets",
        "source_len",
        "labels",
    )
    label_heads: ClassVar[frozenset[str]] = frozenset({"seq-cls", "token-cls", "qa"})
    explains: ClassVar[str] = (
        "Explain d_model, heads and d_kv, the feed-forward, the shared embedding, every "
        "matrix of one encoder and one decoder block, and where the total comes from."
    )

    vocab: Any = size("V", "Vocabulary size: tokens in and out (vocab_size).")
    hidden: Any = size("H", "Hidden size (d_model): the length of every token's vector.")
    layers: Any = size("L", "Encoder blocks (num_layers).")
    decoder_layers: Any = size(
        "M",
        "Decoder blocks (num_decoder_layers; --head encoder builds none).",
        None,
        unset=None,
        default_text="L",
    )
    heads: Any = size("A", "Attention heads (num_heads).", solvable=False)
    head_dim: Any = size(
        "D",
        "The width of one head (d_kv): queries, keys and values are A·D wide, which may "
        "differ from H.",
        64,
        solvable=False,
    )
    intermediate: Any = size(
        "I", "The feed-forward's inner size (d_ff).", None, unset=None, default_text="4·H"
    )
    buckets: Any = size(
        "R",
        "Relative-position buckets of the attention bias (relative_attention_num_buckets).",
        32,
        solvable=False,
    )
    feed_forward: str = choice(
        FEED_FORWARD,
        "The feed-forward (feed_forward_proj): an activation between wi and wo (relu: T5 "
        "v1.0), or gated-ACT: act(wi_0·x) times wi_1·x, then wo (gated-gelu: T5 v1.1, "
        "Flan-T5, mT5).",
        "relu",
    )
    position_bias: str = choice(
        ("first", "every"),
        "Which blocks hold the relative position bias: first, block 0 of each stack, "
        "shared by the others (T5, mT5); every, each block its own (UMT5).",
        "first",
    )
    head: str = choice(
        tuple(T5_HEADS),
        "lm: encoder, decoder and the head scoring every token "
        "(T5ForConditionalGeneration); none: encoder and decoder (T5Model); encoder: the "
        "encoder alone (T5EncoderModel); seq-cls: T5Model as transformer and "
        "classification_head (dense, tanh, out_proj N × H) at the last end-of-sequence "
        "token; token-cls: T5EncoderModel as transformer and classifier (N × H) on every "
        "token; qa: encoder, decoder and qa_outputs (N × H: a start and an end score).",
        "lm",
    )
    labels: Any = size(
        "N",
        "Labels of --head seq-cls, token-cls or qa (num_labels, or the length of id2label).",
        None,
        unset=None,
        default_text="2",
        solvable=False,
    )
    source_len: Any = size(
        "S",
        "Source tokens per request: the encoder's input length for --shapes, --flops and "
        "--memory (it changes no tensor; --seq-len is the decoder's).",
        None,
        unset=None,
        default_text="T",
        solvable=False,
    )
    dropout: float = number(
        "Dropout of the embeddings, attention and residuals (dropout_rate); it adds no parameters.",
        0.1,
        low=0,
        high=1,
        open_high=True,
    )

    hf: ClassVar[tuple[HFType, ...]] = (
        _t5_type(
            model_type="t5",
            prefix="T5",
            lora_targets=("q", "v"),
            vocab=32128,
            d_ff=2048,
            layers=6,
            heads=8,
            feed_forward="relu",
            # a cross-attention bias no block holds; T5EncoderModel: a whole decoder
            dropped=(_CROSS_BIAS, r"decoder"),
        ),
        _t5_type(
            model_type="mt5",
            prefix="MT5",
            lora_targets=("q", "v"),
            vocab=250112,
            d_ff=1024,
            layers=8,
            heads=6,
            feed_forward="gated-gelu",
            dropped=(_CROSS_BIAS,),
        ),
        _t5_type(
            model_type="umt5",
            prefix="UMT5",
            vocab=250112,
            d_ff=1024,
            layers=8,
            heads=6,
            feed_forward="gated-gelu",
            position_bias="every",
            # UMT5ForSequenceClassification's and ForTokenClassification's: a tensor no
            # UMT5 holds (its cross-attention has no position bias)
            dropped=(_CROSS_BIAS,),
        ),
    )

    # -- the sizes worked out -----------------------------------------------------------
    @property
    def inner(self) -> Dim:
        """The feed-forward's inner size: given, or 4·H."""
        given: Dim = 4 * self.hidden if self.intermediate is None else self.intermediate
        return given

    @property
    def decoder_depth(self) -> Dim:
        """The decoder's blocks: given, or the encoder's."""
        given: Dim = self.layers if self.decoder_layers is None else self.decoder_layers
        return given

    @property
    def gated(self) -> bool:
        return self.feed_forward.startswith("gated-")

    @property
    def activation(self) -> str:
        """ACT2FN's name of the activation (``gated-gelu`` is gelu_new)."""
        if self.feed_forward == "gated-gelu":
            return "gelu_new"
        return self.feed_forward.removeprefix("gated-")

    def sizes(self) -> dict[str, Dim]:
        out = super().sizes()
        if self.intermediate is None and known(self.inner) is not None:
            out["I"] = self.inner
        return out

    def hf_values(self) -> dict[str, Any]:
        return {
            **super().hf_values(),
            "intermediate": self.inner,
            "decoder_layers": self.decoder_depth,
            "labels": self.n_labels,
        }

    @classmethod
    def consistent(cls, arguments: dict[str, Any]) -> dict[str, Any]:
        """The encoder alone has no decoder and no source apart from its input."""
        out = dict(arguments)
        if out.get("head") in ENCODER_ONLY:
            out["decoder_layers"] = out["source_len"] = None
        if out.get("head") not in cls.label_heads:
            out["labels"] = None  # only a task head has labels
        return out

    @property
    def n_labels(self) -> Dim:
        """The task head's labels: given, or 2 (PretrainedConfig's num_labels)."""
        given: Dim = 2 if self.labels is None else self.labels
        return given

    def check(self) -> None:
        if self.head in ENCODER_ONLY and self.source_len is not None:
            rule = f"source_len is an encoder-decoder's: --head {self.head} reads --seq-len tokens"
            raise InvalidArgumentError(
                rule, layer=self.owner(), field="source_len", value=self.source_len, rule=rule
            )
        if self.labels is not None and self.head not in self.label_heads:
            rule = "labels sizes a task head (--head seq-cls, token-cls or qa)"
            raise InvalidArgumentError(
                f"{rule}; --head {self.head} has none",
                layer=self.owner(),
                field="labels",
                value=self.labels,
                rule=rule,
            )

    # -- the tree -------------------------------------------------------------------------
    def _attention(self, *, decoder: bool, cross: bool, bias: bool) -> Block:
        """``T5Attention``: q, k, v (H to A·D) and o (A·D to H), no biases; the relative
        position bias (R × A) in the first block of a stack."""
        h, a, d = self.hidden, self.heads, self.head_dim
        inner = a * d
        children: dict[str, Any] = {
            "q": Leaf(Linear(h, inner, bias=False), role="query"),
            "k": Leaf(Linear(h, inner, bias=False), role="key"),
            "v": Leaf(Linear(h, inner, bias=False), role="value"),
            "o": Leaf(Linear(inner, h, bias=False), role="output projection"),
        }
        if bias:
            children["relative_attention_bias"] = Leaf(
                Embedding(self.buckets, a),
                "a score bias per bucket of relative distance and head, shared by the "
                "stack's blocks",
                "relative position bias",
            )
        attend = ScaledDotProductAttention(
            a, a, d, causal=decoder and not cross, cross=cross, cached=decoder
        )
        if cross:  # queries from the decoder, keys and values from the encoder's output
            project = parallel(chain(Pick(0), "q"), chain(Pick(1), "k"), chain(Pick(1), "v"))
            what = "queries from the decoder, keys and values from the encoder's output"
        else:
            project = parallel("q", "k", "v")
            what = "every token sees " + ("the tokens before it" if decoder else "every token")
        return Block(
            "T5Attention",
            children,
            flow=chain(project, attend, "o"),
            description=f"{dim_str(a)} heads of {dim_str(d)}: {what}",
        )

    def _feed_forward(self) -> Block:
        h, i = self.hidden, self.inner
        act = _ACT[self.activation]()
        if self.gated:
            children: dict[str, Any] = {
                "wi_0": Leaf(Linear(h, i, bias=False), role="gate"),
                "wi_1": Leaf(Linear(h, i, bias=False), role="up"),
                "wo": Leaf(Linear(i, h, bias=False), role="down"),
                "dropout": Dropout(self.dropout),
                "act": act,
            }
            flow = chain(multiply(("wi_0", "act"), "wi_1"), "dropout", "wo")
            kind = "T5DenseGatedActDense"
        else:
            children = {
                "wi": Leaf(Linear(h, i, bias=False), role="up"),
                "wo": Leaf(Linear(i, h, bias=False), role="down"),
                "dropout": Dropout(self.dropout),
                "act": act,
            }
            flow = chain("wi", "act", "dropout", "wo")
            kind = "T5DenseActDense"
        return Block(
            "T5LayerFF",
            {
                "DenseReluDense": Block(kind, children, flow=flow),
                "layer_norm": RMSNorm(h, eps=EPS),
                "dropout": Dropout(self.dropout),
            },
            flow=residual("layer_norm", "DenseReluDense", "dropout"),
        )

    def _block(self, *, decoder: bool, bias: bool) -> Block:
        """``T5Block``: its ``layer`` list holds self-attention, (the decoder's)
        cross-attention and the feed-forward."""
        h = self.hidden
        norm, drop = RMSNorm(h, eps=EPS), Dropout(self.dropout)
        own = Block(
            "T5LayerSelfAttention",
            {
                "SelfAttention": self._attention(decoder=decoder, cross=False, bias=bias),
                "layer_norm": norm,
                "dropout": drop,
            },
            flow=residual("layer_norm", "SelfAttention", "dropout"),
        )
        parts: dict[str, Any] = {"0": own}
        if decoder:
            parts["1"] = Block(
                "T5LayerCrossAttention",
                {
                    "EncDecAttention": self._attention(decoder=True, cross=True, bias=False),
                    "layer_norm": norm,
                    "dropout": drop,
                },
                flow=summed(
                    Pick(0),
                    chain(
                        parallel(chain(Pick(0), "layer_norm"), Pick(1)),
                        "EncDecAttention",
                        "dropout",
                    ),
                ),
            )
            parts["2"] = self._feed_forward()
            # (hidden, encoder output) in: self-attention on the first, cross-attention on
            # both, the feed-forward on what comes out
            flow = chain(parallel(chain(Pick(0), "0"), Pick(1)), "1", "2")
        else:
            parts["1"] = self._feed_forward()
            flow = chain("0", "1")
        return Block(
            "T5Block", {"layer": Block("ModuleList", parts, flow=flow)}, flow=chain("layer")
        )

    def _stack(self, *, decoder: bool) -> Block:
        """``T5Stack``: embed_tokens (the shared embedding), the blocks, final_layer_norm."""
        h, v = self.hidden, self.vocab
        count = self.decoder_depth if decoder else self.layers
        first = self._block(decoder=decoder, bias=True)
        if self.position_bias == "every":  # UMT5: each block its own bias
            blocks = ModuleList(first, count, carry=decoder)
        else:
            entries: list[Any] = [Child("0", first)]
            if known(count) != 1:
                rest = self._block(decoder=decoder, bias=False)
                entries.append(Repeat(rest, count - 1, start=1, carry=decoder))
            blocks = Block("ModuleList", tuple(entries))
        embed = Leaf(Embedding(v, h), "one H-vector per token (the shared embedding)", "embedding")
        children = {
            "embed_tokens": embed,
            "block": blocks,
            "final_layer_norm": Leaf(RMSNorm(h, eps=EPS), role="final norm"),
            "dropout": Dropout(self.dropout),
        }
        if decoder:  # (encoder output, target ids) in
            flow = chain(
                parallel(chain(Pick(1), "embed_tokens", "dropout"), Pick(0)),
                "block",
                "final_layer_norm",
                "dropout",
            )
        else:
            flow = chain("embed_tokens", "dropout", "block", "final_layer_norm", "dropout")
        return Block("T5Stack", children, flow=flow)

    def build(self) -> Built:
        h, v = self.hidden, self.vocab
        prefix = "UMT5" if self.position_bias == "every" else "T5"
        shared = Leaf(Embedding(v, h), "one H-vector per token, shared", "token embedding")
        if self.head in ("seq-cls", "token-cls"):
            return self._classifier(prefix)
        ties = {"encoder.embed_tokens.weight": "shared.weight"}
        if self.head == "encoder":
            root = Block(
                prefix + T5_HEADS["encoder"],
                {"shared": shared, "encoder": self._stack(decoder=False)},
                flow=chain("encoder"),
            )
            return Built(root, ties=ties, input_layout=(("B", "T"),), group_depth=1)
        ties["decoder.embed_tokens.weight"] = "shared.weight"
        children: dict[str, Node] = {
            "shared": shared,
            "encoder": self._stack(decoder=False),
            "decoder": self._stack(decoder=True),
        }
        # (source ids, target ids) in: the encoder on the source, the decoder on its output
        # and the target
        steps: list[Any] = [parallel(chain(Pick(0), "encoder"), Pick(1)), "decoder"]
        head = ""
        if self.head == "lm":
            children["lm_head"] = Leaf(Linear(h, v, bias=False), "a score per token", "head")
            ties["lm_head.weight"] = "shared.weight"
            steps.append("lm_head")
            head = "lm_head"
        elif self.head == "qa":
            what = "a start and an end score for every token"
            children["qa_outputs"] = Leaf(Linear(h, self.n_labels), what, "answer span head")
            steps.append("qa_outputs")
        root = Block(prefix + T5_HEADS[self.head], children, flow=chain(*steps))
        source = "T" if self.source_len is None else "S"
        return Built(
            root,
            ties=ties,
            input_layout=(("B", source), ("B", "T")),
            group_depth=1,
            head=head,
        )

    def _classifier(self, prefix: str) -> Built:
        """T5ForSequenceClassification: ``transformer`` (T5Model) and
        ``classification_head`` (T5ClassificationHead: dropout, dense H × H, tanh, dropout,
        out_proj N × H) at the decoder's last end-of-sequence token;
        T5ForTokenClassification: ``transformer`` (T5EncoderModel), ``dropout`` and
        ``classifier`` (N × H) on every token."""
        h, n = self.hidden, self.n_labels
        body = replace(
            self, head="none" if self.head == "seq-cls" else "encoder", labels=None
        ).build()
        drop = Dropout(self.dropout)
        children: dict[str, Any] = {"transformer": body.root}
        if self.head == "seq-cls":
            children["classification_head"] = Block(
                prefix + "ClassificationHead",
                {
                    "dense": Leaf(Linear(h, h), role="classification head"),
                    "dropout": Dropout(0.0),  # classifier_dropout: no parameters
                    "out_proj": Leaf(Linear(h, n), "a score per label", "classification head"),
                },
                flow=chain("dropout", "dense", Tanh(), "dropout", "out_proj"),
            )
            flow = chain("transformer", Select(1), "classification_head")
        else:
            children["dropout"] = drop
            children["classifier"] = Leaf(
                Linear(h, n), "a score per label for every token", "classification head"
            )
            flow = chain("transformer", "dropout", "classifier")
        ties = {f"transformer.{k}": f"transformer.{v}" for k, v in body.ties.items()}
        root = Block(prefix + T5_HEADS[self.head], children, flow=flow)
        return Built(root, ties=ties, input_layout=body.input_layout, group_depth=2)

    # -- explanation ----------------------------------------------------------------------
    def explanation(self, model: Model) -> list[tuple[str, list[str]]]:
        h, a, d, i = self.hidden, self.heads, self.head_dim, self.inner
        ff = (
            f"wi_0 and wi_1 map H to I = {dim_str(i)} (act(wi_0·x) times wi_1·x), wo maps back"
            if self.gated
            else f"wi maps H to I = {dim_str(i)}, {self.activation}, wo maps back"
        )
        lines = [
            f"The hidden size H = {dim_str(h)} (d_model) is every token's vector, in and out "
            "of every block of both stacks.",
            f"Attention has A = {dim_str(a)} heads of D = {dim_str(d)} (d_kv): q, k and v "
            f"map H to A·D = {dim_str(a * d)}, o maps back; no biases.",
            f"The feed-forward: {ff}; no biases.",
            "The decoder's blocks attend to the encoder's output between their "
            "self-attention and feed-forward (EncDecAttention: its own q, k, v and o).",
            f"The relative position bias, R = {dim_str(self.buckets)} buckets × A heads, is "
            + (
                "held by every block (UMT5)."
                if self.position_bias == "every"
                else "held by block 0 of each stack and shared by the stack's other blocks."
            ),
            "One V × H embedding (shared) is both stacks' embed_tokens"
            + (" and the head (lm_head), counted once." if self.head == "lm" else "."),
        ]
        return [("What the sizes mean", lines)]


t5 = T5.function_for()
