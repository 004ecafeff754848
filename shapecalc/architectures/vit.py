"""``shapecalc vit``: the Vision Transformer as ``transformers`` builds it (``ViTModel``,
``ViTForImageClassification``; transformers/models/vit/modeling_vit.py, transformers 5).

The image cut into (S / P)² patches of P × P pixels, each to an H-vector by one strided
convolution; the class token before them and a position table of (S / P)² + 1 rows added;
L pre-norm blocks (LayerNorm, attention, residual; LayerNorm, MLP, residual); a final
LayerNorm; then the pooler (ViTModel) or a classifier reading the class token.

    >>> vit(hidden=768, layers=12, heads=12, labels=1000).total  # google/vit-base-patch16-224
    86567656
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
from shapecalc.core.declare import Built, Reference, choice, flag, size
from shapecalc.core.flow import chain, parallel, residual, summed
from shapecalc.core.frozen import frozen
from shapecalc.core.hfmap import HFType
from shapecalc.core.own import Parameter
from shapecalc.core.tree import Block, Leaf, ModuleList
from shapecalc.layers.activation import GELU, Tanh
from shapecalc.layers.functional import Select
from shapecalc.layers.linear import Dropout, Linear
from shapecalc.layers.norm import LayerNorm
from shapecalc.layers.tensors import Cat, Expand

__all__ = ["ViT", "vit"]

#: ViTConfig's layer_norm_eps
EPS = 1e-12


def _write(model: Any, reference: Reference) -> Reference:
    """ViTModel's keywords: the pooler and the mask token."""
    if model.head != "none":
        return reference
    options = {"add_pooling_layer": model.pooler, "use_mask_token": model.mask_token}
    return Reference(reference.model, reference.config_class, reference.config, options)


