"""``shapecalc bert``: BERT and RoBERTa encoders, named as ``transformers``' ``BertModel``,
``BertForMaskedLM``, ``RobertaModel`` and ``RobertaForMaskedLM`` name them.

Word, position and token-type embeddings summed and normalised, L blocks of attention that
sees every token (no causal mask) and an MLP, each followed by a residual add and a
LayerNorm (post-norm); then the pooler, or the masked-LM head whose decoder is the word
embedding.
"""

from __future__ import annotations

from typing import Any, ClassVar

from shapecalc.architectures import _transformer as tf
from shapecalc.architectures._transformer import TransformerLM
from shapecalc.core.declare import Built, Reference, choice, flag, size
from shapecalc.core.dims import Dim, dim_str, known, symbol
from shapecalc.core.errors import InvalidArgumentError
from shapecalc.core.flow import Positions, chain, parallel, summed
from shapecalc.core.frozen import frozen
from shapecalc.core.hfmap import HFType
from shapecalc.core.model import Model
from shapecalc.core.tree import Block, Leaf, ModuleList, Node
from shapecalc.layers._embedding import Embedding
from shapecalc.layers.activation import GELU, Tanh
from shapecalc.layers.functional import Pick, ScaledDotProductAttention, Select
from shapecalc.layers.linear import Dropout, Linear
from shapecalc.layers.norm import LayerNorm
from shapecalc.layers.transformers import Bias

__all__ = ["BERT", "bert"]

#: RoBERTa's positions start after its padding index (1): its table holds C + 2 rows
ROBERTA_OFFSET = 2

#: the heads of the encoder classes: head -> the class's suffix; RoBERTa has neither
#: pretraining nor nsp
ENCODER_HEADS: dict[str, str] = {
    "mlm": "ForMaskedLM",
    "none": "Model",
    "pretraining": "ForPreTraining",
    "nsp": "ForNextSentencePrediction",
    "seq-cls": "ForSequenceClassification",
    "token-cls": "ForTokenClassification",
    "qa": "ForQuestionAnswering",
    "multiple-choice": "ForMultipleChoice",
}
#: the heads that read the pooler's output
_POOLED = frozenset({"pretraining", "nsp", "multiple-choice"})


def _read_encoder(f: Any, out: dict[str, Any]) -> None:
    """RoBERTa's position table starts after its padding index: C is two rows fewer."""
    roberta = out["layout"] == "roberta"
    positions = f.size("max_position_embeddings", minimum=3 if roberta else 1)
    out["context"] = positions - ROBERTA_OFFSET if roberta else positions
    f.padding("pad_token_id", out["vocab"], "word embedding (vocab_size)")
    if roberta:
        f.padding("pad_token_id", positions, "position embedding (max_position_embeddings)")


def _write_encoder(model: Any, reference: Reference) -> Reference:
    """The padding id the class needs; the pooler is the body's keyword."""
    config = {**reference.config, "pad_token_id": 1 if model.roberta else 0}
    options = {"add_pooling_layer": model.pooler} if model.head == "none" else {}
    return Reference(reference.model, reference.config_class, config, options)


def _encoder(*, model_type: str, prefix: str, vocab: int, pad: int) -> HFType:
    """BERT or RoBERTa: the same fields, their own vocabulary and padding id."""
    return HFType(
        lora_targets=("query", "value"),  # peft's for bert and roberta alike
        model_type=model_type,
        config_class=f"{prefix}Config",
        classes={
            prefix + suffix: {"head": head}
            for head, suffix in ENCODER_HEADS.items()
            if model_type == "bert" or head not in ("pretraining", "nsp")
        },
        base=model_type,
        keys={
            **tf.SIZE_KEYS,
            "context": "max_position_embeddings",
            "type_vocab": "type_vocab_size",
            "dropout": ("hidden_dropout_prob", "attention_probs_dropout_prob"),
            **tf.LABEL_KEYS,
        },
        defaults={
            "vocab_size": vocab,
            "hidden_size": 768,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "intermediate_size": 3072,
            "max_position_embeddings": 512,
            "type_vocab_size": 2,
            "tie_word_embeddings": True,
            "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1,
            "hidden_act": "gelu",
            "pad_token_id": pad,
        },
        fixed={"layout": model_type},
        free=frozenset({"hidden_act", "layer_norm_eps", "is_decoder", "classifier_dropout"}),
        only={
            "add_cross_attention": ((False,), "cross-attention layers are an encoder-decoder's"),
            "position_embedding_type": (
                ("absolute",),
                "transformers 5 builds absolute position embeddings only",
            ),
        },
        options=frozenset({"pooler"}),
        dropped=(r"(^|\.)position_ids$",),
        strict_heads=True,
        explained={"context": "max_position_embeddings - 2"} if model_type == "roberta" else {},
        read=_read_encoder,
        write=_write_encoder,
    )


