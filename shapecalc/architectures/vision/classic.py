"""AlexNet, SqueezeNet 1.0 and 1.1, GoogLeNet and Inception v3, as torchvision's
alexnet.py, squeezenet.py, googlenet.py and inception.py build them: AlexNet's five
convolutions and three fully connected layers over a 6×6 average; SqueezeNet's Fire
modules (a 1×1 squeeze, then 1×1 and 3×3 expands side by side, concatenated) and its
classifier, a 1×1 convolution to the classes averaged over the map; the Inception
networks' branches of BasicConv2d (convolution, BatchNorm with eps 0.001, ReLU)
concatenated, their auxiliary heads tensors of the model that run in training only."""

from __future__ import annotations

from typing import Any

from shapecalc.core.flow import chain, parallel
from shapecalc.core.tree import Block, Sequential
from shapecalc.layers.activation import ReLU
from shapecalc.layers.conv import Conv2d
from shapecalc.layers.linear import Dropout, Flatten, Linear
from shapecalc.layers.norm import BatchNorm2d
from shapecalc.layers.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from shapecalc.layers.tensors import Cat

__all__ = ["MODELS", "alexnet", "classic", "googlenet", "inception_v3", "squeezenet"]

#: the models this module builds -> their builder's name
MODELS: dict[str, str] = {
    "alexnet": "alexnet",
    "squeezenet1_0": "squeezenet",
    "squeezenet1_1": "squeezenet",
    "googlenet": "googlenet",
    "inception_v3": "inception_v3",
}


def classic(name: str, num_classes: int, aux_logits: bool = True) -> Block:
    """The root of torchvision's ``name`` (a key of :data:`MODELS`)."""
    if MODELS[name] == "alexnet":
        return alexnet(num_classes)
    if MODELS[name] == "googlenet":
        return googlenet(num_classes, aux_logits)
    if MODELS[name] == "inception_v3":
        return inception_v3(num_classes, aux_logits)
    return squeezenet(name.removeprefix("squeezenet"), num_classes)


def alexnet(num_classes: int = 1000) -> Block:
    """alexnet.py's ``AlexNet``: features, a 6×6 adaptive average, the classifier."""
    features = Sequential(
        *(Conv2d(3, 64, 11, stride=4, padding=2), ReLU(True), MaxPool2d(3, stride=2)),
        *(Conv2d(64, 192, 5, padding=2), ReLU(True), MaxPool2d(3, stride=2)),
        *(Conv2d(192, 384, 3, padding=1), ReLU(True)),
        *(Conv2d(384, 256, 3, padding=1), ReLU(True)),
        *(Conv2d(256, 256, 3, padding=1), ReLU(True), MaxPool2d(3, stride=2)),
    )
    classifier = Sequential(
        *(Dropout(0.5), Linear(256 * 6 * 6, 4096), ReLU(True)),
        *(Dropout(0.5), Linear(4096, 4096), ReLU(True)),
        Linear(4096, num_classes),
    )
    return Block(
        "AlexNet",
        {"features": features, "avgpool": AdaptiveAvgPool2d((6, 6)), "classifier": classifier},
        flow=chain("features", "avgpool", Flatten(1), "classifier"),
    )


def fire(cin: int, squeeze: int, expand1x1: int, expand3x3: int) -> Block:
    """squeezenet.py's ``Fire``: the squeeze and its ReLU, then the 1×1 and 3×3 expands
    (each with its ReLU) on it side by side, concatenated along the channels."""
    return Block(
        "Fire",
        {
            "squeeze": Conv2d(cin, squeeze, 1),
            "squeeze_activation": ReLU(True),
            "expand1x1": Conv2d(squeeze, expand1x1, 1),
            "expand1x1_activation": ReLU(True),
            "expand3x3": Conv2d(squeeze, expand3x3, 3, padding=1),
            "expand3x3_activation": ReLU(True),
        },
        flow=chain(
            "squeeze",
            "squeeze_activation",
            parallel(("expand1x1", "expand1x1_activation"), ("expand3x3", "expand3x3_activation")),
            Cat(1),
        ),
    )


