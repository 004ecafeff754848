"""``shapecalc whisper``: OpenAI's Whisper speech encoder-decoder, named as ``transformers``'
``WhisperForConditionalGeneration``, ``WhisperModel`` and ``WhisperForAudioClassification``
name it (modeling_whisper.py).

The encoder hears a log-mel spectrogram of N bins (``num_mel_bins``) over exactly 2·P
frames (3,000 frames, 30 s at the feature extractor's 10 ms hop; transformers refuses any
other length): ``conv1`` (N to H channels, kernel 3) and ``conv2`` (H to H, kernel 3,
stride 2) each followed by GELU halve the frames to P positions (``max_source_positions``,
1,500), to which every row of ``embed_positions`` (P × H, sinusoidal at initialisation and
never trained: ``requires_grad_(False)``, yet a parameter in the checkpoint) is added. The
decoder reads tokens (``embed_tokens``, V × H) plus learned positions (``embed_positions``,
C × H, ``max_target_positions``: 448). Both stacks are pre-norm layers of BART's family
(:mod:`shapecalc.architectures.bart`): attention whose ``k_proj`` has no bias, the
feed-forward ``fc1`` and ``fc2``, the decoder's with cross-attention (``encoder_attn``);
each stack ends in ``layer_norm``. ``proj_out`` scores the tokens, tied to the decoder's
``embed_tokens`` (``tie_word_embeddings``). ``WhisperForAudioClassification`` is the
encoder alone, then ``projector`` (H to Q, ``classifier_proj_size``), the average over the
positions and ``classifier`` (Q to K labels); with ``use_weighted_layer_sum`` it holds
``layer_weights``, one weight per hidden state (the embeddings' and each layer's).
``WhisperForCausalLM`` is the decoder alone (``model.decoder``, inside a
WhisperDecoderWrapper) and ``proj_out``, tied to its ``embed_tokens``: distil-whisper's
assistant for speculative decoding. Its layers hold their cross-attention, which its own
forward (tokens in, no encoder output) skips: its cache holds self-attention keys and
values alone, a DynamicCache.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, ClassVar

from shapecalc.architectures.bart import ACTIVATIONS, DECODER_TWINS, attention, layer
from shapecalc.core.declare import Architecture, Built, choice, flag, number, size
from shapecalc.core.dims import Dim, as_size, dim_str, known, symbol
from shapecalc.core.errors import InvalidArgumentError
from shapecalc.core.flow import Positions, chain, parallel, residual, summed
from shapecalc.core.frozen import frozen
from shapecalc.core.hfmap import HFType, Reference
from shapecalc.core.model import Model
from shapecalc.core.own import Parameter
from shapecalc.core.spec import Param
from shapecalc.core.tree import Block, Leaf, ModuleList, Node
from shapecalc.layers._embedding import Embedding
from shapecalc.layers.activation import GELU
from shapecalc.layers.conv import Conv1d
from shapecalc.layers.functional import Pick
from shapecalc.layers.linear import Dropout, Linear
from shapecalc.layers.norm import LayerNorm
from shapecalc.layers.tensors import Mean, Permute

__all__ = ["Whisper", "whisper"]

#: head -> the class's suffix
WHISPER_HEADS: dict[str, str] = {
    "lm": "ForConditionalGeneration",
    "none": "Model",
    "classify": "ForAudioClassification",
    "causal": "ForCausalLM",
}

#: the classification head's arguments -> their values outside it (no tensor there)
_CLASSIFY = {"labels": None, "classifier_proj": None, "weighted_layer_sum": False}

#: the stride of each convolution of the stem (conv1, conv2): 2·P frames make P positions
STRIDES = (1, 2)

#: WhisperConfig's pad_token_id, the decoder embedding's padding index
PAD = 50256


#: (argument, its decoder twin): the decoder's size is the encoder's unless given
@frozen
class FrozenEmbedding(Embedding):
    """``nn.Embedding`` whose table is never trained (``requires_grad_(False)``): a
    parameter all the same, saved and loaded with the model (Whisper's encoder positions,
    sinusoids written by ``_init_weights``)."""

    def params(self) -> Iterator[Param]:
        for p in super().params():
            yield replace(p, trainable=False)


def _read(f: Any, out: dict[str, Any]) -> None:
    """A decoder size equal to the encoder's is the encoder's; the padding index is a
    token of the decoder's embedding."""
    for encoder, decoder in DECODER_TWINS:
        if out.get(decoder) == out.get(encoder):
            out[decoder] = None
    f.padding("pad_token_id", out["vocab"], "token embedding (vocab_size)")


