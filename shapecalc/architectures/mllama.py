"""``shapecalc mllama``: Llama 3.2 Vision, named as ``transformers``'
``MllamaForConditionalGeneration`` and ``MllamaModel`` name it (modeling_mllama.py).

The parts (``_composite.py``), each built here, as no other family builds them:

- ``model.vision_model`` (MllamaVisionModel, its ``vision_config``): each of an image's
  Nt tiles (``max_num_tiles``) of S × S pixels cut into P × P patches by
  ``patch_embedding`` (a convolution without a bias), ``pre_tile_positional_embedding``
  (one Nt·Hv row per aspect ratio, R + 1 rows, gated), the ``class_embedding`` before each
  tile's patches, ``gated_positional_embedding`` (N = (S / P)² + 1 positions, and a tile
  embedding of Nt·N·Hv per aspect ratio), ``layernorm_pre``; the tiles' tokens padded to a
  multiple of 8 each (Np) and joined, the local ``transformer`` of Lv layers, then
  ``layernorm_post``, ``post_tile_positional_embedding`` and the gated
  ``global_transformer`` of Lg layers (``gate_attn`` and ``gate_ffn`` each); the output
  is the global transformer's and the F local layers of ``intermediate_layers_indices``,
  side by side: (F + 1)·Hv wide (``vision_output_dim``), the padding cut off.
- ``model.language_model`` (MllamaTextModel, its ``text_config``): ``embed_tokens`` of
  V + 8 rows, L layers of which those in ``cross_attention_layers`` attend to the image
  (MllamaCrossAttentionDecoderLayer: ``cross_attn`` with ``q_norm`` and ``k_norm`` (D)
  and the gates ``cross_attn_attn_gate`` and ``cross_attn_mlp_gate``), the others to the
  tokens before them (MllamaSelfAttentionDecoderLayer, rotary positions); ``norm``.
- ``model.multi_modal_projector``: one linear layer, (F + 1)·Hv to H, with a bias.
- ``lm_head``: H to V, never tied (its V rows are not the embedding's V + 8).

Generating, the vision model and the projector run once per request, and each
cross-attention layer keeps the keys and values of the image's Ni · Nt · N tokens
(transformers' cache layer of that index); each self-attention layer's cache grows by a
token's keys and values.
"""

from __future__ import annotations

from typing import Any, ClassVar

from shapecalc.architectures import _transformer as tf
from shapecalc.architectures._composite import forward_products, mount
from shapecalc.architectures._towers import ACTIVATIONS, activation, head_dim
from shapecalc.core.declare import Architecture, Built, Reference, choice, indices, size
from shapecalc.core.dims import Dim, Expr, as_size, count_str, dim_str, known
from shapecalc.core.flow import Positions, chain, each, multiply, parallel, residual, summed
from shapecalc.core.frozen import frozen
from shapecalc.core.hfmap import HFType, Part
from shapecalc.core.own import Parameter
from shapecalc.core.spec import Shape, Work
from shapecalc.core.tree import Block, Leaf, ModuleList, Repeat, runs
from shapecalc.layers._embedding import Embedding
from shapecalc.layers._function import Chunk, Select, _Function
from shapecalc.layers._linear import Linear
from shapecalc.layers._norm import LlamaRMSNorm
from shapecalc.layers.activation import SiLU, Tanh
from shapecalc.layers.conv import Conv2d
from shapecalc.layers.functional import Pick, Rotary, ScaledDotProductAttention, SplitHeads
from shapecalc.layers.linear import Flatten
from shapecalc.layers.norm import LayerNorm
from shapecalc.layers.tensors import Cat, Expand, Reshape, Tile, Transpose

__all__ = ["Mllama", "mllama"]

#: MllamaTextConfig's cross_attention_layers when a config gives none (its __post_init__)
CROSS_DEFAULT = (3, 8, 13, 18, 23, 28, 33, 38)
#: MllamaVisionConfig's intermediate_layers_indices and supported_aspect_ratios defaults
FEATURE_DEFAULT = [3, 7, 15, 23, 30]
RATIOS_DEFAULT = [[1, 1], [1, 2], [1, 3], [1, 4], [2, 1], [2, 2], [3, 1], [4, 1]]
#: MllamaTextModel's embed_tokens holds vocab_size + 8 rows
EXTRA_TOKENS = 8
#: MllamaVisionModel pads each tile's tokens to a multiple of 8 before its transformers
PAD_TO = 8

_PARTS = {
    "vision_model": "the vision model, vision_config",
    "language_model": "the language model, text_config",
    "multi_modal_projector": "the projector of image features into the text model",
}
_TEXT_ARGUMENTS = ("vocab", "hidden", "layers", "heads", "kv_heads", "intermediate")
_VISION_ARGUMENTS = (
    "vision_hidden",
    "vision_layers",
    "global_layers",
    "vision_heads",
    "vision_intermediate",
    "vision_activation",
    "channels",
    "image_size",
    "patch_size",
    "tiles",
)


