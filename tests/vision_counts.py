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
}
