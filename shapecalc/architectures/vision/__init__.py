"""torchvision's classification models by name, composed from shapecalc's layers with
torchvision's names: ``torchvision("resnet50")`` is the tree of
``torchvision.models.resnet50(weights=None)``.

Each family is one module, written from torchvision 0.29.1's source (the file it names);
tests/test_torchvision.py holds every model to the truth file torchvision wrote
(scripts/torchvision_truth.py): every parameter and buffer name and shape, the total, and
FlopCounterMode's count at 224 and at each pretrained weights' crop size. A new family is
a module here with ``MODELS`` (the names it builds) and a function ``(name, num_classes)
-> Block``, named in :data:`FAMILIES` (with ``TAKES_IMAGE_SIZE = True`` the function also
takes ``image_size``: ViT's positional embedding follows it); the truth file holds every
torchvision model already.

    >>> from shapecalc.architectures.vision import torchvision
    >>> torchvision("resnet18").total
    11689512
"""

from __future__ import annotations

import importlib
from typing import Any

from shapecalc.core.errors import InvalidArgumentError, ShapeError, echo
from shapecalc.core.model import Model

__all__ = [
    "AUX_LOGITS",
    "FAMILIES",
    "TORCHVISION_MODELS",
    "WIDTH_MULT",
    "family_of",
    "names",
    "torchvision",
]