def squeezenet(version: str = "1_0", num_classes: int = 1000) -> Block:
    """squeezenet.py's ``SqueezeNet(version)``: 1_0 a 7×7 stem of 96 channels, 1_1 a 3×3
    stem of 64 and its pools earlier; the classifier a 1×1 convolution to the classes,
    ReLU, and the average over the map, flattened."""

    def pool() -> MaxPool2d:
        return MaxPool2d(3, stride=2, ceil_mode=True)

    layers: list[Any]
    if version == "1_0":
        layers = [Conv2d(3, 96, 7, stride=2), ReLU(True), pool()]
        layers += [fire(96, 16, 64, 64), fire(128, 16, 64, 64), fire(128, 32, 128, 128), pool()]
        layers += [fire(256, 32, 128, 128), fire(256, 48, 192, 192), fire(384, 48, 192, 192)]
        layers += [fire(384, 64, 256, 256), pool(), fire(512, 64, 256, 256)]
    else:
        layers = [Conv2d(3, 64, 3, stride=2), ReLU(True), pool()]
        layers += [fire(64, 16, 64, 64), fire(128, 16, 64, 64), pool()]
        layers += [fire(128, 32, 128, 128), fire(256, 32, 128, 128), pool()]
        layers += [fire(256, 48, 192, 192), fire(384, 48, 192, 192)]
        layers += [fire(384, 64, 256, 256), fire(512, 64, 256, 256)]
    classifier = Sequential(
        Dropout(0.5), Conv2d(512, num_classes, 1), ReLU(True), AdaptiveAvgPool2d((1, 1))
    )
    return Block(
        "SqueezeNet",
        {"features": Sequential(*layers), "classifier": classifier},
        flow=chain("features", "classifier", Flatten(1)),
    )


def basic_conv(cin: int, cout: int, kernel_size: Any, **kwargs: Any) -> Block:
    """googlenet.py's and inception.py's ``BasicConv2d``: a convolution without bias,
    BatchNorm2d with eps 0.001, then ``F.relu`` (a function, no module)."""
    return Block(
        "BasicConv2d",
        {
            "conv": Conv2d(cin, cout, kernel_size, bias=False, **kwargs),
            "bn": BatchNorm2d(cout, eps=0.001),
        },
        flow=chain("conv", "bn", ReLU(True)),
    )


def inception(
    cin: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int, pool_proj: int
) -> Block:
    """googlenet.py's ``Inception``: four branches on the input, concatenated (its "5×5"
    branch is a 3×3 convolution, as torchvision writes it)."""
    return Block(
        "Inception",
        {
            "branch1": basic_conv(cin, ch1x1, 1),
            "branch2": Sequential(
                basic_conv(cin, ch3x3red, 1), basic_conv(ch3x3red, ch3x3, 3, padding=1)
            ),
            "branch3": Sequential(
                basic_conv(cin, ch5x5red, 1), basic_conv(ch5x5red, ch5x5, 3, padding=1)
            ),
            "branch4": Sequential(
                MaxPool2d(3, stride=1, padding=1, ceil_mode=True), basic_conv(cin, pool_proj, 1)
            ),
        },
        flow=chain(parallel("branch1", "branch2", "branch3", "branch4"), Cat(1)),
    )


def inception_aux(cin: int, num_classes: int) -> Block:
    """googlenet.py's ``InceptionAux``: a 4×4 average, a 1×1 BasicConv2d to 128, fc1
    (2048 -> 1024) with ReLU, dropout 0.7, fc2 to the classes. Run only in training."""
    return Block(
        "InceptionAux",
        {
            "conv": basic_conv(cin, 128, 1),
            "fc1": Linear(2048, 1024),
            "fc2": Linear(1024, num_classes),
            "dropout": Dropout(0.7),
        },
        flow=chain(
            AdaptiveAvgPool2d((4, 4)), "conv", Flatten(1), "fc1", ReLU(True), "dropout", "fc2"
        ),
    )


def googlenet(num_classes: int = 1000, aux_logits: bool = True) -> Block:
    """googlenet.py's ``GoogLeNet`` as ``googlenet(weights=None)`` builds it: aux_logits
    on (``aux1`` after inception4a, ``aux2`` after inception4d: their tensors are the
    model's, but the forward runs them in training only, and this is the evaluation
    forward), transform_input off. Its pretrained weights' builder drops them."""
    pool = {"ceil_mode": True}
    body: dict[str, Any] = {
        "conv1": basic_conv(3, 64, 7, stride=2, padding=3),
        "maxpool1": MaxPool2d(3, stride=2, **pool),
        "conv2": basic_conv(64, 64, 1),
        "conv3": basic_conv(64, 192, 3, padding=1),
        "maxpool2": MaxPool2d(3, stride=2, **pool),
        "inception3a": inception(192, 64, 96, 128, 16, 32, 32),
        "inception3b": inception(256, 128, 128, 192, 32, 96, 64),
        "maxpool3": MaxPool2d(3, stride=2, **pool),
        "inception4a": inception(480, 192, 96, 208, 16, 48, 64),
        "inception4b": inception(512, 160, 112, 224, 24, 64, 64),
        "inception4c": inception(512, 128, 128, 256, 24, 64, 64),
        "inception4d": inception(512, 112, 144, 288, 32, 64, 64),
        "inception4e": inception(528, 256, 160, 320, 32, 128, 128),
        "maxpool4": MaxPool2d(2, stride=2, **pool),
        "inception5a": inception(832, 256, 160, 320, 32, 128, 128),
        "inception5b": inception(832, 384, 192, 384, 48, 128, 128),
    }
    # registered after inception5b, before avgpool, as torchvision's __init__ does
    aux = (
        {"aux1": inception_aux(512, num_classes), "aux2": inception_aux(528, num_classes)}
        if aux_logits
        else {}
    )
    head = {"avgpool": AdaptiveAvgPool2d((1, 1)), "dropout": Dropout(0.2)}
    return Block(
        "GoogLeNet",
        {**body, **aux, **head, "fc": Linear(1024, num_classes)},
        flow=chain(*body, "avgpool", Flatten(1), "dropout", "fc"),
    )


