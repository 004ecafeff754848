"""What transformers' ViT and DINOv2 share (transformers/models/vit/modeling_vit.py and
dinov2/modeling_dinov2.py, transformers 5): the image cut into patches by one strided
convolution, the class token before them, a position embedding added, and attention
blocks whose q, k, v and o projections are named ``q_proj`` ... ``o_proj``.

An architecture here takes the image's side ``image_size``, ``patch_size``, the
``channels`` of the pixels, and the transformer's sizes; the patches are
(image_size / patch_size)², the position table one row more (the class token's).
"""

from __future__ import annotations

from typing import Any, ClassVar

from shapecalc.core.declare import Architecture, choice, number, size
from shapecalc.core.dims import Dim, as_size, known, symbol
from shapecalc.core.errors import InvalidArgumentError
from shapecalc.core.flow import chain, parallel
from shapecalc.core.own import Parameter
from shapecalc.core.tree import Block, Leaf
from shapecalc.layers.conv import Conv2d
from shapecalc.layers.functional import ScaledDotProductAttention
from shapecalc.layers.linear import Flatten, Linear
from shapecalc.layers.tensors import Transpose

__all__ = [
    "VisionModel",
    "VisionTransformer",
    "attention",
    "checkpoint_attention",
    "layout",
    "patch_embeddings",
    "tokens",
]


def image_size(default: int) -> Any:
    return size(
        "S",
        "The side of the square image in pixels (image_size); the patch size divides it.",
        default,
        names=False,
        solvable=False,
    )


def patch_size(default: int) -> Any:
    return size(
        "P", "The side of a square patch (patch_size): one token each.", default, names=False
    )


def channels() -> Any:
    return size("C", "Channels of the pixels (num_channels): 3 for RGB.", 3, solvable=False)


#: how the blocks are named
LAYOUTS = ("transformers", "checkpoint")


def layout(transformers: str, checkpoint: str) -> Any:
    return choice(
        LAYOUTS,
        f"How the blocks are named: as transformers 5 holds them ({transformers}), or as "
        f"checkpoint files store them ({checkpoint}), which transformers renames on load.",
        "transformers",
    )


def dropout() -> Any:
    return number(
        "Dropout of the embeddings and residuals (hidden_dropout_prob, "
        "attention_probs_dropout_prob); it adds no parameters.",
        0.0,
        low=0,
        high=1,
        open_high=True,
    )


class VisionModel(Architecture):
    """An image model of transformers: a body, and a classifier of N labels or none
    (``head``, ``labels``)."""

    sequence = False
    #: the heads whose size is the number of labels
    label_heads: ClassVar[frozenset[str]] = frozenset({"cls"})

    @property
    def n_labels(self) -> Dim:
        """The classifier's labels: given, or 2 (transformers' default)."""
        given = getattr(self, "labels", None)
        n: Dim = 2 if given is None else given
        return n

    def check_labels(self) -> None:
        if getattr(self, "labels", None) is not None and getattr(self, "head", "") != "cls":
            rule = "labels sizes the classification head (--head cls)"
            raise InvalidArgumentError(
                f"{rule}; --head {getattr(self, 'head', '')} has none",
                layer=self.owner(),
                field="labels",
                value=self.labels,  # type: ignore[attr-defined]
                rule=rule,
            )

    def hf_values(self) -> dict[str, Any]:
        out = super().hf_values()
        if "labels" in out:
            out["labels"] = self.n_labels
        return out


