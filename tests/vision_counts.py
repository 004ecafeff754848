"""Known totals of the Hugging Face vision types, merged into ARCHITECTURE_COUNTS
(tests/test_known_counts.py): published figures and counts derived by hand."""

from __future__ import annotations

from typing import Any


def _vit_layer(h: int, i: int) -> int:
    """q, k, v, o (H × H and H each), two LayerNorms, fc1 and fc2."""
    return 4 * (h * h + h) + 2 * 2 * h + (h * i + i) + (i * h + h)


#: ViT-B/16 for 224 × 224 images: 196 patches
_VIT_B = 768 * 3 * 16 * 16 + 768 + 768 + 197 * 768 + 12 * _vit_layer(768, 3072) + 2 * 768

_B: dict[str, Any] = {"hidden": 768, "layers": 12, "heads": 12}


def _dinov2(h: int, layers: int, patches: int, *, swiglu: bool = False) -> int:
    """Dinov2Model: embeddings (class and mask tokens, positions, the 14 × 14 patch conv),
    blocks (two LayerNorms, q k v o, two layer scales, the MLP), the final LayerNorm."""
    inner = ((2 * 4 * h) // 3 + 7) // 8 * 8 if swiglu else 4 * h
    mlp = 3 * h * inner + 2 * inner + h if swiglu else 2 * h * inner + inner + h
    layer = 2 * 2 * h + 4 * (h * h + h) + 2 * h + mlp
    return h + h + (patches + 1) * h + h * 3 * 14 * 14 + h + layers * layer + 2 * h


def _convnext(depths: tuple[int, ...], sizes: tuple[int, ...], labels: int) -> int:
    """The stem (4 × 4 conv and LayerNorm), downsampling (LayerNorm, 2 × 2 conv) before
    each stage but the first, blocks (layer scale, 7 × 7 depthwise conv, LayerNorm, C ->
    4·C -> C), the final LayerNorm and the classifier."""
    total = sizes[0] * 3 * 16 + sizes[0] + 2 * sizes[0]
    for i, (n, c) in enumerate(zip(depths, sizes, strict=True)):
        if i:
            total += 2 * sizes[i - 1] + c * sizes[i - 1] * 4 + c
        total += n * (c + c * 49 + c + 2 * c + (c * 4 * c + 4 * c) + (4 * c * c + c))
    last = sizes[-1]
    return total + 2 * last + (last * labels + labels if labels else 0)


def _resnet50(labels: int) -> int:
    """The 7 × 7 stem (64) with its batch norm, 3-4-6-3 bottlenecks (1 × 1, 3 × 3, 1 × 1,
    each with its batch norm; a projected shortcut first in each stage), the classifier."""
    total = 64 * 3 * 49 + 2 * 64
    cin = 64
    for n, out in zip((3, 4, 6, 3), (256, 512, 1024, 2048), strict=True):
        r = out // 4
        for j in range(n):
            i = cin if j == 0 else out
            total += i * r + 2 * r + r * r * 9 + 2 * r + r * out + 2 * out
            if j == 0:
                total += i * out + 2 * out
        cin = out
    return total + 2048 * labels + labels


_DINO_S: dict[str, Any] = {"image_size": 518, "hidden": 384, "layers": 12, "heads": 6}

VISION_COUNTS: dict[str, list[tuple[dict[str, Any], int]]] = {
    "vit": [
        # google/vit-base-patch16-224 (ViTForImageClassification, 1,000 labels); also
        # torchvision's published num_params of vit_b_16, the same tensors
        ({**_B, "labels": 1000}, 86_567_656),
        ({**_B, "labels": 1000}, _VIT_B + 768 * 1000 + 1000),
        # ViTModel with its pooler (google/vit-base-patch16-224-in21k)
        ({**_B, "head": "none"}, _VIT_B + 768 * 768 + 768),
    ],
    "dinov2": [
        # facebook/dinov2-small's Dinov2Model (image_size 518, 37 × 37 patches): the
        # model card's 22.1M
        ({**_DINO_S, "head": "none"}, 22_056_576),
        ({**_DINO_S, "head": "none"}, _dinov2(384, 12, 37 * 37)),
        # facebook/dinov2-base's, and a SwiGLU body, and a classifier of 2·H inputs
        (
            {"image_size": 518, "hidden": 768, "layers": 12, "heads": 12, "head": "none"},
            _dinov2(768, 12, 37 * 37),
        ),
        ({**_DINO_S, "head": "none", "swiglu": True}, _dinov2(384, 12, 37 * 37, swiglu=True)),
        ({**_DINO_S, "labels": 1000}, _dinov2(384, 12, 37 * 37) + 2 * 384 * 1000 + 1000),
    ],
    "convnext": [
        # facebook/convnext-tiny-224 (1,000 labels); torchvision's convnext_tiny holds the
        # same numbers (its published num_params: 28,589,128)
        ({"channels": 3, "labels": 1000}, 28_589_128),
        ({"channels": 3, "labels": 1000}, _convnext((3, 3, 9, 3), (96, 192, 384, 768), 1000)),
        ({"channels": 3, "head": "none"}, _convnext((3, 3, 9, 3), (96, 192, 384, 768), 0)),
    ],
    "resnet": [
        # microsoft/resnet-50 (1,000 labels); torchvision's resnet50 holds the same numbers
        # (its published num_params: 25,557,032)
        ({"channels": 3, "labels": 1000}, 25_557_032),
        ({"channels": 3, "labels": 1000}, _resnet50(1000)),
    ],
}