#: why layer 0 is no cross-attention layer: MllamaTextModel.forward reads the context's
#: length from the cache's layer 0 (``cache.get_seq_length()``, transformers 5.25), which
#: a cross-attention layer fills with the image's keys; the first decode step's mask then
#: has the image's length and the step fails (tests/test_mllama.py runs it)
NOT_FIRST = (
    "cross_attention_layers must not hold layer 0: transformers reads the cached length "
    "from layer 0, where it would be the image's, and decoding fails"
)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _read_text(f: Any, out: dict[str, Any]) -> None:
    """cross_attention_layers: null is transformers' default (those below L); a list is
    layers of the language model, each once; the padding id within embed_tokens."""
    layers = out["layers"]
    value = f.raw("cross_attention_layers")
    if value is None:
        out["cross_layers"] = ()
    else:
        rule = (
            f"cross_attention_layers are layers of the language model: integers in 0 .. "
            f"{layers - 1} (num_hidden_layers - 1), each once, at least one"
        )
        if (
            not isinstance(value, list)
            or not value
            or not all(_is_int(i) and 0 <= i < layers for i in value)
            or len(set(value)) != len(value)
        ):
            raise f.fail("cross_attention_layers", value, rule)
        if 0 in value:
            raise f.fail("cross_attention_layers", value, NOT_FIRST)
        out["cross_layers"] = tuple(sorted(value))
    f.padding("pad_token_id", out["vocab"] + EXTRA_TOKENS, "token embedding (vocab_size + 8)")


def _read_vision(f: Any, out: dict[str, Any]) -> None:
    """The local layers whose features join the output (intermediate_layers_indices),
    the aspect ratios (supported_aspect_ratios) and vision_output_dim, which must be the
    width of those features side by side."""
    layers = out["vision_layers"]
    given = f.raw("intermediate_layers_indices")
    listed = FEATURE_DEFAULT if given is None else given
    if (
        not isinstance(listed, list)
        or not listed
        or not all(_is_int(i) and -layers <= i < layers for i in listed)
    ):
        raise f.fail(
            "intermediate_layers_indices",
            given,
            "intermediate_layers_indices index the local transformer's layers: integers in "
            f"{-layers} .. {layers - 1} (num_hidden_layers), at least one",
        )
    out["feature_layers"] = len(listed)
    ratios = f.raw("supported_aspect_ratios")
    if ratios is None:
        if out["tiles"] != 4:
            raise f.fail(
                "max_num_tiles",
                out["tiles"],
                "max_num_tiles must be 4 for the default supported_aspect_ratios "
                "(MllamaVisionConfig.validate_architecture)",
            )
        ratios = RATIOS_DEFAULT
    if not isinstance(ratios, list) or not ratios:
        raise f.fail(
            "supported_aspect_ratios",
            ratios,
            "supported_aspect_ratios must be a list of aspect ratios, at least one",
        )
    out["aspect_ratios"] = len(ratios)
    width = f.size("vision_output_dim")
    wanted = out["vision_hidden"] * (len(listed) + 1)
    if width != wanted:
        raise f.fail(
            "vision_output_dim",
            width,
            "vision_output_dim must be hidden_size × (1 + len(intermediate_layers_indices)): "
            "the global transformer's features and the intermediate layers', side by side",
            f"{out['vision_hidden']} × {len(listed) + 1} = {wanted}",
        )


def _part_type(name: str, config_class: str, **declared: Any) -> HFType:
    """How a part's nested config says its sizes (read by the composite only: no
    architecture serves the part's model type alone)."""
    return HFType(model_type=name, config_class=config_class, classes={}, base="", **declared)


_TEXT_TYPE = _part_type(
    "mllama_text_model",
    "MllamaTextConfig",
    keys={
        "vocab": "vocab_size",
        "hidden": "hidden_size",
        "layers": "num_hidden_layers",
        "heads": "num_attention_heads",
        "kv_heads": "num_key_value_heads",
        "intermediate": "intermediate_size",
    },
    defaults={
        "vocab_size": 128256,
        "hidden_size": 4096,
        "num_hidden_layers": 40,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "intermediate_size": 14336,
        "max_position_embeddings": 131072,
        "cross_attention_layers": None,
        "pad_token_id": 128004,
    },
    free=frozenset(
        {
            "hidden_act",
            "rope_parameters",
            "rope_scaling",
            "rope_theta",
            "rms_norm_eps",
            "max_position_embeddings",
            "initializer_range",
            "use_cache",
            "tie_word_embeddings",
            "dropout",
            "bos_token_id",
            "eos_token_id",
        }
    ),
    read=_read_text,
)

