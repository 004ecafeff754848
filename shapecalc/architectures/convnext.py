"""``shapecalc convnext``: ConvNeXt as ``transformers`` builds it (``ConvNextModel``,
``ConvNextForImageClassification``; transformers/models/convnext/modeling_convnext.py,
transformers 5).

A P × P stem convolution to the first stage's channels and a channels-first LayerNorm;
stages of ``depths[i]`` blocks of ``hidden_sizes[i]`` channels, each stage after the first
opening with a LayerNorm and a 2 × 2 convolution of stride 2; each block a depthwise 7 × 7
convolution, a LayerNorm over the channels, Linear to 4 × the channels, GELU, Linear back,
scaled by ``layer_scale_parameter`` (when ``layer_scale_init_value`` > 0), plus its input.
The mean over the pixels, a LayerNorm, and the classifier.

    >>> convnext(labels=1000).total  # facebook/convnext-tiny-224
    28589128
"""

from __future__ import annotations

from typing import Any, ClassVar

from shapecalc.architectures._vit import VisionModel
from shapecalc.core.declare import Built, Reference, choice, number, size, size_list
from shapecalc.core.errors import InvalidArgumentError
from shapecalc.core.flow import chain, multiply, parallel, residual
from shapecalc.core.frozen import frozen
from shapecalc.core.hfmap import HFType
from shapecalc.core.own import Parameter
from shapecalc.core.tree import Block, Leaf, ModuleList, Node, Sequential
from shapecalc.layers.activation import GELU
from shapecalc.layers.conv import Conv2d
from shapecalc.layers.linear import Flatten, Identity, Linear
from shapecalc.layers.norm import LayerNorm
from shapecalc.layers.pooling import AdaptiveAvgPool2d
from shapecalc.layers.tensors import Permute
from shapecalc.layers.vision import LayerNorm2d, StochasticDepth

__all__ = ["ConvNeXt", "convnext"]


def _read(f: Any, out: dict[str, Any]) -> None:
    """num_stages: the stages transformers builds, one per depth and hidden size."""
    stages = f.size("num_stages")
    depths = out["depths"]
    if stages != len(depths):
        rule = "num_stages is the length of depths and of hidden_sizes"
        raise f.fail("num_stages", stages, rule, f"depths has {len(depths)}")


def _write(model: Any, reference: Reference) -> Reference:
    config = {**reference.config, "num_stages": len(model.depths)}
    return Reference(reference.model, reference.config_class, config)


def stage_lists(model: Any, depths: str = "depths", sizes: str = "hidden_sizes") -> None:
    """The depths and the hidden sizes, one of each per stage."""
    d, h = getattr(model, depths), getattr(model, sizes)
    if len(d) != len(h):
        rule = f"{depths} and {sizes} have one entry per stage each"
        raise InvalidArgumentError(
            f"{rule}, got {len(d)} {depths} and {len(h)} {sizes}",
            layer=model.owner(),
            field=depths,
            value=",".join(str(n) for n in d),
            rule=rule,
        )


def agreeing(out: dict[str, Any]) -> dict[str, Any]:
    """Drawn depths and hidden sizes cut to the shorter's length; labels only with the
    classification head."""
    n = min(len(out["depths"]), len(out["hidden_sizes"]))
    out["depths"], out["hidden_sizes"] = out["depths"][:n], out["hidden_sizes"][:n]
    if out.get("head") != "cls":
        out["labels"] = None
    return out


