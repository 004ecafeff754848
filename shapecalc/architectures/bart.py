"""``shapecalc bart``: BART and mBART encoder-decoders, named as ``transformers``'
``BartForConditionalGeneration``, ``BartModel``, ``MBartForConditionalGeneration`` and
``MBartModel`` name them.

One token embedding (``shared``, V × H), which both stacks' ``embed_tokens`` and the head
are when the embeddings are tied (``tie_word_embeddings``; untied, all four are their own
tables). Each stack: the tokens' vectors plus learned positions (a table of C + 2 rows:
positions start at 2, ``BartLearnedPositionalEmbedding``'s offset), ``layernorm_embedding``,
then its layers: attention with biases (``k_proj``, ``v_proj``, ``q_proj``, ``out_proj``,
H × H each; A heads of H / A), the feed-forward ``fc1`` (H to I) and ``fc2`` (back), each
with a LayerNorm after its residual (BART) or before it (mBART, whose stacks end in a
``layer_norm`` of their own). The decoder's layers attend to the encoder's output
between the two (``encoder_attn``). ``ForConditionalGeneration`` adds the head and
``final_logits_bias``, a (1, V) buffer added to the scores; ``scale_embedding`` (√H
times the token vectors) holds no tensor.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

from shapecalc.core.declare import Architecture, Built, choice, flag, number, size
from shapecalc.core.dims import Dim, as_size, dim_str, known, symbol
from shapecalc.core.errors import InvalidArgumentError
from shapecalc.core.flow import Positions, chain, parallel, residual, summed
from shapecalc.core.frozen import frozen
from shapecalc.core.hfmap import HFType, Reference
from shapecalc.core.model import Model
from shapecalc.core.own import Buffer
from shapecalc.core.spec import LayerSpec
from shapecalc.core.tree import Block, Leaf, ModuleList, Node
from shapecalc.layers._embedding import Embedding
from shapecalc.layers._function import Select
from shapecalc.layers.activation import GELU, ReLU, SiLU, Tanh
from shapecalc.layers.functional import Pick, ScaledDotProductAttention
from shapecalc.layers.linear import Dropout, Linear
from shapecalc.layers.norm import LayerNorm

__all__ = ["BART", "DECODER_TWINS", "attention", "bart", "layer"]

#: the positions start after two reserved rows (BartLearnedPositionalEmbedding.offset)
OFFSET = 2

#: activation_function: ACT2FN's name -> the module, as a layer spec
ACTIVATIONS: dict[str, Callable[[], LayerSpec]] = {
    "gelu": GELU,
    "relu": ReLU,
    "silu": SiLU,
    "gelu_new": lambda: GELU(approximate="tanh"),
}

#: head -> the class's suffix
BART_HEADS: dict[str, str] = {
    "lm": "ForConditionalGeneration",
    "none": "Model",
    "seq-cls": "ForSequenceClassification",
    "qa": "ForQuestionAnswering",
}
#: num_labels when a config says none: BartConfig's own default (3; its __init__ sets it
#: unless id2label is given), PretrainedConfig's (2) for mBART
DEFAULT_LABELS = {"bart": 3, "mbart": 2}

#: (argument, its decoder twin): the decoder's size is the encoder's unless given
DECODER_TWINS = (
    ("layers", "decoder_layers"),
    ("heads", "decoder_heads"),
    ("intermediate", "decoder_intermediate"),
)


def _read(f: Any, out: dict[str, Any]) -> None:
    """A decoder size equal to the encoder's is the encoder's (the default); the
    positions table holds max_position_embeddings + 2 rows."""
    for encoder, decoder in DECODER_TWINS:
        if out.get(decoder) == out.get(encoder):
            out[decoder] = None
    f.padding("pad_token_id", out["vocab"], "token embedding (vocab_size)")


def _write(model: Any, reference: Reference) -> Reference:
    """Every decoder size written (the config class's defaults are not the encoder's)."""
    config = {
        **reference.config,
        "decoder_layers": model.decoder_depth,
        "decoder_attention_heads": model.decoder_head_count,
        "decoder_ffn_dim": model.decoder_inner,
        "pad_token_id": 1,
    }
    return Reference(reference.model, reference.config_class, config, reference.options)


def _bart_type(
    *,
    model_type: str,
    prefix: str,
    dropped: tuple[str, ...] = (),
    lora_targets: tuple[str, ...] = (),
) -> HFType:
    """BART or mBART: the same fields and defaults, their own classes and layout;
    ``dropped``: what transformers drops on load (``_keys_to_ignore_on_load_unexpected``)."""
    return HFType(
        lora_targets=lora_targets,
        model_type=model_type,
        config_class=f"{prefix}Config",
        classes={prefix + suffix: {"head": head} for head, suffix in BART_HEADS.items()},
        base="model",
        keys={
            "vocab": "vocab_size",
            "hidden": "d_model",
            "layers": "encoder_layers",
            "decoder_layers": "decoder_layers",
            "heads": "encoder_attention_heads",
            "decoder_heads": "decoder_attention_heads",
            "intermediate": "encoder_ffn_dim",
            "decoder_intermediate": "decoder_ffn_dim",
            "context": "max_position_embeddings",
            "activation": "activation_function",
            "tie_weights": "tie_word_embeddings",
            "dropout": ("dropout", "attention_dropout", "activation_dropout"),
            "labels": "num_labels",
        },
        aliases={
            "hidden_size": "d_model",
            "num_attention_heads": "encoder_attention_heads",
            "num_hidden_layers": "encoder_layers",
        },
        defaults={
            "vocab_size": 50265,
            "d_model": 1024,
            "encoder_layers": 12,
            "decoder_layers": 12,
            "encoder_attention_heads": 16,
            "decoder_attention_heads": 16,
            "encoder_ffn_dim": 4096,
            "decoder_ffn_dim": 4096,
            "max_position_embeddings": 1024,
            "activation_function": "gelu",
            "tie_word_embeddings": True,
            "dropout": 0.1,
            "attention_dropout": 0.0,
            "activation_dropout": 0.0,
            "pad_token_id": 1,
        },
        fixed={"layout": model_type},
        free=frozenset(
            {
                "scale_embedding",
                "encoder_layerdrop",
                "decoder_layerdrop",
                "init_std",
                "classifier_dropout",
                # facebook/bart-large's old name of a dropout rate: BartConfig declares
                # none and transformers reads it nowhere (a rate changes no shape)
                "classif_dropout",
                "is_encoder_decoder",
                "is_decoder",
                "use_cache",
                "decoder_start_token_id",
                "forced_eos_token_id",
                "forced_bos_token_id",
                "label2id",
                "normalize_before",
                "add_final_layer_norm",
                "normalize_embedding",
                "static_position_embeddings",
                "add_bias_logits",
                "extra_pos_embeddings",
                "gradient_checkpointing",
                "task_specific_params",
                "no_repeat_ngram_size",
                "num_beams",
                "max_length",
                "early_stopping",
                "length_penalty",
                "output_past",
                "tokenizer_class",
            }
        ),
        unread=frozenset({"source_len"}),
        dropped=dropped,
        read=_read,
        write=_write,
    )


def attention(
    hidden: Dim,
    heads: Dim,
    head_dim: Dim,
    *,
    decoder: bool,
    cross: bool,
    kind: str = "BartAttention",
    key_bias: bool = True,
) -> Block:
    """One attention of BART's family (BART, mBART, Whisper): ``k_proj``, ``v_proj``,
    ``q_proj`` and ``out_proj``, H × H each, with biases (``k_proj``'s only when
    ``key_bias``: Whisper's has none); ``cross``: queries from the decoder, keys and values
    from the encoder's output (the second input)."""
    h = hidden
    children = {
        "k_proj": Leaf(Linear(h, h, bias=key_bias), role="key"),
        "v_proj": Leaf(Linear(h, h), role="value"),
        "q_proj": Leaf(Linear(h, h), role="query"),
        "out_proj": Leaf(Linear(h, h), role="output projection"),
    }
    attend = ScaledDotProductAttention(
        heads, heads, head_dim, causal=decoder and not cross, cross=cross, cached=decoder
    )
    if cross:
        project = parallel(
            chain(Pick(0), "q_proj"), chain(Pick(1), "k_proj"), chain(Pick(1), "v_proj")
        )
        what = "queries from the decoder, keys and values from the encoder's output"
    else:
        project = parallel("q_proj", "k_proj", "v_proj")
        what = "every token sees " + ("the tokens before it" if decoder else "every token")
    return Block(
        kind,
        children,
        flow=chain(project, attend, "out_proj"),
        description=f"{dim_str(heads)} heads: {what}",
    )


def layer(
    own: Block,
    cross_attention: Block | None,
    *,
    hidden: Dim,
    inner: Dim,
    activation: str,
    dropout: float,
    pre_norm: bool,
    kind: str,
    alone: bool = False,
) -> Block:
    """One layer of BART's family around its attentions (``own``; a decoder's
    ``cross_attention`` over the encoder's output, taken as the second input): the
    feed-forward ``fc1`` (H to ``inner``) and ``fc2`` (back), a LayerNorm after each
    residual add, or before each residual branch (``pre_norm``: mBART, Whisper).
    ``alone``: a decoder layer run without an encoder's output (a decoder-only class,
    WhisperForCausalLM): its cross-attention is held but skipped, as transformers skips
    it when no encoder_hidden_states are given."""
    h = hidden
    decoder = cross_attention is not None
    drop = Dropout(dropout)
    children: dict[str, Any] = {"self_attn": own}
    if cross_attention is not None:
        children["activation_fn"] = ACTIVATIONS[activation]()
        children["self_attn_layer_norm"] = LayerNorm(h)
        children["encoder_attn"] = cross_attention
        children["encoder_attn_layer_norm"] = LayerNorm(h)
    else:
        children["self_attn_layer_norm"] = LayerNorm(h)
        children["activation_fn"] = ACTIVATIONS[activation]()
    children["fc1"] = Leaf(Linear(h, inner), role="up")
    children["fc2"] = Leaf(Linear(inner, h), role="down")
    children["final_layer_norm"] = LayerNorm(h)
    ff = ("fc1", "activation_fn", drop, "fc2", drop)
    if pre_norm:
        own_steps: list[Any] = [residual("self_attn_layer_norm", "self_attn", drop)]
        mlp: list[Any] = [residual("final_layer_norm", *ff)]
        cross = summed(
            Pick(0),
            chain(
                parallel(chain(Pick(0), "encoder_attn_layer_norm"), Pick(1)),
                "encoder_attn",
                drop,
            ),
        )
        after_cross: list[Any] = []
    else:
        own_steps = [residual("self_attn", drop), "self_attn_layer_norm"]
        mlp = [residual(*ff), "final_layer_norm"]
        cross = summed(Pick(0), chain("encoder_attn", drop))
        after_cross = ["encoder_attn_layer_norm"]
    if decoder and not alone:  # (hidden, encoder output) in
        flow = chain(parallel(chain(Pick(0), *own_steps), Pick(1)), cross, *after_cross, *mlp)
    else:
        flow = chain(*own_steps, *mlp)
    return Block(kind, children, flow=flow)


@frozen(kw_only=True)
class BART(Architecture):
    """BART (post-norm) or mBART (pre-norm): a token embedding V × H, learned positions
    (C + 2) × H and ``layernorm_embedding`` per stack, L encoder and M decoder layers of
    attention (H × H four times, with biases) and a feed-forward (H to I and back), the
    decoder's with cross-attention, and the head (the embedding when tied).

        >>> m = bart(vocab=50265, hidden=1024, layers=12, heads=16, intermediate=4096)
        >>> m.total
        406291456
    """

    command: ClassVar[str] = "bart"
    function: ClassVar[str] = "bart"
    title: ClassVar[str] = "BART encoder-decoder"
    example: ClassVar[str] = (
        "--vocab 50265 --hidden 1024 --layers 12 --heads 16 --intermediate 4096"
    )
    budget: ClassVar[str] = "400M"
    size_order: ClassVar[tuple[str, ...]] = (
        "vocab",
        "hidden",
        "layers",
        "decoder_layers",
        "heads",
        "decoder_heads",
        "intermediate",
        "decoder_intermediate",
        "context",
        "source_len",
        "labels",
    )
    label_heads: ClassVar[frozenset[str]] = frozenset({"seq-cls"})
    explains: ClassVar[str] = (
        "Explain d_model, the heads, the feed-forward, the positions and the tied "
        "embeddings, and where the total comes from."
    )

    vocab: Any = size("V", "Vocabulary size: tokens in and out (vocab_size).")
    hidden: Any = size("H", "Hidden size (d_model): the length of every token's vector.")
    layers: Any = size("L", "Encoder layers (encoder_layers).")
    decoder_layers: Any = size(
        "M", "Decoder layers (decoder_layers).", None, unset=None, default_text="L"
    )
    heads: Any = size(
        "A", "The encoder's attention heads (encoder_attention_heads).", solvable=False
    )
    decoder_heads: Any = size(
        "G",
        "The decoder's attention heads, self and cross (decoder_attention_heads).",
        None,
        unset=None,
        default_text="A",
        solvable=False,
    )
    intermediate: Any = size(
        "I",
        "The encoder's feed-forward size (encoder_ffn_dim).",
        None,
        unset=None,
        default_text="4·H",
    )
    decoder_intermediate: Any = size(
        "J",
        "The decoder's feed-forward size (decoder_ffn_dim).",
        None,
        unset=None,
        default_text="I",
    )
    context: Any = size(
        "C",
        "Positions the learned position tables hold (max_position_embeddings); each table "
        "has C + 2 rows.",
        1024,
        solvable=False,
    )
    activation: str = choice(
        tuple(ACTIVATIONS), "The feed-forward's activation (activation_function).", "gelu"
    )
    layout: str = choice(
        ("bart", "mbart"),
        "bart: a LayerNorm after each residual; mbart: before each, and a final layer_norm "
        "per stack.",
        "bart",
    )
    head: str = choice(
        tuple(BART_HEADS),
        "lm: encoder, decoder and the head scoring every token, with final_logits_bias "
        "(BartForConditionalGeneration); none: encoder and decoder (BartModel); seq-cls: "
        "classification_head (dense H × H, tanh, out_proj N × H) on the decoder's last "
        "end-of-sequence token (BartForSequenceClassification); qa: qa_outputs (2 × H), a "
        "start and an end score per token (BartForQuestionAnswering).",
        "lm",
    )
    labels: Any = size(
        "N",
        "Labels of --head seq-cls (num_labels, or the length of id2label).",
        None,
        unset=None,
        default_text="3 (BART), 2 (mBART)",
        solvable=False,
    )
    tie_weights: bool = flag(
        "One token embedding for both stacks and the head (tie_word_embeddings; "
        "--no-tie-weights: shared, both embed_tokens and lm_head each their own).",
        True,
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
        "Dropout (dropout, attention_dropout, activation_dropout); it adds no parameters.",
        0.1,
        low=0,
        high=1,
        open_high=True,
    )

    hf: ClassVar[tuple[HFType, ...]] = (
        _bart_type(
            model_type="bart",
            prefix="Bart",
            dropped=("encoder.version", "decoder.version"),
            lora_targets=("q_proj", "v_proj"),
        ),
        _bart_type(model_type="mbart", prefix="MBart"),
    )

    # -- the sizes worked out -----------------------------------------------------------
    @property
    def inner(self) -> Dim:
        given: Dim = 4 * self.hidden if self.intermediate is None else self.intermediate
        return given

    @property
    def decoder_inner(self) -> Dim:
        given: Dim = self.inner if self.decoder_intermediate is None else self.decoder_intermediate
        return given

    @property
    def decoder_depth(self) -> Dim:
        given: Dim = self.layers if self.decoder_layers is None else self.decoder_layers
        return given

    @property
    def decoder_head_count(self) -> Dim:
        given: Dim = self.heads if self.decoder_heads is None else self.decoder_heads
        return given

    @property
    def pre_norm(self) -> bool:
        return self.layout == "mbart"

    def _head_size(self, heads: Dim, decoder: bool) -> Dim:
        """One head's width, H / heads; with letters, D (the decoder's E when its heads
        are given apart)."""
        h, a = known(self.hidden), known(heads)
        if h is not None and a is not None:
            return h // a
        return symbol("E" if decoder and self.decoder_heads is not None else "D")

    def sizes(self) -> dict[str, Dim]:
        out = super().sizes()
        h, a = known(self.hidden), known(self.heads)
        if h is not None and a is not None:
            out["D"] = h // a
        g = known(self.decoder_heads) if self.decoder_heads is not None else None
        if h is not None and g:
            out["E"] = h // g  # the decoder's head, when its heads are given apart
        if self.intermediate is None and known(self.inner) is not None:
            out["I"] = self.inner
        return out

    def hf_values(self) -> dict[str, Any]:
        return {
            **super().hf_values(),
            "intermediate": self.inner,
            "decoder_layers": self.decoder_depth,
            "decoder_heads": self.decoder_head_count,
            "decoder_intermediate": self.decoder_inner,
            "labels": self.n_labels,
        }

    @classmethod
    def consistent(cls, arguments: dict[str, Any]) -> dict[str, Any]:
        """The heads divide the hidden size (BartAttention refuses others); the padding
        index (1) is a token."""
        out = dict(arguments)
        out["vocab"] = max(out["vocab"], 2)  # the padding index is 1
        if out.get("head") != "seq-cls":
            out["labels"] = None  # only the classification head has labels
        heads = out["heads"] * (out.get("decoder_heads") or 1)
        out["hidden"] = heads * max(1, out["hidden"] // heads)
        return out

    @classmethod
    def multiple_for(cls, free: str, arguments: dict[str, Any]) -> int:
        """hidden: a multiple of both stacks' heads."""
        if free != "hidden":
            return 1
        out = 1
        for key in ("heads", "decoder_heads"):
            given = arguments.get(key)
            number = None if given is None else known(as_size(given, owner=cls.owner(), field=key))
            if number is not None:
                out = math.lcm(out, number)
        return out

    @property
    def n_labels(self) -> Dim:
        """The classification head's labels: given, or the config class's default."""
        given: Dim = DEFAULT_LABELS[self.layout] if self.labels is None else self.labels
        return given

    def check(self) -> None:
        if self.labels is not None and self.head != "seq-cls":
            rule = "labels sizes the classification head (--head seq-cls)"
            raise InvalidArgumentError(
                f"{rule}; --head {self.head} has none",
                layer=self.owner(),
                field="labels",
                value=self.labels,
                rule=rule,
            )
        v = known(self.vocab)
        if v is not None and v < 2:
            rule = "the token embedding's padding index is 1: vocab >= 2"
            raise InvalidArgumentError(
                f"{rule} (got {v})", layer=self.owner(), field="vocab", value=v, rule=rule
            )
        h = known(self.hidden)
        for field, heads in (("heads", self.heads), ("decoder_heads", self.decoder_heads)):
            a = known(heads) if heads is not None else None
            if h is not None and a is not None and h % a:
                rule = f"{field} must divide hidden (each head is hidden / heads wide)"
                raise InvalidArgumentError(
                    f"{rule} ({h} % {a} = {h % a})",
                    layer=self.owner(),
                    field=field,
                    value=a,
                    rule=rule,
                )

    # -- the tree -------------------------------------------------------------------------
    def _attention(self, heads: Dim, *, decoder: bool, cross: bool) -> Block:
        head_dim = self._head_size(heads, decoder)
        return attention(self.hidden, heads, head_dim, decoder=decoder, cross=cross)

    def _layer(self, *, decoder: bool) -> Block:
        heads = self.decoder_head_count if decoder else self.heads
        kind = ("MBart" if self.pre_norm else "Bart") + (
            "DecoderLayer" if decoder else "EncoderLayer"
        )
        return layer(
            self._attention(heads, decoder=decoder, cross=False),
            self._attention(heads, decoder=True, cross=True) if decoder else None,
            hidden=self.hidden,
            inner=self.decoder_inner if decoder else self.inner,
            activation=self.activation,
            dropout=self.dropout,
            pre_norm=self.pre_norm,
            kind=kind,
        )

    def _stack(self, *, decoder: bool) -> Block:
        h, v = self.hidden, self.vocab
        rows: Dim = self.context + OFFSET
        count = self.decoder_depth if decoder else self.layers
        children: dict[str, Any] = {
            "embed_tokens": Leaf(Embedding(v, h), "one H-vector per token", "token embedding"),
            "embed_positions": Leaf(
                Embedding(rows, h),
                "one H-vector per position, from row 2",
                "position embedding",
            ),
            "layers": ModuleList(self._layer(decoder=decoder), count, carry=decoder),
            "layernorm_embedding": LayerNorm(h),
        }
        if self.pre_norm:
            children["layer_norm"] = Leaf(LayerNorm(h), role="final norm")
        embed = chain(
            summed("embed_tokens", (Positions(start=OFFSET, limit=rows), "embed_positions")),
            "layernorm_embedding",
            Dropout(self.dropout),
        )
        tail = ["layer_norm"] if self.pre_norm else []
        if decoder:  # (encoder output, target ids) in
            flow = chain(parallel(chain(Pick(1), embed), Pick(0)), "layers", *tail)
        else:
            flow = chain(embed, "layers", *tail)
        prefix = "MBart" if self.pre_norm else "Bart"
        return Block(prefix + ("Decoder" if decoder else "Encoder"), children, flow=flow)

    def build(self) -> Built:
        h, v = self.hidden, self.vocab
        prefix = "MBart" if self.pre_norm else "Bart"
        shared = Leaf(Embedding(v, h), "one H-vector per token", "token embedding")
        body = Block(
            prefix + "Model",
            {
                "shared": shared,
                "encoder": self._stack(decoder=False),
                "decoder": self._stack(decoder=True),
            },
            flow=chain(parallel(chain(Pick(0), "encoder"), Pick(1)), "decoder"),
        )
        source = "T" if self.source_len is None else "S"
        layout = (("B", source), ("B", "T"))
        at = "" if self.head == "none" else "model."
        ties = (
            {
                f"{at}encoder.embed_tokens.weight": f"{at}shared.weight",
                f"{at}decoder.embed_tokens.weight": f"{at}shared.weight",
            }
            if self.tie_weights
            else {}
        )
        if self.head == "none":
            return Built(body, ties=ties, input_layout=layout, group_depth=1)
        if self.head in ("seq-cls", "qa"):
            return self._task(prefix, body, ties, layout)
        children: dict[str, Node] = {
            "model": body,
            "final_logits_bias": Leaf(
                Buffer((1, v), role="a score bias per token, added to the head's"),
                role="final logits bias",
            ),
            "lm_head": Leaf(Linear(h, v, bias=False), "a score per token", "head"),
        }
        if self.tie_weights:
            ties["lm_head.weight"] = "model.shared.weight"
        root = Block(
            prefix + "ForConditionalGeneration",
            children,
            flow=chain("model", summed("lm_head", "final_logits_bias")),
        )
        return Built(root, ties=ties, input_layout=layout, group_depth=2, head="lm_head")

    def _task(
        self, prefix: str, body: Block, ties: dict[str, str], layout: tuple[tuple[str, str], ...]
    ) -> Built:
        """BartForSequenceClassification: ``classification_head`` (BartClassificationHead:
        dropout, dense H × H, tanh, dropout, out_proj N × H) on the decoder's state at the
        last end-of-sequence token (a position of the T); BartForQuestionAnswering:
        ``qa_outputs`` (2 × H) on every decoder position, split into start and end scores."""
        h = self.hidden
        if self.head == "seq-cls":
            drop = Dropout(0.0)  # classifier_dropout: no parameters
            head: Node = Block(
                prefix + "ClassificationHead",
                {
                    "dense": Leaf(Linear(h, h), role="classification head"),
                    "dropout": drop,
                    "out_proj": Leaf(
                        Linear(h, self.n_labels), "a score per label", "classification head"
                    ),
                },
                flow=chain("dropout", "dense", Tanh(), "dropout", "out_proj"),
            )
            name = "classification_head"
            steps: tuple[Any, ...] = (Select(1), name)
        else:
            what = "a start and an end score for every token"
            head = Leaf(Linear(h, 2), what, "answer span head")
            name, steps = "qa_outputs", ("qa_outputs",)
        root = Block(
            prefix + BART_HEADS[self.head],
            {"model": body, name: head},
            flow=chain("model", *steps),
        )
        return Built(root, ties=ties, input_layout=layout, group_depth=2)

    # -- explanation ----------------------------------------------------------------------
    def explanation(self, model: Model) -> list[tuple[str, list[str]]]:
        h = self.hidden
        norm = (
            "before each residual branch (pre-norm), and each stack ends in layer_norm"
            if self.pre_norm
            else "after each residual add (post-norm)"
        )
        lines = [
            f"The hidden size H = {dim_str(h)} (d_model) is every token's vector in both stacks.",
            f"Attention: A = {dim_str(self.heads)} heads in the encoder, G = "
            f"{dim_str(self.decoder_head_count)} in the decoder (self and cross), each H / "
            "heads wide; k_proj, v_proj, q_proj and out_proj are H × H with biases.",
            f"The feed-forward: fc1 maps H to I = {dim_str(self.inner)} (the decoder's J = "
            f"{dim_str(self.decoder_inner)}), fc2 maps back; LayerNorms {norm}.",
            f"Positions are learned: each stack's table holds C + 2 = "
            f"{dim_str(self.context + OFFSET)} rows (positions start at row 2).",
            "One V × H embedding (shared) is both stacks' embed_tokens and the head"
            if self.tie_weights
            else "shared, both embed_tokens and lm_head are V × H tables of their own",
        ]
        return [("What the sizes mean", lines)]


bart = BART.function_for()
