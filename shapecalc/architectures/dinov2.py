"""``shapecalc dinov2``: DINOv2 as ``transformers`` builds it (``Dinov2Model``,
``Dinov2ForImageClassification``; transformers/models/dinov2/modeling_dinov2.py,
transformers 5).

A ViT whose blocks scale each residual branch by a learned vector (``layer_scale1`` and
``layer_scale2``, ``lambda1`` (H,) each), with an MLP of H·R inner units (``mlp_ratio``
R) or a SwiGLU (``use_swiglu_ffn``: gate, up and down of 8·⌈⌊2·H·R/3⌋/8⌉ units), a mask
token (1, H) in the embeddings (``use_mask_token``), and a classifier that reads the
class token beside the mean of the patch tokens: 2·H inputs.

    >>> dinov2(image_size=518, hidden=384, layers=12, heads=6, head="none").total
    22056576
"""

from __future__ import annotations

from typing import Any, ClassVar

from shapecalc.architectures._vit import (
    VisionTransformer,
    attention,
    channels,
    checkpoint_attention,
    dropout,
    image_size,
    layout,
    patch_embeddings,
    patch_size,
    tokens,
)
from shapecalc.core.declare import Built, choice, flag, number, size
from shapecalc.core.dims import Dim, floor_div
from shapecalc.core.flow import Multiply, chain, each, multiply, parallel, residual, summed
from shapecalc.core.frozen import frozen
from shapecalc.core.hfmap import HFType
from shapecalc.core.own import Parameter
from shapecalc.core.tree import Block, Leaf, ModuleList
from shapecalc.layers._function import Chunk
from shapecalc.layers.activation import GELU, SiLU
from shapecalc.layers.linear import Dropout, Flatten, Identity, Linear
from shapecalc.layers.norm import LayerNorm
from shapecalc.layers.pooling import AdaptiveAvgPool1d
from shapecalc.layers.tensors import Cat, Expand, Transpose
from shapecalc.layers.vision import StochasticDepth

__all__ = ["DINOv2", "dinov2"]

#: Dinov2Config's layer_norm_eps
EPS = 1e-6