def _convs(*specs: tuple[str, int, int, Any, dict[str, Any]]) -> dict[str, Block]:
    """Named BasicConv2d children: (name, in, out, kernel, keywords)."""
    return {name: basic_conv(cin, cout, k, **kw) for name, cin, cout, k, kw in specs}


def _avg() -> AvgPool2d:
    return AvgPool2d(3, stride=1, padding=1)  # F.avg_pool2d(x, 3, stride=1, padding=1)


_ROW, _COL = {"padding": (0, 3)}, {"padding": (3, 0)}  # (1, 7) and (7, 1) kernels


def inception_a(cin: int, pool_features: int) -> Block:
    """inception.py's ``InceptionA``: 1×1, 5×5, double 3×3 and pooled branches."""
    return Block(
        "InceptionA",
        _convs(
            ("branch1x1", cin, 64, 1, {}),
            ("branch5x5_1", cin, 48, 1, {}),
            ("branch5x5_2", 48, 64, 5, {"padding": 2}),
            ("branch3x3dbl_1", cin, 64, 1, {}),
            ("branch3x3dbl_2", 64, 96, 3, {"padding": 1}),
            ("branch3x3dbl_3", 96, 96, 3, {"padding": 1}),
            ("branch_pool", cin, pool_features, 1, {}),
        ),
        flow=chain(
            parallel(
                "branch1x1",
                ("branch5x5_1", "branch5x5_2"),
                ("branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"),
                (_avg(), "branch_pool"),
            ),
            Cat(1),
        ),
    )


def inception_b(cin: int) -> Block:
    """inception.py's ``InceptionB``: a strided 3×3, a strided double 3×3, a max pool."""
    return Block(
        "InceptionB",
        _convs(
            ("branch3x3", cin, 384, 3, {"stride": 2}),
            ("branch3x3dbl_1", cin, 64, 1, {}),
            ("branch3x3dbl_2", 64, 96, 3, {"padding": 1}),
            ("branch3x3dbl_3", 96, 96, 3, {"stride": 2}),
        ),
        flow=chain(
            parallel(
                "branch3x3",
                ("branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"),
                MaxPool2d(3, stride=2),
            ),
            Cat(1),
        ),
    )


def inception_c(cin: int, c7: int) -> Block:
    """inception.py's ``InceptionC``: 1×1, factorised 7×7, double factorised 7×7, pooled."""
    return Block(
        "InceptionC",
        _convs(
            ("branch1x1", cin, 192, 1, {}),
            ("branch7x7_1", cin, c7, 1, {}),
            ("branch7x7_2", c7, c7, (1, 7), _ROW),
            ("branch7x7_3", c7, 192, (7, 1), _COL),
            ("branch7x7dbl_1", cin, c7, 1, {}),
            ("branch7x7dbl_2", c7, c7, (7, 1), _COL),
            ("branch7x7dbl_3", c7, c7, (1, 7), _ROW),
            ("branch7x7dbl_4", c7, c7, (7, 1), _COL),
            ("branch7x7dbl_5", c7, 192, (1, 7), _ROW),
            ("branch_pool", cin, 192, 1, {}),
        ),
        flow=chain(
            parallel(
                "branch1x1",
                ("branch7x7_1", "branch7x7_2", "branch7x7_3"),
                tuple(f"branch7x7dbl_{i}" for i in range(1, 6)),
                (_avg(), "branch_pool"),
            ),
            Cat(1),
        ),
    )