_VISION_TYPE = _part_type(
    "mllama_vision_model",
    "MllamaVisionConfig",
    keys={
        "vision_hidden": "hidden_size",
        "vision_layers": "num_hidden_layers",
        "global_layers": "num_global_layers",
        "vision_heads": "attention_heads",
        "vision_intermediate": "intermediate_size",
        "vision_activation": "hidden_act",
        "channels": "num_channels",
        "image_size": "image_size",
        "patch_size": "patch_size",
        "tiles": "max_num_tiles",
    },
    aliases={"num_attention_heads": "attention_heads"},
    defaults={
        "hidden_size": 1280,
        "hidden_act": "gelu",
        "num_hidden_layers": 32,
        "num_global_layers": 8,
        "attention_heads": 16,
        "num_channels": 3,
        "intermediate_size": 5120,
        "vision_output_dim": 7680,
        "image_size": 448,
        "patch_size": 14,
        "max_num_tiles": 4,
        "intermediate_layers_indices": None,
        "supported_aspect_ratios": None,
    },
    free=frozenset({"norm_eps", "initializer_range"}),
    read=_read_vision,
)


@frozen
class _AspectRatioMask(_Function):
    """MllamaVisionModel's attention mask, made before the local transformer
    (modeling_mllama.py, ``_prepare_aspect_ratio_attention_mask``): the aspect-ratio mask
    of each image's tiles repeated to its Nt·Np tokens, ``1 - mask``, then ``mask @
    mask.transpose(-1, -2) * torch.finfo(dtype).min``, a (B·Ni, Nt·Np, 1) @ (B·Ni, 1,
    Nt·Np) matrix product FlopCounterMode counts. The hidden states pass through as they
    are (their shape gives B·Ni and Nt·Np); the mask is made from an input that needs no
    gradient: no backward, nothing kept."""

    kind: ClassVar[str] = "aspect_ratio_mask"
    summary: ClassVar[str] = "the tiles' attention mask, an outer product (no gradient)"

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        if len(inputs) != 1 or len(inputs[0]) != 3:
            self._fail_shape(f"takes one input (B·Ni, Nt·Np, Hv), got {inputs}", inputs)
        return (inputs[0],)

    def work(self, *inputs: Shape) -> Work:
        outputs = self.output_shapes(*inputs)
        images, tokens, _ = inputs[0]
        return Work(
            outputs,
            macs=images * tokens * tokens,
            other=images * tokens + images * tokens * tokens,
            other_rule="1 - mask per token (1), the product times the dtype's minimum "
            "(1 per number)",
            inplace=True,
            grad=False,
        )