@frozen(kw_only=True)
class DINOv2(VisionTransformer):
    """DINOv2: patch embedding (H × C × P × P), class and mask tokens, (S / P)² + 1
    position rows, L blocks (attention H × H four times and an MLP, each scaled by a layer
    scale of H), a LayerNorm; a classifier (N × 2·H) on the class token and the mean of
    the patches."""

    command: ClassVar[str] = "dinov2"
    function: ClassVar[str] = "dinov2"
    title: ClassVar[str] = "DINOv2"
    example: ClassVar[str] = "--image-size 518 --hidden 384 --layers 12 --heads 6 --head none"
    budget: ClassVar[str] = "22M"
    size_order: ClassVar[tuple[str, ...]] = (
        "image_size",
        "patch_size",
        "channels",
        "hidden",
        "layers",
        "heads",
        "mlp_ratio",
        "labels",
    )

    image_size: Any = image_size(224)
    patch_size: Any = patch_size(14)
    channels: Any = channels()
    hidden: Any = size("H", "Hidden size: the length of every patch's vector.")
    layers: Any = size("L", "Number of transformer blocks (layers).")
    heads: Any = size("A", "Attention heads, head_dim = H / A each.", solvable=False)
    mlp_ratio: Any = size(
        "R",
        "The MLP's inner size over the hidden size (mlp_ratio): H·R inner units.",
        4,
        names=False,
    )
    swiglu: bool = flag(
        "A SwiGLU MLP (use_swiglu_ffn): gate and up to 8·⌈⌊2·H·R/3⌋/8⌉ units, SiLU, down.",
        False,
    )
    qkv_bias: bool = flag("Biases on q, k and v (qkv_bias).", True)
    mask_token: bool = flag("A mask token (1, H) for masked patches (use_mask_token).", True)
    head: str = choice(
        ("cls", "none"),
        "cls: a classifier of N labels on the class token and the patches' mean "
        "(Dinov2ForImageClassification); none: the body alone (Dinov2Model).",
        "cls",
    )
    labels: Any = size(
        "N",
        "Labels of the classifier (num_labels, or the length of id2label).",
        None,
        unset=None,
        default_text="2",
        solvable=False,
    )
    drop_path: float = number(
        "Stochastic depth of each residual branch (drop_path_rate); it adds no parameters.",
        0.0,
        low=0,
        high=1,
        open_high=True,
    )
    dropout: float = dropout()
    layout: str = layout(
        "attention.q_proj, mlp.gate_proj and mlp.up_proj",
        "attention.attention.query, mlp.weights_in: gate and up in one",
    )

    hf: ClassVar[tuple[HFType, ...]] = (
        HFType(
            model_type="dinov2",
            config_class="Dinov2Config",
            classes={
                "Dinov2ForImageClassification": {"head": "cls"},
                "Dinov2Model": {"head": "none"},
            },
            base="dinov2",
            keys={
                "image_size": "image_size",
                "patch_size": "patch_size",
                "channels": "num_channels",
                "hidden": "hidden_size",
                "layers": "num_hidden_layers",
                "heads": "num_attention_heads",
                "mlp_ratio": "mlp_ratio",
                "swiglu": "use_swiglu_ffn",
                "qkv_bias": "qkv_bias",
                "mask_token": "use_mask_token",
                "drop_path": "drop_path_rate",
                "dropout": ("hidden_dropout_prob", "attention_probs_dropout_prob"),
                "labels": "num_labels",
            },
            defaults={
                "hidden_size": 768,
                "num_hidden_layers": 12,
                "num_attention_heads": 12,
                "mlp_ratio": 4,
                "hidden_act": "gelu",
                "hidden_dropout_prob": 0.0,
                "attention_probs_dropout_prob": 0.0,
                "layer_norm_eps": 1e-6,
                "image_size": 224,
                "patch_size": 14,
                "num_channels": 3,
                "qkv_bias": True,
                "layerscale_value": 1.0,
                "drop_path_rate": 0.0,
                "use_swiglu_ffn": False,
                "apply_layernorm": True,
                "reshape_hidden_states": True,
                "use_mask_token": True,
            },
            # layerscale_value is lambda1's first value; the rest shape Dinov2Backbone's
            # outputs, a class shapecalc does not build
            free=frozenset(
                {
                    "hidden_act",
                    "layer_norm_eps",
                    "layerscale_value",
                    "apply_layernorm",
                    "reshape_hidden_states",
                    "out_features",
                    "out_indices",
                    "stage_names",
                }
            ),
            strict_heads=True,
            checkpoint={"layout": "checkpoint"},
        ),
    )

    def check(self) -> None:
        self.check_image()
        self.check_labels()

    @property
    def inner(self) -> Dim:
        """The MLP's inner units: H·R, or for SwiGLU two thirds of it rounded up to a
        multiple of 8 (Dinov2SwiGLUFFN)."""
        plain: Dim = self.hidden * self.mlp_ratio
        if not self.swiglu:
            return plain
        return floor_div(floor_div(2 * plain, 3) + 7, 8) * 8

    def _mlp(self) -> Block:
        h, i = self.hidden, self.inner
        if self.swiglu and self.layout == "checkpoint":  # gate and up in one: weights_in
            return Block(
                "Dinov2SwiGLUFFN",
                {
                    "weights_in": Leaf(Linear(h, 2 * i), role="gate and up"),
                    "weights_out": Leaf(Linear(i, h), role="down"),
                    "act_fn": SiLU(),
                },
                flow=chain(
                    "weights_in", Chunk((i, i)), each("act_fn", ()), Multiply(), "weights_out"
                ),
            )
        if self.swiglu:
            return Block(
                "Dinov2SwiGLUFFN",
                {
                    "gate_proj": Leaf(Linear(h, i), role="gate"),
                    "up_proj": Leaf(Linear(h, i), role="up"),
                    "down_proj": Leaf(Linear(i, h), role="down"),
                    "act_fn": SiLU(),
                },
                flow=chain(multiply(("gate_proj", "act_fn"), "up_proj"), "down_proj"),
            )
        return Block(
            "Dinov2MLP",
            {
                "fc1": Leaf(Linear(h, i), role="up"),
                "activation_fn": GELU(),
                "fc2": Leaf(Linear(i, h), role="down"),
            },
            flow=chain("fc1", "activation_fn", "fc2"),
        )

    def _scale(self) -> Block:
        return Block(
            "Dinov2LayerScale",
            {"lambda1": Parameter((self.hidden,), role="layer scale, one per channel")},
            flow=multiply((), "lambda1"),
        )

    def _layer(self) -> Block:
        h = self.hidden
        drop = StochasticDepth(self.drop_path, "row") if self.drop_path > 0 else Identity()
        return Block(
            "Dinov2Layer",
            {
                "norm1": LayerNorm(h, eps=EPS),
                "attention": (
                    checkpoint_attention(h, self.heads, self.head_size(), self.qkv_bias)
                    if self.layout == "checkpoint"
                    else attention(
                        "Dinov2Attention", h, self.heads, self.head_size(), self.qkv_bias
                    )
                ),
                "layer_scale1": self._scale(),
                "drop_path": drop,
                "norm2": LayerNorm(h, eps=EPS),
                "mlp": self._mlp(),
                "layer_scale2": self._scale(),
            },
            flow=chain(
                residual("norm1", "attention", "layer_scale1", "drop_path"),
                residual("norm2", "mlp", "layer_scale2", "drop_path"),
            ),
        )

    def _embeddings(self) -> Block:
        h = self.hidden
        own = tokens(h, self.patches + 1)
        children: dict[str, Any] = {"cls_token": own["cls_token"]}
        if self.mask_token:
            children["mask_token"] = Parameter((1, h), role="mask token")
        children["patch_embeddings"] = patch_embeddings(
            "Dinov2PatchEmbeddings", self.channels, h, self.patch_size
        )
        children["position_embeddings"] = own["position_embeddings"]
        children["dropout"] = Dropout(self.dropout)
        return Block(
            "Dinov2Embeddings",
            children,
            flow=chain(
                "patch_embeddings",
                parallel("cls_token", ()),
                Expand((0,)),  # cls_token.expand(batch, -1, -1)
                Cat(1),
                summed((), "position_embeddings"),
                "dropout",
            ),
            description="the class token, then one token per patch, plus its position",
        )

    def _body(self) -> Block:
        encoder = Block(
            "Dinov2Encoder",
            {"layer": ModuleList(self._layer(), self.layers)},
            flow=chain("layer"),
        )
        return Block(
            "Dinov2Model",
            {
                "embeddings": self._embeddings(),
                "encoder": encoder,
                "layernorm": LayerNorm(self.hidden, eps=EPS),
            },
            flow=chain("embeddings", "encoder", "layernorm"),
        )

    def build(self) -> Built:
        layout = (("B", "C", self.image_size, self.image_size),)
        if self.head == "none":
            return Built(self._body(), input_layout=layout, group_depth=1)
        classifier = Leaf(
            Linear(2 * self.hidden, self.n_labels),
            "a score per label from the class token and the patches' mean",
            "classification head",
        )
        root = Block(
            "Dinov2ForImageClassification",
            {"dinov2": self._body(), "classifier": classifier},
            flow=chain(
                "dinov2",
                Transpose(1, 2),  # (B, H, 1 + patches)
                Chunk((1, self.patches)),  # the class token's column, the patches'
                each(Flatten(1), chain(AdaptiveAvgPool1d(1), Flatten(1))),  # cls, mean
                Cat(1),  # torch.cat([cls_token, patch_tokens.mean(dim=1)], dim=1)
                "classifier",
            ),
        )
        return Built(root, input_layout=layout, group_depth=2)


dinov2 = DINOv2.function_for()