def inception_d(cin: int) -> Block:
    """inception.py's ``InceptionD``: strided 3×3 and 7×7×3 branches, a max pool."""
    return Block(
        "InceptionD",
        _convs(
            ("branch3x3_1", cin, 192, 1, {}),
            ("branch3x3_2", 192, 320, 3, {"stride": 2}),
            ("branch7x7x3_1", cin, 192, 1, {}),
            ("branch7x7x3_2", 192, 192, (1, 7), _ROW),
            ("branch7x7x3_3", 192, 192, (7, 1), _COL),
            ("branch7x7x3_4", 192, 192, 3, {"stride": 2}),
        ),
        flow=chain(
            parallel(
                ("branch3x3_1", "branch3x3_2"),
                tuple(f"branch7x7x3_{i}" for i in range(1, 5)),
                MaxPool2d(3, stride=2),
            ),
            Cat(1),
        ),
    )


def inception_e(cin: int) -> Block:
    """inception.py's ``InceptionE``: 1×1; 3×3 split into 1×3 and 3×1 side by side; a
    3×3 then the same split; pooled."""
    return Block(
        "InceptionE",
        _convs(
            ("branch1x1", cin, 320, 1, {}),
            ("branch3x3_1", cin, 384, 1, {}),
            ("branch3x3_2a", 384, 384, (1, 3), {"padding": (0, 1)}),
            ("branch3x3_2b", 384, 384, (3, 1), {"padding": (1, 0)}),
            ("branch3x3dbl_1", cin, 448, 1, {}),
            ("branch3x3dbl_2", 448, 384, 3, {"padding": 1}),
            ("branch3x3dbl_3a", 384, 384, (1, 3), {"padding": (0, 1)}),
            ("branch3x3dbl_3b", 384, 384, (3, 1), {"padding": (1, 0)}),
            ("branch_pool", cin, 192, 1, {}),
        ),
        flow=chain(
            parallel(
                "branch1x1",
                ("branch3x3_1", parallel("branch3x3_2a", "branch3x3_2b"), Cat(1)),
                (
                    "branch3x3dbl_1",
                    "branch3x3dbl_2",
                    parallel("branch3x3dbl_3a", "branch3x3dbl_3b"),
                    Cat(1),
                ),
                (_avg(), "branch_pool"),
            ),
            Cat(1),
        ),
    )


def inception_v3_aux(cin: int, num_classes: int) -> Block:
    """inception.py's ``InceptionAux``: a 5×5 average of stride 3, conv0 (1×1 to 128),
    conv1 (5×5 to 768), the average over the map, fc. Run only in training."""
    return Block(
        "InceptionAux",
        {
            **_convs(("conv0", cin, 128, 1, {}), ("conv1", 128, 768, 5, {})),
            "fc": Linear(768, num_classes),
        },
        flow=chain(
            AvgPool2d(5, stride=3),
            "conv0",
            "conv1",
            AdaptiveAvgPool2d((1, 1)),
            Flatten(1),
            "fc",
        ),
    )


def inception_v3(num_classes: int = 1000, aux_logits: bool = True) -> Block:
    """inception.py's ``Inception3`` as ``inception_v3(weights=None)`` builds it:
    aux_logits on (``AuxLogits`` after Mixed_6e, run in training only; this is the
    evaluation forward), transform_input off (its pretrained weights turn it on: an
    elementwise rescale of the channels, no tensor)."""
    stem = _convs(
        ("Conv2d_1a_3x3", 3, 32, 3, {"stride": 2}),
        ("Conv2d_2a_3x3", 32, 32, 3, {}),
        ("Conv2d_2b_3x3", 32, 64, 3, {"padding": 1}),
    )
    body: dict[str, Any] = {
        **stem,
        "maxpool1": MaxPool2d(3, stride=2),
        **_convs(("Conv2d_3b_1x1", 64, 80, 1, {}), ("Conv2d_4a_3x3", 80, 192, 3, {})),
        "maxpool2": MaxPool2d(3, stride=2),
        "Mixed_5b": inception_a(192, 32),
        "Mixed_5c": inception_a(256, 64),
        "Mixed_5d": inception_a(288, 64),
        "Mixed_6a": inception_b(288),
        "Mixed_6b": inception_c(768, 128),
        "Mixed_6c": inception_c(768, 160),
        "Mixed_6d": inception_c(768, 160),
        "Mixed_6e": inception_c(768, 192),
    }
    aux = {"AuxLogits": inception_v3_aux(768, num_classes)} if aux_logits else {}
    tail: dict[str, Any] = {
        "Mixed_7a": inception_d(768),
        "Mixed_7b": inception_e(1280),
        "Mixed_7c": inception_e(2048),
        "avgpool": AdaptiveAvgPool2d((1, 1)),
        "dropout": Dropout(0.5),
        "fc": Linear(2048, num_classes),
    }
    return Block(
        "Inception3",
        {**body, **aux, **tail},
        flow=chain(
            *body, "Mixed_7a", "Mixed_7b", "Mixed_7c", "avgpool", "dropout", Flatten(1), "fc"
        ),
    )
