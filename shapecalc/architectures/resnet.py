"""``shapecalc resnet``: ResNet as ``transformers`` builds it (``ResNetModel``,
``ResNetForImageClassification``; transformers/models/resnet/modeling_resnet.py,
transformers 5).

A 7 × 7 stem of stride 2 to ``embedding_size`` channels, batch norm, ReLU and a 3 × 3 max
pool; stages of ``depths[i]`` layers of ``hidden_sizes[i]`` output channels, basic (two
3 × 3 convolutions) or bottleneck (1 × 1 down to a quarter, 3 × 3, 1 × 1 back up), the
first layer of each stage striding by 2 (the first stage's only with
``downsample_in_first_stage``) and projecting its shortcut when its shape changes; the
mean over the pixels and a classifier.

    >>> resnet(labels=1000).total  # microsoft/resnet-50
    25557032
"""

from __future__ import annotations

from typing import Any, ClassVar

from shapecalc.architectures._vit import VisionModel
from shapecalc.architectures.convnext import agreeing, stage_lists
from shapecalc.core.declare import Built, choice, flag, size, size_list
from shapecalc.core.errors import InvalidArgumentError
from shapecalc.core.flow import chain, parallel, residual
from shapecalc.core.frozen import frozen
from shapecalc.core.hfmap import HFType
from shapecalc.core.tree import Block, Leaf, Node, Sequential
from shapecalc.layers.activation import ReLU
from shapecalc.layers.conv import Conv2d
from shapecalc.layers.linear import Flatten, Identity, Linear
from shapecalc.layers.norm import BatchNorm2d
from shapecalc.layers.pooling import AdaptiveAvgPool2d, MaxPool2d

__all__ = ["ResNet", "resnet"]

#: a bottleneck layer's 1 × 1 convolution reduces its output channels by this factor
REDUCTION = 4


def _conv(cin: Any, cout: Any, kernel: int = 3, stride: int = 1, *, act: bool = True) -> Block:
    """``ResNetConvLayer``: a convolution (padding k // 2, no bias), batch norm, and the
    activation (none for a layer's last)."""
    return Block(
        "ResNetConvLayer",
        {
            "convolution": Conv2d(
                cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False
            ),
            "normalization": BatchNorm2d(cout),
            "activation": ReLU() if act else Identity(),
        },
        flow=chain("convolution", "normalization", "activation"),
    )


def _shortcut(cin: Any, cout: Any, stride: int) -> Node:
    """``ResNetShortCut`` when the shape changes (a 1 × 1 convolution and batch norm),
    else ``nn.Identity``."""
    if cin == cout and stride == 1:
        return Leaf(Identity())
    return Block(
        "ResNetShortCut",
        {
            "convolution": Leaf(Conv2d(cin, cout, 1, stride=stride, bias=False), role="shortcut"),
            "normalization": BatchNorm2d(cout),
        },
        flow=chain("convolution", "normalization"),
    )


