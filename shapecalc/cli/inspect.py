"""``shapecalc inspect TARGET``: the tensors of a checkpoint file or of a module."""

from __future__ import annotations

import click

from shapecalc.cli.options import format_option
from shapecalc.core.errors import ShapecalcError

__all__ = ["inspect"]


@click.command()
@click.argument("target")
@click.option(
    "--depth",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Levels of the module tree to show; deeper tensors are summed into their node.",
)
@format_option(("table", "json"))
def inspect(target: str, depth: int, fmt: str) -> None:
    """The tensors of a checkpoint or a model, as a tree with subtotals.

    \b
    TARGET is one of:
      model.safetensors        read by its header only, without torch
      model.pt / .pth / .bin   torch.load(weights_only=True, mmap=True): never runs code
      package.module:attr      an nn.Module, or a function returning one (imports your code)
    """
    from shapecalc.adapters.targets import inspect_target

    try:
        inspection = inspect_target(target)
    except ShapecalcError as err:
        raise click.BadParameter(str(err), param_hint="'TARGET'") from None
    if fmt == "json":
        from shapecalc.report.as_json import inspection_json

        click.echo(inspection_json(inspection), nl=False)
        return
    from shapecalc.report.rich_writer import echo, inspection_tree

    echo(inspection_tree(inspection, depth))
