"""``shapecalc inspect TARGET``: the tensors of a checkpoint file or of a module."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import click

from shapecalc.cli.options import format_option
from shapecalc.core.errors import ShapecalcError, echo

if TYPE_CHECKING:
    from shapecalc.adapters.targets import Inspection

__all__ = ["inspect"]

#: the largest size --input-shape takes (a larger one is surely a typo)
MAX_SIZE = 2**40


class _Shape(click.ParamType):  # type: ignore[type-arg]
    """``2,3,32,32`` or ``(2, 3, 32, 32)``: one input's shape, sizes integers >= 1."""

    name = "shape"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        items = value.strip().strip("()[]").replace(" ", "").split(",")
        if len(items) > 1 and items[-1] == "":
            items.pop()  # (5,) is a one-dimensional shape, as Python writes it
        if not all(i.isascii() and i.isdigit() and len(i) <= 13 for i in items) or not all(
            1 <= int(i) <= MAX_SIZE for i in items
        ):
            self.fail(
                f"{echo(value)}: an input shape is integers from 1 to 2^40 between commas, "
                "as 2,3,32,32",
                param,
                ctx,
            )
        return tuple(int(i) for i in items)


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
@click.option(
    "--input-shape",
    "input_shapes",
    type=_Shape(),
    multiple=True,
    metavar="SHAPE",
    help="The input's shape, as 2,3,32,32 (repeat for a forward of several inputs): a "
    "module:attr target with lazy modules (nn.LazyLinear) is copied and run once on zeros "
    "of it, on the meta device, to give them their shapes.",
)
@format_option(("table", "json"))
def inspect(
    target: str,
    depth: int,
    allow: tuple[str, ...],
    input_shapes: tuple[tuple[int, ...], ...],
    fmt: str,
) -> None:
    """The tensors of a checkpoint or a model, as a tree with subtotals; a checkpoint
    folder with its config.json is checked against it.

    \b
    TARGET is one of:
      model.safetensors        read by its header only, without torch
      model.pt / .pth / .bin   torch.load(weights_only=True, mmap=True): never runs code
      model.gguf               llama.cpp's file, its header only: ggml types and
                               bytes, checked against its architecture
      FOLDER                   a downloaded checkpoint: model.safetensors, or shards with
                               model.safetensors.index.json (headers only), beside its
                               config.json
      owner/name[@revision]    the same, a Hub id in the local Hugging Face cache
      package.module:attr      an nn.Module, a Module class or a function returning one:
                               imports and runs your code, from the current directory

    \b
    Parameters and buffers (BatchNorm's running statistics) are counted apart: a
    module's as torch registered them, a checkpoint's by name (running_mean,
    running_var, num_batches_tracked, ...). A module used at several places is listed
    once, under its first name, as torch's named_parameters() lists it.

    \b
    A folder with config.json: every tensor missing, unexpected, of the wrong shape or of
    another dtype than the config implies is listed (names as transformers loads them).
    Exit status 0 when the checkpoint agrees with its config, 1 when it does not, 2 when
    TARGET cannot be read.
    """
    from shapecalc.adapters.checkpoint import paused_gc

    with paused_gc():  # hundreds of thousands of small objects, none in a cycle
        _inspect(target, depth, allow, input_shapes, fmt)


def _read(target: str, allow: tuple[str, ...], shapes: tuple[tuple[int, ...], ...]) -> Inspection:
    """What TARGET holds; a lazy module run once on ``shapes`` first, when given."""
    from shapecalc.adapters.targets import inspect_target

    if shapes and (os.path.exists(target) or ":" not in target):
        raise click.BadParameter(
            f"it runs a module's forward, and TARGET {echo(target)} is no package.module:attr",
            param_hint="'--input-shape'",
        )
    try:
        return inspect_target(target, allow, shapes)
    except ShapecalcError as err:
        if err.field == "input_shapes":
            raise click.BadParameter(str(err), param_hint="'--input-shape'") from None
        raise click.BadParameter(_advice(target, err), param_hint="'TARGET'") from None


def _advice(target: str, err: ShapecalcError) -> str:
    """The error in words; a lazy module's with the flag that gives it its shapes."""
    if ":" in target:  # a module target: torch_bridge costs nothing more to import
        from shapecalc.adapters.torch_bridge import LazyModuleError

        if isinstance(err, LazyModuleError):
            return (
                f"{target}: {err.tensor} ({err.kind}) is not initialized: a lazy module has no "
                "shape until its first forward; pass --input-shape with one input's shape (as "
                "--input-shape 1,3,32,32) to run one on a copy, on the meta device"
            )
    return str(err)


def _width() -> int:
    """The terminal's width as the tables measure it (rich's rule, without importing rich):
    ``COLUMNS`` when set, else the terminal's of standard input, output or error, else 80."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns):
        return int(columns)
    for fd in (0, 1, 2):
        try:
            width = os.get_terminal_size(fd).columns
        except (AttributeError, ValueError, OSError):
            continue
        if width:
            return width
    return 80


def _inspect(
    target: str, depth: int, allow: tuple[str, ...], shapes: tuple[tuple[int, ...], ...], fmt: str
) -> None:
    inspection = _read(target, allow, shapes)
    if fmt == "json":
        from shapecalc.report.as_json import inspection_json

        click.echo(inspection_json(inspection), nl=False)
    else:
        from shapecalc.report.inspect_text import inspection_text

        click.echo(inspection_text(inspection, depth, _width()))
        if inspection.check is not None:
            from shapecalc.report.check_text import check_lines
            from shapecalc.report.inspect_text import fitted_lines

            click.echo("\n".join(["", *fitted_lines(check_lines(inspection.check), _width())]))
    gguf_status = _gguf(inspection, fmt)
    if inspection.unchecked is not None:  # listed, but not checked: an error, after the list
        why = " ".join(inspection.unchecked.split())  # one line
        click.echo(f"Error: not checked against its config.json: {why}", err=True)
        sys.exit(2)
    if inspection.check is not None and not inspection.check.ok:
        sys.exit(1)
    if gguf_status:
        sys.exit(gguf_status)


def _gguf(inspection: Inspection, fmt: str) -> int:
    """A GGUF file's header and check, after its tensors (as text); the exit status: 1
    when the file does not agree with the architecture it names, 2 when its metadata
    describes no model of it (one line on stderr)."""
    if inspection.gguf is None:
        return 0
    check = inspection.gguf_check
    if fmt != "json":
        from shapecalc.report.gguf_text import gguf_check_lines, gguf_lines
        from shapecalc.report.inspect_text import fitted_lines

        lines = ["", *gguf_lines(inspection.gguf)]
        if check is not None:
            lines += ["", *gguf_check_lines(check)]
        elif inspection.gguf_unchecked and not inspection.gguf_refused:
            lines += ["", f"Not checked against an architecture: {inspection.gguf_unchecked}"]
        click.echo("\n".join(fitted_lines(lines, _width())))
    if inspection.gguf_refused:  # bad metadata: listed, then an error in one line, as a config
        why = " ".join((inspection.gguf_unchecked or "").split())
        click.echo(f"Error: not checked against its architecture: {why}", err=True)
        return 2
    if check is not None and not check.ok:
        return 1
    return 0
