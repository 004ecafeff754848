"""``shapecalc siglip``: SigLIP, a text tower and a vision tower trained with a sigmoid
loss, named as ``transformers``' ``SiglipModel``, ``SiglipTextModel`` and
``SiglipVisionModel`` name them.

The towers are CLIP's with four differences: no class token and no ``pre_layrnorm`` in the
vision tower, whose patch convolution has a bias; every text token sees every other; the
text tower ends in its own ``head`` (H to ``projection_size``, H unless given) on the last
token's vector; and the vision tower pools with a multihead-attention head (``head.probe``,
a learned query (1, 1, W); ``head.attention``, an ``nn.MultiheadAttention`` with
``in_proj_weight`` (3W, W); ``head.layernorm``; ``head.mlp``) unless ``vision_use_head`` is
false. SiglipModel adds ``logit_scale`` and ``logit_bias``, one number each. The vision
tower is the one Gemma 3 and PaliGemma mount (``_towers.py``).
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
    whole_siglip,
)
from shapecalc.architectures._towers import ACTIVATIONS
from shapecalc.core.declare import Built, choice, flag, size
from shapecalc.core.frozen import frozen
from shapecalc.core.hfmap import HFType

__all__ = ["SigLIP", "siglip"]

_FREE = frozenset({"layer_norm_eps", "attention_dropout"})
_POSITIONS = (r"(^|\.)position_ids$",)


@frozen(kw_only=True)
class SigLIP(DualEncoder):
    """SigLIP: a text tower (V, H, L, A, I, C, its head H to E) and a vision tower (W, M,
    G, J on S × S images of K channels cut into P × P patches, pooled by attention).

        >>> m = siglip()  # google/siglip-base-patch16-224
        >>> m.total
        203155970
    """

    command: ClassVar[str] = "siglip"
    function: ClassVar[str] = "siglip"
    title: ClassVar[str] = "SigLIP (text and vision towers)"
    family: ClassVar[str] = "Siglip"
    example: ClassVar[str] = "--image-size 224 --patch-size 16"
    budget: ClassVar[str] = "200M"

    part: str = choice(
        ("model", "text", "vision"),
        "model: both towers, logit_scale and logit_bias (SiglipModel); text: the text "
        "tower (SiglipTextModel); vision: the vision tower (SiglipVisionModel).",
        "model",
    )
    vocab: Any = size("V", "Vocabulary of the text tower (vocab_size).", 32000)
    hidden: Any = size("H", "The text tower's hidden size (hidden_size).", 768)
    layers: Any = size("L", "The text tower's layers (num_hidden_layers).", 12)
    heads: Any = size("A", "The text tower's attention heads.", 12, solvable=False)
    intermediate: Any = size("I", "The text tower's MLP inner size (intermediate_size).", 3072)
    context: Any = size("C", "Text positions (max_position_embeddings).", 64, solvable=False)
    activation: str = choice(
        ACTIVATIONS, "The text tower's MLP activation (hidden_act).", "gelu_pytorch_tanh"
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
        "P", "Patch side in pixels (patch_size).", 16, names=False, solvable=False
    )
    channels: Any = size("K", "Image channels (num_channels).", 3, solvable=False)
    vision_activation: str = choice(
        ACTIVATIONS, "The vision tower's MLP activation (hidden_act).", "gelu_pytorch_tanh"
    )
    projection: Any = size(
        "E",
        "The text head's output size (projection_size; H unless given).",
        None,
        unset=None,
        default_text="H",
    )
    vision_head: bool = flag(
        "The vision tower pools by attention (vision_use_head; --no-vision-head: no head).",
        True,
    )

    hf: ClassVar[tuple[HFType, ...]] = (
        HFType(
            model_type="siglip",
            config_class="SiglipConfig",
            classes={"SiglipModel": {"part": "model"}},
            base="siglip",
            keys={},
            defaults={"text_config": None, "vision_config": None, "initializer_factor": 1.0},
            free=frozenset({"initializer_factor"}),
            derived=frozenset({*TEXT, *VISION, "projection", "vision_head"}),
            dropped=_POSITIONS,
            read=nested_read("siglip_text_model", "siglip_vision_model"),
            write=nested_write("siglip_text_model", "siglip_vision_model"),
        ),
        HFType(
            model_type="siglip_text_model",
            config_class="SiglipTextConfig",
            classes={"SiglipTextModel": {"part": "text"}},
            base="text_model",
            keys={**tower_keys(TEXT, False), "projection": "projection_size"},
            defaults={
                "vocab_size": 32000,
                "hidden_size": 768,
                "intermediate_size": 3072,
                "num_hidden_layers": 12,
                "num_attention_heads": 12,
                "max_position_embeddings": 64,
                "hidden_act": "gelu_pytorch_tanh",
                "projection_size": None,
            },
            free=_FREE,
            dropped=_POSITIONS,
        ),
        HFType(
            model_type="siglip_vision_model",
            config_class="SiglipVisionConfig",
            classes={"SiglipVisionModel": {"part": "vision"}},
            base="vision_model",
            keys={**tower_keys(VISION, True), "vision_head": "vision_use_head"},
            defaults={
                "hidden_size": 768,
                "intermediate_size": 3072,
                "num_hidden_layers": 12,
                "num_attention_heads": 12,
                "num_channels": 3,
                "image_size": 224,
                "patch_size": 16,
                "hidden_act": "gelu_pytorch_tanh",
                "vision_use_head": True,
            },
            free=_FREE,
            dropped=_POSITIONS,
        ),
    )

    def build(self) -> Built:
        built = (
            whole_siglip(self, self.vision_head)
            if self.part == "model"
            else towers_of(self, use_head=self.vision_head)
        )
        return Built(
            built.root,
            notes=built.notes,
            input_layout=built.input_layout,
            group_depth=built.group_depth,
            name=f"SigLIP ({described(self)})",
        )


siglip = SigLIP.function_for()
