"""``shapecalc clip``: CLIP, a text tower and a vision tower trained to agree, named as
``transformers``' ``CLIPModel``, ``CLIPTextModel``, ``CLIPTextModelWithProjection``,
``CLIPVisionModel`` and ``CLIPVisionModelWithProjection`` name them.

The text tower: token and position embeddings, L pre-norm layers whose attention sees the
tokens before each one, ``final_layer_norm``; the end-of-text token's vector is the text's.
The vision tower: the image cut into P × P patches by a convolution without bias, a
learned ``class_embedding`` before them, a position embedding for each, ``pre_layrnorm``
(spelled so by transformers), M layers, ``post_layernorm`` of the class token's vector.
CLIPModel projects both into E dimensions (``text_projection``, ``visual_projection``) and
holds ``logit_scale``, one number. The towers are ``_towers.py``'s, which LLaVA mounts.
"""

from __future__ import annotations

from typing import Any, ClassVar

from shapecalc.architectures._dual import (
    TEXT,
    VISION,
    DualEncoder,
    described,
    nested_read,
    nested_write,
    tower_keys,
    towers_of,
    whole_clip,
)
from shapecalc.architectures._towers import ACTIVATIONS
from shapecalc.core.declare import Built, choice, size
from shapecalc.core.frozen import frozen
from shapecalc.core.hfmap import HFType

__all__ = ["CLIP", "clip"]

#: what a tower's config holds that changes no tensor
_FREE = frozenset({"layer_norm_eps", "attention_dropout", "initializer_factor"})
_POSITIONS = (r"(^|\.)position_ids$",)


@frozen(kw_only=True)
class CLIP(DualEncoder):
    """CLIP: a text tower (V, H, L, A, I, C) and a vision tower (W, M, G, J on S × S
    images of K channels cut into P × P patches), projected into E dimensions.

        >>> m = clip()  # openai/clip-vit-base-patch32
        >>> m.total
        151277313
    """

    command: ClassVar[str] = "clip"
    function: ClassVar[str] = "clip"
    title: ClassVar[str] = "CLIP (text and vision towers)"
    family: ClassVar[str] = "CLIP"
    example: ClassVar[str] = "--image-size 224 --patch-size 32 --projection 512"
    budget: ClassVar[str] = "150M"

    part: str = choice(
        ("model", "text", "text-projection", "vision", "vision-projection"),
        "model: both towers, their projections and logit_scale (CLIPModel); text: the text "
        "tower (CLIPTextModel); text-projection: with text_projection "
        "(CLIPTextModelWithProjection); vision, vision-projection: the same of the vision "
        "tower (CLIPVisionModel, CLIPVisionModelWithProjection).",
        "model",
    )
    vocab: Any = size("V", "Vocabulary of the text tower (vocab_size).", 49408)
    hidden: Any = size("H", "The text tower's hidden size (hidden_size).", 512)
    layers: Any = size("L", "The text tower's layers (num_hidden_layers).", 12)
    heads: Any = size("A", "The text tower's attention heads.", 8, solvable=False)
    intermediate: Any = size("I", "The text tower's MLP inner size (intermediate_size).", 2048)
    context: Any = size("C", "Text positions (max_position_embeddings).", 77, solvable=False)
    activation: str = choice(
        ACTIVATIONS, "The text tower's MLP activation (hidden_act).", "quick_gelu"
    )
    vision_hidden: Any = size("W", "The vision tower's hidden size (hidden_size).", 768)
    vision_layers: Any = size("M", "The vision tower's layers (num_hidden_layers).", 12)
    vision_heads: Any = size("G", "The vision tower's attention heads.", 12, solvable=False)
    vision_intermediate: Any = size(
        "J", "The vision tower's MLP inner size (intermediate_size).", 3072
    )
    image_size: Any = size(
        "S",
        "Image side in pixels (image_size): (S // P)² patches.",
        224,
        names=False,
        solvable=False,
    )
    patch_size: Any = size(
        "P", "Patch side in pixels (patch_size).", 32, names=False, solvable=False
    )
    channels: Any = size("K", "Image channels (num_channels).", 3, solvable=False)
    vision_activation: str = choice(
        ACTIVATIONS, "The vision tower's MLP activation (hidden_act).", "quick_gelu"
    )
    projection: Any = size("E", "The shared embedding's size (projection_dim).", 512)

    hf: ClassVar[tuple[HFType, ...]] = (
        HFType(
            model_type="clip",
            config_class="CLIPConfig",
            classes={"CLIPModel": {"part": "model"}},
            base="clip",
            keys={"projection": "projection_dim"},
            defaults={
                "text_config": None,
                "vision_config": None,
                "projection_dim": 512,
                "logit_scale_init_value": 2.6592,
                "initializer_factor": 1.0,
            },
            free=frozenset({"logit_scale_init_value", "initializer_factor"}),
            derived=frozenset({*TEXT, *VISION}),
            dropped=_POSITIONS,
            read=nested_read("clip_text_model", "clip_vision_model"),
            write=nested_write("clip_text_model", "clip_vision_model"),
        ),
        HFType(
            model_type="clip_text_model",
            config_class="CLIPTextConfig",
            classes={
                "CLIPTextModel": {"part": "text"},
                "CLIPTextModelWithProjection": {"part": "text-projection"},
            },
            base="text_model",
            keys={**tower_keys(TEXT, False), "projection": "projection_dim"},
            defaults={
                "vocab_size": 49408,
                "hidden_size": 512,
                "intermediate_size": 2048,
                "projection_dim": 512,
                "num_hidden_layers": 12,
                "num_attention_heads": 8,
                "max_position_embeddings": 77,
                "hidden_act": "quick_gelu",
            },
            free=_FREE,
            dropped=_POSITIONS,
        ),
        HFType(
            model_type="clip_vision_model",
            config_class="CLIPVisionConfig",
            classes={
                "CLIPVisionModel": {"part": "vision"},
                "CLIPVisionModelWithProjection": {"part": "vision-projection"},
            },
            base="vision_model",
            keys={**tower_keys(VISION, True), "projection": "projection_dim"},
            defaults={
                "hidden_size": 768,
                "intermediate_size": 3072,
                "projection_dim": 512,
                "num_hidden_layers": 12,
                "num_attention_heads": 12,
                "num_channels": 3,
                "image_size": 224,
                "patch_size": 32,
                "hidden_act": "quick_gelu",
            },
            # vocab_size: written by older transformers into every CLIP config's vision
            # part (llava-hf/llava-1.5-7b-hf's); CLIPVisionConfig declares no such field
            # and modeling_clip.py reads it only in CLIPTextEmbeddings: no shape changes
            free=_FREE | {"vocab_size"},
            dropped=_POSITIONS,
        ),
    )

    def build(self) -> Built:
        built = whole_clip(self) if self.part == "model" else towers_of(self)
        return Built(
            built.root,
            notes=built.notes,
            input_layout=built.input_layout,
            group_depth=built.group_depth,
            name=f"CLIP ({described(self)})",
        )


clip = CLIP.function_for()