@frozen(kw_only=True)
class ViT(VisionTransformer):
    """ViT: patch embedding (H × C × P × P), a class token and (S / P)² + 1 position rows,
    L blocks (attention H × H four times, MLP H -> I -> H), a LayerNorm; the pooler
    (H -> H, tanh) or a classifier (N × H) on the class token."""

    command: ClassVar[str] = "vit"
    function: ClassVar[str] = "vit"
    title: ClassVar[str] = "ViT"
    example: ClassVar[str] = "--hidden 768 --layers 12 --heads 12 --labels 1000"
    budget: ClassVar[str] = "86M"
    size_order: ClassVar[tuple[str, ...]] = (
        "image_size",
        "patch_size",
        "channels",
        "hidden",
        "layers",
        "heads",
        "intermediate",
        "labels",
        "pooler_size",
    )

    image_size: Any = image_size(224)
    patch_size: Any = patch_size(16)
    channels: Any = channels()
    hidden: Any = size("H", "Hidden size: the length of every patch's vector.")
    layers: Any = size("L", "Number of transformer blocks (layers).")
    heads: Any = size("A", "Attention heads, head_dim = H / A each.", solvable=False)
    intermediate: Any = size(
        "I", "The MLP's inner size (intermediate_size).", None, unset=None, default_text="4·H"
    )
    qkv_bias: bool = flag("Biases on q, k and v (qkv_bias).", True)
    head: str = choice(
        ("cls", "none"),
        "cls: a classifier of N labels on the class token (ViTForImageClassification); "
        "none: the body alone (ViTModel).",
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
    pooler: bool = flag(
        "The pooler, dense H -> O and tanh on the class token (add_pooling_layer; with "
        "--head none).",
        True,
    )
    pooler_size: Any = size(
        "O",
        "The pooler's output size (pooler_output_size).",
        None,
        unset=None,
        default_text="H",
        solvable=False,
    )
    mask_token: bool = flag(
        "A mask token (1, 1, H) for masked patches (use_mask_token; with --head none).",
        False,
    )
    dropout: float = dropout()
    layout: str = layout(
        "layers.{i}.attention.q_proj, mlp.fc1",
        "encoder.layer.{i}.attention.attention.query, intermediate.dense",
    )

    hf: ClassVar[tuple[HFType, ...]] = (
        HFType(
            model_type="vit",
            config_class="ViTConfig",
            classes={
                "ViTForImageClassification": {"head": "cls"},
                "ViTModel": {"head": "none"},
            },
            base="vit",
            keys={
                "image_size": "image_size",
                "patch_size": "patch_size",
                "channels": "num_channels",
                "hidden": "hidden_size",
                "layers": "num_hidden_layers",
                "heads": "num_attention_heads",
                "intermediate": "intermediate_size",
                "qkv_bias": "qkv_bias",
                "pooler_size": "pooler_output_size",
                "dropout": ("hidden_dropout_prob", "attention_probs_dropout_prob"),
                "labels": "num_labels",
            },
            defaults={
                "hidden_size": 768,
                "num_hidden_layers": 12,
                "num_attention_heads": 12,
                "intermediate_size": 3072,
                "hidden_act": "gelu",
                "hidden_dropout_prob": 0.0,
                "attention_probs_dropout_prob": 0.0,
                "layer_norm_eps": 1e-12,
                "image_size": 224,
                "patch_size": 16,
                "num_channels": 3,
                "qkv_bias": True,
                "encoder_stride": 16,
                "pooler_output_size": None,
                "pooler_act": "tanh",
            },
            # encoder_stride sizes ViTForMaskedImageModeling's decoder only
            free=frozenset({"hidden_act", "layer_norm_eps", "pooler_act", "encoder_stride"}),
            options=frozenset({"pooler", "mask_token"}),
            checkpoint={"layout": "checkpoint"},
            strict_heads=True,
            write=_write,
        ),
    )

    def check(self) -> None:
        self.check_image()
        self.check_labels()

    @property
    def inner(self) -> Any:
        """The MLP's inner size: given, or 4·H."""
        return 4 * self.hidden if self.intermediate is None else self.intermediate

    def hf_values(self) -> dict[str, Any]:
        return {**super().hf_values(), "intermediate": self.inner}

    def _layer(self) -> Block:
        h, d, i = self.hidden, self.head_size(), self.inner
        if self.layout == "checkpoint":  # transformers 4's names, as its checkpoints hold
            return Block(
                "ViTLayer",
                {
                    "attention": checkpoint_attention(h, self.heads, d, self.qkv_bias),
                    "layernorm_before": LayerNorm(h, eps=EPS),
                    "layernorm_after": LayerNorm(h, eps=EPS),
                    "intermediate": Block(
                        "ViTIntermediate",
                        {"dense": Leaf(Linear(h, i), role="up"), "intermediate_act_fn": GELU()},
                        flow=chain("dense", "intermediate_act_fn"),
                    ),
                    "output": Block(
                        "ViTOutput",
                        {"dense": Leaf(Linear(i, h), role="down")},
                        flow=chain("dense"),
                    ),
                    "dropout": Dropout(self.dropout),
                },
                flow=chain(
                    residual("layernorm_before", "attention", "dropout"),
                    residual("layernorm_after", "intermediate", "output", "dropout"),
                ),
            )
        mlp = Block(
            "ViTMLP",
            {
                "fc1": Leaf(Linear(h, i), role="up"),
                "activation_fn": GELU(),
                "fc2": Leaf(Linear(i, h), role="down"),
            },
            flow=chain("fc1", "activation_fn", "fc2"),
        )
        return Block(
            "ViTLayer",
            {
                "attention": attention("ViTAttention", h, self.heads, d, self.qkv_bias),
                "layernorm_before": LayerNorm(h, eps=EPS),
                "layernorm_after": LayerNorm(h, eps=EPS),
                "mlp": mlp,
                "dropout": Dropout(self.dropout),
            },
            flow=chain(
                residual("layernorm_before", "attention", "dropout"),
                residual("layernorm_after", "mlp", "dropout"),
            ),
        )

    def _embeddings(self, mask: bool) -> Block:
        h = self.hidden
        own = tokens(h, self.patches + 1)
        children: dict[str, Any] = {"cls_token": own["cls_token"]}
        if mask:
            children["mask_token"] = Parameter((1, 1, h), role="mask token")
        children["patch_embeddings"] = patch_embeddings(
            "ViTPatchEmbeddings", self.channels, h, self.patch_size
        )
        children["position_embeddings"] = own["position_embeddings"]
        children["dropout"] = Dropout(self.dropout)
        return Block(
            "ViTEmbeddings",
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

    def _body(self, pooled: bool, mask: bool) -> Block:
        h = self.hidden
        stack: Any = ModuleList(self._layer(), self.layers)
        where = "layers"
        if self.layout == "checkpoint":  # encoder.layer.{i}
            stack = Block("ViTEncoder", {"layer": stack}, flow=chain("layer"))
            where = "encoder"
        children: dict[str, Any] = {
            "embeddings": self._embeddings(mask),
            where: stack,
            "layernorm": LayerNorm(h, eps=EPS),
        }
        flow = chain("embeddings", where, "layernorm")
        if pooled:
            out = h if self.pooler_size is None else self.pooler_size
            children["pooler"] = Block(
                "ViTPooler",
                {"dense": Leaf(Linear(h, out), role="pooler"), "activation": Tanh()},
                flow=chain(Select(1), "dense", "activation"),
                description="the class token's vector, through H -> O and tanh",
            )
            flow = chain("embeddings", where, "layernorm", parallel((), "pooler"))
        return Block("ViTModel", children, flow=flow)

    def build(self) -> Built:
        layout = (("B", "C", self.image_size, self.image_size),)
        if self.head == "none":
            body = self._body(self.pooler, self.mask_token)
            return Built(body, input_layout=layout, group_depth=1)
        classifier = Leaf(
            Linear(self.hidden, self.n_labels), "a score per label", "classification head"
        )
        root = Block(
            "ViTForImageClassification",
            {"vit": self._body(False, False), "classifier": classifier},
            flow=chain("vit", Select(1), "classifier"),
        )
        return Built(root, input_layout=layout, group_depth=2)


vit = ViT.function_for()
