"""``shapecalc llava``: LLaVA and LLaVA-NeXT, a CLIP vision tower, a two-layer projector
and a language model, named as ``transformers``' ``LlavaForConditionalGeneration``,
``LlavaNextForConditionalGeneration`` and their ``LlavaModel`` / ``LlavaNextModel`` name
them.

The language model is the ``text_config``'s type (``--text-type``: llama, mistral as in
llava-v1.6-mistral-7b-hf, qwen2 as in llava-interleave-qwen, qwen3, gemma, gemma2, phi3),
built by the family the registry gives that type, with the fields the type fixes.

``model.vision_tower`` is CLIPVisionModel (``_towers.py``), built whole: every layer
after the one ``vision_feature_layer`` selects is still built and run, and its
``post_layernorm`` is built though its output is not read. ``model.multi_modal_projector``
maps the selected layer's features (W per feature layer: ``vision_feature_layer`` may list
several, concatenated) to the text's H (``linear_1``), then H to H (``linear_2``), with
biases unless ``multimodal_projector_bias`` is false. ``model.language_model`` is the
``text_config``'s model (LlamaModel, MistralModel, Qwen2Model, ...), and ``lm_head`` maps H to
V (the token embedding itself with ``tie_word_embeddings``, the outer config's or the
text's). LLaVA-NeXT adds ``model.image_newline`` (H), the vector that ends each row of
image features.

The sequence length T counts every position the language model sees, the image's tokens
among them. The projector is run here on every token the tower gives, its class token too,
which transformers' default ``vision_feature_select_strategy`` drops: one token in
(S / P)² + 1 of the projector's work, no parameter.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from shapecalc.architectures import _composite
from shapecalc.architectures import _transformer as tf
from shapecalc.architectures._composite import family_of, mount
from shapecalc.architectures._dual import VISION
from shapecalc.architectures._towers import ACTIVATIONS, patches, vision_tower
from shapecalc.core.declare import Architecture, Built, Reference, choice, flag, size
from shapecalc.core.dims import Dim, as_size, dim_str, known
from shapecalc.core.flow import chain, each
from shapecalc.core.frozen import frozen
from shapecalc.core.hfmap import HFType, config_for
from shapecalc.core.own import Parameter
from shapecalc.core.tree import Block, Leaf, Node
from shapecalc.layers._linear import Linear
from shapecalc.layers.activation import GELU
from shapecalc.layers.tensors import Tile

__all__ = ["LLaVA", "llava"]

#: the language model's arguments LLaVA carries from its text_config (LLaMA's, by name)
TEXT = (
    "vocab",
    "hidden",
    "layers",
    "heads",
    "kv_heads",
    "head_dim",
    "intermediate",
    "attention_bias",
    "mlp_bias",
    "sliding_window",
    "layer_types",
)
#: the text_config types whose language model is built, each by the family the registry
#: gives it (LLaMA's, whose arguments are TEXT) with the fields its type fixes (Qwen2's
#: q, k and v biases, Gemma's GeGLU, Phi-3's fused projections): transformers' LlavaModel
#: takes any text_config (AutoModel.from_config)
TEXT_TYPES = ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi3")
#: LlavaConfig's vision_config when a config leaves it out (its SubConfigSpec's
#: init_kwargs, without vocab_size, which CLIPVisionConfig does not read)
VISION_DEFAULTS = {
    "intermediate_size": 4096,
    "hidden_size": 1024,
    "patch_size": 14,
    "image_size": 336,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "projection_dim": 768,
}
_FREE = frozenset(
    {
        "image_token_index",
        "image_token_id",
        "image_seq_length",
        "projector_hidden_act",
        "vision_feature_select_strategy",
    }
)


def _read(f: Any, out: dict[str, Any]) -> None:
    """The towers from the nested configs (each by its own type's rules); the feature
    layers from vision_feature_layer; the tie, the outer config's or (LlavaConfig only)
    the text's."""
    said, text = f.nested("text_config", TEXT_TYPES, "a language model")
    family = _text_family(said)
    defaults = {fd.name: fd.default for fd in dataclasses.fields(family)}
    fixed = next(t for t in family.hf if t.model_type == said).fixed
    out["text_type"] = said
    for name, value in text.items():
        if name in TEXT:
            out[name] = value
        elif name not in ("head", "tie_weights", "labels", "qa_body") and value != fixed.get(
            name, defaults.get(name)
        ):
            raise f.fail(
                "text_config",
                value,
                f"text_config: {name} = {value!r} is not modelled in LLaVA's language model",
                f"LLaVA's language model is a {said} with that argument at its default",
            )
    _, vision = f.nested(
        "vision_config", ("clip_vision_model",), "a vision tower", absent=VISION_DEFAULTS
    )
    for name in VISION:
        out[name] = vision[name]
    layer = f.raw("vision_feature_layer")
    if isinstance(layer, list) and layer and all(tf_int(v) for v in layer):
        out["feature_layers"] = len(layer)
    elif tf_int(layer):
        out["feature_layers"] = 1
    else:
        raise f.fail(
            "vision_feature_layer", layer, "vision_feature_layer must be an integer or a list"
        )
    if f.family.model_type == "llava":  # LlavaConfig takes the text's tie too; NeXT not
        out["tie_weights"] = bool(out.get("tie_weights")) or bool(text.get("tie_weights"))


def _family(command: str) -> Any:
    """The architecture class of ``command`` (LLaMA, CLIP), loaded when first needed."""
    from shapecalc.architectures import get

    return get(command)


def _text_family(model_type: str) -> Any:
    """The architecture the registry gives the text_config's ``model_type``."""
    return family_of(model_type)


def _text_arguments(model: Any) -> dict[str, Any]:
    """The language model's arguments: TEXT's, but those its type fixes (the type's)."""
    fixed = next(t for t in _text_family(model.text_type).hf if t.model_type == model.text_type)
    return {n: getattr(model, n) for n in TEXT if n not in fixed.fixed}


def tf_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _write(model: Any, reference: Reference) -> Reference | None:
    """The language model's and the tower's fields as the nested configs."""
    config = dict(reference.config)
    family = _text_family(model.text_type)
    declared = next(t for t in family.hf if t.model_type == model.text_type)
    text = family(**{**declared.fixed, **_text_arguments(model)}, tie_weights=model.tie_weights)
    written = config_for(text, declared)
    clip = _family("clip")
    vision = clip(part="vision", **{n: getattr(model, n) for n in VISION})
    seen = config_for(vision, next(t for t in clip.hf if t.model_type == "clip_vision_model"))
    if written is None or seen is None:
        return None
    config["text_config"] = {**written.config, "model_type": model.text_type}
    config["vision_config"] = {**seen.config, "model_type": "clip_vision_model"}
    n = model.feature_layers
    config["vision_feature_layer"] = -2 if n == 1 else list(range(-n, 0))
    return Reference(reference.model, reference.config_class, config)


def _declared(model_type: str, config_class: str, prefix: str, variant: str) -> HFType:
    return HFType(
        model_type=model_type,
        config_class=config_class,
        classes={
            f"{prefix}ForConditionalGeneration": {"variant": variant, "head": "lm"},
            f"{prefix}Model": {"variant": variant, "head": "none"},
        },
        base="model",
        keys={"tie_weights": "tie_word_embeddings", "projector_bias": "multimodal_projector_bias"},
        defaults={
            "text_config": None,
            "vision_config": None,
            "vision_feature_layer": -2,
            "tie_word_embeddings": False,
            "multimodal_projector_bias": True,
            **({"image_grid_pinpoints": None} if variant == "next" else {}),
        },
        free=_FREE | ({"image_grid_pinpoints"} if variant == "next" else set()),
        derived=frozenset({*TEXT, *VISION, "feature_layers", "text_type"}),
        # the tower's positions; the language model's rotary frequencies
        dropped=(r"(^|\.)position_ids$", r"rotary_emb\.inv_freq"),
        # the Hub's files and what transformers 5 still saves: conversion_mapping.py's
        # llava and llava_next renames
        renamed={
            "language_model.lm_head.": "lm_head.",
            "language_model.model.": "model.language_model.",
            "vision_tower.": "model.vision_tower.",
            "multi_modal_projector.": "model.multi_modal_projector.",
            **({"image_newline": "model.image_newline"} if variant == "next" else {}),
        },
        read=_read,
        write=_write,
    )


@frozen(kw_only=True)
class LLaVA(Architecture):
    """LLaVA: a CLIP vision tower (W, M, G, J on S × S images cut into P × P patches), a
    projector (F·W to H, H to H) and a language model (V, H, L, A, K, D, I) of
    text_type's family.

        >>> m = llava(vocab=32064, hidden=4096, layers=32, heads=32, intermediate=11008)
        >>> m.total  # llava-hf/llava-1.5-7b-hf
        7063427072
    """

    command: ClassVar[str] = "llava"
    #: the stacks a request runs once, at prefill (pixel_values only then): a decode step
    #: is the language model on one token (shapecalc.analysis.encdec.decode_rows)
    per_request: ClassVar[tuple[str, ...]] = ("vision_tower", "multi_modal_projector")
    function: ClassVar[str] = "llava"
    title: ClassVar[str] = "LLaVA (vision tower, projector, language model)"
    example: ClassVar[str] = (
        "--vocab 32064 --hidden 4096 --layers 32 --heads 32 --intermediate 11008"
    )
    budget: ClassVar[str] = "7B"

    vocab: Any = tf.vocab()
    hidden: Any = tf.hidden()
    layers: Any = tf.layers()
    heads: Any = tf.heads()
    kv_heads: Any = tf.kv_heads()
    head_dim: Any = tf.head_dim()
    intermediate: Any = size("I", "The language model's MLP inner size (intermediate_size).")
    attention_bias: str = choice(
        ("none", "qkv", "all"),
        "Biases of the language model's attention projections: q, k and v (qkv, as "
        "Qwen2's, which --text-type qwen2 needs) or all four.",
        "none",
    )
    mlp_bias: bool = flag("Biases of the language model's MLP projections (mlp_bias).")
    sliding_window: Any = tf.sliding_window()
    layer_types: Any = tf.window_layer_types()
    text_type: str = choice(
        TEXT_TYPES,
        "The language model's type (text_config's model_type), built by its family with "
        "the fields its type fixes (qwen2: q, k, v biases; gemma: GeGLU; phi3: fused "
        "projections).",
        "llama",
    )
    tie_weights: bool = flag("The head is the token embedding (tie_word_embeddings).")
    vision_hidden: Any = size("W", "The vision tower's hidden size.", 1024)
    vision_layers: Any = size("M", "The vision tower's layers.", 24)
    vision_heads: Any = size("G", "The vision tower's attention heads.", 16, solvable=False)
    vision_intermediate: Any = size("J", "The vision tower's MLP inner size.", 4096)
    image_size: Any = size(
        "S", "Image side in pixels: (S // P)² patches.", 336, names=False, solvable=False
    )
    patch_size: Any = size("P", "Patch side in pixels.", 14, names=False, solvable=False)
    channels: Any = size("C", "Image channels (num_channels).", 3, solvable=False)
    vision_activation: str = choice(
        ACTIVATIONS, "The vision tower's MLP activation (hidden_act).", "quick_gelu"
    )
    feature_layers: Any = size(
        "F",
        "Vision layers whose features the projector reads, side by side (1 for an integer "
        "vision_feature_layer, the length of a list).",
        1,
        names=False,
        solvable=False,
    )
    projector_bias: bool = flag(
        "Biases of the projector's two layers (multimodal_projector_bias).", True
    )
    variant: str = choice(
        ("llava", "next"),
        "llava: LLaVA 1.5 (model type llava); next: LLaVA-NeXT, which adds image_newline "
        "(model type llava_next).",
        "llava",
    )
    head: str = choice(
        ("lm", "none"),
        "lm: with lm_head (LlavaForConditionalGeneration); none: the model alone (LlavaModel).",
        "lm",
    )

    hf: ClassVar[tuple[HFType, ...]] = (
        _declared(model_type="llava", config_class="LlavaConfig", prefix="Llava", variant="llava"),
        _declared(
            model_type="llava_next",
            config_class="LlavaNextConfig",
            prefix="LlavaNext",
            variant="next",
        ),
    )

    def check(self) -> None:
        """The language model's rules are its family's, the fields its type fixes as it
        fixes them; the tower's heads divide its width."""
        declared = next(
            t for t in _text_family(self.text_type).hf if t.model_type == self.text_type
        )
        for name, value in declared.fixed.items():
            if name in TEXT and getattr(self, name) != value:
                self._fail(
                    name,
                    getattr(self, name),
                    f"{name} must be {value!r} for text_type {self.text_type}",
                    "the type fixes it",
                )
        _composite.part_family(self.text_type, _text_arguments(self), self.owner())
        w, g = known(self.vision_hidden), known(self.vision_heads)
        if w is not None and g is not None and w % g:
            self._fail(
                "vision_heads", g, "vision_heads must divide vision_hidden", f"{w} % {g} = {w % g}"
            )
        if self.patch_size > self.image_size:
            self._fail(
                "patch_size",
                self.patch_size,
                "patch_size must be at most image_size (an image holds at least one patch)",
                f"{self.patch_size} > {self.image_size}",
            )

    @classmethod
    def consistent(cls, arguments: dict[str, Any]) -> dict[str, Any]:
        out = dict(arguments)
        kv, a = out.get("kv_heads"), out.get("heads")
        if isinstance(kv, int) and isinstance(a, int) and a % kv:
            out["kv_heads"] = None
        text_type = out.get("text_type", "llama")
        family = _text_family(text_type)
        declared = next(t for t in family.hf if t.model_type == text_type)
        fixed = declared.fixed
        out.update({n: v for n, v in fixed.items() if n in TEXT})
        defaults = {f.name: f.default for f in dataclasses.fields(family)}
        for n in TEXT:  # what the type's config cannot say (LLaMA's sliding window) at rest
            if n not in declared.keys and n not in declared.derived and n not in fixed:
                out[n] = defaults[n]
        if out.get("attention_bias") == "qkv" and fixed.get("attention_bias") != "qkv":
            out["attention_bias"] = "none"  # q, k and v alone: a type that fixes them
        text = family.consistent({**defaults, **fixed, **{n: out[n] for n in TEXT}, "head": "none"})
        out.update({n: text[n] for n in TEXT})
        w, g = out.get("vision_hidden"), out.get("vision_heads")
        if isinstance(w, int) and isinstance(g, int) and w % g:
            out["vision_hidden"] = g * -(-w // g)
        if isinstance(out.get("image_size"), int) and isinstance(out.get("patch_size"), int):
            out["image_size"] = max(out["image_size"], out["patch_size"])
        return out

    @classmethod
    def multiple_for(cls, free: str, arguments: dict[str, Any]) -> int:
        """hidden: LLaMA's rule (a multiple of twice the heads); vision_hidden: a multiple
        of vision_heads."""
        if free == "vision_hidden":
            given = arguments.get("vision_heads", 16)
            number = known(as_size(given, owner=cls.owner(), field="vision_heads"))
            return 1 if number is None else number
        step: int = _family("llama").multiple_for(free, arguments)
        return step

    def sizes(self) -> dict[str, Dim]:
        """The sizes given, and D = H / A worked out (the language model's head)."""
        out = super().sizes()
        h, a = known(self.hidden), known(self.heads)
        if self.head_dim is None and h is not None and a is not None:
            out["D"] = h // a
        from shapecalc.architectures._towers import derived_heads

        out.update(derived_heads(None, (self.vision_hidden, self.vision_heads)))
        return out

    # -- the tree ------------------------------------------------------------------------
    def language_model(self) -> Node:
        """The text_config's model (LlamaModel, MistralModel, Qwen2Model, ...), built by
        the family of its type."""
        return _composite.language_model(self.text_type, _text_arguments(self), "llava")

    def build(self) -> Built:
        h, w, v = self.hidden, self.vision_hidden, self.vocab
        tower = vision_tower(
            "CLIP",
            hidden=w,
            layers=self.vision_layers,
            heads=self.vision_heads,
            intermediate=self.vision_intermediate,
            image_size=self.image_size,
            patch_size=self.patch_size,
            channels=self.channels,
            act=self.vision_activation,
            eps=1e-5,
            pooled=False,
        )
        bias = self.projector_bias
        projector = Block(
            "LlavaMultiModalProjector",
            {
                "linear_1": Leaf(Linear(self.feature_layers * w, h, bias=bias), role="projector"),
                "linear_2": Leaf(Linear(h, h, bias=bias), role="projector"),
            },
            flow=chain("linear_1", GELU(), "linear_2"),
            description="image features into the language model's width",
        )
        language = self.language_model()
        # several feature layers: their outputs side by side (torch.cat on the last dim in
        # LlavaModel.get_image_features), each the tower's shape: F copies of its output
        f = self.feature_layers
        concat: tuple[Any, ...] = (Tile((1, 1, f)),) if isinstance(f, int) and f != 1 else ()
        children: dict[str, Any] = {"vision_tower": tower, "multi_modal_projector": projector}
        prefix = "LlavaNext" if self.variant == "next" else "Llava"
        if self.variant == "next":
            children["image_newline"] = Parameter((h,), role="the end of a row of image tokens")
        children["language_model"] = language
        image = ("B", self.channels if isinstance(self.channels, int) else "C")
        name = (
            f"{prefix} (vision {dim_str(w)} × {dim_str(self.vision_layers)} layers, "
            f"{patches(self.image_size, self.patch_size)} patches; text {dim_str(h)} × "
            f"{dim_str(self.layers)} layers)"
        )
        return mount(
            f"{prefix}ForConditionalGeneration",
            f"{prefix}Model",
            children,
            hidden=h,
            vocab=v,
            tie=self.tie_weights,
            parts={
                "vision_tower": "the vision tower",
                "multi_modal_projector": "the projector",
                "language_model": "the language model",
            },
            head=self.head == "lm",
            flow=each("language_model", ("vision_tower", *concat, "multi_modal_projector")),
            input_layout=(("B", "T"), (*image, self.image_size, self.image_size)),
            name=name,
        )


llava = LLaVA.function_for()