#: every model ``torchvision.models.list_models(module=torchvision.models)`` gives (0.29.1)
TORCHVISION_MODELS = (
    *("alexnet", "convnext_base", "convnext_large", "convnext_small", "convnext_tiny"),
    *("densenet121", "densenet161", "densenet169", "densenet201"),
    *(f"efficientnet_b{i}" for i in range(8)),
    *("efficientnet_v2_l", "efficientnet_v2_m", "efficientnet_v2_s", "googlenet"),
    *("inception_v3", "maxvit_t", "mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3"),
    *("mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"),
    *(f"regnet_x_{s}" for s in ("16gf", "1_6gf", "32gf", "3_2gf", "400mf", "800mf", "8gf")),
    *(f"regnet_y_{s}" for s in ("128gf", "16gf", "1_6gf", "32gf", "3_2gf", "400mf")),
    *("regnet_y_800mf", "regnet_y_8gf", "resnet101", "resnet152", "resnet18", "resnet34"),
    *("resnet50", "resnext101_32x8d", "resnext101_64x4d", "resnext50_32x4d"),
    *(f"shufflenet_v2_x{s}" for s in ("0_5", "1_0", "1_5", "2_0")),
    *("squeezenet1_0", "squeezenet1_1", "swin_b", "swin_s", "swin_t"),
    *("swin_v2_b", "swin_v2_s", "swin_v2_t", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn"),
    *("vgg16", "vgg16_bn", "vgg19", "vgg19_bn", "vit_b_16", "vit_b_32", "vit_h_14"),
    *("vit_l_16", "vit_l_32", "wide_resnet101_2", "wide_resnet50_2"),
)

#: family module -> its function; each module's MODELS names the models it builds
FAMILIES = {
    "resnet": "resnet",
    "vgg": "vgg",
    "mobilenet": "mobilenet",
    "efficientnet": "efficientnet",
    "regnet": "regnet",
    "vit": "vit",
    "convnext": "convnext",
    "densenet": "densenet",
    "swin": "swin",
    "classic": "classic",
    "mobile": "mobile",
}
#: the models whose builder takes ``width_mult``
WIDTH_MULT = ("mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small")
#: the models whose builder takes ``aux_logits`` (on with weights=None; their pretrained
#: weights' builders drop the auxiliary heads, and ``num_params`` counts without them)
AUX_LOGITS = ("googlenet", "inception_v3")
#: the image size torchvision's classification models are measured at
DEFAULT_SIZE = 224


def _family(module: str) -> Any:
    return importlib.import_module(f"{__name__}.{module}")


def family_of(name: str) -> str | None:
    """The family module that builds ``name``, or None."""
    for module in FAMILIES:
        if name in _family(module).MODELS:
            return module
    return None


def names() -> list[str]:
    """Every torchvision model shapecalc builds, in torchvision's order (by name)."""
    return sorted(n for n in TORCHVISION_MODELS if family_of(n) is not None)


def _refuse(field: str, value: Any, rule: str, message: str) -> InvalidArgumentError:
    return InvalidArgumentError(message, field=field, value=value, rule=rule)


def _check_name(name: Any) -> str:
    if not isinstance(name, str):
        raise _refuse("name", name, "a torchvision model's name", f"got {echo(name)}")
    if family_of(name) is not None:
        return name
    if name in TORCHVISION_MODELS:
        raise _refuse(
            "name",
            name,
            "a torchvision model shapecalc builds",
            f"torchvision's {name} is not built by shapecalc yet; it builds "
            f"{len(names())} models (shapecalc torchvision --list)",
        )
    import difflib

    near = difflib.get_close_matches(name.lower(), TORCHVISION_MODELS, n=4, cutoff=0.6)
    guess = f"; did you mean {', '.join(near)}?" if near else " (shapecalc torchvision --list)"
    raise _refuse(
        "name",
        name,
        "a torchvision classification model",
        f"no torchvision model {echo(name)}{guess}",
    )


def _positive_int(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _refuse(
            field,
            value,
            f"{field} is an integer >= 1",
            f"{field} must be an integer >= 1, got {echo(value)}",
        )
    return value


def torchvision(
    name: str,
    *,
    num_classes: int = 1000,
    image_size: int = DEFAULT_SIZE,
    width_mult: float | None = None,
    aux_logits: bool | None = None,
) -> Model:
    """torchvision's ``name`` as ``torchvision.models.get_model(name, weights=None,
    num_classes=...)`` builds it, for (B, 3, image_size, image_size) images; ``width_mult``
    for the MobileNets, ``aux_logits`` for GoogLeNet and Inception v3 (torchvision's
    arguments; the auxiliary heads are tensors of the model, run in training only). An
    image size the network cannot take is refused, naming the layer.

        >>> torchvision("mobilenet_v3_small", num_classes=10).named_parameters()[-1]
        ('classifier.3.bias', (10,))
    """
    _check_name(name)
    _positive_int("num_classes", num_classes)
    _positive_int("image_size", image_size)
    family = family_of(name)
    assert family is not None
    kwargs: dict[str, Any] = {}
    if width_mult is not None:
        if name not in WIDTH_MULT:
            raise _refuse(
                "width_mult",
                width_mult,
                "width_mult is an argument of " + ", ".join(WIDTH_MULT),
                f"torchvision's {name} takes no width_mult (only {', '.join(WIDTH_MULT)} do)",
            )
        if (
            isinstance(width_mult, bool)
            or not isinstance(width_mult, (int, float))
            or not width_mult > 0
        ):
            raise _refuse(
                "width_mult",
                width_mult,
                "width_mult is a number > 0",
                f"width_mult must be a number > 0, got {echo(width_mult)}",
            )
        kwargs["width_mult"] = float(width_mult)
    if aux_logits is not None:
        if name not in AUX_LOGITS:
            raise _refuse(
                "aux_logits",
                aux_logits,
                "aux_logits is an argument of " + ", ".join(AUX_LOGITS),
                f"torchvision's {name} takes no aux_logits (only {', '.join(AUX_LOGITS)} do)",
            )
        if not isinstance(aux_logits, bool):
            raise _refuse(
                "aux_logits",
                aux_logits,
                "aux_logits is True or False",
                f"aux_logits must be True or False, got {echo(aux_logits)}",
            )
        kwargs["aux_logits"] = aux_logits
    builds: dict[str, Any] = {}
    if getattr(_family(family), "TAKES_IMAGE_SIZE", False):
        builds["image_size"] = image_size
    root = getattr(_family(family), FAMILIES[family])(name, num_classes, **kwargs, **builds)
    arguments = {"name": name, "num_classes": num_classes, "image_size": image_size, **kwargs}
    model = Model(
        name,
        root,
        input_layout=(("B", 3, image_size, image_size),),
        kind="torchvision",
        arguments=arguments,
    )
    _check_size(model, image_size)
    return model


def _check_size(model: Model, size: int) -> None:
    """Refuse an image size a layer cannot take (a pooling window larger than its input)."""
    from shapecalc.analysis.cost import analyze

    try:
        analyze(model, ((1, 3, size, size),))
    except ShapeError as err:
        raise _refuse(
            "image_size",
            size,
            "an image size every layer of the network can take",
            f"torchvision's {model.name} cannot take {size}×{size} images: {err}",
        ) from None
