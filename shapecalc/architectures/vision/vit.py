"""ViT-B/16, B/32, L/16, L/32 and H/14, as torchvision/models/vision_transformer.py builds
them (``vit_b_16`` ... ``vit_h_14``: patch size, layers, heads, hidden and MLP widths).
Unlike torchvision's convolutional networks, a ViT is built for one image size: its
``encoder.pos_embedding`` holds (S / patch)² + 1 positions, and the forward refuses any
other size (``_process_input``'s asserts), so the image size is an argument of the build,
as ``image_size`` is of torchvision's builders."""

from __future__ import annotations

from shapecalc.architectures._vision import vit as compose
from shapecalc.core.errors import InvalidArgumentError
from shapecalc.core.tree import Block

__all__ = ["MODELS", "TAKES_IMAGE_SIZE", "vit"]

#: name -> (patch_size, num_layers, num_heads, hidden_dim, mlp_dim), vision_transformer.py's
#: builders vit_b_16, vit_b_32, vit_l_16, vit_l_32, vit_h_14
MODELS: dict[str, tuple[int, int, int, int, int]] = {
    "vit_b_16": (16, 12, 12, 768, 3072),
    "vit_b_32": (32, 12, 12, 768, 3072),
    "vit_l_16": (16, 24, 16, 1024, 4096),
    "vit_l_32": (32, 24, 16, 1024, 4096),
    "vit_h_14": (14, 32, 16, 1280, 5120),
}
#: the builder takes the image size (the positional embedding's length follows it)
TAKES_IMAGE_SIZE = True


def vit(name: str, num_classes: int, image_size: int = 224) -> Block:
    """The root of torchvision's ``name`` (a key of :data:`MODELS`) for ``image_size``
    images; a size the patch size does not divide is refused as ``image_size``, as
    VisionTransformer's ``image_size % patch_size == 0`` assert does."""
    patch, layers, heads, hidden, mlp = MODELS[name]
    if image_size % patch:
        raise InvalidArgumentError(
            f"torchvision's {name} cannot take {image_size}×{image_size} images: its "
            f"patch size {patch} does not divide {image_size} (try {_near(image_size, patch)})",
            field="image_size",
            value=image_size,
            rule=f"image_size is a multiple of {name}'s patch size {patch}",
        )
    root = compose(
        image_size=image_size,
        patch_size=patch,
        num_layers=layers,
        num_heads=heads,
        hidden_dim=hidden,
        mlp_dim=mlp,
        num_classes=num_classes,
    ).root
    assert isinstance(root, Block)
    return root


def _near(size: int, patch: int) -> str:
    below = size // patch * patch
    return f"{below} or {below + patch}" if below else str(patch)
