"""ViT, ConvNeXt, DenseNet and Swin as torchvision builds them, written with the public
composition API only (``shapecalc.Block``, the flow helpers, layer specs, ``Parameter``,
``Cat``, ``Permute``, ...): every name and shape ``named_parameters()`` gives, each
forward as torchvision's code runs it (torchvision/models/vision_transformer.py,
convnext.py, densenet.py and swin_transformer.py). tests/test_zoo_vision.py holds each
against a torch twin written as torchvision writes it.

    >>> vit(num_layers=12).total  # ViT-B/16: torchvision's num_params
    86567656
"""

from __future__ import annotations

from typing import Any

from shapecalc.core.errors import InvalidArgumentError
from shapecalc.core.flow import chain, multiply, parallel, residual, summed
from shapecalc.core.model import Model
from shapecalc.core.own import Parameter
from shapecalc.core.tree import Block, Sequential
from shapecalc.layers.activation import GELU, ReLU
from shapecalc.layers.attention import MultiheadAttention
from shapecalc.layers.conv import Conv2d
from shapecalc.layers.functional import Select
from shapecalc.layers.linear import Dropout, Flatten, Linear
from shapecalc.layers.norm import BatchNorm2d, LayerNorm
from shapecalc.layers.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from shapecalc.layers.tensors import Cat, Expand, Permute
from shapecalc.layers.vision import (
    LayerNorm2d,
    PatchMerging,
    PatchMergingV2,
    ShiftedWindowAttention,
    ShiftedWindowAttentionV2,
    StochasticDepth,
)

__all__ = ["CONVNEXT", "DENSENET", "SWIN", "SWIN_V2", "convnext", "densenet", "swin", "vit"]


def _positive(owner: str, **values: Any) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgumentError(
                f"{owner}: {name} must be a positive integer, got {value!r}",
                layer=owner,
                field=name,
                value=value,
                rule=f"{name} >= 1",
            )


# -- ViT -------------------------------------------------------------------------------------
def encoder_block(hidden: int, heads: int, mlp: int, dropout: float = 0.0) -> Block:
    """torchvision's EncoderBlock: ``x = x + dropout(attention(ln_1(x)))``, then
    ``x + mlp(ln_2(x))``; the attention is ``nn.MultiheadAttention`` (batch first) on
    query = key = value, the MLP torchvision's MLPBlock (Linear, GELU, Dropout, Linear,
    Dropout)."""
    return Block(
        "EncoderBlock",
        {
            "ln_1": LayerNorm(hidden, eps=1e-6),
            "self_attention": MultiheadAttention(hidden, heads, batch_first=True),
            "dropout": Dropout(dropout),
            "ln_2": LayerNorm(hidden, eps=1e-6),
            "mlp": Sequential(
                Linear(hidden, mlp), GELU(), Dropout(dropout), Linear(mlp, hidden), Dropout(dropout)
            ),
        },
        flow=chain(
            residual("ln_1", parallel((), (), ()), "self_attention", "dropout"),
            residual("ln_2", "mlp"),
        ),
    )