def _write(model: Any, reference: Reference) -> Reference:
    """Every decoder size written (WhisperConfig's defaults are not the encoder's), and
    a padding index within the vocabulary."""
    v = known(model.vocab)
    config = {
        **reference.config,
        "decoder_layers": model.decoder_depth,
        "decoder_attention_heads": model.decoder_head_count,
        "decoder_ffn_dim": model.decoder_inner,
        "pad_token_id": PAD if v is None else min(PAD, v - 1),
        "classifier_proj_size": model.projected,
    }
    return Reference(reference.model, reference.config_class, config, reference.options)


@frozen(kw_only=True)
class Whisper(Architecture):
    """Whisper: a convolutional stem (N mel bins to H channels, then H to H at stride 2),
    P fixed positions and L pre-norm encoder layers; a token embedding V × H, C learned
    positions and M decoder layers with cross-attention; ``proj_out`` tied to the token
    embedding.

    ``--head causal`` is WhisperForCausalLM, the decoder alone (``model.decoder``) and
    ``proj_out`` (distil-whisper's assistant): the encoder's sizes build nothing there but
    the decoder's defaults. Its layers hold their cross-attention, which its forward, given
    tokens and no encoder output, skips: the FLOPs and the cache (transformers'
    DynamicCache, self-attention keys and values) are the decoder's without it.

        >>> m = whisper(vocab=51865, hidden=384, layers=4, heads=6)
        >>> m.total
        37760640
    """

    command: ClassVar[str] = "whisper"
    function: ClassVar[str] = "whisper"
    title: ClassVar[str] = "Whisper speech encoder-decoder"
    example: ClassVar[str] = "--vocab 51865 --hidden 384 --layers 4 --heads 6"
    budget: ClassVar[str] = "40M"
    size_order: ClassVar[tuple[str, ...]] = (
        "vocab",
        "hidden",
        "mel_bins",
        "layers",
        "decoder_layers",
        "heads",
        "decoder_heads",
        "intermediate",
        "decoder_intermediate",
        "source_positions",
        "target_positions",
        "classifier_proj",
        "labels",
    )
    explains: ClassVar[str] = (
        "Explain the stem, the positions, the heads, the feed-forward and the tied "
        "embedding, and where the total comes from."
    )

    vocab: Any = size("V", "Vocabulary size: tokens the decoder reads and scores (vocab_size).")
    hidden: Any = size("H", "Hidden size (d_model): the length of every position's vector.")
    mel_bins: Any = size(
        "N",
        "Mel bins per audio frame (num_mel_bins): conv1's input channels (80; 128 from large-v3).",
        80,
        solvable=False,
    )
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
    source_positions: Any = size(
        "P",
        "The encoder's positions (max_source_positions): the stem's output, half the 2·P "
        "mel frames it takes (1,500 from 3,000 frames, 30 s).",
        1500,
        solvable=False,
    )
    target_positions: Any = size(
        "C",
        "The decoder's learned positions (max_target_positions): the most tokens it reads.",
        448,
        solvable=False,
    )
    activation: str = choice(
        tuple(ACTIVATIONS), "The feed-forward's activation (activation_function).", "gelu"
    )
    head: str = choice(
        tuple(WHISPER_HEADS),
        "lm: encoder, decoder and proj_out scoring every token "
        "(WhisperForConditionalGeneration); none: encoder and decoder (WhisperModel); "
        "classify: the encoder, projector and classifier (WhisperForAudioClassification); "
        "causal: the decoder alone and proj_out (WhisperForCausalLM; its cross-attention "
        "held, not run).",
        "lm",
    )
    labels: Any = size(
        "K",
        "Labels of --head classify (num_labels, or the length of id2label).",
        None,
        unset=None,
        default_text="2",
        solvable=False,
    )
    classifier_proj: Any = size(
        "Q",
        "--head classify: the projector's width before the average (classifier_proj_size).",
        None,
        unset=None,
        default_text="256",
        solvable=False,
    )
    weighted_layer_sum: bool = flag(
        "--head classify: a learned softmax-weighted sum of every hidden state "
        "(use_weighted_layer_sum: layer_weights, L + 1 numbers).",
        False,
    )
    tie_weights: bool = flag(
        "proj_out is the decoder's embed_tokens (tie_word_embeddings; --no-tie-weights: "
        "a V × H table of its own).",
        True,
    )
    dropout: float = number(
        "Dropout (dropout, attention_dropout, activation_dropout); it adds no parameters.",
        0.0,
        low=0,
        high=1,
        open_high=True,
    )

    hf: ClassVar[tuple[HFType, ...]] = (
        HFType(
            model_type="whisper",
            config_class="WhisperConfig",
            classes={"Whisper" + suffix: {"head": head} for head, suffix in WHISPER_HEADS.items()},
            base="model",
            keys={
                "vocab": "vocab_size",
                "hidden": "d_model",
                "mel_bins": "num_mel_bins",
                "layers": "encoder_layers",
                "decoder_layers": "decoder_layers",
                "heads": "encoder_attention_heads",
                "decoder_heads": "decoder_attention_heads",
                "intermediate": "encoder_ffn_dim",
                "decoder_intermediate": "decoder_ffn_dim",
                "source_positions": "max_source_positions",
                "target_positions": "max_target_positions",
                "activation": "activation_function",
                "tie_weights": "tie_word_embeddings",
                "dropout": ("dropout", "attention_dropout", "activation_dropout"),
                "labels": "num_labels",
                "classifier_proj": "classifier_proj_size",
                "weighted_layer_sum": "use_weighted_layer_sum",
            },
            aliases={
                "hidden_size": "d_model",
                "num_attention_heads": "encoder_attention_heads",
                "num_key_value_heads": "encoder_attention_heads",
                "num_hidden_layers": "encoder_layers",
            },
            defaults={
                "vocab_size": 51865,
                "num_mel_bins": 80,
                "encoder_layers": 4,
                "encoder_attention_heads": 6,
                "decoder_layers": 4,
                "decoder_attention_heads": 6,
                "decoder_ffn_dim": 1536,
                "encoder_ffn_dim": 1536,
                "activation_function": "gelu",
                "d_model": 384,
                "dropout": 0.0,
                "attention_dropout": 0.0,
                "activation_dropout": 0.0,
                "max_source_positions": 1500,
                "max_target_positions": 448,
                "pad_token_id": PAD,
                "tie_word_embeddings": True,
                "classifier_proj_size": 256,
                "use_weighted_layer_sum": False,
            },
            free=frozenset(
                {
                    "scale_embedding",
                    "encoder_layerdrop",
                    "decoder_layerdrop",
                    "init_std",
                    "suppress_tokens",
                    "begin_suppress_tokens",
                    "forced_decoder_ids",
                    "apply_spec_augment",
                    "mask_time_prob",
                    "mask_time_length",
                    "mask_time_min_masks",
                    "mask_feature_prob",
                    "mask_feature_length",
                    "mask_feature_min_masks",
                    "median_filter_width",
                }
            ),
            read=_read,
            write=_write,
        ),
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
    def frames(self) -> Dim:
        """The mel frames the encoder takes: the stem's strides times its P positions."""
        frames: Dim = math.prod(STRIDES) * self.source_positions
        return frames

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
            out["E"] = h // g
        if self.intermediate is None and known(self.inner) is not None:
            out["I"] = self.inner
        out["F"] = math.prod(STRIDES) * out.get("P", self.source_positions)
        if self.head != "classify":  # the classification head's sizes size nothing here
            out.pop("Q", None)
        if self.head == "causal":  # nor the encoder's, without an encoder
            given = {
                "L": self.decoder_layers,
                "A": self.decoder_heads,
                "D": self.decoder_heads,
                "I": self.decoder_intermediate,
            }
            for letter in ("N", "P", "F", *(k for k, v in given.items() if v is not None)):
                out.pop(letter, None)
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

    label_heads: ClassVar[frozenset[str]] = frozenset({"classify"})
    #: what a config gives for the classification head alone, read only with it
    label_arguments: ClassVar[dict[str, Any]] = _CLASSIFY

    @property
    def projected(self) -> Dim:
        """The classification head's projector width: given, or 256 (WhisperConfig's
        classifier_proj_size)."""
        q: Dim = 256 if self.classifier_proj is None else self.classifier_proj
        return q

    @property
    def n_labels(self) -> Dim:
        """The classifier's labels: given, or 2 (transformers' default)."""
        n: Dim = 2 if self.labels is None else self.labels
        return n

    @classmethod
    def consistent(cls, arguments: dict[str, Any]) -> dict[str, Any]:
        """The heads divide the hidden size (WhisperAttention refuses others); the
        classification head's arguments only with that head."""
        out = dict(arguments)
        if out.get("head") != "classify":
            out.update(_CLASSIFY)
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

    def check(self) -> None:
        if self.head != "classify":
            for field, unset in _CLASSIFY.items():
                value = getattr(self, field)
                if value != unset:
                    rule = f"{field} sizes the classification head: give it with --head classify"
                    raise InvalidArgumentError(
                        f"{rule} (head {self.head})",
                        layer=self.owner(),
                        field=field,
                        value=value,
                        rule=rule,
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
    def _layer(self, *, decoder: bool, alone: bool = False) -> Block:
        h = self.hidden
        heads = self.decoder_head_count if decoder else self.heads
        head_dim = self._head_size(heads, decoder)

        def attend(cross: bool) -> Block:
            return attention(
                h,
                heads,
                head_dim,
                decoder=decoder,
                cross=cross,
                kind="WhisperAttention",
                key_bias=False,
            )

        return layer(
            attend(False),
            attend(True) if decoder else None,
            hidden=h,
            inner=self.decoder_inner if decoder else self.inner,
            activation=self.activation,
            dropout=self.dropout,
            pre_norm=True,
            kind="WhisperDecoderLayer" if decoder else "WhisperEncoderLayer",
            alone=alone,
        )

    def _encoder(self) -> Block:
        h, p = self.hidden, self.source_positions
        children: dict[str, Any] = {
            "conv1": Leaf(
                Conv1d(self.mel_bins, h, 3, padding=1),
                "mel bins to H channels, frame by frame (kernel 3)",
                "stem",
            ),
            "conv2": Leaf(
                Conv1d(h, h, 3, stride=STRIDES[1], padding=1),
                "H to H channels at stride 2: 2·P frames to P positions",
                "stem",
            ),
            "embed_positions": Leaf(
                FrozenEmbedding(p, h),
                "one H-vector per position, sinusoids, never trained",
                "position embedding",
            ),
            "layers": ModuleList(self._layer(decoder=False), self.layers),
            "layer_norm": Leaf(LayerNorm(h), role="final norm"),
        }
        flow = chain(
            "conv1",
            GELU(),
            "conv2",
            GELU(),
            Permute((0, 2, 1)),
            residual(Positions(limit=p, exact=True), "embed_positions"),
            Dropout(self.dropout),
            "layers",
            "layer_norm",
        )
        return Block("WhisperEncoder", children, flow=flow)

    def _decoder(self, *, alone: bool = False) -> Block:
        """WhisperDecoder: (encoder output, target ids) in; ``alone``: the target ids
        alone, each layer's cross-attention skipped (WhisperForCausalLM)."""
        h, c = self.hidden, self.target_positions
        children: dict[str, Any] = {
            "embed_tokens": Leaf(
                Embedding(self.vocab, h), "one H-vector per token", "token embedding"
            ),
            "embed_positions": Leaf(
                Embedding(c, h), "one H-vector per position, learned", "position embedding"
            ),
            "layers": ModuleList(
                self._layer(decoder=True, alone=alone), self.decoder_depth, carry=not alone
            ),
            "layer_norm": Leaf(LayerNorm(h), role="final norm"),
        }
        embed = chain(
            summed("embed_tokens", (Positions(limit=c), "embed_positions")),
            Dropout(self.dropout),
        )
        if alone:
            return Block("WhisperDecoder", children, flow=chain(embed, "layers", "layer_norm"))
        # (encoder output, target ids) in
        flow = chain(parallel(chain(Pick(1), embed), Pick(0)), "layers", "layer_norm")
        return Block("WhisperDecoder", children, flow=flow)

    def build(self) -> Built:
        h, v = self.hidden, self.vocab
        if self.head == "causal":
            return self._causal()
        body = Block(
            "WhisperModel",
            {"encoder": self._encoder(), "decoder": self._decoder()},
            flow=chain(parallel(chain(Pick(0), "encoder"), Pick(1)), "decoder"),
        )
        if self.head == "classify":
            return self._classifier()
        layout = (("B", "N", "F"), ("B", "T"))
        if self.head == "none":
            return Built(body, input_layout=layout, group_depth=1)
        children: dict[str, Node] = {
            "model": body,
            "proj_out": Leaf(Linear(h, v, bias=False), "a score per token", "head"),
        }
        ties = {"proj_out.weight": "model.decoder.embed_tokens.weight"} if self.tie_weights else {}
        root = Block("WhisperForConditionalGeneration", children, flow=chain("model", "proj_out"))
        return Built(root, ties=ties, input_layout=layout, group_depth=2, head="proj_out")

    def _causal(self) -> Built:
        """WhisperForCausalLM: ``model`` (WhisperDecoderWrapper) holding ``decoder``, then
        ``proj_out``, tied to the decoder's embed_tokens unless --no-tie-weights."""
        wrapper = Block(
            "WhisperDecoderWrapper",
            {"decoder": self._decoder(alone=True)},
            flow=chain("decoder"),
        )
        children: dict[str, Node] = {
            "model": wrapper,
            "proj_out": Leaf(
                Linear(self.hidden, self.vocab, bias=False), "a score per token", "head"
            ),
        }
        ties = {"proj_out.weight": "model.decoder.embed_tokens.weight"} if self.tie_weights else {}
        root = Block("WhisperForCausalLM", children, flow=chain("model", "proj_out"))
        return Built(root, ties=ties, input_layout=(("B", "T"),), group_depth=2, head="proj_out")

    def _classifier(self) -> Built:
        """WhisperForAudioClassification: the encoder, projector, the average over the
        positions, classifier (the weighted sum of the hidden states is elementwise)."""
        children: dict[str, Node] = {}
        if self.weighted_layer_sum:  # the class's own parameter: first in named_parameters
            children["layer_weights"] = Leaf(
                Parameter(
                    (self.layers + 1,),
                    role="a weight per hidden state (softmax), the embeddings' and each layer's",
                ),
                role="layer weights",
            )
        children["encoder"] = self._encoder()
        children["projector"] = Leaf(
            Linear(self.hidden, self.projected), "H to Q before the average", "projector"
        )
        children["classifier"] = Leaf(
            Linear(self.projected, self.n_labels),
            "a score per label, from the average over the positions",
            "classification head",
        )
        root = Block(
            "WhisperForAudioClassification",
            children,
            flow=chain("encoder", "projector", Mean((1,)), "classifier"),
        )
        return Built(root, input_layout=(("B", "N", "F"),), group_depth=1, head="classifier")

    # -- explanation ----------------------------------------------------------------------
    def explanation(self, model: Model) -> list[tuple[str, list[str]]]:
        if self.head == "causal":
            return [("What the sizes mean", self._causal_lines())]
        classify = self.head == "classify"
        stacks = "the encoder" if classify else "both stacks"
        lines = [
            f"The hidden size H = {dim_str(self.hidden)} (d_model) is every position's "
            f"vector in {stacks}.",
            f"The stem: conv1 maps N = {dim_str(self.mel_bins)} mel bins to H channels "
            "(kernel 3), conv2 H to H at stride 2, each followed by GELU: the F = 2·P = "
            f"{dim_str(self.frames)} frames of a 30 s window become P = "
            f"{dim_str(self.source_positions)} positions; transformers refuses any other "
            "length (longer audio runs window by window).",
            "The encoder adds all P rows of its embed_positions (sinusoids, never trained, "
            "but a parameter of the checkpoint)"
            + (
                "."
                if classify
                else f"; the decoder's C = {dim_str(self.target_positions)} positions are learned."
            ),
            f"Attention: A = {dim_str(self.heads)} heads in the encoder"
            + (
                ""
                if classify
                else f", G = {dim_str(self.decoder_head_count)} in the decoder (self and cross)"
            )
            + ", each H / heads wide; q_proj, v_proj and out_proj are H × H with biases, "
            "k_proj without.",
            f"The feed-forward: fc1 maps H to I = {dim_str(self.inner)}"
            + ("" if classify else f" (the decoder's J = {dim_str(self.decoder_inner)})")
            + ", fc2 maps back; LayerNorms before each residual branch (pre-norm), and "
            + ("the encoder ends" if classify else "each stack ends")
            + " in layer_norm.",
        ]
        if classify:
            weighs = (
                "; layer_weights weighs the L + 1 hidden states (a softmax) before it."
                if self.weighted_layer_sum
                else "."
            )
            lines.append(
                f"The head: projector maps H to Q = {dim_str(self.projected)}, the "
                f"positions are averaged, classifier maps Q to K = {dim_str(self.n_labels)} "
                "label scores" + weighs
            )
        else:
            lines.append(
                "proj_out is the decoder's V × H embed_tokens"
                if self.tie_weights
                else "proj_out is a V × H table of its own"
            )
        return [("What the sizes mean", lines)]

    def _causal_lines(self) -> list[str]:
        g, j = self.decoder_head_count, self.decoder_inner
        return [
            f"WhisperForCausalLM is Whisper's decoder alone: M = {dim_str(self.decoder_depth)} "
            f"layers of width H = {dim_str(self.hidden)} (d_model), reading tokens "
            f"(embed_tokens, V × H) plus C = {dim_str(self.target_positions)} learned "
            "positions; no encoder, no stem.",
            f"Attention: G = {dim_str(g)} heads, each H / G wide; q_proj, v_proj and "
            "out_proj are H × H with biases, k_proj without. Each layer also holds its "
            "cross-attention (encoder_attn and its LayerNorm), which the class's forward "
            "skips without an encoder's output: counted as tensors, not as work or cache.",
            f"The feed-forward: fc1 maps H to J = {dim_str(j)}, fc2 maps back; LayerNorms "
            "before each residual branch (pre-norm), and the decoder ends in layer_norm.",
            "proj_out is the decoder's V × H embed_tokens"
            if self.tie_weights
            else "proj_out is a V × H table of its own",
        ]


whisper = Whisper.function_for()