@frozen(kw_only=True)
class BERT(TransformerLM):
    """A BERT encoder: word (V × H), position (C × H) and token-type (S × H) embeddings
    summed and normalised, L blocks, then the pooler (H × H on the first token) or, with
    ``head="mlm"``, the masked-LM head.

    One block: ``attention.self`` holds query, key and value (H × H each, with biases),
    ``attention.output.dense`` (H × H) maps the heads back; a residual add and LayerNorm;
    ``intermediate.dense`` maps H to I (4·H unless given) and ``output.dense`` back, then a
    residual add and LayerNorm. The masked-LM head: a transform (H × H and a LayerNorm), the
    decoder, which is the word embedding, and a bias of its own (V). ``layout="roberta"``
    names them as RoBERTa does (``roberta.``, ``lm_head``) and its position table holds C
    + 2 rows: positions start after the padding index.

        >>> m = bert(vocab=30522, hidden=768, layers=12, heads=12)
        >>> m.total
        109482240
        >>> print(m.total_formula)
        12·L·H² + 13·L·H + H² + V·H + H·C + H·S + 3·H
    """

    command: ClassVar[str] = "bert"
    function: ClassVar[str] = "bert"
    title: ClassVar[str] = "BERT encoder"
    example: ClassVar[str] = "--vocab 30522 --hidden 768 --layers 12 --heads 12"
    budget: ClassVar[str] = "350M"
    size_order: ClassVar[tuple[str, ...]] = (
        "vocab",
        "hidden",
        "layers",
        "heads",
        "intermediate",
        "context",
        "type_vocab",
        "labels",
    )
    explains: ClassVar[str] = (
        "Explain hidden size, heads, head_dim, intermediate size and the embeddings, every "
        "matrix of one block, and where the total comes from."
    )

    vocab: Any = tf.vocab()
    hidden: Any = tf.hidden()
    layers: Any = tf.layers()
    heads: Any = tf.heads()
    intermediate: Any = tf.intermediate("intermediate_size")
    context: Any = tf.context(512, "max_position_embeddings; RoBERTa's table holds C + 2")
    type_vocab: Any = size(
        "S",
        "Token types (segments: sentence A and B) of the token-type embedding (type_vocab_size).",
        None,
        unset=None,
        default_text="2; 1 with --layout roberta",
        solvable=False,
    )
    head: str = choice(
        tuple(ENCODER_HEADS),
        "none: the encoder with its pooler (BertModel); mlm: the masked-LM head "
        "(BertForMaskedLM), no pooler; pretraining: the masked-LM head and the next-sentence "
        "head on the pooler (BertForPreTraining); nsp: the next-sentence head alone; seq-cls: "
        "a score per label of the sequence (BERT: on the pooler; RoBERTa: dense, tanh and "
        "out_proj on the first token); token-cls: a score per label of every token; qa: N "
        "scores per token (start and end with 2 labels); multiple-choice: one score per "
        "choice, on the pooler. BERT has every head, RoBERTa all but pretraining and nsp.",
        "none",
    )
    labels: Any = tf.labels()
    pooler: bool = flag(
        "The pooler, dense H × H and tanh on the first token (add_pooling_layer; with "
        "--head none).",
        True,
    )
    layout: str = choice(
        ("bert", "roberta"),
        "bert, or roberta: RoBERTa's names and its position table of C + 2 rows.",
        "bert",
    )
    tie_weights: bool = flag(
        "The masked-LM decoder is the word embedding and its bias the head's "
        "(tie_word_embeddings; --no-tie-weights: a decoder and bias of its own).",
        True,
    )
    dropout: float = tf.dropout("hidden_dropout_prob, attention_probs_dropout_prob", 0.1)

    hf: ClassVar[tuple[HFType, ...]] = (
        _encoder(model_type="bert", prefix="Bert", vocab=30522, pad=0),
        _encoder(model_type="roberta", prefix="Roberta", vocab=50265, pad=1),
    )

    #: BERT's question answering scores num_labels numbers per token
    label_heads: ClassVar[frozenset[str]] = frozenset({"seq-cls", "token-cls", "qa"})

    def check(self) -> None:
        self.check_labels()
        self.check_heads()
        if self.roberta and self.head in ("pretraining", "nsp"):
            rule = "RoBERTa has no next-sentence head: --head pretraining and nsp are BERT's"
            raise InvalidArgumentError(
                rule, layer=self.owner(), field="head", value=self.head, rule=rule
            )
        v = known(self.vocab)
        if self.roberta and v is not None and v < 2:
            rule = "RoBERTa's padding index is 1: vocab >= 2"
            raise InvalidArgumentError(
                f"{rule} (got {v})", layer=self.owner(), field="vocab", value=v, rule=rule
            )

    @classmethod
    def consistent(cls, arguments: dict[str, Any]) -> dict[str, Any]:
        out = super().consistent(arguments)
        if out["layout"] == "roberta":
            out["vocab"] = max(out["vocab"], 2)  # its padding index is 1
            if out.get("head") in ("pretraining", "nsp"):  # BERT's heads only
                out["head"] = "mlm"
        return out

    @property
    def roberta(self) -> bool:
        return self.layout == "roberta"

    @property
    def types(self) -> Dim:
        """The token types: given, 2 (1 for RoBERTa), or the letter S in the formulas."""
        if self.type_vocab is not None:
            given: Dim = self.type_vocab
            return given
        if known(self.hidden) is None:
            return symbol("S")
        return 1 if self.roberta else 2

    @property
    def positions(self) -> Dim:
        """The rows of the position table: C, or C + 2 for RoBERTa."""
        rows: Dim = self.context + ROBERTA_OFFSET if self.roberta else self.context
        return rows

    def sizes(self) -> dict[str, Dim]:
        out = super().sizes()
        if self.type_vocab is None:
            out["S"] = 1 if self.roberta else 2
        return out

    # -- the tree -------------------------------------------------------------------------
    def _embeddings(self) -> Block:
        h = self.hidden
        start = ROBERTA_OFFSET if self.roberta else 0
        word = Leaf(Embedding(self.vocab, h), "one H-vector per token", "word embedding")
        position = Leaf(
            Embedding(self.positions, h), "one H-vector per position", "position embedding"
        )
        token_type = Leaf(
            Embedding(self.types, h), "one H-vector per segment", "token-type embedding"
        )
        norm, dropout = LayerNorm(h, eps=1e-12), Dropout(self.dropout)
        children: dict[str, Any] = (
            {
                "word_embeddings": word,
                "token_type_embeddings": token_type,
                "LayerNorm": norm,
                "dropout": dropout,
                "position_embeddings": position,
            }
            if self.roberta
            else {
                "word_embeddings": word,
                "position_embeddings": position,
                "token_type_embeddings": token_type,
                "LayerNorm": norm,
                "dropout": dropout,
            }
        )
        flow = chain(
            summed(
                "word_embeddings",
                (Positions(start=start, limit=self.positions), "position_embeddings"),
                (Positions(constant=True), "token_type_embeddings"),
            ),
            "LayerNorm",
            "dropout",
        )
        return Block("Embeddings", children, flow=flow)

    def _add_norm(self, kind: str, inner: Dim, role: str) -> Block:
        """dense, dropout, the residual (the block's second input) added, LayerNorm."""
        h = self.hidden
        return Block(
            kind,
            {
                "dense": Leaf(Linear(inner, h), role=role),
                "LayerNorm": LayerNorm(h, eps=1e-12),
                "dropout": Dropout(self.dropout),
            },
            flow=chain(summed((Pick(0), "dense", "dropout"), Pick(1)), "LayerNorm"),
        )

    def _layer(self) -> Block:
        h, a, d, i = self.hidden, self.heads, self.head_size(), self.inner
        attention = Block(
            "SelfAttention",
            {
                "query": Leaf(Linear(h, h), role="query"),
                "key": Leaf(Linear(h, h), role="key"),
                "value": Leaf(Linear(h, h), role="value"),
                "dropout": Dropout(self.dropout),
            },
            flow=chain(
                parallel("query", "key", "value"),
                ScaledDotProductAttention(a, a, d, causal=False),
            ),
            description=f"{dim_str(a)} heads of {dim_str(d)}, every token seeing every token",
        )
        intermediate = Block(
            "Intermediate",
            {"dense": Leaf(Linear(h, i), role="up"), "intermediate_act_fn": GELU()},
            flow=chain("dense", "intermediate_act_fn"),
        )
        return Block(
            "Layer",
            {
                "attention": Block(
                    "Attention",
                    {
                        "self": attention,
                        "output": self._add_norm("SelfOutput", h, "output projection"),
                    },
                    flow=chain(parallel("self", ()), "output"),
                ),
                "intermediate": intermediate,
                "output": self._add_norm("Output", i, "down"),
            },
            flow=chain("attention", parallel("intermediate", ()), "output"),
        )

    def _mlm_head(self) -> Node:
        h, v = self.hidden, self.vocab
        own = Leaf(Bias(v), "the decoder's bias, held by the head", "decoder bias")
        decoder = Leaf(Linear(h, v), "a score per token (the word embedding)", "decoder")
        norm = LayerNorm(h, eps=1e-12)
        if self.roberta:
            return Block(
                "RobertaLMHead",
                {"": own, "dense": Linear(h, h), "layer_norm": norm, "decoder": decoder},
                flow=chain("dense", GELU(), "layer_norm", "decoder"),
            )
        return Block("OnlyMLMHead", {"predictions": self._predictions()}, flow=chain("predictions"))

    def _predictions(self) -> Block:
        """BERT's LMPredictionHead: its bias, a transform (H × H, GELU, LayerNorm), the
        decoder."""
        h, v = self.hidden, self.vocab
        own = Leaf(Bias(v), "the decoder's bias, held by the head", "decoder bias")
        decoder = Leaf(Linear(h, v), "a score per token (the word embedding)", "decoder")
        norm = LayerNorm(h, eps=1e-12)
        transform = Block(
            "PredictionHeadTransform",
            {"dense": Linear(h, h), "transform_act_fn": GELU(), "LayerNorm": norm},
            flow=chain("dense", "transform_act_fn", "LayerNorm"),
        )
        return Block(
            "LMPredictionHead",
            {"": own, "transform": transform, "decoder": decoder},
            flow=chain("transform", "decoder"),
        )

    @property
    def pooled(self) -> bool:
        """The body ends in its pooler: asked for (head none), or read by the head."""
        if self.head == "none":
            return bool(self.pooler)
        return self.head in _POOLED or (self.head == "seq-cls" and not self.roberta)

    def _task_head(self) -> tuple[str, Node]:
        """The head of a task class, as transformers names it."""
        h, n = self.hidden, self.n_labels
        if self.head == "nsp":
            nsp = Leaf(Linear(h, 2), "is sentence B the next one: 2 scores", "next sentence")
            return "cls", Block(
                "OnlyNSPHead", {"seq_relationship": nsp}, flow=chain("seq_relationship")
            )
        if self.head == "seq-cls" and self.roberta:
            out = Leaf(Linear(h, n), "a score per label", "classification head")
            return "classifier", Block(
                "RobertaClassificationHead",
                {"dense": Leaf(Linear(h, h), role="classifier dense"), "out_proj": out},
                flow=chain(Select(1), "dense", Tanh(), "out_proj"),
                description="the first token's vector, through H × H and tanh, to N scores",
            )
        if self.head == "qa":
            what = "N scores per token (a start and an end score with 2 labels)"
            return "qa_outputs", Leaf(Linear(h, n), what, "answer span head")
        if self.head == "multiple-choice":
            one = Leaf(Linear(h, 1), "one score per choice", "classification head")
            return "classifier", one
        what = "a score per label" + (" of every token" if self.head == "token-cls" else "")
        return "classifier", Leaf(Linear(h, n), what, "classification head")

    def build(self) -> Built:
        h = self.hidden
        prefix = "roberta" if self.roberta else "bert"
        children: dict[str, Any] = {
            "embeddings": self._embeddings(),
            "encoder": Block(
                "Encoder",
                {"layer": ModuleList(self._layer(), self.layers)},
                flow=chain("layer"),
            ),
        }
        flow = chain("embeddings", "encoder")
        if self.pooled:
            children["pooler"] = Block(
                "Pooler",
                {"dense": Leaf(Linear(h, h), role="pooler"), "activation": Tanh()},
                flow=chain(Select(1), "dense", "activation"),
                description="the first token's vector, through H × H and tanh",
            )
            if self.head in ("none", "pretraining"):  # the tokens' vectors and the pooled one
                flow = chain("embeddings", "encoder", parallel((), "pooler"))
            else:  # the head reads the pooled vector only
                flow = chain("embeddings", "encoder", "pooler")
        encoder = Block("RobertaModel" if self.roberta else "BertModel", children, flow=flow)
        if self.head == "none":
            return Built(encoder, input_layout=(("B", "T"),), group_depth=1)
        kind = ("Roberta" if self.roberta else "Bert") + ENCODER_HEADS[self.head]
        ties = {}
        if self.head in ("mlm", "pretraining"):
            if self.head == "mlm":
                head = "lm_head" if self.roberta else "cls"
                node = self._mlm_head()
                where = "lm_head" if self.roberta else "cls.predictions"
            else:
                head, where = "cls", "cls.predictions"
                nsp = Leaf(Linear(h, 2), "is sentence B the next one: 2 scores", "next sentence")
                node = Block(
                    "PreTrainingHeads",
                    {"predictions": self._predictions(), "seq_relationship": nsp},
                    # a flow passes on the body's main output (the tokens' vectors); the
                    # pooled vector the class reads is the first token's shape (B, H), and
                    # the body computes it (its pooler), so shapes and work are the class's
                    flow=parallel("predictions", chain(Select(1), "seq_relationship")),
                )
            if self.tie_weights:  # untied, transformers 5 keeps the decoder's bias apart too
                ties[f"{where}.decoder.weight"] = f"{prefix}.embeddings.word_embeddings.weight"
                ties[f"{where}.decoder.bias"] = f"{where}.bias"
        else:
            head, node = self._task_head()
            where = ""
        root = Block(kind, {prefix: encoder, head: node}, flow=chain(prefix, head))
        decoder = f"{where}.decoder" if where else ""
        return Built(root, ties=ties, input_layout=(("B", "T"),), group_depth=2, head=decoder)

    def hf_values(self) -> dict[str, Any]:
        """The sizes as a config writes them: the token types and the position table's
        rows (C + 2 for RoBERTa)."""
        return {
            **super().hf_values(),
            "type_vocab": self.types,
            "intermediate": self.inner,
            "context": self.positions,
        }

    # -- explanation ----------------------------------------------------------------------
    def explanation(self, model: Model) -> list[tuple[str, list[str]]]:
        h, a, d, i = self.hidden, self.heads, self.head_size(), self.inner
        table = (
            f"C + 2 = {dim_str(self.positions)} rows (RoBERTa's positions start after its "
            "padding index)"
            if self.roberta
            else f"C = {dim_str(self.context)} rows"
        )
        lines = [
            f"The hidden size H = {dim_str(h)} is the length of every token's vector, in and "
            "out of every block.",
            f"Each token's vector starts as the sum of three rows: its word's (V × H), its "
            f"position's (a table of {table}) and its segment's (S = {dim_str(self.types)} "
            "token types).",
            f"Attention splits H into A = {dim_str(a)} heads of head_dim D = {dim_str(d)}; "
            "query, key and value are H × H each, every token attends to every token.",
            f"The intermediate size I = {dim_str(i)}: intermediate.dense maps H to I and "
            "output.dense back. Each half of a block ends in a residual add and a LayerNorm.",
        ]
        if self.head in ("mlm", "pretraining"):
            lines.append(
                "The masked-LM head: a transform (H × H, GELU, LayerNorm), then the decoder, "
                + (
                    "which is the word embedding (counted once), "
                    if self.tie_weights
                    else "a V × H matrix of its own, "
                )
                + "with a bias of V scores of the head's own."
            )
        elif self.pooler:
            lines.append("The pooler reads the first token's vector: H × H and tanh.")
        where = "roberta.encoder.layer" if self.roberta else "bert.encoder.layer"
        return [
            ("What the sizes mean", lines),
            (
                "Every matrix of one block",
                self.block_lines(model, "encoder.layer" if self.head == "none" else where),
            ),
        ]


bert = BERT.function_for()