@frozen(kw_only=True)
class ResNet(VisionModel):
    """ResNet: a 7 × 7 stem to E channels and a max pool, stages of basic or bottleneck
    layers with projected shortcuts where the shape changes, the pixels' mean and a
    classifier (N × the last stage's channels)."""

    command: ClassVar[str] = "resnet"
    function: ClassVar[str] = "resnet"
    title: ClassVar[str] = "ResNet"
    example: ClassVar[str] = "--depths 3,4,6,3 --hidden-sizes 256,512,1024,2048 --labels 1000"
    budget: ClassVar[str] = "26M"
    size_order: ClassVar[tuple[str, ...]] = ("image_size", "channels", "embedding_size", "labels")

    image_size: Any = size(
        "S",
        "The side of the square image in pixels: the input's size (no config field).",
        224,
        names=False,
        solvable=False,
    )
    channels: Any = size(
        "C", "Channels of the pixels (num_channels): 3 for RGB.", 3, solvable=False
    )
    # it decides whether the first stage projects its shortcut (E against its width): a
    # number, never a letter
    embedding_size: Any = size("E", "Channels of the stem (embedding_size).", 64, names=False)
    depths: tuple[int, ...] = size_list("Layers of each stage (depths).", (3, 4, 6, 3))
    hidden_sizes: tuple[int, ...] = size_list(
        "Output channels of each stage (hidden_sizes).", (256, 512, 1024, 2048)
    )
    layer_type: str = choice(
        ("bottleneck", "basic"),
        "bottleneck: 1 × 1 to a quarter of the channels, 3 × 3, 1 × 1 back; basic: two "
        "3 × 3 convolutions (layer_type).",
        "bottleneck",
    )
    downsample_in_first_stage: bool = flag(
        "The first stage strides by 2 too (downsample_in_first_stage).", False
    )
    downsample_in_bottleneck: bool = flag(
        "A bottleneck strides in its first 1 × 1 convolution, not its 3 × 3 "
        "(downsample_in_bottleneck); no tensor changes.",
        False,
    )
    head: str = choice(
        ("cls", "none"),
        "cls: a classifier of N labels on the pooled features "
        "(ResNetForImageClassification); none: the body alone (ResNetModel).",
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

    hf: ClassVar[tuple[HFType, ...]] = (
        HFType(
            model_type="resnet",
            config_class="ResNetConfig",
            classes={
                "ResNetForImageClassification": {"head": "cls"},
                "ResNetModel": {"head": "none"},
            },
            base="resnet",
            keys={
                "channels": "num_channels",
                "embedding_size": "embedding_size",
                "depths": "depths",
                "hidden_sizes": "hidden_sizes",
                "layer_type": "layer_type",
                "downsample_in_first_stage": "downsample_in_first_stage",
                "downsample_in_bottleneck": "downsample_in_bottleneck",
                "labels": "num_labels",
            },
            defaults={
                "num_channels": 3,
                "embedding_size": 64,
                "hidden_sizes": (256, 512, 1024, 2048),
                "depths": (3, 4, 6, 3),
                "layer_type": "bottleneck",
                "hidden_act": "relu",
                "downsample_in_first_stage": False,
                "downsample_in_bottleneck": False,
            },
            # out_features and the rest shape ResNetBackbone's outputs, a class shapecalc
            # does not build
            free=frozenset({"hidden_act", "out_features", "out_indices", "stage_names"}),
        ),
    )

    def check(self) -> None:
        stage_lists(self)
        self.check_labels()
        small = [n for n in self.hidden_sizes if n < REDUCTION]
        if self.layer_type == "bottleneck" and small:
            rule = (
                f"hidden_sizes are >= {REDUCTION} with bottleneck layers (each reduces to "
                f"a {REDUCTION}th of its channels)"
            )
            raise InvalidArgumentError(
                f"{rule}, got {small[0]}",
                layer=self.owner(),
                field="hidden_sizes",
                value=",".join(str(n) for n in self.hidden_sizes),
                rule=rule,
            )

    @classmethod
    def consistent(cls, arguments: dict[str, Any]) -> dict[str, Any]:
        out = agreeing(dict(arguments))
        if out["layer_type"] == "bottleneck":
            out["hidden_sizes"] = tuple(REDUCTION * n for n in out["hidden_sizes"])
        return out

    def _layer(self, cin: Any, cout: Any, stride: int) -> Block:
        if self.layer_type == "basic":
            kind = "ResNetBasicLayer"
            layer = Sequential(_conv(cin, cout, 3, stride), _conv(cout, cout, act=False))
        else:
            kind = "ResNetBottleNeckLayer"
            reduced = cout // REDUCTION
            first = stride if self.downsample_in_bottleneck else 1
            layer = Sequential(
                _conv(cin, reduced, 1, first),
                _conv(reduced, reduced, 3, stride // first),
                _conv(reduced, cout, 1, act=False),
            )
        return Block(
            kind,
            {"shortcut": _shortcut(cin, cout, stride), "layer": layer, "activation": ReLU()},
            flow=chain(residual("layer", shortcut=("shortcut",)), "activation"),
        )

    def _body(self) -> Block:
        stages: list[Node] = []
        cin: Any = self.embedding_size
        for i, (depth, out) in enumerate(zip(self.depths, self.hidden_sizes, strict=True)):
            stride = 2 if i > 0 or self.downsample_in_first_stage else 1
            layers = [self._layer(cin, out, stride)]
            layers += [self._layer(out, out, 1) for _ in range(depth - 1)]
            stages.append(
                Block("ResNetStage", {"layers": Sequential(*layers)}, flow=chain("layers"))
            )
            cin = out
        embedder = Block(
            "ResNetEmbeddings",
            {
                "embedder": _conv(self.channels, self.embedding_size, 7, 2),
                "pooler": MaxPool2d(3, stride=2, padding=1),
            },
            flow=chain("embedder", "pooler"),
        )
        tail = parallel((), "pooler") if self.head == "none" else chain("pooler")
        return Block(
            "ResNetModel",
            {
                "embedder": embedder,
                "encoder": Block(
                    "ResNetEncoder", {"stages": Sequential(*stages)}, flow=chain("stages")
                ),
                "pooler": AdaptiveAvgPool2d((1, 1)),
            },
            flow=chain("embedder", "encoder", tail),
        )

    def build(self) -> Built:
        layout = (("B", "C", self.image_size, self.image_size),)
        if self.head == "none":
            return Built(self._body(), input_layout=layout, group_depth=1)
        classifier = Sequential(
            Flatten(1),
            Leaf(Linear(self.hidden_sizes[-1], self.n_labels), "a score per label", "classifier"),
        )
        root = Block(
            "ResNetForImageClassification",
            {"resnet": self._body(), "classifier": classifier},
            flow=chain("resnet", "classifier"),
        )
        return Built(root, input_layout=layout, group_depth=2)


resnet = ResNet.function_for()