def vit(
    image_size: int = 224,
    patch_size: int = 16,
    num_layers: int = 12,
    num_heads: int = 12,
    hidden_dim: int = 768,
    mlp_dim: int = 3072,
    num_classes: int = 1000,
) -> Model:
    """torchvision's VisionTransformer (ViT-B/16 by default): the patches by ``conv_proj``,
    flattened to tokens, the ``class_token`` before them, ``encoder.pos_embedding``
    added, the encoder layers ``encoder.layers.encoder_layer_{i}``, ``encoder.ln``, the
    class token's output into ``heads.head``."""
    _positive(
        "vit",
        image_size=image_size,
        patch_size=patch_size,
        num_layers=num_layers,
        num_heads=num_heads,
        hidden_dim=hidden_dim,
        mlp_dim=mlp_dim,
        num_classes=num_classes,
    )
    if image_size % patch_size:
        raise InvalidArgumentError(
            f"vit: image_size {image_size} is not divisible by patch_size {patch_size} "
            f"({image_size} % {patch_size} = {image_size % patch_size})",
            layer="vit",
            field="image_size",
            value=image_size,
            rule="image_size is divisible by patch_size",
            related=("patch_size",),
        )
    seq_length = (image_size // patch_size) ** 2 + 1
    block = encoder_block(hidden_dim, num_heads, mlp_dim)
    layers = Block("Sequential", {f"encoder_layer_{i}": block for i in range(num_layers)})
    encoder = Block(
        "Encoder",
        {
            "pos_embedding": Parameter((1, seq_length, hidden_dim), role="position embedding"),
            "dropout": Dropout(0.0),
            "layers": layers,
            "ln": LayerNorm(hidden_dim, eps=1e-6),
        },
        flow=chain(summed((), "pos_embedding"), "dropout", "layers", "ln"),
    )
    root = Block(
        "VisionTransformer",
        {
            "conv_proj": Conv2d(3, hidden_dim, patch_size, stride=patch_size),
            "class_token": Parameter((1, 1, hidden_dim), role="class token"),
            "encoder": encoder,
            "heads": Block("Sequential", {"head": Linear(hidden_dim, num_classes)}),
        },
        flow=chain(
            "conv_proj",
            Flatten(2),  # (n, hidden, n_h, n_w) -> (n, hidden, n_h·n_w)
            Permute((0, 2, 1)),  # -> (n, n_h·n_w, hidden)
            parallel("class_token", ()),
            Expand((0,)),  # class_token.expand(n, -1, -1)
            Cat(1),
            "encoder",
            Select(1, 0),  # x[:, 0]
            "heads",
        ),
    )
    name = f"ViT (patch {patch_size}, {num_layers} layers, width {hidden_dim})"
    return Model(name, root, input_layout=(("B", 3, image_size, image_size),))


# -- ConvNeXt --------------------------------------------------------------------------------
#: torchvision's ConvNeXt settings: (channels, blocks) per stage, stochastic depth
CONVNEXT: dict[str, tuple[tuple[tuple[int, int], ...], float]] = {
    "tiny": (((96, 3), (192, 3), (384, 9), (768, 3)), 0.1),
    "small": (((96, 3), (192, 3), (384, 27), (768, 3)), 0.4),
    "base": (((128, 3), (256, 3), (512, 27), (1024, 3)), 0.5),
    "large": (((192, 3), (384, 3), (768, 27), (1536, 3)), 0.5),
}


def cn_block(dim: int, sd_prob: float) -> Block:
    """torchvision's CNBlock: depthwise 7×7, to NHWC, LayerNorm, Linear to 4·dim, GELU,
    Linear back, to NCHW; times ``layer_scale`` (dim, 1, 1); stochastic depth; plus the
    input."""
    return Block(
        "CNBlock",
        {
            "block": Sequential(
                Conv2d(dim, dim, 7, padding=3, groups=dim, bias=True),
                Permute((0, 2, 3, 1)),
                LayerNorm(dim, eps=1e-6),
                Linear(dim, 4 * dim),
                GELU(),
                Linear(4 * dim, dim),
                Permute((0, 3, 1, 2)),
            ),
            "layer_scale": Parameter((dim, 1, 1), role="layer scale, one per channel"),
            "stochastic_depth": StochasticDepth(sd_prob, "row"),
        },
        flow=residual(multiply("layer_scale", "block"), "stochastic_depth"),
    )


def convnext(
    size: str = "tiny",
    num_classes: int = 1000,
    image_size: int = 224,
    *,
    stages: tuple[tuple[int, int], ...] | None = None,
    stochastic_depth_prob: float = 0.1,
) -> Model:
    """torchvision's ConvNeXt (tiny, small, base or large): ``features`` (the 4×4 stem,
    the stages and the downsampling between them), ``avgpool``, ``classifier``. Other
    ``stages`` ((channels, blocks) each) and ``stochastic_depth_prob`` make the ConvNeXt
    torchvision's class builds from such CNBlockConfigs."""
    if stages is not None:
        if not stages or any(len(s) != 2 for s in stages):
            raise InvalidArgumentError(
                f"convnext: stages are (channels, blocks) pairs, got {stages!r}",
                layer="convnext",
                field="stages",
                value=stages,
                rule="one (channels, blocks) pair or more",
            )
        for channels, blocks in stages:
            _positive("convnext", channels=channels, blocks=blocks)
        setting = (tuple(stages), stochastic_depth_prob)
        return _convnext("custom", setting, num_classes, image_size)
    if size not in CONVNEXT:
        raise InvalidArgumentError(
            f"convnext: size must be one of {', '.join(CONVNEXT)}, got {size!r}",
            layer="convnext",
            field="size",
            value=size,
            rule=f"one of {', '.join(CONVNEXT)}",
        )
    return _convnext(size, CONVNEXT[size], num_classes, image_size)


def _convnext(
    size: str,
    setting: tuple[tuple[tuple[int, int], ...], float],
    num_classes: int,
    image_size: int,
) -> Model:
    _positive("convnext", num_classes=num_classes, image_size=image_size)
    stages, depth_prob = setting
    total = sum(n for _, n in stages)
    first = stages[0][0]
    layers: list[Any] = [Sequential(Conv2d(3, first, 4, stride=4), LayerNorm2d(first, eps=1e-6))]
    block_id = 0
    for i, (channels, count) in enumerate(stages):
        blocks = []
        for _ in range(count):
            blocks.append(cn_block(channels, depth_prob * block_id / max(total - 1.0, 1.0)))
            block_id += 1
        layers.append(Sequential(*blocks))
        if i + 1 < len(stages):
            out = stages[i + 1][0]
            layers.append(
                Sequential(LayerNorm2d(channels, eps=1e-6), Conv2d(channels, out, 2, stride=2))
            )
    last = stages[-1][0]
    root = Block(
        "ConvNeXt",
        {
            "features": Sequential(*layers),
            "avgpool": AdaptiveAvgPool2d(1),
            "classifier": Sequential(
                LayerNorm2d(last, eps=1e-6), Flatten(1), Linear(last, num_classes)
            ),
        },
        flow=chain("features", "avgpool", "classifier"),
    )
    return Model(f"ConvNeXt-{size}", root, input_layout=(("B", 3, image_size, image_size),))


# -- DenseNet --------------------------------------------------------------------------------
#: torchvision's DenseNets: growth rate, layers per block, initial features
DENSENET: dict[int, tuple[int, tuple[int, ...], int]] = {
    121: (32, (6, 12, 24, 16), 64),
    161: (48, (6, 12, 36, 24), 96),
    169: (32, (6, 12, 32, 32), 64),
    201: (32, (6, 12, 48, 32), 64),
}


def dense_layer(cin: int, growth: int, bn_size: int) -> Block:
    """torchvision's _DenseLayer: the features so far concatenated, BN, ReLU, 1×1 conv to
    bn_size·growth, BN, ReLU, 3×3 conv to growth: the new features."""
    width = bn_size * growth
    return Block(
        "_DenseLayer",
        {
            "norm1": BatchNorm2d(cin),
            "relu1": ReLU(inplace=True),
            "conv1": Conv2d(cin, width, 1, bias=False),
            "norm2": BatchNorm2d(width),
            "relu2": ReLU(inplace=True),
            "conv2": Conv2d(width, growth, 3, padding=1, bias=False),
        },
        flow=chain(Cat(1), "norm1", "relu1", "conv1", "norm2", "relu2", "conv2"),
    )


def densenet(depth: int = 121, num_classes: int = 1000, image_size: int = 224) -> Model:
    """torchvision's DenseNet-121, 161, 169 or 201: each dense block passes every earlier
    layer's features to the next layer (``parallel((), layer)`` keeps them side by side)
    and concatenates them all at its end."""
    if depth not in DENSENET:
        listed = ", ".join(str(d) for d in DENSENET)
        raise InvalidArgumentError(
            f"densenet: depth must be one of {listed}, got {depth!r}",
            layer="densenet",
            field="depth",
            value=depth,
            rule=f"one of {listed}",
        )
    _positive("densenet", num_classes=num_classes, image_size=image_size)
    growth, blocks, features = DENSENET[depth]
    bn_size = 4
    children: dict[str, Any] = {
        "conv0": Conv2d(3, features, 7, stride=2, padding=3, bias=False),
        "norm0": BatchNorm2d(features),
        "relu0": ReLU(inplace=True),
        "pool0": MaxPool2d(3, stride=2, padding=1),
    }
    for i, count in enumerate(blocks):
        names = [f"denselayer{j + 1}" for j in range(count)]
        layers = {
            n: dense_layer(features + j * growth, growth, bn_size) for j, n in enumerate(names)
        }
        children[f"denseblock{i + 1}"] = Block(
            "_DenseBlock", layers, flow=chain(*(parallel((), n) for n in names), Cat(1))
        )
        features += count * growth
        if i + 1 < len(blocks):
            children[f"transition{i + 1}"] = Block(
                "_Transition",
                {
                    "norm": BatchNorm2d(features),
                    "relu": ReLU(inplace=True),
                    "conv": Conv2d(features, features // 2, 1, bias=False),
                    "pool": AvgPool2d(2, stride=2),
                },
            )
            features //= 2
    children["norm5"] = BatchNorm2d(features)
    root = Block(
        "DenseNet",
        {"features": Block("Sequential", children), "classifier": Linear(features, num_classes)},
        flow=chain(
            "features", ReLU(inplace=True), AdaptiveAvgPool2d((1, 1)), Flatten(1), "classifier"
        ),
    )
    return Model(f"DenseNet-{depth}", root, input_layout=(("B", 3, image_size, image_size),))


# -- Swin ------------------------------------------------------------------------------------
#: torchvision's Swin (v1): embed_dim, depths, heads, stochastic depth (patch 4, window 7)
SWIN: dict[str, tuple[int, tuple[int, ...], tuple[int, ...], float]] = {
    "t": (96, (2, 2, 6, 2), (3, 6, 12, 24), 0.2),
    "s": (96, (2, 2, 18, 2), (3, 6, 12, 24), 0.3),
    "b": (128, (2, 2, 18, 2), (4, 8, 16, 32), 0.5),
}


#: torchvision's Swin V2: embed_dim, depths, heads, stochastic depth (patch 4, window 8)
SWIN_V2: dict[str, tuple[int, tuple[int, ...], tuple[int, ...], float]] = {
    "v2_t": (96, (2, 2, 6, 2), (3, 6, 12, 24), 0.2),
    "v2_s": (96, (2, 2, 18, 2), (3, 6, 12, 24), 0.3),
    "v2_b": (128, (2, 2, 18, 2), (4, 8, 16, 32), 0.5),
}


def swin_block(
    dim: int,
    heads: int,
    window: tuple[int, int],
    shift: tuple[int, int],
    sd: float,
    v2: bool = False,
) -> Block:
    """torchvision's SwinTransformerBlock: ``x + sd(attn(norm1(x)))``, then
    ``x + sd(mlp(norm2(x)))``, on (N, H, W, C); SwinTransformerBlockV2 normalises after
    the attention and the MLP instead: ``x + sd(norm1(attn(x)))``."""
    attention = (ShiftedWindowAttentionV2 if v2 else ShiftedWindowAttention)(
        dim, window, shift, heads
    )
    if v2:
        flow = chain(
            residual("attn", "norm1", "stochastic_depth"),
            residual("mlp", "norm2", "stochastic_depth"),
        )
    else:
        flow = chain(
            residual("norm1", "attn", "stochastic_depth"),
            residual("norm2", "mlp", "stochastic_depth"),
        )
    return Block(
        "SwinTransformerBlockV2" if v2 else "SwinTransformerBlock",
        {
            "norm1": LayerNorm(dim),
            "attn": attention,
            "stochastic_depth": StochasticDepth(sd, "row"),
            "norm2": LayerNorm(dim),
            "mlp": Sequential(
                Linear(dim, 4 * dim), GELU(), Dropout(0.0), Linear(4 * dim, dim), Dropout(0.0)
            ),
        },
        flow=flow,
    )


def swin(
    size: str = "t",
    num_classes: int = 1000,
    image_size: int = 224,
    *,
    embed_dim: int | None = None,
    depths: tuple[int, ...] | None = None,
    num_heads: tuple[int, ...] | None = None,
    window_size: tuple[int, int] | None = None,
    stochastic_depth_prob: float | None = None,
) -> Model:
    """torchvision's Swin Transformer (v1: swin_t, swin_s, swin_b by ``size``; v2: v2_t,
    v2_s, v2_b; the other arguments as SwinTransformer takes them): the 4×4 patches to
    channels last, the stages of blocks whose windows shift every second block,
    PatchMerging (V2: PatchMergingV2) between them, ``norm``, the average, ``head``.
    The window is 7×7 (V2: 8×8) unless ``window_size`` says."""
    sizes = {**SWIN, **SWIN_V2}
    if size not in sizes:
        raise InvalidArgumentError(
            f"swin: size must be one of {', '.join(sizes)}, got {size!r}",
            layer="swin",
            field="size",
            value=size,
            rule=f"one of {', '.join(sizes)}",
        )
    v2 = size in SWIN_V2
    window_size = window_size or ((8, 8) if v2 else (7, 7))
    dim0, depths0, heads0, sd0 = sizes[size]
    embed = dim0 if embed_dim is None else embed_dim
    depths = depths0 if depths is None else tuple(depths)
    heads = heads0 if num_heads is None else tuple(num_heads)
    sd_prob = sd0 if stochastic_depth_prob is None else stochastic_depth_prob
    _positive("swin", embed_dim=embed, num_classes=num_classes, image_size=image_size)
    if len(heads) != len(depths):
        raise InvalidArgumentError(
            f"swin: num_heads has {len(heads)} stages, depths {len(depths)}",
            layer="swin",
            field="num_heads",
            value=heads,
            rule="one head count per stage",
            related=("depths",),
        )
    window = tuple(window_size)
    total = sum(depths)
    layers: list[Any] = [
        Sequential(Conv2d(3, embed, 4, stride=4), Permute((0, 2, 3, 1)), LayerNorm(embed))
    ]
    block_id = 0
    for stage, (count, n_heads) in enumerate(zip(depths, heads, strict=True)):
        dim = embed * 2**stage
        blocks = []
        for i in range(count):
            shift = (0, 0) if i % 2 == 0 else (window[0] // 2, window[1] // 2)
            sd = sd_prob * float(block_id) / max(total - 1, 1)
            blocks.append(swin_block(dim, n_heads, (window[0], window[1]), shift, sd, v2))
            block_id += 1
        layers.append(Sequential(*blocks))
        if stage < len(depths) - 1:
            layers.append(PatchMergingV2(dim) if v2 else PatchMerging(dim))
    features = embed * 2 ** (len(depths) - 1)
    root = Block(
        "SwinTransformer",
        {
            "features": Sequential(*layers),
            "norm": LayerNorm(features),
            "avgpool": AdaptiveAvgPool2d(1),
            "head": Linear(features, num_classes),
        },
        flow=chain("features", "norm", Permute((0, 3, 1, 2)), "avgpool", Flatten(1), "head"),
    )
    title = f"Swin-{size.upper()}" if not v2 else f"Swin-V2-{size[3:].upper()}"
    return Model(title, root, input_layout=(("B", 3, image_size, image_size),))
