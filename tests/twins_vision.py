"""Torch twins of the Hugging Face vision types (``vit``, ``dinov2``, ``convnext``,
``resnet``): transformers' own
classes on the meta device, from configs written here field by field from the
architecture's arguments (independently of its HF declaration)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.twins import hf, on_meta

#: transformers 5's names -> the checkpoint files' (transformers 4's), the reverse of the
#: renames transformers/conversion_mapping.py applies on load ("ViTModel", "Dinov2Model")
VIT_NAMES = (
    (r"(^|\.)layers\.", r"\1encoder.layer."),
    (r"attention\.q_proj", "attention.attention.query"),
    (r"attention\.k_proj", "attention.attention.key"),
    (r"attention\.v_proj", "attention.attention.value"),
    (r"attention\.o_proj", "attention.output.dense"),
    (r"mlp\.fc1", "intermediate.dense"),
    (r"mlp\.fc2", "output.dense"),
)
DINOV2_NAMES = (
    *VIT_NAMES[1:5],
    (r"mlp\.down_proj", "mlp.weights_out"),
)


def as_stored(model: Any, names: tuple[tuple[str, str], ...]) -> Any:
    """A module holding ``model``'s parameters under the checkpoint files' names, in
    ``model``'s order: DINOv2's gate_proj and up_proj as one weights_in (gate first, as
    the Chunk transformers loads it with splits it)."""
    import re

    import torch
    from torch import nn

    root = nn.Module()
    for name, param in model.named_parameters():
        shape = tuple(param.shape)
        if ".mlp.up_proj." in name:
            continue  # in weights_in, with the gate
        if ".mlp.gate_proj." in name:
            name = name.replace(".mlp.gate_proj.", ".mlp.weights_in.")
            shape = (2 * shape[0], *shape[1:])
        for pattern, replacement in names:
            name = re.sub(pattern, replacement, name)
        *path, leaf = name.split(".")
        module = root
        for part in path:
            if not hasattr(module, part):
                module.add_module(part, nn.Module())
            module = getattr(module, part)
        module.register_parameter(leaf, nn.Parameter(torch.empty(shape, device="meta")))
    return root


def vit_twin(c: Any) -> Any:
    t = hf()
    config = t.ViTConfig(
        image_size=c.image_size,
        patch_size=c.patch_size,
        num_channels=c.channels,
        hidden_size=c.hidden,
        num_hidden_layers=c.layers,
        num_attention_heads=c.heads,
        intermediate_size=c.intermediate or 4 * c.hidden,
        qkv_bias=c.qkv_bias,
        pooler_output_size=c.pooler_size,
        num_labels=c.labels or 2,
    )
    if c.head == "cls":
        model = on_meta(t.ViTForImageClassification, config)
    else:
        import torch

        with torch.device("meta"):
            model = t.ViTModel(config, add_pooling_layer=c.pooler, use_mask_token=c.mask_token)
    return as_stored(model, VIT_NAMES) if c.layout == "checkpoint" else model


def dinov2_twin(c: Any) -> Any:
    t = hf()
    config = t.Dinov2Config(
        image_size=c.image_size,
        patch_size=c.patch_size,
        num_channels=c.channels,
        hidden_size=c.hidden,
        num_hidden_layers=c.layers,
        num_attention_heads=c.heads,
        mlp_ratio=c.mlp_ratio,
        use_swiglu_ffn=c.swiglu,
        qkv_bias=c.qkv_bias,
        use_mask_token=c.mask_token,
        drop_path_rate=c.drop_path,
        num_labels=c.labels or 2,
    )
    model = on_meta(t.Dinov2ForImageClassification if c.head == "cls" else t.Dinov2Model, config)
    return as_stored(model, DINOV2_NAMES) if c.layout == "checkpoint" else model


def convnext_twin(c: Any) -> Any:
    t = hf()
    config = t.ConvNextConfig(
        num_channels=c.channels,
        patch_size=c.patch_size,
        num_stages=len(c.depths),
        depths=list(c.depths),
        hidden_sizes=list(c.hidden_sizes),
        layer_scale_init_value=c.layer_scale,
        drop_path_rate=c.drop_path,
        image_size=c.image_size,
        num_labels=c.labels or 2,
    )
    model = t.ConvNextForImageClassification if c.head == "cls" else t.ConvNextModel
    return on_meta(model, config)


def resnet_twin(c: Any) -> Any:
    t = hf()
    config = t.ResNetConfig(
        num_channels=c.channels,
        embedding_size=c.embedding_size,
        depths=list(c.depths),
        hidden_sizes=list(c.hidden_sizes),
        layer_type=c.layer_type,
        downsample_in_first_stage=c.downsample_in_first_stage,
        downsample_in_bottleneck=c.downsample_in_bottleneck,
        num_labels=c.labels or 2,
    )
    return on_meta(t.ResNetForImageClassification if c.head == "cls" else t.ResNetModel, config)


VISION_TWINS: dict[str, Callable[[Any], Any]] = {
    "vit": vit_twin,
    "dinov2": dinov2_twin,
    "convnext": convnext_twin,
    "resnet": resnet_twin,
}
