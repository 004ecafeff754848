"""``shapecalc inspect TARGET``: the tensors of a checkpoint file or of a module."""

from __future__ import annotations

import sys

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
@click.option(
    "--allow-field",
    "allow",
    multiple=True,
    metavar="FIELD",
    help="A folder's config.json field shapecalc does not know, to check the checkpoint "
    "without (as shapecalc hf --allow-field). Repeatable.",
)
@format_option(("table", "json"))
def inspect(target: str, depth: int, allow: tuple[str, ...], fmt: str) -> None:
    """The tensors of a checkpoint or a model, as a tree with subtotals; a checkpoint
    folder with its config.json is checked against it.

    \b
    TARGET is one of:
      model.safetensors        read by its header only, without torch
      model.pt / .pth / .bin   torch.load(weights_only=True, mmap=True): never runs code
      FOLDER                   a downloaded checkpoint: model.safetensors, or shards with
                               model.safetensors.index.json (headers only), beside its
                               config.json
      owner/name[@revision]    the same, a Hub id in the local Hugging Face cache
      package.module:attr      an nn.Module, a Module class or a function returning one:
                               imports and runs your code, from the current directory

    \b
    A folder with config.json: every tensor missing, unexpected, of the wrong shape or of
    another dtype than the config implies is listed (names as transformers loads them).
    Exit status 0 when the checkpoint agrees with its config, 1 when it does not, 2 when
    TARGET cannot be read.
    """
    from shapecalc.adapters.checkpoint import paused_gc

    with paused_gc():  # hundreds of thousands of small objects, none in a cycle
        _inspect(target, depth, allow, fmt)


def _inspect(target: str, depth: int, allow: tuple[str, ...], fmt: str) -> None:
    from shapecalc.adapters.targets import inspect_target

    try:
        inspection = inspect_target(target, allow)
    except ShapecalcError as err:
        raise click.BadParameter(str(err), param_hint="'TARGET'") from None
    if fmt == "json":
        from shapecalc.report.as_json import inspection_json

        click.echo(inspection_json(inspection), nl=False)
    else:
        from shapecalc.report.inspect_text import inspection_text

        click.echo(inspection_text(inspection, depth))
        if inspection.check is not None:
            from shapecalc.report.check_text import check_lines

            click.echo("\n".join(["", *check_lines(inspection.check)]))
    if inspection.unchecked is not None:  # listed, but not checked: an error, after the list
        why = " ".join(inspection.unchecked.split())  # one line
        click.echo(f"Error: not checked against its config.json: {why}", err=True)
        sys.exit(2)
    if inspection.check is not None and not inspection.check.ok:
        sys.exit(1)
