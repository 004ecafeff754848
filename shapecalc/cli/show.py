"""``shapecalc show FILE.py:NAME``: a model composed in Python, printed as a model
command prints an architecture, with every flag one has."""

from __future__ import annotations

from typing import Any

import click

from shapecalc.cli.group import ExampleCommand
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

__all__ = ["show"]


@click.command("show", cls=ExampleCommand, example="model.py:model --all")
@click.argument("target")
@apply(report_options(explain=None))
@apply(cost_options(model=True, sequence=True))
@apply(convention_options(gru=True))
def show(target: str, **flags: Any) -> None:
    """A model composed with shapecalc's Python API, as a model command prints one: its
    tensors, and with --shapes, --flops, --memory (--all) the shapes, compute and memory
    its declared forward gives.

    \b
    TARGET is FILE.py:NAME or package.module:NAME: NAME is a shapecalc Model, a Block, a
    layer spec or a function returning one (called with no arguments). The file is run:
    it is your code, run as you asked. Its input is the model's input_layout, with --batch
    and --seq-len for the sizes B and T.
    """
    from shapecalc.adapters.composed import load_model

    shown = {**pop(flags, REPORT_FLAGS), **pop(flags, COST_FLAGS + SIZE_FLAGS)}
    shown.update(pop(flags, CONVENTION_FLAGS))
    try:
        model = load_model(target)
    except ShapecalcError as err:
        raise click.BadParameter(str(err), param_hint="'TARGET'") from None
    ctx = click.get_current_context()
    for name, letter in (("batch", "B"), ("seq_len", "T")):
        source = ctx.get_parameter_source(name)
        given = source is not None and source.name == "COMMANDLINE"
        if given and model.input_layout and all(letter not in s for s in model.input_layout):
            layout = ", ".join(str(tuple(s)) for s in model.input_layout)
            flag = "--" + name.replace("_", "-")
            raise click.BadParameter(
                f"the model's input layout {layout} has no {letter}: {flag} would change "
                f"nothing (write {letter} into the layout where the model is made)",
                param_hint=f"'{flag}'",
            )
    finish(model, shown)