class VisionTransformer(VisionModel):
    """A transformer over image patches: the sizes and rules ViT and DINOv2 share."""

    image_size: int
    patch_size: int
    channels: Dim
    hidden: Dim
    layers: Dim
    heads: Dim

    @property
    def patches(self) -> int:
        """The patches, (image_size / patch_size)², one token each."""
        return (self.image_size // self.patch_size) ** 2

    def head_size(self) -> Dim:
        h, a = known(self.hidden), known(self.heads)
        if h is not None and a is not None:
            return h // a
        return symbol("D")

    def sizes(self) -> dict[str, Dim]:
        """The sizes given, and D = H / A worked out (a formula with both as letters
        names it)."""
        out = super().sizes()
        h, a = known(self.hidden), known(self.heads)
        if h is not None and a:
            out["D"] = h // a
        return out

    def check_image(self) -> None:
        if self.image_size % self.patch_size:
            rule = "patch_size divides image_size (the patches tile the image)"
            raise InvalidArgumentError(
                f"{rule}, got image_size {self.image_size} and patch_size {self.patch_size} "
                f"({self.image_size} % {self.patch_size} = {self.image_size % self.patch_size})",
                layer=self.owner(),
                field="image_size",
                value=self.image_size,
                rule=rule,
            )
        h, a = known(self.hidden), known(self.heads)
        if h is not None and a is not None and h % a:
            rule = "heads divide hidden (head_dim = H / A)"
            raise InvalidArgumentError(
                f"{rule}, got hidden {h} and heads {a} ({h} % {a} = {h % a})",
                layer=self.owner(),
                field="heads",
                value=a,
                rule=rule,
            )

    @classmethod
    def consistent(cls, arguments: dict[str, Any]) -> dict[str, Any]:
        """The image a whole number of patches; the hidden size a multiple of the heads;
        labels only with a classification head."""
        out = dict(arguments)
        patch = out["patch_size"]
        out["image_size"] = patch * max(1, out["image_size"] // patch)
        out["hidden"] = out["heads"] * max(1, out["hidden"] // out["heads"])
        if out.get("head") != "cls" and "labels" in out:
            out["labels"] = None
        return out

    @classmethod
    def multiple_for(cls, free: str, arguments: dict[str, Any]) -> int:
        heads = arguments.get("heads")
        if free == "hidden" and heads is not None:
            number = known(as_size(heads, owner=cls.owner(), field="heads"))
            return 1 if number is None else number
        return 1


def patch_embeddings(kind: str, channels: Dim, hidden: Dim, patch: int) -> Block:
    """``{kind}PatchEmbeddings``: ``projection`` (a conv of kernel and stride P), flattened
    and transposed to (B, patches, H)."""
    return Block(
        kind,
        {"projection": Leaf(Conv2d(channels, hidden, patch, stride=patch), role="patch embedding")},
        flow=chain("projection", Flatten(2), Transpose(1, 2)),
        description="each P × P patch of C channels to an H-vector",
    )


def attention(kind: str, hidden: Dim, heads: Dim, head_dim: Dim, bias: bool) -> Block:
    """``{kind}Attention``: q, k, v (bias when ``qkv_bias``), every patch seeing every
    patch, and o."""
    return Block(
        kind,
        {
            "q_proj": Leaf(Linear(hidden, hidden, bias=bias), role="query"),
            "k_proj": Leaf(Linear(hidden, hidden, bias=bias), role="key"),
            "v_proj": Leaf(Linear(hidden, hidden, bias=bias), role="value"),
            "o_proj": Leaf(Linear(hidden, hidden), role="output projection"),
        },
        flow=chain(
            parallel("q_proj", "k_proj", "v_proj"),
            ScaledDotProductAttention(heads, heads, head_dim, causal=False),
            "o_proj",
        ),
    )


def checkpoint_attention(hidden: Dim, heads: Dim, head_dim: Dim, bias: bool) -> Block:
    """The attention as checkpoint files store it (transformers 4's layout):
    ``attention.{query,key,value}`` and ``output.dense``."""
    inner = Block(
        "SelfAttention",
        {
            "query": Leaf(Linear(hidden, hidden, bias=bias), role="query"),
            "key": Leaf(Linear(hidden, hidden, bias=bias), role="key"),
            "value": Leaf(Linear(hidden, hidden, bias=bias), role="value"),
        },
        flow=chain(
            parallel("query", "key", "value"),
            ScaledDotProductAttention(heads, heads, head_dim, causal=False),
        ),
    )
    output = Block(
        "SelfOutput",
        {"dense": Leaf(Linear(hidden, hidden), role="output projection")},
        flow=chain("dense"),
    )
    return Block(
        "Attention", {"attention": inner, "output": output}, flow=chain("attention", "output")
    )


def tokens(hidden: Dim, positions: int) -> dict[str, Any]:
    """The class token (1, 1, H) and the position table (1, positions, H)."""
    return {
        "cls_token": Parameter((1, 1, hidden), role="class token"),
        "position_embeddings": Parameter((1, positions, hidden), role="position embedding"),
    }
