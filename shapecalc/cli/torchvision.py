"""``shapecalc torchvision NAME``: torchvision's classification models by name, with every
flag a model command has (``--all``, ``--depth``, ``--memory``, ``--format json``, ...)."""

from __future__ import annotations

from typing import Any

import click

from shapecalc.cli.group import ExampleCommand, engine_error
from shapecalc.cli.options import (
    CONVENTION_FLAGS,
    COST_FLAGS,
    REPORT_FLAGS,
    SIZE_FLAGS,
    apply,
    convention_options,
    cost_options,
    finish,
    pop,
    report_options,
)
from shapecalc.core.errors import ShapecalcError

__all__ = ["torchvision"]


def _list() -> None:
    from shapecalc.architectures.vision import AUX_LOGITS, WIDTH_MULT, names

    for name in names():
        flag = (
            "--width-mult" if name in WIDTH_MULT else "--aux-logits" if name in AUX_LOGITS else ""
        )
        click.echo(f"{name}  ({flag})" if flag else name)


@click.command("torchvision", cls=ExampleCommand, example="resnet50 --num-classes 10")
@click.argument("name", required=False, metavar="NAME")
@click.option("--list", "list_", is_flag=True, help="List the models shapecalc builds.")
@click.option(
    "--num-classes",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Classes of the last layer (torchvision's num_classes).",
)
@click.option(
    "--image-size",
    type=click.IntRange(min=1),
    default=224,
    show_default=True,
    metavar="S",
    help="The input images' height and width, for --shapes, --flops and --memory.",
)
@click.option(
    "--width-mult",
    type=click.FLOAT,
    default=None,
    help="Width multiplier of the MobileNets (torchvision's width_mult) [default: 1.0].",
)
@click.option(
    "--aux-logits/--no-aux-logits",
    default=None,
    help="GoogLeNet's and Inception v3's auxiliary heads (torchvision's aux_logits), run in "
    "training only [default: on, as with weights=None; the pretrained weights drop them].",
)
@apply(report_options(explain=None))
@apply(cost_options(model=True))
@apply(convention_options(gru=False))
def torchvision(**flags: Any) -> None:
    """A torchvision classification model by name (resnet50, vgg16_bn, mobilenet_v3_large,
    efficientnet_b0, regnet_y_400mf, ...), as torchvision.models builds it with
    weights=None: every tensor with torchvision's name and shape, the counts, and with
    --flops the multiply-accumulates for (B, 3, S, S) images."""
    from shapecalc.architectures.vision import torchvision as build

    if flags.pop("list_"):
        _list()
        return
    name = flags.pop("name")
    if name is None:
        raise click.UsageError("Missing argument 'NAME' (shapecalc torchvision --list lists them).")
    shown = {**pop(flags, REPORT_FLAGS), **pop(flags, COST_FLAGS + SIZE_FLAGS)}
    shown.update(pop(flags, CONVENTION_FLAGS))
    try:
        model = build(
            name,
            num_classes=flags["num_classes"],
            image_size=flags["image_size"],
            width_mult=flags["width_mult"],
            aux_logits=flags["aux_logits"],
        )
    except ShapecalcError as err:
        if err.field == "name":
            raise click.BadParameter(str(err), param_hint="'NAME'") from None
        raise engine_error(err) from None
    finish(model, shown)