@frozen(kw_only=True)
class ConvNeXt(VisionModel):
    """ConvNeXt: a P × P stem to the first stage's channels, stages of blocks (a
    depthwise 7 × 7 convolution, LayerNorm, Linear to 4·C and back, a layer scale of C),
    downsampling between stages; the pixels' mean, a LayerNorm, a classifier (N × C)."""

    command: ClassVar[str] = "convnext"
    function: ClassVar[str] = "convnext"
    title: ClassVar[str] = "ConvNeXt"
    example: ClassVar[str] = "--depths 3,3,9,3 --hidden-sizes 96,192,384,768 --labels 1000"
    budget: ClassVar[str] = "29M"
    size_order: ClassVar[tuple[str, ...]] = ("image_size", "patch_size", "channels", "labels")

    image_size: Any = size(
        "S",
        "The side of the square image in pixels (image_size): the input's size.",
        224,
        names=False,
        solvable=False,
    )
    patch_size: Any = size(
        "P", "The stem's kernel and stride (patch_size).", 4, names=False, solvable=False
    )
    channels: Any = size("C", "Channels of the pixels (num_channels): 3 for RGB.", 3)
    depths: tuple[int, ...] = size_list("Blocks of each stage (depths).", (3, 3, 9, 3))
    hidden_sizes: tuple[int, ...] = size_list(
        "Channels of each stage (hidden_sizes).", (96, 192, 384, 768)
    )
    layer_scale: float = number(
        "The layer scale's first value (layer_scale_init_value); 0: no layer scale "
        "parameter in the blocks.",
        1e-6,
        low=0,
        high=1e6,
    )
    head: str = choice(
        ("cls", "none"),
        "cls: a classifier of N labels on the pooled features "
        "(ConvNextForImageClassification); none: the body alone (ConvNextModel).",
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
        "Stochastic depth of the last block (drop_path_rate), rising from 0 at the first; "
        "it adds no parameters.",
        0.0,
        low=0,
        high=1,
        open_high=True,
    )

    hf: ClassVar[tuple[HFType, ...]] = (
        HFType(
            model_type="convnext",
            config_class="ConvNextConfig",
            classes={
                "ConvNextForImageClassification": {"head": "cls"},
                "ConvNextModel": {"head": "none"},
            },
            base="convnext",
            keys={
                "image_size": "image_size",
                "patch_size": "patch_size",
                "channels": "num_channels",
                "depths": "depths",
                "hidden_sizes": "hidden_sizes",
                "layer_scale": "layer_scale_init_value",
                "drop_path": "drop_path_rate",
                "labels": "num_labels",
            },
            defaults={
                "num_channels": 3,
                "patch_size": 4,
                "num_stages": 4,
                "hidden_sizes": (96, 192, 384, 768),
                "depths": (3, 3, 9, 3),
                "hidden_act": "gelu",
                "layer_norm_eps": 1e-12,
                "layer_scale_init_value": 1e-6,
                "drop_path_rate": 0.0,
                "image_size": 224,
            },
            aliases={"num_hidden_layers": "num_stages"},
            # out_features and the rest shape ConvNextBackbone's outputs, a class shapecalc
            # does not build
            free=frozenset(
                {"hidden_act", "layer_norm_eps", "out_features", "out_indices", "stage_names"}
            ),
            read=_read,
            write=_write,
        ),
    )

    @property
    def smallest_image(self) -> int:
        """The smallest side the stem and every downsampling (2 × 2, stride 2) can take."""
        side: int = self.patch_size * 2 ** (len(self.depths) - 1)
        return side

    def check(self) -> None:
        stage_lists(self)
        self.check_labels()
        if self.image_size < self.smallest_image:
            rule = (
                "image_size is at least patch_size · 2^(stages - 1): the stem and each "
                "stage's 2 × 2 downsampling need a pixel"
            )
            raise InvalidArgumentError(
                f"{rule}, got {self.image_size} < {self.smallest_image}",
                layer=self.owner(),
                field="image_size",
                value=self.image_size,
                rule=rule,
            )

    @classmethod
    def consistent(cls, arguments: dict[str, Any]) -> dict[str, Any]:
        out = agreeing(dict(arguments))
        least = out["patch_size"] * 2 ** (len(out["depths"]) - 1)
        out["image_size"] = max(out["image_size"], least)
        return out

    def _layer(self, dim: int, drop: float) -> Block:
        children: dict[str, Any] = {}
        scaled: tuple[Any, ...] = ()
        if self.layer_scale > 0:
            children["layer_scale_parameter"] = Parameter((dim,), role="layer scale")
            scaled = (multiply((), "layer_scale_parameter"),)
        children.update(
            {
                "dwconv": Leaf(Conv2d(dim, dim, 7, padding=3, groups=dim), role="depthwise 7 × 7"),
                "layernorm": LayerNorm(dim, eps=1e-6),
                "pwconv1": Leaf(Linear(dim, 4 * dim), role="up"),
                "act": GELU(),
                "pwconv2": Leaf(Linear(4 * dim, dim), role="down"),
                "drop_path": StochasticDepth(drop, "row") if drop > 0 else Identity(),
            }
        )
        return Block(
            "ConvNextLayer",
            children,
            flow=residual(
                "dwconv",
                Permute((0, 2, 3, 1)),  # (N, C, H, W) -> (N, H, W, C)
                "layernorm",
                "pwconv1",
                "act",
                "pwconv2",
                *scaled,
                Permute((0, 3, 1, 2)),
                "drop_path",
            ),
        )

    def _rates(self) -> list[float]:
        """Each block's stochastic depth: torch.linspace(0, drop_path_rate, blocks)."""
        n = sum(self.depths)
        return [self.drop_path * j / (n - 1) if n > 1 else 0.0 for j in range(n)]

    def _body(self) -> Block:
        sizes, rates = self.hidden_sizes, self._rates()
        stages: list[Node] = []
        first, prev = 0, sizes[0]
        for i, (depth, out) in enumerate(zip(self.depths, sizes, strict=True)):
            mine = rates[first : first + depth]
            first += depth
            children: dict[str, Any] = {}
            steps: list[str] = []
            if i > 0:  # in_channels != out_channels or stride > 1: always after the first
                children["downsampling_layer"] = Sequential(
                    LayerNorm2d(prev, eps=1e-6), Conv2d(prev, out, 2, stride=2)
                )
                steps.append("downsampling_layer")
            if all(r == 0 for r in mine):
                children["layers"] = ModuleList(self._layer(out, 0.0), depth)
            else:
                children["layers"] = Sequential(*(self._layer(out, r) for r in mine))
            steps.append("layers")
            stages.append(Block("ConvNextStage", children, flow=chain(*steps)))
            prev = out
        embeddings = Block(
            "ConvNextEmbeddings",
            {
                "patch_embeddings": Leaf(
                    Conv2d(self.channels, sizes[0], self.patch_size, stride=self.patch_size),
                    role="stem",
                ),
                "layernorm": LayerNorm2d(sizes[0], eps=1e-6),
            },
            flow=chain("patch_embeddings", "layernorm"),
        )
        pooled = chain(AdaptiveAvgPool2d(1), Flatten(1), "layernorm")  # mean([-2, -1])
        tail = parallel((), pooled) if self.head == "none" else pooled
        return Block(
            "ConvNextModel",
            {
                "embeddings": embeddings,
                "encoder": Block(
                    "ConvNextEncoder", {"stages": Sequential(*stages)}, flow=chain("stages")
                ),
                "layernorm": LayerNorm(sizes[-1], eps=1e-12),
            },
            flow=chain("embeddings", "encoder", tail),
        )

    def build(self) -> Built:
        layout = (("B", "C", self.image_size, self.image_size),)
        if self.head == "none":
            return Built(self._body(), input_layout=layout, group_depth=1)
        classifier = Leaf(
            Linear(self.hidden_sizes[-1], self.n_labels), "a score per label", "classifier"
        )
        root = Block(
            "ConvNextForImageClassification",
            {"convnext": self._body(), "classifier": classifier},
            flow=chain("convnext", "classifier"),
        )
        return Built(root, input_layout=layout, group_depth=2)


convnext = ConvNeXt.function_for()
