"""``shapecalc mistral3``: Mistral 3 (Mistral Small 3.1), named as ``transformers``'
``Mistral3ForConditionalGeneration`` names it.

The parts (``_composite.py``), each built by its own family: ``model.vision_tower``,
Pixtral's encoder (``pixtral.py``, its ``vision_config``); ``model.multi_modal_projector``
(transformers' modeling_mistral3.py: an RMSNorm of the tower's width, the patch merger's
merging_layer joining M × M neighbouring patches, (Hv, M²·Hv) without a bias, then
linear_1 (H, Hv·F) and linear_2 (H, H), biased with multimodal_projector_bias);
``model.language_model``, the Mistral (or LLaMA) body its ``text_config`` describes
(``llama.py``); ``lm_head``, the token embedding itself with tie_word_embeddings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from shapecalc.architectures import _composite
from shapecalc.architectures import _transformer as tf
from shapecalc.architectures.pixtral import Pixtral
from shapecalc.core.declare import Architecture, Built, Reference, choice, flag, size
from shapecalc.core.dims import Dim, Expr, count_str
from shapecalc.core.flow import chain
from shapecalc.core.frozen import frozen
from shapecalc.core.hfmap import HFType, Part
from shapecalc.core.tree import Block
from shapecalc.layers._linear import Linear
from shapecalc.layers._norm import LlamaRMSNorm
from shapecalc.layers.activation import GELU
from shapecalc.layers.tensors import Reshape

__all__ = ["Mistral3", "mistral3"]

#: the language model's arguments, as its family (LLaMA) names them
_TEXT = (
    "vocab",
    "hidden",
    "layers",
    "heads",
    "kv_heads",
    "head_dim",
    "intermediate",
    "sliding_window",
    "layer_types",
)
#: the tower's arguments (Pixtral's), each ``vision_`` + its name here
_VISION = ("hidden", "layers", "heads", "intermediate", "channels", "patch_size", "image_size")
_PARTS = {
    "vision_tower": "the Pixtral vision encoder, vision_config",
    "multi_modal_projector": "the projector of image features into the text model",
    "language_model": "the language model, text_config",
}


def _read(f: Any, out: dict[str, Any]) -> None:
    """vision_feature_layer: one layer's features (an index), or several concatenated
    (a list), which widen linear_1."""
    layer = f.raw("vision_feature_layer")
    if isinstance(layer, list) and layer and all(type(i) is int for i in layer):
        out["feature_layers"] = len(layer)
    elif type(layer) is int:
        out["feature_layers"] = 1
    else:
        raise f.fail(
            "vision_feature_layer",
            layer,
            "vision_feature_layer must be a layer index or a list of them",
        )


def _notes(config: Mapping[str, Any], arguments: Mapping[str, Any]) -> list[str]:
    return []


@frozen(kw_only=True)
class Mistral3(Architecture):
    """Mistral 3: Pixtral's vision encoder, the projector and a Mistral language model.

    >>> m = mistral3(vocab=131072, hidden=5120, layers=40, heads=32, kv_heads=8,
    ...              head_dim=128, intermediate=32768, tie_weights=False)
    >>> m.total
    24011361280
    """

    command: ClassVar[str] = "mistral3"
    #: the stacks a request runs once, at prefill (pixel_values only then): a decode step
    #: is the language model on one token (shapecalc.analysis.encdec.decode_rows)
    per_request: ClassVar[tuple[str, ...]] = ("vision_tower", "multi_modal_projector")
    function: ClassVar[str] = "mistral3"
    title: ClassVar[str] = "Mistral 3 (Pixtral vision encoder, projector, language model)"
    example: ClassVar[str] = (
        "--vocab 131072 --hidden 5120 --layers 40 --heads 32 --kv-heads 8 --head-dim 128 "
        "--intermediate 32768 --no-tie-weights"
    )
    budget: ClassVar[str] = "24B"
    size_order: ClassVar[tuple[str, ...]] = (
        "vocab",
        "hidden",
        "layers",
        "heads",
        "kv_heads",
        "head_dim",
        "intermediate",
        "vision_hidden",
        "vision_layers",
        "vision_heads",
        "vision_intermediate",
        "vision_channels",
        "vision_patch_size",
        "merge_size",
        "feature_layers",
    )

    vocab: Any = tf.vocab()
    hidden: Any = tf.hidden()
    layers: Any = tf.layers()
    heads: Any = tf.heads()
    kv_heads: Any = tf.kv_heads()
    head_dim: Any = tf.head_dim()
    intermediate: Any = size("I", "The language model's MLP size (intermediate_size).")
    sliding_window: Any = tf.sliding_window()
    layer_types: Any = tf.window_layer_types()
    tie_weights: bool = flag("The head is the token embedding (tie_word_embeddings).", True)
    text_type: str = choice(
        ("mistral", "llama"),
        "The language model's family (text_config's model_type).",
        "mistral",
    )
    vision_hidden: Any = size("Hv", "The vision encoder's width (hidden_size).", 1024)
    vision_layers: Any = size("Lv", "The vision encoder's layers (num_hidden_layers).", 24)
    vision_heads: Any = size(
        "Av", "The vision encoder's heads (num_attention_heads).", 16, solvable=False
    )
    vision_intermediate: Any = size("Iv", "The vision encoder's MLP size.", 4096)
    vision_channels: Any = size("C", "Image channels (num_channels).", 3, solvable=False)
    vision_patch_size: Any = size("P", "A patch's side in pixels.", 14, names=False)
    vision_image_size: Any = size(
        "S",
        "The side of the square image the cost of one image is worked out for, a "
        "multiple of P·M (image_size; no tensor changes).",
        1540,
        names=False,
        solvable=False,
    )
    merge_size: Any = size(
        "M", "The patch merger joins M × M patches (spatial_merge_size).", 2, names=False
    )
    feature_layers: Any = size(
        "F",
        "The vision layers whose features are concatenated (vision_feature_layer: one "
        "index, or a list).",
        1,
        names=False,
        solvable=False,
    )
    projector_bias: bool = flag("Biases of linear_1 and linear_2 (multimodal_projector_bias).")
    head: str = choice(
        ("lm", "none"),
        "lm: Mistral3ForConditionalGeneration, with lm_head; none: Mistral3Model.",
        "lm",
    )

    hf: ClassVar[tuple[HFType, ...]] = (
        HFType(
            model_type="mistral3",
            config_class="Mistral3Config",
            classes={
                "Mistral3ForConditionalGeneration": {"head": "lm"},
                "Mistral3Model": {"head": "none"},
            },
            base="model",
            keys={
                "tie_weights": "tie_word_embeddings",
                "merge_size": "spatial_merge_size",
                "projector_bias": "multimodal_projector_bias",
            },
            defaults={
                "text_config": None,
                "vision_config": None,
                "tie_word_embeddings": True,
                "spatial_merge_size": 2,
                "multimodal_projector_bias": False,
                "vision_feature_layer": -1,
            },
            free=frozenset({"image_token_index", "image_token_id", "projector_hidden_act"}),
            parts=(
                Part(
                    "vision_config",
                    ("pixtral",),
                    "the vision encoder",
                    optional=True,
                    prefix="vision_",
                ),
                Part("text_config", ("mistral", "llama"), "the language model", chosen="text_type"),
            ),
            derived=frozenset(
                {*_TEXT, *(f"vision_{n}" for n in _VISION), "feature_layers", "text_type"}
            ),
            dropped=(r"rotary_emb\.inv_freq",),
            # the Hub's files (saved by transformers 4): conversion_mapping.py's llava
            # renames (mistral3 is llava there)
            renamed={
                "language_model.lm_head.": "lm_head.",
                "language_model.model.": "model.language_model.",
                "vision_tower.": "model.vision_tower.",
                "multi_modal_projector.": "model.multi_modal_projector.",
            },
            read=_read,
            write=lambda model, reference: model.reference(),
            notes=_notes,
        ),
    )

    # -- parts ------------------------------------------------------------------------------
    def _text(self) -> dict[str, Any]:
        return {n: getattr(self, n) for n in _TEXT}

    def _tower(self) -> Pixtral:
        return Pixtral(**{n: getattr(self, f"vision_{n}") for n in _VISION})

    def check(self) -> None:
        _composite.part_family(self.text_type, self._text(), self.owner())
        try:
            self._tower()
        except Exception as err:  # the tower's rule, said as the composite's field
            from shapecalc.core.errors import InvalidArgumentError

            if not isinstance(err, InvalidArgumentError):
                raise
            raise InvalidArgumentError(
                f"the vision encoder: {err.message.split(': ', 1)[-1]}",
                layer=self.owner(),
                field=f"vision_{err.field}" if err.field else "vision_config",
                value=err.value,
                rule=err.rule,
            ) from None

    @classmethod
    def consistent(cls, arguments: dict[str, Any]) -> dict[str, Any]:
        out = _composite.consistent_part(
            arguments.get("text_type", "mistral"), dict(arguments), _TEXT
        )
        out = _composite.consistent_part("pixtral", out, _VISION, "vision_")
        step = out["vision_patch_size"] * out.get("merge_size", 2)
        out["vision_image_size"] = step * max(1, min(out["vision_image_size"] // step, 4))
        return out

    def reference(self) -> Reference | None:
        """Mistral3ForConditionalGeneration (or Mistral3Model) and its config."""
        text = {
            "model_type": self.text_type,
            "vocab_size": self.vocab,
            "hidden_size": self.hidden,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads or self.heads,
            "head_dim": self.head_dim or self.hidden // self.heads,
            "intermediate_size": self.intermediate,
        }
        if self.text_type == "mistral":
            text["sliding_window"] = self.sliding_window
            if self.layer_types:
                text["layer_types"] = list(self.kinds_of("layer_types", self.layers) or ())
        elif self.sliding_window is not None or self.layer_types:
            return None
        vision = {
            "model_type": "pixtral",
            "hidden_size": self.vision_hidden,
            "num_hidden_layers": self.vision_layers,
            "num_attention_heads": self.vision_heads,
            "intermediate_size": self.vision_intermediate,
            "num_channels": self.vision_channels,
            "patch_size": self.vision_patch_size,
            "image_size": self.vision_image_size,
        }
        config = {
            "text_config": text,
            "vision_config": vision,
            "tie_word_embeddings": self.tie_weights,
            "spatial_merge_size": self.merge_size,
            "multimodal_projector_bias": self.projector_bias,
            "vision_feature_layer": -1 if self.feature_layers == 1 else [-1] * self.feature_layers,
        }
        name = "Mistral3ForConditionalGeneration" if self.head == "lm" else "Mistral3Model"
        return Reference(name, "Mistral3Config", config)

    def sizes(self) -> dict[str, Dim]:
        """The sizes given, and those the language model's family works out (its head
        width D)."""
        text = _composite.part_family(self.text_type, self._text(), self.owner()).sizes()
        vision = {k: v for k, v in self._tower().sizes().items() if k == "Dv"}
        return {**text, **vision, **super().sizes()}

    # -- the tree ---------------------------------------------------------------------------
    def projector(self) -> Block:
        hv, h, m, bias = self.vision_hidden, self.hidden, self.merge_size, self.projector_bias
        return Block(
            "Mistral3MultiModalProjector",
            {
                "norm": LlamaRMSNorm(hv, eps=1e-5),
                "patch_merger": Block(
                    "Mistral3PatchMerger",
                    {"merging_layer": Linear(hv * m * m, hv, bias=False)},
                    flow=chain(Reshape((-1, hv * m * m)), "merging_layer"),
                    description=f"{m} × {m} neighbouring patches joined into one",
                ),
                "linear_1": Linear(hv * self.feature_layers, h, bias=bias),
                "act": GELU(),
                "linear_2": Linear(h, h, bias=bias),
            },
            flow=chain("norm", "patch_merger", "linear_1", "act", "linear_2"),
        )

    def image_cost(self) -> tuple[int, Any]:
        """(tokens for the language model, matrix-product FLOPs of the tower and the
        projector) of one image of vision_image_size² pixels."""
        tower = self._tower()
        root = Block(
            "image",
            {"vision_tower": tower.encoder(), "multi_modal_projector": self.projector()},
            flow=chain("vision_tower", Reshape((-1, self.vision_hidden)), "multi_modal_projector"),
        )
        side = self.vision_image_size
        inputs = ((1, self.vision_channels, side, side),)
        tokens = (side // self.vision_patch_size // self.merge_size) ** 2
        return tokens, _composite.forward_products(root, inputs)

    def _image_note(self) -> tuple[str, ...]:
        if any(isinstance(v, Expr) for v in self.arguments().values()):
            return ()
        side, step = self.vision_image_size, self.vision_patch_size * self.merge_size
        if side % step or self.feature_layers != 1:
            why = (
                f"image_size {side} is not a multiple of patch_size · merge_size ({step})"
                if side % step
                else "features of several layers are concatenated (vision_feature_layer)"
            )
            return (f"no cost of an image: {why}",)
        tokens, flops = self.image_cost()
        return (
            f"one image of {side:,} × {side:,} pixels: {tokens:,} tokens for the language "
            f"model; the vision encoder and projector's forward {count_str(flops)} FLOPs in "
            "matrix products (then each token is the language model's: --flops)",
        )

    def build(self) -> Built:
        return _composite.mount(
            "Mistral3ForConditionalGeneration",
            "Mistral3Model",
            {
                "vision_tower": self._tower().encoder(),
                "multi_modal_projector": self.projector(),
                "language_model": _composite.language_model(
                    self.text_type, self._text(), self.owner()
                ),
            },
            hidden=self.hidden,
            vocab=self.vocab,
            tie=self.tie_weights,
            parts=_PARTS,
            head=self.head == "lm",
            name="Mistral3ForConditionalGeneration" if self.head == "lm" else "Mistral3Model",
            notes=self._image_note(),
        )


mistral3 = Mistral3.function_for()