@frozen(kw_only=True)
class Mllama(Architecture):
    """Llama 3.2 Vision: the vision model (Hv wide, Lv local and Lg global layers, Av
    heads, an MLP of Iv), the projector and the language model (V, H, L, A, K, I) whose
    cross-attention layers attend to the image's tokens.

    A cross-attention layer is any layer but 0: transformers reads the cached context's
    length from layer 0 (``cache.get_seq_length()``), which a cross-attention layer there
    fills with the image's keys, and the first decode step fails; such a config is
    refused, naming cross_attention_layers.

    >>> m = mllama(vocab=128256, hidden=4096, layers=40, heads=32, kv_heads=8,
    ...            intermediate=14336)
    >>> m.total  # MllamaConfig's defaults (the 11B's, with 448-pixel tiles)
    10642941475
    """

    command: ClassVar[str] = "mllama"
    function: ClassVar[str] = "mllama"
    title: ClassVar[str] = "Mllama (Llama 3.2 Vision: vision model, projector, language model)"
    example: ClassVar[str] = (
        "--vocab 128256 --hidden 4096 --layers 40 --heads 32 --kv-heads 8 --intermediate 14336"
    )
    budget: ClassVar[str] = "11B"
    #: the stacks a request runs once, before its tokens (shapecalc.analysis.generation)
    per_request: ClassVar[tuple[str, ...]] = ("vision_model", "multi_modal_projector")
    size_order: ClassVar[tuple[str, ...]] = (
        "vocab",
        "hidden",
        "layers",
        "heads",
        "kv_heads",
        "intermediate",
        "vision_hidden",
        "vision_layers",
        "global_layers",
        "vision_heads",
        "vision_intermediate",
        "channels",
        "image_size",
        "patch_size",
        "tiles",
        "aspect_ratios",
        "feature_layers",
        "images",
    )

    vocab: Any = size("V", "Vocabulary size (vocab_size); embed_tokens holds V + 8 rows.")
    hidden: Any = tf.hidden()
    layers: Any = size(
        "L",
        "The language model's layers (num_hidden_layers): a number, as the cross-attention "
        "layers are placed among them by their numbers.",
        40,
        names=False,
        solvable=False,
    )
    heads: Any = tf.heads()
    kv_heads: Any = tf.kv_heads()
    intermediate: Any = size("I", "The language model's MLP size (intermediate_size).")
    cross_layers: tuple[int, ...] = indices(
        "The language model's layers that attend to the image (cross_attention_layers), "
        "from 1 (with layer 0 transformers' decoding fails); none given: transformers' "
        "default, 3, 8, 13, ..., 38, those below L."
    )
    vision_hidden: Any = size("Hv", "The vision model's width (hidden_size).", 1280)
    vision_layers: Any = size(
        "Lv", "The local transformer's layers (num_hidden_layers).", 32, names=False
    )
    global_layers: Any = size("Lg", "The gated global transformer's layers.", 8)
    vision_heads: Any = size(
        "Av", "The vision model's heads (attention_heads); they divide Hv.", 16, solvable=False
    )
    vision_intermediate: Any = size("Iv", "The vision MLP's size (intermediate_size).", 5120)
    vision_activation: str = choice(
        ACTIVATIONS, "The vision MLP's activation (hidden_act).", "gelu"
    )
    channels: Any = size("C", "Image channels (num_channels).", 3, solvable=False)
    image_size: Any = size(
        "S", "A tile's side in pixels (image_size).", 448, names=False, solvable=False
    )
    patch_size: Any = size(
        "P", "A patch's side in pixels (patch_size).", 14, names=False, solvable=False
    )
    tiles: Any = size(
        "Nt",
        "Tiles per image (max_num_tiles): every image is run as this many tiles.",
        4,
        names=False,
        solvable=False,
    )
    aspect_ratios: Any = size(
        "R",
        "Aspect ratios the tile embeddings know (len(supported_aspect_ratios)); each table "
        "holds R + 1 rows.",
        8,
        names=False,
        solvable=False,
    )
    feature_layers: Any = size(
        "F",
        "Local layers whose features join the output (len(intermediate_layers_indices)): "
        "the output is (F + 1)·Hv wide (vision_output_dim).",
        5,
        names=False,
        solvable=False,
    )
    images: Any = size(
        "Ni",
        "Images per request, for --flops, --memory and the state (no tensor changes).",
        1,
        names=False,
        solvable=False,
    )
    head: str = choice(
        ("lm", "none"),
        "lm: MllamaForConditionalGeneration, with lm_head; none: MllamaModel.",
        "lm",
    )

    hf: ClassVar[tuple[HFType, ...]] = (
        HFType(
            model_type="mllama",
            config_class="MllamaConfig",
            classes={
                "MllamaForConditionalGeneration": {"head": "lm"},
                "MllamaModel": {"head": "none"},
            },
            base="model",
            keys={},
            defaults={"text_config": None, "vision_config": None, "image_token_index": 128256},
            aliases={"image_token_id": "image_token_index"},
            free=frozenset({"image_token_index", "tie_word_embeddings"}),
            parts=(
                Part(
                    "vision_config",
                    ("mllama_vision_model",),
                    "the vision model",
                    declared=_VISION_TYPE,
                ),
                Part(
                    "text_config", ("mllama_text_model",), "the language model", declared=_TEXT_TYPE
                ),
            ),
            derived=frozenset(
                {
                    *_TEXT_ARGUMENTS,
                    *_VISION_ARGUMENTS,
                    "cross_layers",
                    "aspect_ratios",
                    "feature_layers",
                }
            ),
            unread=frozenset({"images"}),
            dropped=(r"rotary_emb\.inv_freq",),
            # the Hub's files (saved by transformers 4): conversion_mapping.py's
            # renames of Mllama's layout
            renamed={
                "language_model.lm_head.": "lm_head.",
                "language_model.model.": "model.language_model.",
                "vision_model.": "model.vision_model.",
                "multi_modal_projector.": "model.multi_modal_projector.",
            },
            write=lambda model, reference: model.reference(),
        ),
    )

    # -- checks ---------------------------------------------------------------------------
    def check(self) -> None:
        for field, whole, part in (
            ("heads", self.hidden, self.heads),
            ("vision_heads", self.vision_hidden, self.vision_heads),
        ):
            w, n = known(whole), known(part)
            if w is not None and n is not None and w % n:
                self._fail(
                    field,
                    part,
                    f"{field} must divide the width (each head is width / heads)",
                    f"{w} % {n} = {w % n}",
                )
        kv, a = known(self.kv), known(self.heads)
        if kv is not None and a is not None and a % kv:
            self._fail("kv_heads", kv, "kv_heads must divide heads", f"{a} % {kv} = {a % kv}")
        if self.cross_layers and self.cross_layers[0] == 0:
            self._fail("cross_layers", 0, NOT_FIRST, "layer 0 given")
        if self.cross_layers and self.cross_layers[-1] >= self.layers:
            self._fail(
                "cross_layers",
                self.cross_layers[-1],
                "cross_layers are layers of the language model (each < layers)",
                f"layer {self.cross_layers[-1]} of {self.layers}",
            )
        if self.patch_size > self.image_size:
            self._fail(
                "patch_size",
                self.patch_size,
                "patch_size must be at most image_size (a tile holds at least one patch)",
                f"{self.patch_size} > {self.image_size}",
            )

    @classmethod
    def consistent(cls, arguments: dict[str, Any]) -> dict[str, Any]:
        out = dict(arguments)
        h, a = out["hidden"], out["heads"]
        out["hidden"] = 2 * a * max(1, h // (2 * a))  # an even head width, for rotary
        kv = out.get("kv_heads")
        if kv is not None and out["heads"] % kv:
            out["kv_heads"] = 1
        w, g = out["vision_hidden"], out["vision_heads"]
        out["vision_hidden"] = g * max(1, w // g)
        out["image_size"] = max(out["image_size"], out["patch_size"])
        out["vision_layers"] = min(out["vision_layers"], 4)
        out["global_layers"] = min(out["global_layers"], 3)
        out["tiles"] = min(out["tiles"], 4)
        out["aspect_ratios"] = min(out["aspect_ratios"], 9)
        out["feature_layers"] = min(out["feature_layers"], 3)
        out["image_size"] = min(out["image_size"], 4 * out["patch_size"])
        out["cross_layers"] = tuple(i for i in out["cross_layers"] if 0 < i < out["layers"])
        return out

    @classmethod
    def multiple_for(cls, free: str, arguments: dict[str, Any]) -> int:
        """hidden: a multiple of twice the heads; vision_hidden: of the vision heads."""
        heads = {"hidden": ("heads", 2), "vision_hidden": ("vision_heads", 1)}.get(free)
        if heads is None:
            return 1
        given = arguments.get(heads[0], 16 if free == "vision_hidden" else 1)
        number = known(as_size(given, owner=cls.owner(), field=heads[0]))
        return heads[1] * (1 if number is None else number)

    # -- sizes ----------------------------------------------------------------------------
    @property
    def kv(self) -> Dim:
        given: Dim = self.heads if self.kv_heads is None else self.kv_heads
        return given

    @property
    def patches(self) -> int:
        """A tile's patches and its class token: N = (S / P)² + 1."""
        side: int = self.image_size // self.patch_size
        return side * side + 1

    @property
    def padded(self) -> int:
        """A tile's tokens padded to a multiple of 8 (Np)."""
        return -(-self.patches // PAD_TO) * PAD_TO

    @property
    def vision_out(self) -> Dim:
        """The vision model's output width, vision_output_dim: (F + 1)·Hv."""
        width: Dim = (self.feature_layers + 1) * self.vision_hidden
        return width

    def vision_tokens(self) -> int:
        """The tokens of one request's images the cross-attention layers attend to:
        Ni · Nt · N."""
        count: int = self.images * self.tiles * self.patches
        return count

    def cross_indices(self) -> tuple[int, ...]:
        """The cross-attention layers: as given, or transformers' default below L."""
        if self.cross_layers:
            return self.cross_layers
        return tuple(i for i in CROSS_DEFAULT if i < self.layers)

    def sizes(self) -> dict[str, Dim]:
        out = super().sizes()
        h, a = known(self.hidden), known(self.heads)
        if h is not None and a:
            out["D"] = h // a
        w, g = known(self.vision_hidden), known(self.vision_heads)
        if w is not None and g:
            out["Dv"] = w // g
        return out

    # -- the vision model -----------------------------------------------------------------
    def _vision_layer(self, gated: bool) -> Block:
        h, a, i = self.vision_hidden, self.vision_heads, self.vision_intermediate
        d = head_dim(h, a, "Dv")
        attention = Block(
            "MllamaVisionAttention",
            {
                "q_proj": Leaf(Linear(h, h, bias=False), role="query"),
                "k_proj": Leaf(Linear(h, h, bias=False), role="key"),
                "v_proj": Leaf(Linear(h, h, bias=False), role="value"),
                "o_proj": Leaf(Linear(h, h, bias=False), role="output projection"),
            },
            flow=chain(
                parallel("q_proj", "k_proj", "v_proj"),
                ScaledDotProductAttention(a, a, d, causal=False, cached=False),
                "o_proj",
            ),
            description=f"{dim_str(a)} heads of {dim_str(d)} over every token of an image",
        )
        mlp = Block(
            "MllamaVisionMLP",
            {"fc1": Leaf(Linear(h, i), role="up"), "fc2": Leaf(Linear(i, h), role="down")},
            flow=chain("fc1", activation(self.vision_activation), "fc2"),
        )
        children: dict[str, Any] = {
            "self_attn": attention,
            "mlp": mlp,
            "input_layernorm": LayerNorm(h, eps=1e-5),
            "post_attention_layernorm": LayerNorm(h, eps=1e-5),
        }
        attn: list[Any] = ["input_layernorm", "self_attn"]
        ffn: list[Any] = ["post_attention_layernorm", "mlp"]
        if gated:  # tanh(gate) times each branch
            children["gate_attn"] = Parameter((1,), role="the attention branch's gate")
            children["gate_ffn"] = Parameter((1,), role="the MLP branch's gate")
            attn.append(multiply((), ("gate_attn", Tanh())))
            ffn.append(multiply((), ("gate_ffn", Tanh())))
        return Block(
            "MllamaVisionEncoderLayer", children, flow=chain(residual(*attn), residual(*ffn))
        )

    def _tile_embedding(self) -> Block:
        """MllamaPrecomputedAspectRatioEmbedding: one Nt·Hv row per aspect ratio, gated."""
        h, t = self.vision_hidden, self.tiles
        return Block(
            "MllamaPrecomputedAspectRatioEmbedding",
            {
                "embedding": Leaf(Embedding(self.aspect_ratios + 1, t * h), role="tile embedding"),
                "gate": Parameter((1,), role="the tile embedding's gate"),
            },
            flow=summed(
                (),
                (
                    Positions(dim=0),  # one aspect ratio id per image
                    "embedding",
                    Reshape((-1, t, 1, h)),
                    multiply((), ("gate", Tanh())),
                ),
            ),
            description="a vector per tile, by the image's aspect ratio",
        )

    def _position_embedding(self) -> Block:
        """MllamaPrecomputedPositionEmbedding: N positions (1 - tanh(gate)) and a tile
        embedding of Nt·N·Hv per aspect ratio (tanh(gate))."""
        h, t, n = self.vision_hidden, self.tiles, self.patches
        return Block(
            "MllamaPrecomputedPositionEmbedding",
            {
                "gate": Parameter((1,), role="the position embeddings' gate"),
                "embedding": Parameter((n, h), role="position embedding"),
                "tile_embedding": Leaf(
                    Embedding(self.aspect_ratios + 1, t * n * h), role="tile position embedding"
                ),
            },
            flow=summed(
                (),
                multiply("embedding", ("gate", Tanh())),
                (
                    Positions(dim=0),
                    "tile_embedding",
                    Reshape((-1, t, n, h)),
                    multiply((), ("gate", Tanh())),
                ),
            ),
            description=f"{n} positions of each tile, and each tile's by the aspect ratio",
        )

    def vision_model(self) -> Block:
        """``model.vision_model``: one request's images (B, Ni, Nt, C, S, S) to (B, Ni·Nt·N,
        (F + 1)·Hv)."""
        h, t, c, s, p = (
            self.vision_hidden,
            self.tiles,
            self.channels,
            self.image_size,
            self.patch_size,
        )
        n, np_ = self.patches, self.padded
        pad = np_ - n
        f = self.feature_layers
        out = self.vision_out
        children: dict[str, Any] = {
            "class_embedding": Parameter((h,), role="class embedding"),
            "patch_embedding": Leaf(Conv2d(c, h, p, stride=p, bias=False), role="patch embedding"),
            "gated_positional_embedding": self._position_embedding(),
            "pre_tile_positional_embedding": self._tile_embedding(),
            "post_tile_positional_embedding": self._tile_embedding(),
            "layernorm_pre": LayerNorm(h),
            "layernorm_post": LayerNorm(h),
            "transformer": Block(
                "MllamaVisionEncoder",
                {"layers": ModuleList(self._vision_layer(False), self.vision_layers)},
                flow=chain("layers"),
            ),
            "global_transformer": Block(
                "MllamaVisionEncoder",
                {"layers": ModuleList(self._vision_layer(True), self.global_layers)},
                flow=chain("layers"),
            ),
        }
        # F.pad of each tile's tokens to Np: zeros joined after them
        zeros = (Select(2, 0), Reshape((-1, t, 1, h)), Tile((1, 1, pad, 1)))
        padding = [parallel((), zeros), Cat(2)]
        steps: list[Any] = [
            Reshape((-1, c, s, s)),
            "patch_embedding",
            Flatten(2),
            Transpose(1, 2),
            Reshape((-1, t, n - 1, h)),
            "pre_tile_positional_embedding",
            Reshape((-1, n - 1, h)),
            parallel("class_embedding", ()),
            Expand((0,)),
            Cat(1),
            Reshape((-1, t, n, h)),
            "gated_positional_embedding",
            "layernorm_pre",
            *(padding if pad else []),
            Reshape((-1, t * np_, h)),
            _AspectRatioMask(),
            "transformer",
            # the global transformer's output, and the intermediate layers' (F copies of
            # the local transformer's width, stacked), side by side
            parallel(
                (
                    "layernorm_post",
                    Reshape((-1, t, np_, h)),
                    "post_tile_positional_embedding",
                    Reshape((-1, t * np_, h)),
                    "global_transformer",
                ),
                Tile((1, 1, f)),
            ),
            Cat(2),
            Reshape((-1, t, np_, out)),
        ]
        if pad:  # the padding cut off
            steps += [Transpose(2, 3), Chunk((n, pad)), Pick(0), Transpose(2, 3)]
        steps.append(Reshape((-1, self.images * t * n, out)))
        return Block("MllamaVisionModel", children, flow=chain(*steps))

    # -- the language model ---------------------------------------------------------------
    def _mlp(self) -> Block:
        h, i = self.hidden, self.intermediate
        return Block(
            "MllamaTextMLP",
            {
                "gate_proj": Leaf(Linear(h, i, bias=False), role="gate"),
                "up_proj": Leaf(Linear(h, i, bias=False), role="up"),
                "down_proj": Leaf(Linear(i, h, bias=False), role="down"),
            },
            flow=chain(multiply(("gate_proj", SiLU()), "up_proj"), "down_proj"),
            description="gated MLP",
        )

    def _projections(self) -> dict[str, Any]:
        h, a, kv = self.hidden, self.heads, self.kv
        d = head_dim(h, a)
        return {
            "q_proj": Leaf(Linear(h, a * d, bias=False), role="query"),
            "k_proj": Leaf(Linear(h, kv * d, bias=False), role="key"),
            "v_proj": Leaf(Linear(h, kv * d, bias=False), role="value"),
            "o_proj": Leaf(Linear(a * d, h, bias=False), role="output projection"),
        }

    def _self_layer(self) -> Block:
        h, a, kv = self.hidden, self.heads, self.kv
        d = head_dim(h, a)
        attention = Block(
            "MllamaTextSelfAttention",
            self._projections(),
            flow=chain(
                parallel(("q_proj", Rotary(a, d)), ("k_proj", Rotary(kv, d)), "v_proj"),
                ScaledDotProductAttention(a, kv, d),
                "o_proj",
            ),
            description=f"{dim_str(a)} query heads over {dim_str(kv)} key and value heads",
        )
        return Block(
            "MllamaSelfAttentionDecoderLayer",
            {
                "self_attn": attention,
                "mlp": self._mlp(),
                "input_layernorm": LlamaRMSNorm(h),
                "post_attention_layernorm": LlamaRMSNorm(h),
            },
            flow=chain(  # (hidden, the image's tokens) in: the tokens alone
                Pick(0),
                residual("input_layernorm", "self_attn"),
                residual("post_attention_layernorm", "mlp"),
            ),
        )

    def _cross_layer(self) -> Block:
        h, a, kv = self.hidden, self.heads, self.kv
        d = head_dim(h, a)
        attention = Block(
            "MllamaTextCrossAttention",
            {
                **self._projections(),
                "q_norm": Leaf(LlamaRMSNorm(d), role="query norm"),
                "k_norm": Leaf(LlamaRMSNorm(d), role="key norm"),
            },
            flow=chain(
                parallel(
                    (Pick(0), "q_proj", SplitHeads(a, d), "q_norm"),
                    (Pick(1), "k_proj", SplitHeads(kv, d), "k_norm"),
                    (Pick(1), "v_proj"),
                ),
                ScaledDotProductAttention(a, kv, d, causal=False, cross=True),
                "o_proj",
            ),
            description="queries from the tokens, keys and values from the image's tokens",
        )
        return Block(
            "MllamaCrossAttentionDecoderLayer",
            {
                "cross_attn": attention,
                "input_layernorm": LlamaRMSNorm(h),
                "cross_attn_attn_gate": Parameter((1,), role="the cross-attention's gate"),
                "mlp": self._mlp(),
                "post_attention_layernorm": LlamaRMSNorm(h),
                "cross_attn_mlp_gate": Parameter((1,), role="the MLP's gate"),
            },
            flow=chain(
                summed(
                    Pick(0),
                    (
                        parallel((Pick(0), "input_layernorm"), Pick(1)),
                        "cross_attn",
                        multiply((), ("cross_attn_attn_gate", Tanh())),
                    ),
                ),
                residual(
                    "post_attention_layernorm",
                    "mlp",
                    multiply((), ("cross_attn_mlp_gate", Tanh())),
                ),
            ),
        )

    def _layers(self) -> Block:
        """The L layers: the cross-attention layers at their numbers, self-attention
        layers between and after them."""
        cross = set(self.cross_indices())
        made = {False: self._self_layer(), True: self._cross_layer()}
        entries = runs([made[i in cross] for i in range(self.layers)])
        carried = [  # each layer takes the image's tokens beside the hidden states
            Repeat(e.node, e.count, e.start, e.step, carry=True)
            if isinstance(e, Repeat)
            else Repeat(e.node, 1, int(e.name), carry=True)
            for e in entries
        ]
        return Block("ModuleList", tuple(carried))

    def language_model(self) -> Block:
        h = self.hidden
        return Block(
            "MllamaTextModel",
            {
                "embed_tokens": Leaf(
                    Embedding(self.vocab + EXTRA_TOKENS, h),
                    "one H-vector per token, V + 8 rows",
                    "token embedding",
                ),
                "layers": self._layers(),
                "norm": Leaf(LlamaRMSNorm(h), role="final norm"),
            },
            flow=chain(each("embed_tokens", ()), "layers", "norm"),
        )

    # -- the model ------------------------------------------------------------------------
    def projector(self) -> Leaf:
        return Leaf(Linear(self.vision_out, self.hidden), "image features to H", "projector")

    def build(self) -> Built:
        lm = self.head == "lm"
        image = ("B", self.images, self.tiles, self.channels, self.image_size, self.image_size)
        return mount(
            "MllamaForConditionalGeneration",
            "MllamaModel",
            {
                "vision_model": self.vision_model(),
                "language_model": self.language_model(),
                "multi_modal_projector": self.projector(),
            },
            hidden=self.hidden,
            vocab=self.vocab,
            tie=False,
            parts=_PARTS,
            head=lm,
            flow=chain(each((), ("vision_model", "multi_modal_projector")), "language_model"),
            input_layout=(("B", "T"), image),
            name="MllamaForConditionalGeneration" if lm else "MllamaModel",
            notes=self._notes(),
        )

    # -- cost -----------------------------------------------------------------------------
    def image_cost(self) -> Dim:
        """Matrix-product FLOPs of the vision model and the projector on one image of Nt
        tiles, as FlopCounterMode counts them (the aspect-ratio mask's outer product
        among them: :class:`_AspectRatioMask`)."""
        one = self if self.images == 1 else self.varied({"images": 1})
        root = Block(
            "image",
            {"vision_model": one.vision_model(), "multi_modal_projector": one.projector()},
            flow=chain("vision_model", "multi_modal_projector"),
        )
        image = (1, 1, self.tiles, self.channels, self.image_size, self.image_size)
        return forward_products(root, (image,))

    def _notes(self) -> tuple[str, ...]:
        lines = [
            f"cross-attention layers: {tf.listed_numbers(list(self.cross_indices()))}"
            if self.cross_indices()
            else "no cross-attention layers: the language model never sees the image"
        ]
        if any(isinstance(v, Expr) for v in self.arguments().values()):
            return tuple(lines)
        flops = self.image_cost()
        lines.append(
            f"one image of {self.tiles} tiles of {self.image_size:,} × {self.image_size:,} "
            f"pixels: {self.tiles * self.patches:,} tokens the cross-attention layers attend "
            f"to; the vision model and projector's forward {count_str(flops)} FLOPs in matrix "
            "products (the aspect-ratio mask's among them)"
        )
        return tuple(lines)

    # -- the config transformers reads ----------------------------------------------------
    def hf_config(self) -> dict[str, Any]:
        lv = self.vision_layers
        ratios = (
            RATIOS_DEFAULT
            if self.tiles == 4 and self.aspect_ratios == 8
            else [[1, i + 1] for i in range(self.aspect_ratios)]
        )
        text: dict[str, Any] = {
            "model_type": "mllama_text_model",
            "vocab_size": self.vocab,
            "hidden_size": self.hidden,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv,
            "intermediate_size": self.intermediate,
            # none given: null, transformers' default (its layers below L)
            "cross_attention_layers": list(self.cross_layers) if self.cross_layers else None,
            "pad_token_id": None,
        }
        vision: dict[str, Any] = {
            "model_type": "mllama_vision_model",
            "hidden_size": self.vision_hidden,
            "num_hidden_layers": lv,
            "num_global_layers": self.global_layers,
            "attention_heads": self.vision_heads,
            "intermediate_size": self.vision_intermediate,
            "hidden_act": self.vision_activation,
            "num_channels": self.channels,
            "image_size": self.image_size,
            "patch_size": self.patch_size,
            "max_num_tiles": self.tiles,
            "vision_output_dim": self.vision_out,
            "intermediate_layers_indices": [i % lv for i in range(self.feature_layers)],
            "supported_aspect_ratios": ratios,
        }
        return {"text_config": text, "vision_config": vision}

    def reference(self) -> Reference | None:
        if any(isinstance(v, Expr) for v in self.arguments().values()):
            return None
        name = "MllamaForConditionalGeneration" if self.head == "lm" else "MllamaModel"
        return Reference(name, "MllamaConfig", self.hf_config())


mllama = Mllama.function_for()
